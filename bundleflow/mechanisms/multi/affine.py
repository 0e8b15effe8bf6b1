"""The affine maximiser for XOR bidders: winner determination with a seller's reserve, by
enumeration, and the Clarke prices it charges (the mechanism of
:func:`bundleflow.baselines.multi.xor_vcg`, and the base of GemNet's affine menus,
:mod:`.gemnet`).

The allocation maximises ``W'(x) = sum_i [v_i(S_i) - r |S_i|]`` over giving each bidder one
of her atoms' bundles or nothing, disjointly (a welfare-maximising allocation of XOR bids is
of this form; ``r``: the seller's reserve per item, the value of an item she keeps); bidder
``i`` pays ``v_i(S_i) - (W'* - W'*_{-i})`` (Clarke), at least ``r |S_i|``. Her price for a
bundle ``S`` is ``r |S| + W'*_-i(M) - W'*_-i(M \\ S)``, a function of ``b_-i``, and the bundle
she is given is a best one for her at those prices.
"""

from __future__ import annotations

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.multi.outcome import check_bidders, xor_bundle_values
from bundleflow.valuations.xor import XORValuation

MAX_WDP_CHOICES = 1 << 17  # prod_i (A_i + 1) choices enumerated by xor_wdp
_WDP_CHUNK = 1 << 11
MEMO_ROWS = 1 << 18  # profiles an XORSalesMemo holds (it starts afresh when full)


def atom_options(bidders: list[XORValuation], reserve: float):
    """``(bundles [B, n, A+1, m] bool, worth [B, n, A+1], value [B, n, A+1])``: bidder ``i``'s
    options, her atoms' bundles and then nothing; ``value = v_i(bundle)``, ``worth = value - r |bundle|``."""
    B, n = len(bidders[0]), len(bidders)
    A = max(v.n_atoms_max for v in bidders)
    m = bidders[0].n_items
    bundles = torch.zeros(B, n, A + 1, m, dtype=torch.bool)
    value = torch.zeros(B, n, A + 1, dtype=torch.float64)
    for i, v in enumerate(bidders):
        T = v.atoms.cpu().bool()
        bundles[:, i, : T.shape[1]] = T
        value[:, i, : T.shape[1]] = xor_bundle_values(v.to("cpu"), T.double())
    worth = value - reserve * bundles.sum(-1)
    return bundles, worth, value


def xor_wdp(bidders: list[XORValuation], reserve: float = 0.0):
    """Winner determination with a seller's reserve (module doc), by enumeration.

    Returns ``(best [B], pick [B, n], best_without [B, n])``: the largest ``W'``, the option
    each bidder gets (``A`` = nothing; ties to the first choice in enumeration order), and for
    each ``i`` the largest ``W'`` of the choices that give bidder ``i`` nothing."""
    check_bidders(bidders)
    bundles, worth, _ = atom_options(bidders, reserve)
    return _wdp(bundles, worth)


def _wdp(bundles: torch.Tensor, worth: torch.Tensor):
    """:func:`xor_wdp` on the options of :func:`atom_options`."""
    B, n, O, m = bundles.shape
    if O**n > MAX_WDP_CHOICES:
        raise InputError(f"xor_wdp enumerates (atoms+1)^bidders = {O**n} choices, more than {MAX_WDP_CHOICES}")
    # clash[b, i, a, k, c]: bidder i's option a and bidder k's option c share an item
    flat = bundles.reshape(B, n * O, m).float()
    clash = (torch.einsum("bxm,bym->bxy", flat, flat) > 0.5).reshape(B, n, O, n, O)
    choices = torch.cartesian_prod(*[torch.arange(O)] * n).reshape(-1, n) if n > 1 else torch.arange(O)[:, None]
    best = torch.full((B,), -torch.inf, dtype=torch.float64)
    pick = torch.full((B, n), O - 1, dtype=torch.long)
    without = torch.full((B, n), -torch.inf, dtype=torch.float64)
    for c0 in range(0, len(choices), _WDP_CHUNK):
        ch = choices[c0 : c0 + _WDP_CHUNK]  # [C, n]
        total = sum(worth[:, i, ch[:, i]] for i in range(n))  # [B, C]
        ok = torch.ones(B, len(ch), dtype=torch.bool)
        for i in range(n):
            for k in range(i + 1, n):
                ok &= ~clash[:, i, ch[:, i], k, ch[:, k]]
        total = torch.where(ok, total, -torch.inf)
        top, at = total.max(1)
        better = top > best
        best = torch.where(better, top, best)
        pick[better] = ch[at[better]]
        for i in range(n):
            w = torch.where(ch[:, i] == O - 1, total, -torch.inf).amax(1)
            without[:, i] = torch.maximum(without[:, i], w)
    return best, pick, without


