"""The welfare bound: no individually rational mechanism earns more than ``E[max_S v(S)]``."""

from __future__ import annotations

import math

from bundleflow.valuations.base import Valuation


def welfare_bound(valuation: Valuation) -> tuple[float, float]:
    """``(E[v(all items)], standard error)`` over the batch."""
    g = valuation.grand_value().double()
    se = float(g.std(unbiased=True) / math.sqrt(len(g))) if len(g) > 1 else 0.0
    return float(g.mean()), se
