"""CATS valuations in Python (Leyton-Brown, Pearson, Shoham 2000): regions, arbitrary,
matching (airport take-off / landing slots), scheduling (job deadlines) and paths
(:mod:`bundleflow.cats.paths`, transport links; always multi-bidder, as CATS runs it).

Implemented from the paper's description of the two spatial / arbitrary-relationship
distributions and the documented CATS 2.x defaults; checked statistically against the
reference files produced by the original C++ suite (``../shared/cats``, see
``tests/test_cats_generator.py``). The random streams differ from CATS's, so single
draws differ; distributions agree.

One *instance* (for ``n_items = M`` goods):

* common values ``c_g ~ U[1, max_good_value]``;
* regions: goods sit on a ``floor(sqrt(M))``-square grid; each horizontal / vertical
  grid edge is kept with probability ``1 - remove_neighbor`` and, per cell, one of the
  two diagonals is added with probability ``additional_neighbor`` (a grid with an
  isolated cell is redrawn, keeping the edges drawn so far). Goods past the grid
  (``M - floor(sqrt(M))^2`` of them) have no neighbours: they enter a bundle only as
  its first good or by a uniform "jump" (probability ``jump_prob``), so they are rare;
* arbitrary: a symmetric relatedness ``d[g, h] ~ U(0, 1]`` between every pair, no grid,
  no jumps.

One *bidder* of an instance:

* private values ``p_g``: uniform ``U[-deviation * max_good_value, +...]`` or normal
  ``N(normal_mean, normal_stdev)`` (``regions`` / ``arbitrary`` pick one of the two
  per instance with probability 1/2; ``-upv`` / ``-npv`` force it); weights
  ``pn_g`` proportional to ``p_g + deviation * max_good_value`` (uniform) or to
  ``p_g - min p`` (normal; the minimum is a running one over the instance's bidders);
* the first good is drawn with probability ``pn``; then, while ``U < additional_location``,
  a good is added: with probability ``jump_prob`` uniformly among the goods not in the
  bundle, else with probability proportional to ``pn_h * sum_{g in bundle} w(g, h)``
  (``w`` = adjacency for regions, ``d`` for arbitrary; nothing is added if all weights
  are zero);
* value of a bundle ``S``: ``sum_{g in S} (c_g + p_g) + |S|^(1 + additivity)``; a bidder
  whose first bundle has value <= 0 is redrawn (private values included);
* substitutes: for every good of the bundle, a bundle grown from that good to the same
  size; those with value in ``[0, budget_factor * value]``, common value at least
  ``resale_factor * common value`` and different from the bundle are candidates; up to
  ``max_substitutable_bids`` distinct ones, by decreasing value, join the bundle in one
  XOR bid (if none qualifies, the bidder has the single bundle);
* dominated atoms (a subset with at least the same value exists) are removed the way
  CATS does by default (:func:`_remove_dominated`, quirks included).

Matching (:class:`_Matching`; M divisible by 4): 4 real airports (coordinates as in CATS),
every pair linked except the two New York ones; ``M / 4`` time slots, good
``(t - 1) * 4 + city``; airport costs ``U[0, 5]`` per instance. A bidder flies between two
linked cities; its minimum flight length is ``round(min(10, T - 1) * dist / max dist)``,
its preferred start uniform, its multiplier ``U[0.5, 1.5]``; it bids on every take-off
within ``[start - 1, start + 2]`` and landing up to ``start + length + 2``, valued
``mult * (cost1 + cost2) * 0.9^delay * 0.75^late`` with ``late = min(land - (start + length), 0)``
(CATS's ``min``, so early landings are worth *more*; reproduced).

Scheduling (:class:`_Scheduling`): a job of length ``l = 1 + U{0..9}`` needing consecutive
slots; first deadline ``d_1`` uniform in ``[l - 1, M - 1]``; further deadlines while
``U <= 0.7``, each uniformly after the last; for each new deadline ``d`` every window
ending in ``(previous deadline, d]`` is an atom worth ``mult * l^1.2 * d_1 / d`` (mult
``U[0.5, 1.5]``). Jobs with ``d_1 = 0`` get a 0/0 (NaN) value in CATS and were dropped
from the reference files; they are redrawn here.
"""

