"""CATS regions and arbitrary: goods, common values and relatedness of one instance, and its bids."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
        # sum_{b in bundle} pn * W[b], accumulated in bundle order as CATS does: kept as a
        # running sum (one addition per good added), the same floating-point operations as
        # re-summing the bundle before every draw, at O(M) per draw instead of O(|bundle| M)
        acc = np.zeros(M)
        for b in bundle:
            acc += pn * self.W[b]
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
                w = acc.copy()
                w[inb] = 0.0
                s = np.cumsum(w)[-1]
                if s <= 0:
                    continue
                cum = np.cumsum(w / s)
                g = _first_reaching(cum, rng.random(), pn)
            bundle.append(g)
            inb[g] = True
            acc += pn * self.W[g]

    def bidder(self) -> list[tuple[frozenset, float]]:
        """One bidder's XOR atoms ``[(goods, value), ...]``."""
        prm, rng = self.prm, self.rng

        def value(S: list[int], p) -> float:
            total = 0.0
            for g in S:
                total += p[g] + self.c[g]
            return total + len(S) ** (1 + prm.additivity)

        while True:
            p, pn = self._private_values()
            first = _first_reaching(np.cumsum(pn), rng.random(), pn)
            b = self._grow([first], pn, None)
            vb = value(b, p)
            if vb > 0:
                break
        cb = float(self.c[b].sum())
        budget, resale = prm.budget_factor * vb, prm.resale_factor * cb
        subs: list[tuple[frozenset, float, float]] = []
        for g in b:
            s = self._grow([g], pn, len(b))
            subs.append((frozenset(s), value(s, p), float(self.c[s].sum())))
        B = frozenset(b)
        ok = lambda s: 0 <= s[1] <= budget and s[2] >= resale and s[0] != B  # noqa: E731
        atoms = [(B, vb)]
        if any(ok(s) for s in subs):
            subs.sort(key=lambda s: -s[1])  # stable, like a value-descending sort
            seen: list[frozenset] = []
            for sub in subs:
                if len(atoms) - 1 >= prm.max_substitutable_bids:
                    break
                if ok(sub) and sub[0] not in seen:
                    atoms.append((sub[0], sub[1]))
                seen.append(sub[0])
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
