"""The post-training transform that makes multi-bidder menus compatible on a grid of bids
(GemNet, arXiv:2406.07428, Sec. 4: price changes found by mixed-integer programs).

Grid. Every bid coordinate takes one of ``L`` levels (``levels [L]``), so the grid has
``L^(n m)`` profiles; bidder ``i``'s *fiber* ``h`` is a grid point of the others' bids
``b_-i`` (``L^((n-1) m)`` of them). Off the grid a bid belongs to the fiber of its nearest
levels, coordinate by coordinate.

Transform. Bidder ``i``'s price of element ``k`` becomes ``p_ik(b_-i) + d_ik(h(b_-i))`` with a
shift ``d >= 0`` that depends on the others' bids only, so the mechanism stays strategy-proof
and individually rational (:class:`ShiftedMenus`). On the grid, bidder ``i``'s choice at
``g = (g_i, h)`` depends on ``d_i(h)`` alone; so only the fibers that hold a profile where the
choices over-allocate are *active*, every other fiber keeps ``d = 0`` and its choices. For the
profiles ``P`` touched by an active fiber, one MILP (scipy ``milp``, HiGHS) chooses:

* ``d_ik(h) in [0, D]`` for the elements ``R_i(h)`` that fiber's bidder takes somewhere on the
  grid; its other elements are priced out (``d = D``: never chosen, on the grid they never were);
* binaries ``z_ik(g)``, ``k in R_i(h) + {null}``, the element taken, which must beat every
  other option by ``eps`` (so that the exact, seller-favourable choice is the same):
  ``(u_ik - d_ik) - (u_il - d_il) >= eps - M (1 - z_ik)``;
* revenue ``r_i(g) <= p_ik + d_ik + M (1 - z_ik)``, ``r_i(g) <= M (1 - z_i,null)``;
* compatibility at every ``g in P`` and item ``j``: ``sum_i sum_k a_ikj z_ik(g) <= 1`` (the
  inactive bidders' allocations are constants);

maximising ``sum r - mu sum d`` (the grid revenue; ``mu`` small keeps unneeded shifts at 0).
Pricing everyone out is feasible, so the MILP always has a solution. The result is checked by
the exact evaluation on the whole grid; a profile that HiGHS's tolerances leave over-allocated
starts another round on the shifted menus, until over-allocation on the grid is exactly 0.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from bundleflow.errors import BundleflowError, InputError
from bundleflow.mechanisms.menu import TIE_TOL, choose
from bundleflow.mechanisms.multi.outcome import OVER_TOL, MultiMenuMechanism, over_allocation

MAX_GRID_PROFILES = 1 << 20


def grid_profiles(levels: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """``[L^(n m), n, m]`` every profile of the grid, last coordinate fastest."""
    L = len(levels)
    if L ** (n * m) > MAX_GRID_PROFILES:
        raise InputError(
            f"a grid of {L} levels over {n} x {m} bids has {L ** (n * m)} profiles (> {MAX_GRID_PROFILES})"
        )
    idx = torch.tensor(list(itertools.product(range(L), repeat=n * m)), dtype=torch.long).reshape(-1, n, m)
    return levels[idx]


def fiber_index(levels: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """``[B]`` index of the fiber (nearest levels, mixed radix, last coordinate fastest) of the
    others' bids ``others [B, d]`` (``d = (n-1) m``; ``d = 0`` gives fiber 0)."""
    B, d = others.shape
    L = len(levels)
    if d == 0:
        return torch.zeros(B, dtype=torch.long, device=others.device)
    near = (others[..., None] - levels.to(others)).abs().argmin(-1)  # [B, d]
    radix = L ** torch.arange(d - 1, -1, -1, device=others.device)
    return (near * radix).sum(-1)


