"""Exact optimal prices on small type spaces by mixed-integer programming (HiGHS): item prices, and
the prices of a fixed menu."""

from __future__ import annotations

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.oracles.milp import _MILP

MAX_MILP_CHOICES = 64  # bidders x atoms: the item-pricing MILP has one binary per pair (small type spaces only)


def optimal_item_prices(
    atoms: torch.Tensor, values: torch.Tensor, probs=None, time_limit: float = 60.0
) -> tuple[np.ndarray, float]:
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
    c[Q : Q + B] = -f
    integrality = np.zeros(n)
    integrality[Z : Z + nz] = 1
    lb = np.zeros(n)
    ub = np.concatenate([np.full(m, cap), np.ones(nz), np.full(B, M), np.full(B, np.inf)])
    x = lp.solve(c, integrality, lb, ub, time_limit, "item-pricing MILP")
    return x[:m].copy(), float(-c @ x)


MAX_PRICE_MILP_CHOICES = 300  # distinct bidders x (elements + 1): one binary each; small type spaces only


def optimal_menu_prices(
    ev: torch.Tensor, cap: float, outside_util=None, outside_pay=None, weights=None, time_limit: float = 10.0
) -> tuple[np.ndarray, float]:
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
        z = Z + t * O  # bidder t's choice binaries z + o, o = 0 (outside), 1..J
        row([(z + o, 1.0) for o in range(O)], 1.0, 1.0)
        row([(U + t, 1.0)], u0[t], np.inf)
        row([(U + t, 1.0), (z, M)], -np.inf, u0[t] + M)
        row([(Q + t, 1.0), (z, M)], -np.inf, q0[t] + M)
        for j in range(J):
            row([(U + t, 1.0), (P + j, 1.0)], E[t, j], np.inf)
            row([(U + t, 1.0), (P + j, 1.0), (z + j + 1, M)], -np.inf, E[t, j] + M)
            row([(Q + t, 1.0), (P + j, -1.0), (z + j + 1, M)], -np.inf, M)
    c = np.zeros(n)
    c[Q : Q + B] = -f
    integrality = np.zeros(n)
    integrality[Z : Z + B * O] = 1
    lb = np.concatenate([np.zeros(J), np.zeros(B * O), np.full(B, -M), np.full(B, -M)])
    ub = np.concatenate([np.full(J, cap), np.ones(B * O), np.full(B, M), np.full(B, M)])
    x = lp.solve(c, integrality, lb, ub, time_limit, "menu-price MILP")
    return x[:J].copy(), float(-c @ x)
