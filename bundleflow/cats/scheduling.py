"""CATS scheduling (job deadlines on machine time slots)."""

from __future__ import annotations

from bundleflow.cats.regions_arbitrary import _remove_dominated
from bundleflow.errors import InputError


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
