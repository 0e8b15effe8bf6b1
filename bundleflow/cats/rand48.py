"""Random streams for the CATS generators: CATS's own ``drand48`` stream (:class:`Rand48Stream`, exact
regeneration of reference rows) and a fast numpy stream with the same interface."""

from __future__ import annotations

import math

import numpy as np

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
