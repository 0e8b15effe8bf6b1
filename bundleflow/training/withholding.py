"""Withholding: scale every element of every menu by ``1 - eps``, allocation and price alike.

Bidder ``i``'s element ``(a, p)`` becomes ``((1 - eps) a, (1 - eps) p)``: with probability
``eps`` the seller keeps what the lottery would have given and charges nothing. For item
bidders (additive or unit demand) the value of an element is linear in its allocation, so
every utility is multiplied by ``1 - eps > 0``: each bidder's ranking of her elements and of
buying nothing is unchanged, the menus still depend on ``b_-i`` only (strategy-proof), and

    revenue' = (1 - eps) revenue,        load_j' = (1 - eps) load_j

for every profile and item (``load_j = sum_i a_ij``, the choices' total allocation of item
``j``). Trained menus sit at the edge of compatibility: most of the profiles they over-allocate
load an item by ``1 + 1e-8`` to ``1 + 1e-5`` (the penalty trades revenue against load at
``load = 1``); withholding ``eps`` removes every over-allocation up to ``load <= (1 + OVER_TOL)
/ (1 - eps)`` for exactly ``eps`` of the revenue. It does not repair a real conflict (two
bidders both taking most of an item), which the grid transform
(:mod:`bundleflow.training.compatibility`) targets.

The evaluation's tie tolerance is absolute, so a bidder within it of a tie may resolve it
differently after scaling; the outcome is evaluated exactly either way.
"""

from __future__ import annotations

import math

import torch

from bundleflow.errors import InputError

# the shares tried by withholding="auto", smallest first (choose_withholding)
WITHHOLD_LADDER = (1e-4, 1e-3, 1e-2)


class WithheldMenus:
    """``base``'s menus with every allocation and price times ``1 - withhold`` (module doc);
    ``base``: GemNet menus of item bidders, or the transform's :class:`~.compatibility.ShiftedMenus`."""

    def __init__(self, base, withhold: float):
        check_withhold(withhold)
        from bundleflow.training.compatibility import inner_gemnet

        if getattr(inner_gemnet(base), "bundles", False):
            raise InputError(
                "withholding scales lotteries: for item bidders (additive or unit demand), not XOR bidders"
            )
        self.base, self.withhold = base, float(withhold)
        self.n_bidders, self.n_items = base.n_bidders, base.n_items

    @property
    def keep(self) -> float:
        """``1 - withhold``: the factor on every allocation and price."""
        return 1.0 - self.withhold

    def menus(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``bids [B, n, m]`` -> ``(allocations [B, n, K, m], prices [B, n, K])`` (float64), ``base``'s
        times ``1 - withhold``."""
        alloc, price = self.base.menus(bids)
        return alloc.double() * self.keep, price.double() * self.keep  # float64: scaled, not re-rounded


def check_withhold(withhold: float) -> None:
    """A one-line :class:`InputError` unless ``0 <= withhold < 1``."""
    if not (isinstance(withhold, (int, float)) and math.isfinite(withhold) and 0 <= withhold < 1):
        raise InputError(f"withholding: the share must be in [0, 1), got {withhold}")


def choose_withholding(mechanism, validation: list, ladder=WITHHOLD_LADDER) -> tuple[float, list[dict]]:
    """The smallest share of ``ladder`` at which the choices over-allocate no validation profile,
    or 0 if none does (withholding pays only where it completes compatibility; module doc).
    Returns ``(share, tried)``, ``tried`` one ``{"withhold", "revenue", "over_rate"}`` per share
    evaluated on ``validation`` (the share 0 first)."""
    from bundleflow.mechanisms.multi.outcome import evaluate_multi

    tried = []
    for eps in (0.0, *ladder):
        out = evaluate_multi(WithheldMenus(mechanism, eps) if eps else mechanism, validation)
        tried.append({"withhold": eps, "revenue": out.revenue, "over_rate": out.over_rate})
        if out.over_rate == 0:
            return eps, tried
    return 0.0, tried
