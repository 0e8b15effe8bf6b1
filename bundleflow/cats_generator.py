"""CATS valuations in Python (Leyton-Brown, Pearson, Shoham 2000): regions, arbitrary,
matching (airport take-off / landing slots), scheduling (job deadlines) and paths
(:mod:`bundleflow.cats_paths`, transport links; always multi-bidder, as CATS runs it).

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

import math
from dataclasses import dataclass

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.valuations import XORValuation

DISTRIBUTIONS = ("regions", "regions-upv", "regions-npv", "arbitrary", "arbitrary-upv", "arbitrary-npv",
                 "matching", "scheduling", "paths")


@dataclass(frozen=True)
class CatsParams:
    """CATS 2.x defaults for regions / arbitrary."""

    max_good_value: float = 100.0
    max_substitutable_bids: int = 5
    remove_neighbor: float = 0.1
    additional_neighbor: float = 0.2
    additional_location: float = 0.9
    jump_prob: float = 0.05  # regions only; arbitrary never jumps
    additivity: float = 0.2
    deviation: float = 0.5
    budget_factor: float = 1.5
    resale_factor: float = 0.5
    normal_mean: float = 0.0
    normal_stdev: float = 30.0


_A48, _C48, _MASK48 = 0x5DEECE66D, 0xB, (1 << 48) - 1


class _NumpyStream:
    """Fast default random stream (numpy); same interface as :class:`Rand48Stream`."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def random(self) -> float:
        return float(self.rng.random())

    def random_n(self, k: int) -> np.ndarray:
        return self.rng.random(k)

    def randint(self, n: int) -> int:
        return int(self.rng.integers(n))

    def normal(self, mu: float, sigma: float) -> float:
        return float(self.rng.normal(mu, sigma))


class Rand48Stream:
    """The random stream of CATS 2.x on Linux, reproduced exactly.

    ``DRand = drand48``, ``LRand = lrand48`` after ``srand48(seed)`` (one 48-bit linear
    congruential generator), and normal draws by the polar method from two separate
    ``erand48`` states seeded from ``seed`` and ``seed2`` (CATS's ``Normal`` class, with its
    cached second deviate). With the ``seeds`` / ``seeds2`` columns of a reference file this
    regenerates its rows.
    """

    def __init__(self, seed: int, seed2: int = 0):
        self.x = ((int(seed) & 0xFFFFFFFF) << 16) | 0x330E
        # erand48 state from xsubi = {seed >> 16, seed & 0xFFFF, 0x330E} (xsubi[0] = low bits)
        self.n1 = (0x330E << 32) | ((int(seed) & 0xFFFF) << 16) | ((int(seed) >> 16) & 0xFFFF)
        self.n2 = (0x330E << 32) | ((int(seed2) & 0xFFFF) << 16) | ((int(seed2) >> 16) & 0xFFFF)
        self.cached: float | None = None

    def _next(self) -> int:
        self.x = (_A48 * self.x + _C48) & _MASK48
        return self.x

    def random(self) -> float:
        return self._next() / 2.0**48

    def random_n(self, k: int) -> np.ndarray:
        return np.array([self.random() for _ in range(k)])

    def randint(self, n: int) -> int:
        return (self._next() >> 17) % n

    def _erand(self, which: int) -> float:
        if which == 1:
            self.n1 = (_A48 * self.n1 + _C48) & _MASK48
            return self.n1 / 2.0**48
        self.n2 = (_A48 * self.n2 + _C48) & _MASK48
        return self.n2 / 2.0**48

    def normal(self, mu: float, sigma: float) -> float:
        if self.cached is not None:
            g, self.cached = self.cached, None
            return g * sigma + mu
        while True:
            v1 = 2.0 * self._erand(1) - 1.0
            v2 = 2.0 * self._erand(2) - 1.0
            rsq = v1 * v1 + v2 * v2
            if 0.0 < rsq < 1.0:
                break
        fac = math.sqrt(-2.0 * math.log(rsq) / rsq)
        self.cached = v1 * fac
        return v2 * fac * sigma + mu