from __future__ import annotations

import numpy as np
import torch

from bundleflow.cats.matching import _Matching
from bundleflow.cats.rand48 import Rand48Stream, _NumpyStream
from bundleflow.cats.regions_arbitrary import CatsParams, _Instance
from bundleflow.cats.scheduling import _Scheduling
from bundleflow.errors import InputError
from bundleflow.valuations.xor import XORValuation

DISTRIBUTIONS = (
    "regions",
    "regions-upv",
    "regions-npv",
    "arbitrary",
    "arbitrary-upv",
    "arbitrary-npv",
    "matching",
    "scheduling",
    "paths",
)


def _to_valuation(rows: list[list[tuple[frozenset, float]]], n_items: int) -> XORValuation:
    """Bidders' atom lists -> a padded :class:`XORValuation`."""
    K = max(len(r) for r in rows)
    atoms = np.zeros((len(rows), K, n_items), bool)
    values = np.zeros((len(rows), K))
    for i, r in enumerate(rows):
        for j, (goods, v) in enumerate(r):
            atoms[i, j, list(goods)] = True
            values[i, j] = v
    return XORValuation(torch.from_numpy(atoms), torch.from_numpy(values))


def generate(
    distribution: str,
    n_items: int,
    n_valuations: int,
    seed: int = 0,
    bidders_per_instance: int = 1,
    params: CatsParams | None = None,
    cats_seeds: tuple | None = None,
    stream: str = "auto",
    progress=None,
) -> tuple[XORValuation, dict]:
    """``n_valuations`` XOR valuations; ``bidders_per_instance = 1`` is CATS's single-bidder mode.

    ``progress``: optional ``advance(n)`` callback, called with the number of valuations drawn.

    ``cats_seeds = (seeds, seeds2)`` (one pair per valuation) switches to CATS's own random
    stream (:class:`Rand48Stream`), one single-bidder run per row, which regenerates the
    rows of a reference file from its ``seeds`` / ``seeds2`` columns; the default is a
    numpy stream seeded by ``seed`` (same distributions, much faster).

    ``stream``: ``"numpy"``, ``"rand48"`` (CATS's stream, one run per valuation with
    seeds drawn from ``seed``; recorded in ``meta["seeds"]``, ``meta["seeds2"]``) or
    ``"auto"``: rand48 for matching and scheduling, whose CATS draws are short and whose
    reference statistics carry lrand48's low-bit correlations (city pairs of matching are
    far from uniform), numpy for regions and arbitrary (same statistics, much faster).

    Returns ``(valuation, meta)`` with ``meta["private_values"]`` (1 = normal, 0 = uniform)
    and ``meta["instance"]`` per row.
    """
    if distribution not in DISTRIBUTIONS:
        raise InputError(f"unknown CATS distribution {distribution!r}; implemented: {', '.join(DISTRIBUTIONS)}")
    if n_items < 4:
        raise InputError(f"CATS {distribution} needs n_items >= 4, got {n_items}")
    if n_valuations < 1 or bidders_per_instance < 1:
        raise InputError("n_valuations and bidders_per_instance must be >= 1")
    prm = params or CatsParams()
    if distribution == "paths":
        return _generate_paths(n_items, n_valuations, seed, cats_seeds)
    if stream not in ("auto", "numpy", "rand48"):
        raise InputError(f"stream must be auto, numpy or rand48, got {stream!r}")
    if stream == "auto":
        stream = "rand48" if distribution in ("matching", "scheduling") else "numpy"
    if cats_seeds is None and stream == "rand48" and bidders_per_instance == 1:
        sr = np.random.default_rng(seed)
        cats_seeds = (sr.integers(1, 2**31, n_valuations), sr.integers(1, 2**31, n_valuations))
    if cats_seeds is not None:
        seeds, seeds2 = (np.asarray(x).reshape(-1) for x in cats_seeds)
        if len(seeds) != n_valuations or len(seeds2) != n_valuations:
            raise InputError(
                f"cats_seeds must hold {n_valuations} seeds and seeds2, got {len(seeds)} and {len(seeds2)}"
            )
        if bidders_per_instance != 1:
            raise InputError("cats_seeds reproduces single-bidder runs: bidders_per_instance must be 1")
    shared = _NumpyStream(np.random.default_rng(seed)) if stream == "numpy" else Rand48Stream(seed, seed + 1)
    rows: list[list[tuple[frozenset, float]]] = []
    pv: list = []
    inst: list[int] = []
    k = 0
    while len(rows) < n_valuations:
        rng = shared if cats_seeds is None else Rand48Stream(seeds[len(rows)], seeds2[len(rows)])
        ins: _Matching | _Scheduling | _Instance
        if distribution == "matching":
            ins = _Matching(n_items, rng)
        elif distribution == "scheduling":
            ins = _Scheduling(n_items, rng)
        else:
            ins = _Instance(distribution, n_items, prm, rng)
        for _ in range(min(bidders_per_instance, n_valuations - len(rows))):
            rows.append(ins.bidder())
            pv.append(int(ins.normal))
            inst.append(k)
            if progress is not None:
                progress(1)
        k += 1
    val = _to_valuation(rows, n_items)
    meta = {
        "private_values": np.asarray(pv, np.int8),
        "instance": np.asarray(inst, np.int32),
        "distribution": distribution,
        "n_items": n_items,
        "seed": seed,
    }
    if cats_seeds is not None:
        meta["seeds"], meta["seeds2"] = np.asarray(seeds, np.int64), np.asarray(seeds2, np.int64)
    return val, meta


