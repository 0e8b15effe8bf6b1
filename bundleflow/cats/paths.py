"""CATS "paths" (transport links between cities) in Python, on CATS's own random stream.

One *instance* = one CATS run with ``-bids num_bids``: cities uniform in the unit square;
each city is linked to its ``initial_connections`` nearest cities, then random city pairs
are linked until there are ``edge_density`` links per city (more cities if that stalls;
redrawn if the graph is disconnected). Each link is a good. A bidder ships between two
random cities at most ``d * distance`` with ``d ~ U[1, shipping_cost_factor]``; its atoms
are the (up to ``max_bid_set_size``) cheapest simple paths under that cost, found by CATS's
depth-first search with its pruning, all valued at the final cost bound. Once the bids
name ``num_goods`` links, bids outside the largest connected component of the conflict
graph are removed and unused links deleted; bidders are added until there are
``num_bids`` bids (if that happens before pruning, the instance is redrawn with one more
city). Goods are renumbered consecutively at the end, as CATS's ``compact`` does.
"""

from __future__ import annotations

import math

from bundleflow.cats.rand48 import Rand48Stream

INF = 500000.0


class _PathsRun:
    def __init__(
        self,
        rng,
        num_goods: int,
        num_bids: int,
        initial_connections: int = 2,
        edge_density: float = 3.0,
        building_penalty: float = 1.7,
        shipping_cost_factor: float = 1.5,
        max_bid_set_size: int = 5,
    ):
        self.rng, self.G, self.B = rng, num_goods, num_bids
        self.conn, self.density, self.bp = initial_connections, edge_density, building_penalty
        self.ship, self.maxbids = shipping_cost_factor, max_bid_set_size

    # -- graph -------------------------------------------------------------------
    def dist(self, a: int, b: int) -> float:
        e = self.edges[a][b]
        if e == 0:
            e = -math.sqrt((self.x[b] - self.x[a]) ** 2 + (self.y[b] - self.y[a]) ** 2)
            self.edges[a][b] = self.edges[b][a] = e
        return abs(e)

    def init_graph(self, n: int) -> None:
        self.n = n
        self.x, self.y = [0.0] * n, [0.0] * n
        for i in range(n):
            self.x[i] = self.rng.random()
            self.y[i] = self.rng.random()
        self.edges = [[0.0] * n for _ in range(n)]
        self.good = [[-1] * n for _ in range(n)]
        self.adj: list[list[int]] = [[] for _ in range(n)]
        self.ends: list[tuple[int, int]] = []  # good -> (city, city)
        self.num_edges = 0

    def build(self, s: int, t: int) -> bool:
        n = self.n
        q = list(range(n))
        d = [INF] * n
        pi = [-1] * n
        d[s] = 0.0
        while q:
            bi = 0
            for i in range(1, len(q)):
                if d[q[i]] < d[q[bi]]:
                    bi = i
            u = q[bi]
            q[bi] = q[-1]
            q.pop()
            if u == t:
                break
            for v in q:
                if v != u:
                    w = self.dist(u, v) * self.bp
                    if d[v] > d[u] + w:
                        d[v] = d[u] + w
                        pi[v] = u
        made = False
        c = t
        while c != s:
            p = pi[c]
            if self.edges[c][p] < 0:
                made = True
                self.edges[p][c] = self.edges[c][p] = -self.edges[c][p]
                self.adj[c].append(p)
                self.adj[p].append(c)
                self.good[p][c] = self.good[c][p] = len(self.ends)
                self.ends.append((c, p))
                self.num_edges += 1
            c = p
        return made

    def build_short_edges(self) -> None:
        for i in range(self.n):
            best: list[tuple[float, int]] = []
            for j in range(self.n):
                if i == j:
                    continue
                dj = self.dist(i, j)
                k = 0
                while k < len(best) and not dj < best[k][0]:
                    k += 1
                if k < self.conn:
                    best.insert(k, (dj, j))
                    del best[self.conn :]
            for _, j in best:
                self.build(i, j)

    def build_via_paths(self) -> bool:
        since = 0
        while self.num_edges < self.n * self.density:
            c1 = self.rng.randint(self.n)
            while True:
                c2 = self.rng.randint(self.n)
                if c2 != c1:
                    break
            if self.build(c1, c2):
                since = 0
            else:
                since += 1
            if since > self.n:
                return False
        return True

    def connected(self) -> bool:
        seen = {0}
        stack = [0]
        while stack:
            for v in self.adj[stack.pop()]:
                if v not in seen:
                    seen.add(v)
                    stack.append(v)
        return len(seen) == self.n

    # -- bids --------------------------------------------------------------------
    def _find(self, path: list[int], cost: float, dest: int) -> None:
        last = path[-1]
        for nxt in list(self.adj[last]):
            if nxt in path:
                continue
            if cost + self.edges[last][nxt] + self.dist(nxt, dest) < self.maxcost:
                c = cost + self.edges[last][nxt]
                path.append(nxt)
                if nxt == dest:
                    self._bid_on(path, c)
                else:
                    self._find(path, c, dest)
                path.pop()

    def _bid_on(self, path: list[int], cost: float) -> None:
        best = self.best
        if len(best) == self.maxbids:
            best.pop()
        j = len(best)
        while j > 0 and best[j - 1][1] > cost:
            j -= 1
        best.insert(j, (list(path), cost))
        if len(best) == self.maxbids:
            self.maxcost = best[-1][1]

    def generate_bids(self) -> list | None:
        """Bids ``[(goods, value, xor_group or None)]``, or ``None`` if too many bids before pruning."""
        rng = self.rng
        bids: list[tuple[list[int], float, int | None]] = []
        in_bid = [False] * self.num_edges
        n_in = 0
        pruned = False
        group = 0
        while True:
            c1 = rng.randint(self.n)
            while True:
                c2 = rng.randint(self.n)
                if c2 != c1:
                    break
            dfac = rng.random() * (self.ship - 1) + 1
            self.maxcost = dfac * self.dist(c1, c2)
            self.best: list[tuple[list[int], float]] = []
            for h in range(self.n):  # neighbours nearest to the destination first (stable)
                self.adj[h].sort(key=lambda c: self.dist(c2, c))
            self._find([c1], 0.0, c2)
            only_one = False
            nb = len(self.best)
            for i, (path, _) in enumerate(self.best):
                goods = []
                for a, b in zip(path, path[1:]):
                    g = self.good[a][b]
                    goods.append(g)
                    if not in_bid[g]:
                        in_bid[g] = True
                        n_in += 1
                if nb == 1 or (not pruned and n_in >= self.G):
                    if i == 0:
                        bids.append((goods, self.maxcost, None))
                        only_one = True
                    else:
                        bids.append((goods, self.maxcost, group))
                    break
                bids.append((goods, self.maxcost, group))
            if not only_one and nb:
                group += 1
            if not pruned and n_in >= self.G:
                bad = _outside_largest_component(bids)
                if bad:
                    for i in bad:
                        for g in bids[i][0]:
                            if in_bid[g]:
                                in_bid[g] = False
                                n_in -= 1
                    # CATS removes them one by one, moving the last bid into the hole
                    order = list(range(len(bids)))
                    for i in bad:
                        pos = order.index(i)
                        order[pos] = order[-1]
                        order.pop()
                    bids = [bids[i] for i in order]
                if n_in >= self.G:
                    for g, (a, b) in enumerate(self.ends):
                        if not in_bid[g] and self.edges[a][b] > 0:
                            self.edges[a][b] = self.edges[b][a] = -self.edges[a][b]
                            self.adj[a].remove(b)
                            self.adj[b].remove(a)
                    pruned = True
            if len(bids) >= self.B:
                return bids if pruned else None

    def run(self) -> list:
        n = int(1.2 * self.G / self.density)
        while True:
            self.init_graph(n)
            self.build_short_edges()
            if not self.build_via_paths():
                n += 1
                continue
            if not self.connected():
                continue
            bids = self.generate_bids()
            if bids is not None:
                return bids
            n += 1


