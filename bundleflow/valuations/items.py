"""Item valuations: additive ``v(S) = sum_{i in S} v_i`` and unit demand ``v(S) = max_{i in S} v_i``."""

from __future__ import annotations

import torch

from bundleflow.errors import InputError
from bundleflow.valuations.base import _CHUNK_ELEMS, Valuation, _as_tensor, _check_values
from bundleflow.valuations.bundles import check_bundles


class _ItemValuation(Valuation):
    """Common storage for valuations given by per-item values ``[B, m]``."""

    def __init__(self, item_values):
        v = _as_tensor(item_values, torch.float64, "item_values")
        if v.dim() != 2:
            raise InputError(f"item_values must have shape [B, m], got {tuple(v.shape)}")
        if v.shape[1] == 0:
            raise InputError("item_values: need at least one item (m >= 1)")
        _check_values(v, "item_values")
        self.item_values = v
        self.n_items = int(v.shape[1])

    def __len__(self) -> int:
        return int(self.item_values.shape[0])

    @property
    def device(self) -> torch.device:
        return self.item_values.device

    def to(self, device):
        return type(self)(self.item_values.to(device))

    def subset(self, index):
        index = torch.as_tensor(index, device=self.device)
        return type(self)(self.item_values[index])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(B={len(self)}, m={self.n_items})"


class AdditiveValuation(_ItemValuation):
    """Additive valuations ``v(S) = sum_{i in S} v_i``; ``item_values`` is ``[B, m]``."""

    def value(self, bundles) -> torch.Tensor:
        S = check_bundles(bundles, self.n_items).to(self.device, torch.float64)
        return self.item_values @ S.T

    def grand_value(self) -> torch.Tensor:
        return self.item_values.sum(dim=1)

    def demand(self, item_prices):
        p, single = self._prices(item_prices)  # [G, m]
        gain = self.item_values[None] - p[:, None, :]  # [G, B, m]
        buy = gain >= 0  # zero-utility items are bought (seller-favourable)
        util = torch.where(buy, gain, 0.0).sum(-1)
        pay = torch.where(buy, p[:, None, :].expand_as(gain), 0.0).sum(-1)
        return (util[0], pay[0]) if single else (util, pay)


class UnitDemandValuation(_ItemValuation):
    """Unit-demand valuations ``v(S) = max_{i in S} v_i``; ``item_values`` is ``[B, m]``."""

    @torch.no_grad()
    def value(self, bundles) -> torch.Tensor:
        S = check_bundles(bundles, self.n_items).to(self.device)
        B, A = len(self), S.shape[0]
        out = torch.empty(B, A, dtype=torch.float64, device=self.device)
        chunk = max(1, _CHUNK_ELEMS // max(1, B * self.n_items))
        mask = S > 0.5
        for a0 in range(0, A, chunk):
            a1 = min(A, a0 + chunk)
            v = torch.where(mask[None, a0:a1, :], self.item_values[:, None, :], 0.0)
            out[:, a0:a1] = v.amax(dim=-1)
        return out

    def grand_value(self) -> torch.Tensor:
        return self.item_values.amax(dim=1)

    def demand(self, item_prices):
        p, single = self._prices(item_prices)
        gain = self.item_values[None] - p[:, None, :]  # [G, B, m]
        best_u = gain.amax(-1)
        tol = 1e-9 * (1.0 + best_u.abs())
        is_best = gain >= (best_u - tol)[..., None]
        pay = torch.where(is_best, p[:, None, :].expand_as(gain), 0.0).amax(-1)
        buys = best_u >= -tol
        util = torch.where(buys, best_u.clamp_min(0.0), 0.0)
        pay = torch.where(buys, pay, 0.0)
        return (util[0], pay[0]) if single else (util, pay)