def _generate_paths(n_items: int, n_valuations: int, seed: int, cats_seeds) -> tuple[XORValuation, dict]:
    """Paths bidders from whole CATS runs (``-goods n_items -bids n_items``) on CATS's stream.

    Runs whose links after compaction are not exactly ``n_items`` goods are skipped (the
    reference file keeps only such runs). ``cats_seeds = (seeds, seeds2)`` gives the runs'
    seeds (all their bidders are returned; ``n_valuations`` is then ignored).
    """
    from bundleflow.cats.paths import paths_instance

    seeds: np.ndarray = np.zeros(0, dtype=np.int64)
    seeds2: np.ndarray = seeds
    if cats_seeds is not None:
        seeds, seeds2 = (np.asarray(x).reshape(-1) for x in cats_seeds)
    else:
        sr = np.random.default_rng(seed)
    rows: list[list[tuple[frozenset, float]]] = []
    inst: list[int] = []
    used_seeds: list[tuple[int, int]] = []
    k = 0
    while (cats_seeds is None and len(rows) < n_valuations) or (cats_seeds is not None and k < len(seeds)):
        s1, s2 = (
            (int(seeds[k]), int(seeds2[k]))
            if cats_seeds is not None
            else (int(sr.integers(1, 2**31)), int(sr.integers(1, 2**31)))
        )
        bidders, n_goods = paths_instance(s1, n_items, n_items, s2)
        k += 1
        if n_goods != n_items:
            continue
        rows += bidders
        inst += [len(used_seeds)] * len(bidders)
        used_seeds.append((s1, s2))
    if cats_seeds is None:
        rows, inst = rows[:n_valuations], inst[:n_valuations]
    val = _to_valuation(rows, n_items)
    meta = {
        "private_values": np.full(len(rows), -1, np.int8),
        "instance": np.asarray(inst, np.int32),
        "distribution": "paths",
        "n_items": n_items,
        "seed": seed,
        "seeds": np.asarray([a for a, _ in used_seeds], np.int64),
        "seeds2": np.asarray([b for _, b in used_seeds], np.int64),
    }
    return val, meta
