"""Upper bounds and exact optima.

- :func:`welfare_bound`: ``E[max_S v(S)] = E[v(all items)]`` bounds the revenue of
  every individually rational mechanism for one bidder.
- :func:`lp_optimal_mechanism`: the revenue-optimal mechanism for a finite type
  space (a discrete distribution, or an empirical sample with equal weights),
  solved exactly as a linear program with scipy's HiGHS.

LP (one bidder, types ``t = 1..n`` with probabilities ``f_t``, all ``M = 2^m`` bundles)::

    max  sum_t f_t p_t
    s.t. x_t in simplex(M)                                   (randomised allocation)
         sum_S x_t(S) v_t(S) - p_t >= 0                       (IR)
         sum_S x_t(S) v_t(S) - p_t >= sum_S x_s(S) v_t(S) - p_s   for all s != t  (IC)

By the taxation principle the solution is a menu with one element per type;
evaluated with :func:`bundleflow.mechanisms.evaluate_menu` (seller-favourable ties) it
earns the LP value on the same types.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog

from bundleflow.errors import BundleflowError, InputError
from bundleflow.mechanisms.menu import Menu
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.bundles import all_bundles

MAX_LP_ITEMS = 10
MAX_LP_TYPES = 2000


@dataclass
class LPResult:
    """Exact optimum of the mechanism-design LP.

    Attributes:
        revenue: optimal expected revenue (LP objective).
        menu: one element per (distinct) type: its lottery over all ``2^m`` bundles and payment.
        allocation: ``[n, 2^m]`` lottery of each distinct type; payment: ``[n]``.
        probs: ``[n]`` probability of each distinct type; type_index: ``[B]`` row -> distinct type.
    """

    revenue: float
    menu: Menu
    allocation: np.ndarray
    payment: np.ndarray
    probs: np.ndarray
    type_index: np.ndarray


def lp_optimal_mechanism(valuation: Valuation, probs=None, deterministic: bool = False) -> LPResult:
    """Solve the single-bidder revenue LP over the types in ``valuation``.

    Args:
        valuation: ``B`` types over ``m <= 10`` items.
        probs: ``[B]`` type probabilities (summing to 1); ``None`` = empirical (``1/B`` each).
            Identical types are merged.
        deterministic: the best menu of sure bundles instead (allocations binary: a MILP).
    """
    m = valuation.n_items
    if m > MAX_LP_ITEMS:
        raise InputError(f"LP oracle enumerates 2^m bundles; m={m} exceeds {MAX_LP_ITEMS}")
    B = len(valuation)
    if B == 0:
        raise InputError("LP oracle: no types")
    if probs is None:
        f = np.full(B, 1.0 / B)
    else:
        f = np.asarray(torch.as_tensor(probs).cpu(), dtype=np.float64)
        if f.shape != (B,):
            raise InputError(f"probs must have shape [{B}], got {f.shape}")
        if not np.isfinite(f).all() or (f < 0).any() or abs(f.sum() - 1.0) > 1e-6:
            raise InputError("probs must be finite, non-negative and sum to 1")
    bundles = all_bundles(m)
    V = valuation.value(bundles).cpu().numpy()  # [B, M]
    uniq, inverse = np.unique(V, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    fu = np.bincount(inverse, weights=f, minlength=len(uniq))
    # types of zero probability stay in: they still impose IC constraints
    n, M = uniq.shape
    if n > MAX_LP_TYPES:
        raise InputError(f"LP oracle: {n} distinct types exceed {MAX_LP_TYPES} (IC has n^2 constraints)")
    x, p = _solve(uniq, fu, deterministic)
    x = np.clip(x, 0.0, 1.0)
    x /= x.sum(1, keepdims=True)
    p = np.where((p < 0) & (p > -1e-9), 0.0, p)  # HiGHS round-off below zero; a true optimum never pays a type
    menu = Menu(bundles[None].expand(n, M, m).clone(), torch.from_numpy(x), torch.from_numpy(p))
    return LPResult(float(fu @ p), menu, x, p, fu, inverse)


def _solve(V: np.ndarray, f: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """HiGHS on the LP of the module doc. ``V`` is ``[n, M]`` distinct type values, ``f`` ``[n]``.

    ``deterministic``: allocations restricted to single bundles (``x`` binary; a MILP).
    """
    n, M = V.shape
    nx = n * M  # x[t, S] at t*M + S, then p[t] at nx + t
    c = np.zeros(nx + n)
    c[nx:] = -f
    # IR rows: -sum_S x_t(S) v_t(S) + p_t <= 0
    ir_rows = np.repeat(np.arange(n), M)
    ir = sp.csr_matrix(
        (
            np.concatenate([-V.ravel(), np.ones(n)]),
            (np.concatenate([ir_rows, np.arange(n)]), np.concatenate([np.arange(nx), nx + np.arange(n)])),
        ),
        shape=(n, nx + n),
    )
    # IC rows for ordered pairs (t, s), t != s:
    #   -sum_S x_t(S) v_t(S) + p_t + sum_S x_s(S) v_t(S) - p_s <= 0
    tt, ss = np.nonzero(~np.eye(n, dtype=bool))
    r = np.arange(len(tt))
    cols_t = tt[:, None] * M + np.arange(M)[None]
    cols_s = ss[:, None] * M + np.arange(M)[None]
    rows = np.concatenate([np.repeat(r, M), np.repeat(r, M), r, r])
    cols = np.concatenate([cols_t.ravel(), cols_s.ravel(), nx + tt, nx + ss])
    vals = np.concatenate([-V[tt].ravel(), V[tt].ravel(), np.ones(len(r)), -np.ones(len(r))])
    ic = sp.csr_matrix((vals, (rows, cols)), shape=(len(r), nx + n))
    A_ub = sp.vstack([ir, ic]).tocsr()
    b_ub = np.zeros(A_ub.shape[0])
    A_eq = sp.csr_matrix((np.ones(nx), (np.repeat(np.arange(n), M), np.arange(nx))), shape=(n, nx + n))
    b_eq = np.ones(n)
    bounds = [(0.0, 1.0)] * nx + [(None, None)] * n
    if deterministic:
        from scipy.optimize import Bounds, LinearConstraint, milp

        lb = np.array([b[0] if b[0] is not None else -np.inf for b in bounds])
        ub = np.array([b[1] if b[1] is not None else np.inf for b in bounds])
        cons = [LinearConstraint(A_ub, -np.inf, b_ub), LinearConstraint(A_eq, b_eq, b_eq)]
        integrality = np.concatenate([np.ones(nx), np.zeros(n)])
        res = milp(c, constraints=cons, integrality=integrality, bounds=Bounds(lb, ub))
        if res.x is None:
            raise BundleflowError(f"deterministic MILP oracle: HiGHS found no solution ({res.message})")
    else:
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
        if res.status != 0:
            raise BundleflowError(f"LP oracle: HiGHS did not solve the LP ({res.message})")
    z = res.x
    return z[:nx].reshape(n, M), z[nx:]
