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
evaluated with :func:`bundleflow.menu.evaluate_menu` (seller-favourable ties) it
earns the LP value on the same types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog

from bundleflow.errors import BundleflowError, InputError
from bundleflow.menu import Menu
from bundleflow.valuations import Valuation, all_bundles

MAX_LP_ITEMS = 10
MAX_LP_TYPES = 2000


def welfare_bound(valuation: Valuation) -> tuple[float, float]:
    """``(E[v(all items)], standard error)`` over the batch."""
    g = valuation.grand_value().double()
    se = float(g.std(unbiased=True) / math.sqrt(len(g))) if len(g) > 1 else 0.0
    return float(g.mean()), se


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
        (np.concatenate([-V.ravel(), np.ones(n)]),
         (np.concatenate([ir_rows, np.arange(n)]), np.concatenate([np.arange(nx), nx + np.arange(n)]))),
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
    A_eq = sp.csr_matrix(
        (np.ones(nx), (np.repeat(np.arange(n), M), np.arange(nx))), shape=(n, nx + n)
    )
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


class _MILP:
    """Rows of a MILP over ``n`` variables, added one sparse row at a time, solved by HiGHS."""

    def __init__(self, n: int):
        self.n, self.rows, self.lo, self.hi = n, [], [], []

    def row(self, entries, low: float, high: float) -> None:
        """``low <= sum_j c_j x_j <= high`` for ``entries = [(j, c_j), ...]`` (repeated ``j`` add up)."""
        r = np.zeros(self.n)
        for j, c in entries:
            r[j] += c
        self.rows.append(r), self.lo.append(low), self.hi.append(high)

    def solve(self, c, integrality, lb, ub, time_limit: float, what: str) -> np.ndarray:
        """Minimise ``c @ x``; the solution ``x``, or a :class:`BundleflowError` naming ``what``."""
        from scipy.optimize import Bounds, LinearConstraint, milp

        res = milp(c, constraints=LinearConstraint(np.array(self.rows), self.lo, self.hi), integrality=integrality,
                   bounds=Bounds(lb, ub), options={"time_limit": time_limit})
        if res.x is None:
            raise BundleflowError(f"{what}: HiGHS found no solution ({res.message})")
        return res.x


MAX_MILP_CHOICES = 64  # bidders x atoms: the item-pricing MILP has one binary per pair (small type spaces only)


def optimal_item_prices(atoms: torch.Tensor, values: torch.Tensor, probs=None, time_limit: float = 60.0) -> tuple[np.ndarray, float]:
    """Revenue-optimal item prices for bidders with atom (XOR) valuations, exactly, by a MILP.

    Bidder ``b`` (probability ``f_b``) buys her utility-maximising atom at the sum of its
    item prices, or nothing; among optimal choices the one paying most (seller-favourable
    ties, as everywhere here). With ``z_bk`` = "b buys atom k", ``q_b`` her payment and
    ``u_b`` her utility::

        max  sum_b f_b q_b
        s.t. sum_k z_bk <= 1,   u_b = sum_k z_bk v_bk - q_b,   u_b >= 0
             u_b >= v_bk - sum_i a_bki p_i                  for all k  (she takes a best atom)
             |q_b - sum_i a_bki p_i| <= M (1 - z_bk)       (she pays the atom she takes)
             q_b <= M sum_k z_bk,   0 <= p_i <= max value

    Args:
        atoms: ``[B, K, m]`` bool; values: ``[B, K]``; probs: ``[B]`` (default uniform).
    Returns:
        ``(prices [m], revenue)`` of the MILP (HiGHS).
    """
    A = atoms.cpu().numpy().astype(np.float64)
    V = values.cpu().numpy().astype(np.float64)
    B, K, m = A.shape
    if B * K > MAX_MILP_CHOICES:
        raise InputError(f"item-pricing MILP: {B} bidders x {K} atoms exceed {MAX_MILP_CHOICES} binaries")
    f = np.full(B, 1.0 / B) if probs is None else np.asarray(torch.as_tensor(probs).cpu(), dtype=np.float64)
    cap = max(float(V.max()) if V.size else 0.0, 1e-12)
    M = cap * (m + 1)
    # variables: p (m) | z (B*K) | q (B) | u (B)
    nz, n = B * K, m + B * K + 2 * B
    P, Z, Q, U = 0, m, m + nz, m + nz + B
    lp = _MILP(n)
    row = lp.row
    for b in range(B):
        row([(Z + b * K + k, 1.0) for k in range(K)], -np.inf, 1.0)
        row([(U + b, 1.0), (Q + b, 1.0)] + [(Z + b * K + k, -V[b, k]) for k in range(K)], 0.0, 0.0)
        row([(Q + b, 1.0)] + [(Z + b * K + k, -M) for k in range(K)], -np.inf, 0.0)
        for k in range(K):
            cost = [(P + i, A[b, k, i]) for i in range(m) if A[b, k, i]]
            row([(U + b, 1.0)] + cost, V[b, k], np.inf)
            row([(Q + b, 1.0), (Z + b * K + k, M)] + [(j, -c) for j, c in cost], -np.inf, M)
            row([(Q + b, 1.0), (Z + b * K + k, -M)] + [(j, -c) for j, c in cost], -M, np.inf)
    c = np.zeros(n)
    c[Q:Q + B] = -f
    integrality = np.zeros(n)
    integrality[Z:Z + nz] = 1
    lb = np.zeros(n)
    ub = np.concatenate([np.full(m, cap), np.ones(nz), np.full(B, M), np.full(B, np.inf)])
    x = lp.solve(c, integrality, lb, ub, time_limit, "item-pricing MILP")
    return x[:m].copy(), float(-c @ x)


