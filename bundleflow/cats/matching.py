"""CATS matching (airport take-off and landing slots)."""

from __future__ import annotations

import numpy as np

from bundleflow.cats.regions_arbitrary import _remove_dominated
from bundleflow.errors import InputError


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
