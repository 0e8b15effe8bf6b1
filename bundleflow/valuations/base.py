"""The :class:`Valuation` interface and the input checks every valuation class shares."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.valuations.bundles import all_bundles

# Elements per intermediate [rows, chunk] tensor in the batched kernels (~64 MB of float32).
_CHUNK_ELEMS = 1 << 24
# On CPU, chunks sized to stay in cache are several times faster than large ones.
_CACHE_ELEMS = 1 << 19


def _as_tensor(x, dtype, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except Exception as exc:  # pragma: no cover - defensive
            raise InputError(f"{name}: cannot convert to a tensor ({exc})") from exc
    return x.to(dtype)


# Largest m for the default demand oracle (enumerates 2^m bundles).
MAX_DEMAND_ITEMS = 12

# Largest value accepted: squares and sums of values must stay finite in float32 (max 3.4e38).
MAX_VALUE = 1e18


def _check_values(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        return
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{name}: {bad} value(s) are NaN or infinite")
    if (x < 0).any():
        raise InputError(f"{name}: negative values are not allowed (min {float(x.min()):.6g})")
    if (x > MAX_VALUE).any():
        raise InputError(
            f"{name}: values up to {MAX_VALUE:g} are supported (training computes in float32), "
            f"the largest is {float(x.max()):.6g}; rescale the values"
        )


def _check_unit(unit) -> float:
    unit = float(unit)
    if not (math.isfinite(unit) and unit > 0):
        raise InputError(f"unit must be a positive finite number, got {unit}")
    return unit


def _as_atoms(atoms) -> torch.Tensor:
    if isinstance(atoms, torch.Tensor) and atoms.dtype == torch.bool:
        return atoms
    a = _as_tensor(atoms, torch.float64, "atoms")
    if a.numel() and not ((a == 0) | (a == 1)).all():
        raise InputError("atoms must contain only 0/1 entries")
    return a.to(torch.bool)


class Valuation(ABC):
    """A batch of ``B`` monotone valuations over ``m`` items."""

    n_items: int

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def value(self, bundles: torch.Tensor) -> torch.Tensor:
        """Values of every bidder for every bundle: ``[A, m]`` -> ``[B, A]`` float64."""

    def bundle_values(self, bundles: torch.Tensor, unit: float = 1.0, dtype=torch.float64) -> torch.Tensor:
        """Values bundle-major and in units of ``unit``: ``[A, m]`` -> ``[A, B]`` (``value(bundles).T / unit``)."""
        unit = _check_unit(unit)
        return (self.value(bundles) / unit).to(dtype).T.contiguous()

    def grand_value(self) -> torch.Tensor:
        """``v(all items)`` per bidder, ``[B]`` float64 (= the bidder's largest value).

        Default: ``value`` of the grand bundle; subclasses may override it with a faster formula.
        """
        return self.value(torch.ones(1, self.n_items, device=self.device))[:, 0].double()

    def demand(self, item_prices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Utility-maximising purchase under item prices.

        Args:
            item_prices: ``[m]`` or ``[G, m]`` (``G`` candidate price vectors).

        Returns:
            ``(utility, payment)``, each ``[B]`` (or ``[G, B]``), ties broken in favour of
            the seller (highest payment among optimal bundles; zero utility buys).

        Default: every bundle is enumerated (``m <= MAX_DEMAND_ITEMS``); subclasses with
        more items override it with their own demand oracle.
        """
        p, single = self._prices(item_prices)  # [G, m]
        m = self.n_items
        if m > MAX_DEMAND_ITEMS:
            raise InputError(
                f"{type(self).__name__}: demand by enumeration handles m <= {MAX_DEMAND_ITEMS} items, "
                f"got m={m}; override Valuation.demand"
            )
        S = all_bundles(m, self.device).double()  # [A = 2^m, m]
        v = self.value(S).double()  # [B, A]
        cost = p @ S.T  # [G, A]
        gain = v[None] - cost[:, None, :]  # [G, B, A]
        best_u = gain.amax(-1)
        tol = 1e-9 * (1.0 + best_u.abs())
        pay = torch.where(gain >= (best_u - tol)[..., None], cost[:, None, :].expand_as(gain), 0.0).amax(-1)
        util = best_u.clamp_min(0.0)  # the empty bundle (row 0) is always a choice
        return (util[0], pay[0]) if single else (util, pay)

    @abstractmethod
    def subset(self, index) -> Valuation:
        """Rows ``index`` of this batch as a new valuation."""

    @abstractmethod
    def to(self, device) -> Valuation: ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    def max_value(self) -> float:
        """Largest value any bidder has for any bundle (price cap of every mechanism)."""
        return float(self.grand_value().max()) if len(self) else 0.0

    def split(self, n_first: int) -> tuple[Valuation, Valuation]:
        """First ``n_first`` rows and the rest (e.g. train / held-out)."""
        if not 0 < n_first < len(self):
            raise InputError(f"split: n_first={n_first} must be in (0, {len(self)})")
        idx = torch.arange(len(self))
        return self.subset(idx[:n_first]), self.subset(idx[n_first:])

    def _prices(self, item_prices) -> tuple[torch.Tensor, bool]:
        p = _as_tensor(item_prices, torch.float64, "item_prices").to(self.device)
        single = p.dim() == 1
        p = p.reshape(-1, p.shape[-1]) if p.dim() >= 1 else p
        if p.dim() != 2 or p.shape[1] != self.n_items:
            raise InputError(
                f"item_prices must have shape [m] or [G, m] with m={self.n_items}, "
                f"got {tuple(torch.as_tensor(item_prices).shape)}"
            )
        if not torch.isfinite(p).all():
            raise InputError("item_prices contain NaN or infinite entries")
        return p, single