def xor_vcg_sales(bidders: list[XORValuation], reserve: float = 0.0):
    """What :func:`bundleflow.baselines.multi.xor_vcg` sells: ``(bundle [B, n, m] bool, value [B, n], price [B, n], sold
    [B, n] bool)``, each bidder's allocated atom bundle (empty if none), its value to her, her
    Clarke payment (at least ``reserve |bundle|``) and whether she wins something. Bidder
    ``i``'s price for bundle ``S`` is ``r |S| + W'*_-i(M) - W'*_-i(M \\ S)``, a function of
    ``b_-i``, and ``bundle`` is a best choice for her at those prices (module doc)."""
    r = float(reserve)
    if not (r >= 0 and r < float("inf")):
        raise InputError(f"xor_vcg: the reserve must be finite and >= 0, got {reserve}")
    B, n, m = check_bidders(bidders)
    if not isinstance(bidders[0], XORValuation):
        raise InputError("xor_vcg: for XOR bidders")
    bundles, worth, value = atom_options(bidders, r)
    best, pick, without = _wdp(bundles, worth)
    rows = torch.arange(B)[:, None]
    idx = torch.arange(n)[None, :]
    got = value[rows, idx, pick]  # [B, n]
    sold = pick < bundles.shape[2] - 1
    payment = (got - (best[:, None] - without)).clamp_min(0) * sold
    return bundles[rows, idx, pick], got, payment, sold


class XORSalesMemo:
    """:func:`xor_vcg_sales` at one reserve, remembered profile by profile.

    What the affine maximiser sells depends on the bids and the reserve only, not on anything
    trained, so training on a finite set of profiles (the CATS bench: 2,000) solves each
    profile's winner determination once instead of at every step (at 5 bidders with 6 atoms
    each, ``7^5`` choices per profile). A profile's key is the bytes of its bidders' atoms and
    values, so equal profiles share a result whatever batch they come in; results are the
    same tensors :func:`xor_vcg_sales` returns for them (it is deterministic per profile).
    Holds up to :data:`MEMO_ROWS` profiles, then starts afresh."""

    def __init__(self, reserve: float, max_rows: int = MEMO_ROWS):
        self.reserve, self.max_rows = float(reserve), int(max_rows)
        self.store: dict[bytes, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self.hits = self.misses = 0

    def __call__(self, bidders: list[XORValuation]):
        """``(bundle [B, n, m] bool, value [B, n], price [B, n], sold [B, n] bool)`` as
        :func:`xor_vcg_sales` ``(bidders, reserve)``, on the CPU."""
        B, n, m = check_bidders(bidders)
        if not isinstance(bidders[0], XORValuation):
            raise InputError("xor_vcg: for XOR bidders")
        bidders = [v.to("cpu") for v in bidders]
        shapes = str([tuple(v.atoms.shape[1:]) for v in bidders]).encode("ascii")
        atoms = np.packbits(torch.cat([v.atoms.reshape(B, -1) for v in bidders], 1).numpy(), axis=1)
        values = torch.cat([v.values for v in bidders], 1).numpy()
        keys = [a.tobytes() + b.tobytes() + shapes for a, b in zip(atoms, values, strict=True)]
        first = {k: b for b, k in reversed(list(enumerate(keys))) if k not in self.store}  # new profile -> a row
        self.hits += B - len(first)
        self.misses += len(first)
        if first:
            if len(self.store) + len(first) > self.max_rows:
                self.store.clear()
                first = {k: b for b, k in reversed(list(enumerate(keys)))}
            rows = torch.tensor(list(first.values()))
            got = xor_vcg_sales([v.subset(rows) for v in bidders], self.reserve)
            for j, k in enumerate(first):
                self.store[k] = (got[0][j], got[1][j], got[2][j], got[3][j])
        parts = [self.store[k] for k in keys]
        return tuple(torch.stack([p[t] for p in parts]) for t in range(4))
