"""Bundles as 0/1 rows: all bundles of m items, checks, bit packing and deduplication."""

from __future__ import annotations

import math

import numpy as np
import torch

from bundleflow.errors import InputError


def check_bundles(bundles: torch.Tensor, n_items: int) -> torch.Tensor:
    """Validate a bundle batch ``[A, m]`` of 0/1 entries and return it as float32."""
    if not isinstance(bundles, torch.Tensor):
        bundles = torch.as_tensor(np.asarray(bundles))
    if bundles.dim() != 2:
        raise InputError(f"bundles must have shape [A, m], got {tuple(bundles.shape)}")
    if bundles.shape[1] != n_items:
        raise InputError(f"bundles have {bundles.shape[1]} items but the valuation has {n_items} items")
    if bundles.dtype != torch.bool:
        bf = bundles.to(torch.float32)
        if not ((bf == 0) | (bf == 1)).all():
            raise InputError("bundles must contain only 0/1 entries")
        return bf
    return bundles.to(torch.float32)


def all_bundles(n_items: int, device=None) -> torch.Tensor:
    """Every bundle over ``n_items`` items, ``[2^m, m]`` float32, row ``k`` = binary digits of ``k``.

    Row 0 is the empty bundle and the last row the grand bundle.
    """
    if n_items > 20:
        raise InputError(f"all_bundles: 2^{n_items} bundles is too many to enumerate")
    k = torch.arange(2**n_items, device=device)
    bits = (k[:, None] >> torch.arange(n_items, device=device)[None, :]) & 1
    return bits.to(torch.float32)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack ``[N, m]`` 0/1 rows into ``[N, ceil(m/63)]`` int64 words (63 bits per word).

    63 bits per word keeps every word non-negative. Each word is assembled from its low
    32 and high 31 bits, each an exact float64 matmul of the 0/1 rows with powers of two.
    """
    N, m = bits.shape
    W = max(1, math.ceil(m / 63))
    dev = bits.device
    item = torch.arange(m, device=dev)
    bit = item % 63
    col = 2 * (item // 63) + (bit >= 32)  # column (word, half)
    weights = torch.zeros(m, 2 * W, dtype=torch.float64, device=dev)
    weights[item, col] = 2.0 ** (bit - 32 * (bit >= 32)).to(torch.float64)
    halves = (bits.to(torch.float64) @ weights).to(torch.int64).view(N, W, 2)
    return halves[..., 0] + (halves[..., 1] << 32)


def unique_rows(bundles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct 0/1 rows of ``bundles [N, m]``: ``(uniq [U, m], inverse [N])`` with
    ``uniq[inverse] == bundles``.

    Rows are packed into 63-bit words and deduplicated with 1-D ``torch.unique`` per word
    (``torch.unique(dim=0)`` compares rows one by one and dominated Stage 2's step time).
    ``uniq`` is in a fixed but unspecified order.
    """
    N = bundles.shape[0]
    if N == 0:
        return bundles, torch.zeros(0, dtype=torch.long, device=bundles.device)
    words = pack_bits(bundles > 0.5)
    _, inv = torch.unique(words[:, 0], return_inverse=True)
    for w in range(1, words.shape[1]):
        _, col = torch.unique(words[:, w], return_inverse=True)
        _, inv = torch.unique(inv * N + col, return_inverse=True)  # < N^2: exact in int64
    U = int(inv.max()) + 1
    first = torch.full((U,), N, dtype=torch.int64, device=bundles.device)
    first = first.scatter_reduce(0, inv, torch.arange(N, device=bundles.device), reduce="amin")
    return bundles[first], inv


def first_occurrences(rows: torch.Tensor) -> torch.Tensor:
    """Indices ``[U]`` of the first occurrence of each distinct 0/1 row of ``rows [N, m]``, ascending:
    ``rows[first_occurrences(rows)]`` is the distinct rows in the order they first appear."""
    _, inv = unique_rows(rows)
    first = torch.full((int(inv.max()) + 1 if len(inv) else 0,), len(rows), dtype=torch.long, device=rows.device)
    return first.scatter_reduce(0, inv, torch.arange(len(rows), device=rows.device), "amin").sort().values