def _first_reaching(cum: np.ndarray, u: float, pn: np.ndarray) -> int:
    """CATS's inverse-CDF loop: the first index ``i`` with ``u <= cum[i]``; past the end
    (rounding), CATS takes the last good whose weight ``pn`` is non-zero."""
    i = int(np.searchsorted(cum, u, side="left"))
    return i if i < len(cum) else int(np.flatnonzero(pn != 0)[-1])


class _Instance:
    """Goods, common values and the relatedness structure of one CATS instance."""

    def __init__(self, dist: str, M: int, prm: CatsParams, rng):
        self.M, self.prm, self.rng = M, prm, rng
        self.arbitrary = dist.startswith("arbitrary")
        if dist.endswith("-npv"):
            self.normal = True
        elif dist.endswith("-upv"):
            self.normal = False
        else:
            self.normal = rng.randint(2) == 1
        self.jump = 0.0 if self.arbitrary else prm.jump_prob
        self.W = self._relatedness()
        self.c = rng.random_n(M) * (prm.max_good_value - 1) + 1
        self.min_p = prm.normal_mean + 1000 * prm.normal_stdev

    def _relatedness(self) -> np.ndarray:
        M, rng, prm = self.M, self.rng, self.prm
        if self.arbitrary:
            iu = np.triu_indices(M, 1)
            vals = rng.random_n(len(iu[0]))
            while (vals == 0).any():  # CATS redraws an exact zero
                vals[vals == 0] = rng.random_n(int((vals == 0).sum()))
            d = np.zeros((M, M))
            d[iu] = vals
            return d + d.T
        n = int(math.isqrt(M))
        A = np.zeros((M, M))
        while True:
            for i in range(n):
                for j in range(n):
                    g = i * n + j
                    if rng.random() > prm.remove_neighbor and i + 1 < n:
                        A[g, g + n] = A[g + n, g] = 1
                    if rng.random() > prm.remove_neighbor and j + 1 < n:
                        A[g, g + 1] = A[g + 1, g] = 1
                    if rng.random() < prm.additional_neighbor:
                        if rng.randint(2) == 0:
                            if i + 1 < n and j + 1 < n:
                                A[g, g + n + 1] = A[g + n + 1, g] = 1
                        elif i + 1 < n and j + 1 < n:
                            A[g + n, g + 1] = A[g + 1, g + n] = 1
            if (A[: n * n, : n * n].sum(1) > 0).all():
                return A

    def _private_values(self) -> tuple[np.ndarray, np.ndarray]:
        """``(p [M], pn [M])`` with CATS's arithmetic (sequential sums, same operation order)."""
        prm, M, rng = self.prm, self.M, self.rng
        if not self.normal:
            half = prm.deviation * prm.max_good_value
            p = -half + rng.random_n(M) * 2 * prm.deviation * prm.max_good_value
            pn = (p + half) / 2 * prm.deviation * prm.max_good_value
            return p, pn / np.cumsum(pn)[-1]
        p = np.array([rng.normal(prm.normal_mean, prm.normal_stdev) for _ in range(M)])
        total = np.cumsum(p)[-1]
        self.min_p = min(self.min_p, float(p.min()))
        total -= M * self.min_p
        return p, (p - self.min_p) / total

    def _grow(self, bundle: list[int], pn: np.ndarray, target: int | None) -> list[int]:
        """Add goods to ``bundle`` until ``target`` size, or while ``U <= additional_location`` if ``None``."""
        M, rng = self.M, self.rng
        inb = np.zeros(M, bool)
        inb[bundle] = True
        while True:
            if target is None:
                if not rng.random() <= self.prm.additional_location:
                    return bundle
            elif len(bundle) >= target:
                return bundle
            if len(bundle) >= M:  # CATS adds nothing (and draws nothing) to a full bundle
                if target is None:
                    continue
                return bundle
            if rng.random() < self.jump:
                while True:
                    g = rng.randint(M)
                    if not inb[g]:
                        break
            else:
                w = np.zeros(M)
                for b in bundle:  # accumulated in bundle order, as CATS does
                    w += pn * self.W[b]
                w[inb] = 0.0
                s = np.cumsum(w)[-1]
                if s <= 0:
                    continue
                cum = np.cumsum(w / s)
                g = _first_reaching(cum, rng.random(), pn)
            bundle.append(g)
            inb[g] = True

    def bidder(self) -> list[tuple[frozenset, float]]:
        """One bidder's XOR atoms ``[(goods, value), ...]``."""
        prm, rng = self.prm, self.rng
        while True:
            p, pn = self._private_values()
            first = _first_reaching(np.cumsum(pn), rng.random(), pn)
            b = self._grow([first], pn, None)

            def value(S: list[int]) -> float:
                total = 0.0
                for g in S:
                    total += p[g] + self.c[g]
                return total + len(S) ** (1 + prm.additivity)

            vb = value(b)
            if vb > 0:
                break
        cb = float(self.c[b].sum())
        budget, resale = prm.budget_factor * vb, prm.resale_factor * cb
        subs = []
        for g in b:
            s = self._grow([g], pn, len(b))
            subs.append((frozenset(s), value(s), float(self.c[s].sum())))
        B = frozenset(b)
        ok = lambda s: 0 <= s[1] <= budget and s[2] >= resale and s[0] != B  # noqa: E731
        atoms = [(B, vb)]
        if any(ok(s) for s in subs):
            subs.sort(key=lambda s: -s[1])  # stable, like a value-descending sort
            seen: list[frozenset] = []
            for s in subs:
                if len(atoms) - 1 >= prm.max_substitutable_bids:
                    break
                if ok(s) and s[0] not in seen:
                    atoms.append((s[0], s[1]))
                seen.append(s[0])
        return _remove_dominated(atoms)