class ShiftedMenus:
    """``base``'s menus with bidder ``i``'s prices raised by ``shifts[i, h(b_-i)]`` (``[n, H, K]``)."""

    def __init__(self, base: MultiMenuMechanism, levels: torch.Tensor, shifts: torch.Tensor):
        self.base, self.levels, self.shifts = base, levels.double(), shifts.double()
        self.n_bidders, self.n_items = base.n_bidders, base.n_items

    def bidder_shifts(self, bids: torch.Tensor, i: int) -> torch.Tensor:
        """``[B, K]`` bidder ``i``'s price shifts at ``bids [B, n, m]`` (her fiber's, from ``b_-i``)."""
        B, n, m = bids.shape
        others = torch.cat([bids[:, :i], bids[:, i + 1 :]], 1).reshape(B, (n - 1) * m).double()
        return self.shifts.to(bids.device)[i, fiber_index(self.levels, others)]

    def menus(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alloc, price = self.base.menus(bids)
        extra = [self.bidder_shifts(bids, i) for i in range(bids.shape[1])]
        return alloc, price + torch.stack(extra, 1).to(price)


def inner_gemnet(mechanism):
    """The GemNet inside ``mechanism``: under the transform's :class:`ShiftedMenus` and
    withholding's :class:`~bundleflow.training.withholding.WithheldMenus` (each keeps what it
    wraps as ``base``), or ``mechanism`` itself."""
    while hasattr(mechanism, "base"):
        mechanism = mechanism.base
    return mechanism


@dataclass
class TransformReport:
    """What :func:`make_compatible` did: grid size, violations before, the MILP's size and
    time, grid revenue before and after, and the shifts' extent."""

    grid_profiles: int
    violating_before: int
    active_fibers: int
    milp_profiles: int
    milp_binaries: int
    milp_seconds: float
    milp_status: str
    grid_revenue_before: float
    grid_revenue_after: float
    shifted_elements: int
    seconds: float
    rounds: int = 0

    def summary(self) -> dict:
        return dict(self.__dict__)


def _choices(alloc, price, values, tol):
    """Exact choices on grid profiles: ``(choice [G, n], payment [G, n], received [G, n, m])``."""
    G, n = price.shape[:2]
    ev = torch.einsum("gnkm,gnm->gnk", alloc, values)
    cs, ps, gs = [], [], []
    for i in range(n):
        c, p, _, _ = choose(ev[:, i], price[:, i], tol)
        cs.append(c)
        ps.append(p)
        gs.append(alloc[torch.arange(G), i, c.clamp_min(0)] * (c >= 0)[:, None])
    return torch.stack(cs, 1), torch.stack(ps, 1), torch.stack(gs, 1)


@dataclass
class _Grid:
    """The grid's tensors shared by the MILP rounds."""

    values: torch.Tensor  # [G, n, m]
    fibers: torch.Tensor  # [G, n] bidder i's fiber at each profile
    alloc: torch.Tensor  # [G, n, K, m] (shifts do not move allocations)
    tol: float  # choice tie tolerance
    eps: float  # MILP margin
    D: float  # pricing-out shift
    M: float  # big-M


def _milp_round(
    grid: _Grid,
    price: torch.Tensor,
    shifts: torch.Tensor,
    mu: float,
    time_limit: float,
    mip_gap: float,
    everywhere: bool = False,
):
    """One MILP over the fibers that hold an over-allocating profile at prices ``price``
    (``[G, n, K]``, already shifted by ``shifts``), or over every fiber with the revenue
    uncapped (``everywhere``); adds its shifts to ``shifts`` in place.
    Returns ``(violating profiles, active fibers, MILP profiles, binaries, seconds, status)``."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    values, fibers, alloc = grid.values, grid.fibers, grid.alloc
    G, n, K, m = alloc.shape
    H = shifts.shape[1]
    choice, pay, got = _choices(alloc, price, values, grid.tol)
    bad = over_allocation(got) > OVER_TOL
    if not bad.any() and not everywhere:
        return 0, 0, 0, 0, 0.0, "compatible"
    active = torch.full((n, H), everywhere, dtype=torch.bool)
    for i in range(n):
        active[i, fibers[bad, i]] = True
    touched = torch.stack([active[i, fibers[:, i]] for i in range(n)], 1)  # [G, n]
    rows_P = torch.nonzero(touched.any(1)).flatten().tolist()
    relevant: dict[tuple[int, int], list[int]] = {}  # elements the fiber's bidder takes somewhere
    for i in range(n):
        for h in torch.nonzero(active[i]).flatten().tolist():
            c = choice[fibers[:, i] == h, i]
            relevant[(i, h)] = list(range(K)) if everywhere else sorted(set(c[c >= 0].tolist()))
    keys = [key + (k,) for key, ks in relevant.items() for k in ks]
    dvar: dict[tuple[int, ...], int] = {key: a for a, key in enumerate(keys)}
    nv = len(dvar)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(entries, low, high):
        r = len(lo)
        for c_, v_ in entries:
            rows.append(r)
            cols.append(c_)
            vals.append(v_)
        lo.append(low)
        hi.append(high)

    u_now = torch.einsum("gnkm,gnm->gnk", alloc, values) - price
    zvar: list[tuple[int, int]] = []
    rvar: list[tuple[int, float]] = []
    M, eps = grid.M, grid.eps
    for g in rows_P:
        terms: list[list[tuple[int, float]]] = [[] for _ in range(m)]
        const = torch.zeros(m, dtype=torch.float64)
        for i in range(n):
            h = int(fibers[g, i])
            if not active[i, h]:
                const += got[g, i]
                continue
            opts = relevant[(i, h)] + [-1]  # -1: buy nothing
            z0, r = nv, nv + len(opts)
            nv += len(opts) + 1
            zvar.append((z0, len(opts)))
            rvar.append((r, float(pay[g, i])))
            add([(z0 + a, 1.0) for a in range(len(opts))], 1.0, 1.0)
            u = {k: float(u_now[g, i, k]) for k in opts[:-1]}
            u[-1] = 0.0
            for a, k in enumerate(opts):
                for l_ in opts:
                    if l_ != k:  # (u_k - d_k) - (u_l - d_l) + M (1 - z_k) >= eps
                        e = [(z0 + a, -M)]
                        if k >= 0:
                            e.append((dvar[(i, h, k)], -1.0))
                        if l_ >= 0:
                            e.append((dvar[(i, h, l_)], 1.0))
                        add(e, eps - M - (u[k] - u[l_]), math.inf)
                # r <= p_k + d_k + M (1 - z_k)  (buying nothing: r <= M (1 - z))
                e = [(r, 1.0), (z0 + a, M)]
                if k >= 0:
                    e.append((dvar[(i, h, k)], -1.0))
                add(e, -math.inf, (float(price[g, i, k]) if k >= 0 else 0.0) + M)
                if k >= 0:
                    for j in range(m):
                        if alloc[g, i, k, j] > 0:
                            terms[j].append((z0 + a, float(alloc[g, i, k, j])))
        for j in range(m):
            if terms[j]:
                add(terms[j], -math.inf, 1.0 - float(const[j]))
    n_d = len(dvar)
    c = np.zeros(nv)
    c[:n_d] = mu
    integrality = np.zeros(nv)
    lb, ub = np.zeros(nv), np.full(nv, np.inf)
    ub[:n_d] = grid.D
    for z0, cnt in zvar:
        integrality[z0 : z0 + cnt] = 1
        ub[z0 : z0 + cnt] = 1
    for r, paid in rvar:  # a repair never earns more than the choice it replaces
        c[r] = -1.0
        if not everywhere:
            ub[r] = paid
    A = sp.csr_matrix((vals, (rows, cols)), shape=(len(lo), nv))
    t0 = time.perf_counter()
    res = milp(
        c,
        constraints=LinearConstraint(A, lo, hi),
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"time_limit": time_limit, "mip_rel_gap": mip_gap},
    )
    seconds = time.perf_counter() - t0
    if res.x is None:
        raise BundleflowError(f"compatibility MILP: HiGHS found no solution ({res.message})")
    for (i, h), ks in relevant.items():
        extra = torch.full((K,), grid.D, dtype=torch.float64)  # never taken in the fiber: priced out
        for k in ks:
            extra[k] = max(0.0, float(res.x[dvar[(i, h, k)]]))
        shifts[i, h] += extra
    binaries = sum(cnt for _, cnt in zvar)
    return int(bad.sum()), int(active.sum()), len(rows_P), binaries, seconds, str(res.message)


@torch.no_grad()
def make_compatible(
    mechanism: MultiMenuMechanism,
    levels,
    eps: float | None = None,
    mu: float = 1e-6,
    time_limit: float = 600.0,
    mip_gap: float = 1e-4,
    max_rounds: int = 5,
    optimise: bool = False,
) -> tuple[ShiftedMenus, TransformReport]:
    """Price shifts that make ``mechanism`` compatible on the grid of ``levels`` (module doc).

    Rounds of the MILP run until the exact choices on the grid are compatible (HiGHS's
    tolerances can leave a profile or two over-allocated; the next round repairs them).
    With ``optimise`` the first round takes every fiber and every element and maximises the
    grid revenue uncapped: the best price shifts for the grid's profiles, each weighted equally. That is
    the revenue itself when the grid is the (uniform) type space, as in Yao's example; on a
    grid of a continuous distribution it may fit the grid rather than the distribution.

    Args:
        mechanism: menus whose allocations are linear in values (additive or unit demand).
        levels: ``[L]`` grid levels of every bid coordinate.
        eps: the margin by which a chosen option beats the others (default ``1e-4 *`` the
            largest grid value of a grand bundle).
        mu: weight of ``sum d`` against the grid revenue.
        time_limit: HiGHS's limit in seconds per round; its best solution so far is used.
        mip_gap: HiGHS's relative optimality gap.
        max_rounds: rounds before giving up with an error.
    """
    t_start = time.perf_counter()
    lv = torch.as_tensor(levels, dtype=torch.float64).flatten()
    if len(lv) == 0 or not torch.isfinite(lv).all() or (lv < 0).any():
        raise InputError("compatibility grid: levels must be a non-empty list of finite values >= 0")
    lv = torch.unique(lv)
    n, m, L = mechanism.n_bidders, mechanism.n_items, len(lv)
    values = grid_profiles(lv, n, m)  # [G, n, m]
    G = len(values)
    alloc, price = mechanism.menus(values.to(torch.get_default_dtype()))
    alloc, price = alloc.double(), price.double()
    K = price.shape[2]
    top = float(values.sum(-1).amax())
    cap = max(float(price.amax()), top, 1e-12)
    D = 2 * cap + 1.0  # a shift that prices an element out: utility <= top - D < 0
    fibers = torch.stack(
        [fiber_index(lv, torch.cat([values[:, :i], values[:, i + 1 :]], 1).reshape(G, -1)) for i in range(n)], 1
    )  # [G, n]
    grid = _Grid(
        values=values,
        fibers=fibers,
        alloc=alloc,
        tol=TIE_TOL * max(1.0, float(values.amax()) * m),
        eps=1e-4 * max(top, 1e-12) if eps is None else float(eps),
        D=D,
        M=2 * cap + 2 * D * max_rounds + 1.0,
    )
    shifts = torch.zeros(n, L ** ((n - 1) * m), K, dtype=torch.float64)
    _, pay0, _ = _choices(alloc, price, values, grid.tol)
    stats = []
    for r in range(max_rounds + 1):
        now = price + torch.stack([shifts[i, fibers[:, i]] for i in range(n)], 1)
        st = _milp_round(grid, now, shifts, mu, time_limit, mip_gap, everywhere=optimise and r == 0)
        if st[0] == 0 and not (optimise and r == 0):
            break
        stats.append(st)
    else:
        raise BundleflowError(f"compatibility MILP: the grid still over-allocates after {max_rounds} rounds")
    now = price + torch.stack([shifts[i, fibers[:, i]] for i in range(n)], 1)
    _, pay, _ = _choices(alloc, now, values, grid.tol)
    report = TransformReport(
        grid_profiles=G,
        violating_before=stats[0][0] if stats else 0,
        active_fibers=sum(s[1] for s in stats),
        milp_profiles=sum(s[2] for s in stats),
        milp_binaries=sum(s[3] for s in stats),
        milp_seconds=sum(s[4] for s in stats),
        milp_status="; ".join(s[5] for s in stats) or "compatible",
        grid_revenue_before=float(pay0.sum(1).mean()),
        grid_revenue_after=float(pay.sum(1).mean()),
        shifted_elements=int((shifts > 0).sum()),
        seconds=time.perf_counter() - t_start,
        rounds=len(stats),
    )
    return ShiftedMenus(mechanism, lv, shifts), report