def _outside_largest_component(bids: list) -> list[int]:
    """Indices of bids outside the largest component of the conflict graph (shared goods,
    XOR partners included), first-found component winning ties, as CATS does."""
    n = len(bids)
    keys = [set(g) | ({("xor", x)} if x is not None else set()) for g, _, x in bids]
    seen = [False] * n
    best: list[int] = []
    for s in range(n):
        if seen[s]:
            continue
        comp, stack = [s], [s]
        seen[s] = True
        while stack:
            u = stack.pop()
            for v in range(n):
                if not seen[v] and keys[u] & keys[v]:
                    seen[v] = True
                    stack.append(v)
                    comp.append(v)
        if len(comp) > len(best):
            best = comp
    if len(best) == n:
        return []
    inb = set(best)
    return [i for i in range(n) if i not in inb]


def paths_instance(seed: int, num_goods: int = 50, num_bids: int = 50, seed2: int = 0):
    """One CATS paths run: ``(bidders, n_goods)``; each bidder a list of XOR atoms
    ``(goods, value)``, goods renumbered ``0..n_goods-1`` as CATS compacts them (a run can
    name a few more than ``num_goods`` links when the last path adds several at once)."""
    bids = _PathsRun(Rand48Stream(seed, seed2), num_goods, num_bids).run()
    used = sorted({g for goods, _, _ in bids for g in goods})
    new = {g: i for i, g in enumerate(used)}
    bidders: dict = {}
    order: list = []
    for k, (goods, value, x) in enumerate(bids):
        key = ("xor", x) if x is not None else ("single", k)
        if key not in bidders:
            bidders[key] = []
            order.append(key)
        bidders[key].append((frozenset(new[g] for g in goods), float(value)))
    return [bidders[k] for k in order], len(used)