def _remove_dominated(atoms: list[tuple[frozenset, float]]) -> list[tuple[frozenset, float]]:
    """CATS's dominated-bid removal for one XOR bid (``BidSet::refine`` as CATS 2.x runs it).

    A bid is dominated by another whose goods are a subset and whose value is at least
    as high. CATS only compares pairs that involve the bid in position 1 (removal moves
    the last bid into the freed slot, and position 1 is checked again), so some
    dominated atoms survive; this reproduces that, since the reference data shows it.
    """
    L = list(atoms)
    if len(L) < 2:
        return L

    def remove(i: int) -> None:
        L[i] = L[-1]
        L.pop()

    def check(t: int) -> int:
        tt = 0
        while tt < len(L):
            if tt != t:
                (st, vt), (stt, vtt) = L[t], L[tt]
                if vtt >= vt and stt <= st:
                    remove(t)
                    return -1
                if vt >= vtt and st <= stt:
                    remove(tt)
                    if t == len(L):  # the bid we compare was the last one: it now sits at tt
                        return check(tt)
                    continue  # re-check the bid moved into slot tt
            tt += 1
        return 0

    t = 1
    while t < len(L):
        t += check(1)
        t += 1
    return L


class _Matching:
    """One matching instance (airport costs) and its bidders (module doc)."""

    XY = ((-87.75, 41.98333333), (-77.03333333, 38.85), (-73.783333, 40.65), (-73.8666666, 40.76666666))

    def __init__(self, M: int, rng):
        if M % 4:
            raise InputError(f"CATS matching needs n_items divisible by 4, got {M}")
        self.M, self.T, self.rng = M, M // 4, rng
        xy = np.asarray(self.XY)
        self.dist = np.sqrt(((xy[:, None] - xy[None]) ** 2).sum(-1))
        self.linked = ~np.eye(4, dtype=bool)
        self.linked[2, 3] = self.linked[3, 2] = False
        self.max_l = self.dist[self.linked].max()
        self.cost = rng.random_n(4) * 5
        self.normal = False

    def bidder(self) -> list[tuple[frozenset, float]]:
        rng, T = self.rng, self.T
        c1 = rng.randint(4)
        while True:
            c2 = rng.randint(4)
            if c1 != c2 and self.linked[c1, c2]:
                break
        length = int(min(10, T - 1) * self.dist[c1, c2] / self.max_l + 0.5)
        start = 1 if T == length else 1 + rng.randint(T - length)
        mult = 1 - 0.5 + 2 * rng.random() * 0.5
        atoms = []
        for takeoff in range(max(1, start - 1), min(T, start + 2) + 1):
            for land in range(takeoff + length, min(start + length + 2, T) + 1):
                late = min(land - (start + length), 0)
                delay = max(land - takeoff - length, 0)
                v = mult * (self.cost[c1] + self.cost[c2]) * 0.9**delay * 0.75**late
                atoms.append((frozenset({(takeoff - 1) * 4 + c1, (land - 1) * 4 + c2}), float(v)))
        return _remove_dominated(atoms)


