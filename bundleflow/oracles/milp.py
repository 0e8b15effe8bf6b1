"""Rows of a mixed-integer program in scipy's ``milp`` form, shared by the exact oracles."""

from __future__ import annotations

import numpy as np

from bundleflow.errors import BundleflowError


class _MILP:
    """Rows of a MILP over ``n`` variables, added one sparse row at a time, solved by HiGHS."""

    def __init__(self, n: int):
        self.n = n
        self.rows: list[np.ndarray] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def row(self, entries, low: float, high: float) -> None:
        """``low <= sum_j c_j x_j <= high`` for ``entries = [(j, c_j), ...]`` (repeated ``j`` add up)."""
        r = np.zeros(self.n)
        for j, c in entries:
            r[j] += c
        self.rows.append(r)
        self.lo.append(low)
        self.hi.append(high)

    def solve(self, c, integrality, lb, ub, time_limit: float, what: str) -> np.ndarray:
        """Minimise ``c @ x``; the solution ``x``, or a :class:`BundleflowError` naming ``what``."""
        from scipy.optimize import Bounds, LinearConstraint, milp

        res = milp(
            c,
            constraints=LinearConstraint(np.array(self.rows), self.lo, self.hi),
            integrality=integrality,
            bounds=Bounds(lb, ub),
            options={"time_limit": time_limit},
        )
        if res.x is None:
            raise BundleflowError(f"{what}: HiGHS found no solution ({res.message})")
        return res.x
