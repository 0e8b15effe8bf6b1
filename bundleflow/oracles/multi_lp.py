"""The revenue-optimal multi-bidder mechanism of a finite type space, exactly (LP, HiGHS).

``n`` bidders with independent types: bidder ``i`` has types ``t = 0..T_i-1`` (rows of a
:class:`~bundleflow.valuations.Valuation` over the same ``m`` items) with probabilities
``f_i(t)``. A mechanism maps each type profile ``t = (t_1..t_n)`` to a lottery ``x_t`` over
the ``(n+1)^m`` *assignments* (item ``j`` to bidder ``o_j`` or to nobody; correlated
lotteries over bundles included) and payments ``p_t in R^n``. Bidder ``i``'s value for
assignment ``o`` is ``v_{i,t_i}({j : o_j = i})``, so ``U_i(s | t_i) = sum_o x_s(o)
v_{i,t_i}(o) - p_{s,i}`` is her utility at the reported profile ``s``.

LP::

    max  sum_t f(t) sum_i p_{t,i}                     f(t) = prod_i f_i(t_i)
    s.t. x_t in simplex((n+1)^m)
    DSIC (``ic="dsic"``), for every profile t, bidder i, misreport t'_i:
         U_i(t | t_i) >= 0                            (ex-post IR)
         U_i(t | t_i) >= U_i((t'_i, t_-i) | t_i)      (dominant-strategy IC)
    BIC (``ic="bic"``), the same in expectation over t_-i ~ f_-i (interim IR and IC).

Checked against Yao's example (2 additive bidders, 2 items, values iid uniform on {1, 2};
Yao, "Dominant-strategy versus Bayesian multi-item auctions", arXiv:1607.03685): the DSIC
optimum is 25/8 and the BIC optimum 51/16, 2% more.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog

from bundleflow.errors import BundleflowError, InputError
from bundleflow.valuations.base import Valuation

MAX_MULTI_LP_VARIABLES = 2_000_000  # profiles x assignments
IC_KINDS = ("dsic", "bic")


@dataclass
class MultiLPResult:
    """Exact optimum of the multi-bidder LP.

    Attributes:
        revenue: optimal expected revenue.
        profiles: ``[P, n]`` type index of each bidder in each profile (lexicographic order).
        assignments: ``[O, m]`` owner of each item (``0..n-1``, or ``-1`` for nobody).
        lottery: ``[P, O]`` probability of each assignment at each profile.
        payment: ``[P, n]`` payment of each bidder at each profile.
        probs: ``[P]`` profile probabilities.
    """

    revenue: float
    profiles: np.ndarray
    assignments: np.ndarray
    lottery: np.ndarray
    payment: np.ndarray
    probs: np.ndarray

    def allocation(self) -> np.ndarray:
        """``[P, n, m]`` probability that bidder ``i`` receives item ``j`` at each profile."""
        n = self.payment.shape[1]
        owner = self.assignments[None, :, :] == np.arange(n)[:, None, None]  # [n, O, m]
        return np.einsum("po,nom->pnm", self.lottery, owner.astype(float))


def assignments(n_bidders: int, n_items: int) -> np.ndarray:
    """``[(n+1)^m, m]`` every assignment of ``m`` items to ``n`` bidders or nobody (``-1``)."""
    return np.array(list(itertools.product(range(-1, n_bidders), repeat=n_items)), dtype=np.int64).reshape(-1, n_items)


def _check_probs(probs, T: int, i: int) -> np.ndarray:
    if probs is None:
        return np.full(T, 1.0 / T)
    f = np.asarray(torch.as_tensor(probs).cpu(), dtype=np.float64)
    if f.shape != (T,):
        raise InputError(f"probs of bidder {i} must have shape [{T}], got {f.shape}")
    if not np.isfinite(f).all() or (f < 0).any() or abs(f.sum() - 1.0) > 1e-6:
        raise InputError(f"probs of bidder {i} must be finite, non-negative and sum to 1")
    return f


def lp_optimal_multi(types: list[Valuation], probs=None, ic: str = "dsic") -> MultiLPResult:
    """Solve the multi-bidder revenue LP of the module doc.

    Args:
        types: one :class:`~bundleflow.valuations.Valuation` per bidder (``n >= 1``), its rows
            the bidder's types, all over the same ``m`` items.
        probs: one ``[T_i]`` probability vector per bidder, or ``None`` (uniform types).
        ic: ``"dsic"`` (dominant-strategy IC, ex-post IR) or ``"bic"`` (Bayesian IC, interim IR).
    """
    if ic not in IC_KINDS:
        raise InputError(f"ic must be one of {IC_KINDS}, got {ic!r}")
    if not types:
        raise InputError("multi-bidder LP: no bidders")
    n, m = len(types), types[0].n_items
    if any(v.n_items != m for v in types):
        raise InputError(f"multi-bidder LP: every bidder's types must be over the same {m} items")
    T = [len(v) for v in types]
    if min(T) == 0:
        raise InputError("multi-bidder LP: a bidder has no types")
    fs = [_check_probs(None if probs is None else probs[i], T[i], i) for i in range(n)]
    A = assignments(n, m)
    O, P = len(A), int(np.prod(T))
    if P * O > MAX_MULTI_LP_VARIABLES:
        raise InputError(f"multi-bidder LP: {P} profiles x {O} assignments exceed {MAX_MULTI_LP_VARIABLES} variables")
    # val[i][t, o]: bidder i of type t values assignment o at v_t({j : o_j = i})
    val = [types[i].value(torch.as_tensor(A == i, dtype=torch.float64)).cpu().numpy() for i in range(n)]
    profiles = np.array(list(itertools.product(*[range(t) for t in T])), dtype=np.int64).reshape(P, n)
    f = np.prod([fs[i][profiles[:, i]] for i in range(n)], axis=0)
    strides = np.array([int(np.prod(T[i + 1 :])) for i in range(n)], dtype=np.int64)  # profile index

    nx = P * O  # x[t, o] at t*O + o; then p[t, i] at nx + t*n + i
    xcol = np.arange(nx).reshape(P, O)

    def utility_row(i: int, t_true: np.ndarray, s: np.ndarray):
        """Columns and coefficients of ``U_i(s | t_true)`` for profile arrays ``s [R]``."""
        cols = np.concatenate([xcol[s].ravel(), nx + s * n + i])
        vals = np.concatenate([val[i][t_true].ravel(), -np.ones(len(s))])
        return cols, vals

    rows, cols, vals, nrow = [], [], [], 0
    for i in range(n):
        ti = profiles[:, i]
        for d in range(1, T[i]):  # misreport t'_i = t_i + d (mod T_i)
            lie = (ti + d) % T[i]
            s = np.arange(P) + (lie - ti) * strides[i]
            # U_i(s | t_i) - U_i(t | t_i) <= 0, weighted by f_-i(t_-i) under BIC
            c1, v1 = utility_row(i, ti, s)
            c0, v0 = utility_row(i, ti, np.arange(P))
            r = np.arange(P)
            rr1 = np.concatenate([np.repeat(r, O), r])
            rr0 = np.concatenate([np.repeat(r, O), r])
            w = f / fs[i][ti] if ic == "bic" else np.ones(P)
            w1 = np.concatenate([np.repeat(w, O), w])
            if ic == "bic":  # one row per (i, t_i, t'_i): sum over t_-i
                key = ti
                rr1, rr0 = key[rr1], key[rr0]
                height = T[i]
            else:
                height = P
            rows += [nrow + rr1, nrow + rr0]
            cols += [c1, c0]
            vals += [v1 * w1, -v0 * w1]
            nrow += height
        # IR: -U_i(t | t_i) <= 0
        c0, v0 = utility_row(i, ti, np.arange(P))
        r = np.arange(P)
        rr = np.concatenate([np.repeat(r, O), r])
        w = f / fs[i][ti] if ic == "bic" else np.ones(P)
        w0 = np.concatenate([np.repeat(w, O), w])
        if ic == "bic":
            rr, height = ti[rr], T[i]
        else:
            height = P
        rows.append(nrow + rr)
        cols.append(c0)
        vals.append(-v0 * w0)
        nrow += height
    A_ub = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(nrow, nx + P * n))
    A_eq = sp.csr_matrix((np.ones(nx), (np.repeat(np.arange(P), O), np.arange(nx))), shape=(P, nx + P * n))
    c = np.concatenate([np.zeros(nx), -np.repeat(f, n)])
    bounds = [(0.0, 1.0)] * nx + [(None, None)] * (P * n)
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(nrow), A_eq=A_eq, b_eq=np.ones(P), bounds=bounds, method="highs")
    if res.status != 0:
        raise BundleflowError(f"multi-bidder LP oracle: HiGHS did not solve the LP ({res.message})")
    x = np.clip(res.x[:nx].reshape(P, O), 0.0, 1.0)
    x /= x.sum(1, keepdims=True)
    p = res.x[nx:].reshape(P, n)
    return MultiLPResult(float(-res.fun), profiles, A, x, p, f)