class _Scheduling:
    """Scheduling bidders (module doc); instances carry no shared state."""

    def __init__(self, M: int, rng):
        if M < 10:
            raise InputError(f"CATS scheduling needs n_items >= 10 (jobs of up to 10 slots), got {M}")
        self.M, self.rng, self.normal = M, rng, False

    def bidder(self) -> list[tuple[frozenset, float]]:
        rng, M = self.rng, self.M
        while True:
            l = 1 + rng.randint(10)
            d1 = l - 1 + rng.randint(M - l + 1)
            mult = 1 - 0.5 + 2 * rng.random() * 0.5
            if d1 > 0:
                break  # d_1 = 0 is CATS's NaN row (dropped from the reference): redrawn
        atoms, cur, d = [], -1, d1
        while True:
            for start in range(M):
                end = start + l - 1
                if end <= d and cur < end:
                    atoms.append((frozenset(range(start, end + 1)), float(mult * l**1.2 * d1 / d)))
            cur = d
            if cur == M - 1:
                break
            d = cur + 1 + rng.randint(M - cur - 1)
            if rng.random() > 0.7:
                break
        return _remove_dominated(atoms)


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
            raise InputError(f"cats_seeds must hold {n_valuations} seeds and seeds2, got {len(seeds)} and {len(seeds2)}")
        if bidders_per_instance != 1:
            raise InputError("cats_seeds reproduces single-bidder runs: bidders_per_instance must be 1")
    shared = _NumpyStream(np.random.default_rng(seed)) if stream == "numpy" else Rand48Stream(seed, seed + 1)
    rows, pv, inst = [], [], []
    k = 0
    while len(rows) < n_valuations:
        rng = shared if cats_seeds is None else Rand48Stream(seeds[len(rows)], seeds2[len(rows)])
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
    meta = {"private_values": np.asarray(pv, np.int8), "instance": np.asarray(inst, np.int32),
            "distribution": distribution, "n_items": n_items, "seed": seed}
    if cats_seeds is not None:
        meta["seeds"], meta["seeds2"] = np.asarray(seeds, np.int64), np.asarray(seeds2, np.int64)
    return val, meta


def _generate_paths(n_items: int, n_valuations: int, seed: int, cats_seeds) -> tuple[XORValuation, dict]:
    """Paths bidders from whole CATS runs (``-goods n_items -bids n_items``) on CATS's stream.

    Runs whose links after compaction are not exactly ``n_items`` goods are skipped (the
    reference file keeps only such runs). ``cats_seeds = (seeds, seeds2)`` gives the runs'
    seeds (all their bidders are returned; ``n_valuations`` is then ignored).
    """
    from bundleflow.cats_paths import paths_instance

    if cats_seeds is not None:
        seeds, seeds2 = (np.asarray(x).reshape(-1) for x in cats_seeds)
    else:
        sr = np.random.default_rng(seed)
        seeds = seeds2 = None
    rows, inst, used_seeds = [], [], []
    k = 0
    while (cats_seeds is None and len(rows) < n_valuations) or (cats_seeds is not None and k < len(seeds)):
        s1, s2 = (int(seeds[k]), int(seeds2[k])) if cats_seeds is not None else (int(sr.integers(1, 2**31)), int(sr.integers(1, 2**31)))
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
    meta = {"private_values": np.full(len(rows), -1, np.int8), "instance": np.asarray(inst, np.int32),
            "distribution": "paths", "n_items": n_items, "seed": seed,
            "seeds": np.asarray([a for a, _ in used_seeds], np.int64), "seeds2": np.asarray([b for _, b in used_seeds], np.int64)}
    return val, meta