MAX_PRICE_MILP_CHOICES = 300  # distinct bidders x (elements + 1): one binary each; small type spaces only


def optimal_menu_prices(ev: torch.Tensor, cap: float, outside_util=None, outside_pay=None, weights=None,
                        time_limit: float = 10.0) -> tuple[np.ndarray, float]:
    """Revenue-optimal prices for a menu with fixed lotteries, exactly, by a MILP.

    Bidder ``t`` (weight ``f_t``) values element ``j`` at ``ev[t, j]`` and takes a
    utility-maximising option, an element or her outside option ``(u0_t, pay0_t)`` (null
    by default); among optimal options the one paying most. With ``z_tj`` = "t takes j"
    (``j = 0``: the outside option), ``q_t`` her payment, ``u_t`` her utility::

        max  sum_t f_t q_t
        s.t. sum_j z_tj = 1,  u_t >= ev_tj - p_j,  u_t >= u0_t
             u_t <= ev_tj - p_j + M (1 - z_tj),   q_t <= p_j + M (1 - z_tj)   (and for the outside option)
             0 <= p_j <= cap

    Args:
        ev: ``[B, J]`` expected values; identical bidders should be merged by the caller (``weights``).
    Returns:
        ``(prices [J], revenue)`` of the MILP (HiGHS).
    """
    E = ev.detach().cpu().numpy().astype(np.float64)
    B, J = E.shape
    if B * (J + 1) > MAX_PRICE_MILP_CHOICES:
        raise InputError(f"menu-price MILP: {B} bidders x {J + 1} options exceed {MAX_PRICE_MILP_CHOICES} binaries")
    u0 = np.zeros(B) if outside_util is None else np.asarray(torch.as_tensor(outside_util).cpu(), dtype=np.float64)
    q0 = np.zeros(B) if outside_pay is None else np.asarray(torch.as_tensor(outside_pay).cpu(), dtype=np.float64)
    f = np.full(B, 1.0 / B) if weights is None else np.asarray(torch.as_tensor(weights).cpu(), dtype=np.float64)
    M = 2.0 * (cap + max(float(np.abs(E).max()) if E.size else 0.0, float(np.abs(u0).max()), float(q0.max())) + 1.0)
    O = J + 1  # options per bidder: outside, then the elements
    P, Z, Q, U = 0, J, J + B * O, J + B * O + B
    n = U + B
    lp = _MILP(n)
    row = lp.row
    for t in range(B):
        z = lambda o: Z + t * O + o  # noqa: E731
        row([(z(o), 1.0) for o in range(O)], 1.0, 1.0)
        row([(U + t, 1.0)], u0[t], np.inf)
        row([(U + t, 1.0), (z(0), M)], -np.inf, u0[t] + M)
        row([(Q + t, 1.0), (z(0), M)], -np.inf, q0[t] + M)
        for j in range(J):
            row([(U + t, 1.0), (P + j, 1.0)], E[t, j], np.inf)
            row([(U + t, 1.0), (P + j, 1.0), (z(j + 1), M)], -np.inf, E[t, j] + M)
            row([(Q + t, 1.0), (P + j, -1.0), (z(j + 1), M)], -np.inf, M)
    c = np.zeros(n)
    c[Q:Q + B] = -f
    integrality = np.zeros(n)
    integrality[Z:Z + B * O] = 1
    lb = np.concatenate([np.zeros(J), np.zeros(B * O), np.full(B, -M), np.full(B, -M)])
    ub = np.concatenate([np.full(J, cap), np.ones(B * O), np.full(B, M), np.full(B, M)])
    x = lp.solve(c, integrality, lb, ub, time_limit, "menu-price MILP")
    return x[:J].copy(), float(-c @ x)
