"""Seeded samplers for the built-in valuation distributions.

All samplers draw with ``numpy.random.default_rng(seed)`` so that a seed gives
the same valuations on every machine and device.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation
from bundleflow.valuations.xor import XORValuation


def _check_range(low: float, high: float) -> None:
    if not (np.isfinite(low) and np.isfinite(high)):
        raise InputError(f"value range [{low}, {high}] must be finite")
    if low < 0 or high < low:
        raise InputError(f"value range needs 0 <= low <= high, got [{low}, {high}]")


def _check_counts(**kw) -> None:
    for name, v in kw.items():
        if int(v) != v or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v}")


def uniform_atoms(
    n: int, m: int, k: int, q: float, low: float = 0.0, high: float = 1.0, seed: int = 0, drop_empty: bool = True
) -> XORValuation:
    """XOR valuations with ``k`` atoms: each item joins each atom with probability ``q``.

    Atom values are U[low, high]. With ``drop_empty`` an atom that drew no item
    becomes padding (value 0), as in the paper's setting ("empty atoms dropped").

    Returns an :class:`XORValuation` with atoms ``[n, k, m]``.
    """
    _check_counts(n=n, m=m, k=k)
    if not 0.0 <= q <= 1.0:
        raise InputError(f"q must lie in [0, 1], got {q}")
    _check_range(low, high)
    rng = np.random.default_rng(seed)
    atoms = rng.random((n, k, m)) < q
    values = rng.uniform(low, high, size=(n, k))
    if drop_empty:
        values = np.where(atoms.any(-1), values, 0.0)
    return XORValuation(torch.from_numpy(atoms), torch.from_numpy(values))


def additive_uniform(n: int, m: int, low: float = 0.0, high: float = 1.0, seed: int = 0) -> AdditiveValuation:
    """Additive valuations with i.i.d. U[low, high] item values, ``[n, m]``."""
    _check_counts(n=n, m=m)
    _check_range(low, high)
    rng = np.random.default_rng(seed)
    return AdditiveValuation(torch.from_numpy(rng.uniform(low, high, size=(n, m))))


def unit_demand_uniform(n: int, m: int, low: float = 0.0, high: float = 1.0, seed: int = 0) -> UnitDemandValuation:
    """Unit-demand valuations with i.i.d. U[low, high] item values, ``[n, m]``."""
    _check_counts(n=n, m=m)
    _check_range(low, high)
    rng = np.random.default_rng(seed)
    return UnitDemandValuation(torch.from_numpy(rng.uniform(low, high, size=(n, m))))


_KINDS = {"additive": AdditiveValuation, "unit_demand": UnitDemandValuation}


def _kind(kind: str):
    if kind not in _KINDS:
        raise InputError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    return _KINDS[kind]


def bivalued(n: int, m: int, a: float, b: float, prob_b: float = 0.5, kind: str = "additive", seed: int = 0):
    """Item values i.i.d. in ``{a, b}`` (``b`` with probability ``prob_b``), additive or unit-demand."""
    _check_counts(n=n, m=m)
    _check_range(min(a, b), max(a, b))
    if not 0.0 <= prob_b <= 1.0:
        raise InputError(f"prob_b must lie in [0, 1], got {prob_b}")
    rng = np.random.default_rng(seed)
    v = np.where(rng.random((n, m)) < prob_b, b, a).astype(np.float64)
    return _kind(kind)(torch.from_numpy(v))


def bivalued_type_space(m: int, a: float, b: float, prob_b: float = 0.5, kind: str = "additive"):
    """The whole finite type space of :func:`bivalued`: ``2^m`` types and their probabilities.

    Returns ``(valuation with 2^m rows, probs [2^m] float64)``.
    """
    return product_type_space([[a, b]] * m, [[1.0 - prob_b, prob_b]] * m, kind)


def product_type_space(levels, level_probs, kind: str = "additive"):
    """Finite type space with independent item values: item ``i`` takes ``levels[i][k]``
    with probability ``level_probs[i][k]``. Returns ``(valuation, probs [n_types])``."""
    if len(levels) != len(level_probs) or not levels:
        raise InputError("levels and level_probs must be non-empty lists of equal length (one per item)")
    for i, (lv, pr) in enumerate(zip(levels, level_probs)):
        if len(lv) != len(pr) or not lv:
            raise InputError(f"item {i}: levels and probabilities differ in length")
        if any(p < 0 for p in pr) or abs(sum(pr) - 1.0) > 1e-9:
            raise InputError(f"item {i}: probabilities must be non-negative and sum to 1")
    combos = list(itertools.product(*[range(len(lv)) for lv in levels]))
    vals = np.array([[levels[i][c[i]] for i in range(len(levels))] for c in combos], dtype=np.float64)
    probs = np.array([np.prod([level_probs[i][c[i]] for i in range(len(levels))]) for c in combos])
    return _kind(kind)(torch.from_numpy(vals)), torch.from_numpy(probs)


def uniform_grid_type_space(m: int, points: int, kind: str = "additive"):
    """Midpoint discretisation of i.i.d. U[0,1] item values: ``points`` levels per item,
    ``(k + 0.5) / points``, equally likely. Returns ``(valuation, probs)``."""
    _check_counts(m=m, points=points)
    lv = [(k + 0.5) / points for k in range(points)]
    pr = [1.0 / points] * points
    return product_type_space([lv] * m, [pr] * m, kind)
