"""Multi-bidder baselines, exactly evaluated (:class:`~bundleflow.mechanisms.multi.MultiOutcome`).

* :func:`second_price_items`: every item sold separately by a second-price auction with an
  anonymous reserve ``r_j`` (ties to the lowest-index bidder). For additive bidders with
  reserve 0 it is VCG; with values iid ``F`` on each item and ``r_j`` the monopoly price of
  ``F`` (1/2 for U[0,1]) it is Myerson's optimal auction item by item (Myerson 1981): for
  ``n`` bidders U[0,1] it earns ``(n-1)/(n+1) + 1/(2^n (n+1))`` per item, 5/12 for ``n = 2``.
* :func:`vcg`: the welfare-maximising assignment and Clarke payments, for any valuation
  class, by enumerating the ``(n+1)^m`` assignments (small ``m``).
* :func:`tuned_reserve`: the best common reserve of :func:`second_price_items` on training
  profiles, over a grid.
* :func:`item_auctions_with_entry_fee`: additive bidders; bidder ``i`` may buy any set of items
  at the item prices ``q_ij = max(r, max_{l != i} b_lj)`` of second-price auctions with reserve
  ``r``, after paying an entry fee ``f``: she buys ``{j : b_ij > q_ij}`` if its surplus
  ``sum_j (b_ij - q_ij)^+`` is at least ``f``, else nothing. Her options do not depend on her
  bid, so it is strategy-proof and IR; the sales are exclusive, so it never over-allocates.
  This is VCG with entry fees (Yao, "An n-to-1 bidder reduction for multi-item auctions",
  SODA 2015) with one common fee; with ``f = 0``, :func:`second_price_items`. Many items
  concentrate a bidder's surplus, so a fee can take much of it: 2 x 5 and 3 x 10 items U[0,1]
  earn about 2.16 and 5.48 at ``(r, f) = (0.4, 0.2)``, against 2.08 and 5.31 item by item.
  :func:`tuned_entry_fee` tunes ``(r, f)`` on training profiles.
* :func:`sequential_posted_prices`: bidders in turn (bidder 0 first) buy what they like best
  among the items left at posted item prices (additive: every remaining item worth its price;
  unit demand: the remaining item of highest ``v_j - q_j`` if it is >= 0). Strategy-proof
  (bidder i's options depend on earlier bidders' bids only) and never over-allocates; with
  :func:`tuned_posted_price`, one common price tuned on training profiles.

XOR (CATS) bidders, whose atoms are few (CATS: at most a handful per bidder):

* :func:`xor_vcg`: VCG with a reserve ``r`` per item, the affine maximiser in which the
  seller bids ``r`` on every item she keeps (``r = 0``: VCG). The allocation maximises
  ``W'(x) = sum_i [v_i(S_i) - r |S_i|]`` over giving each bidder one of her atoms' bundles or
  nothing, disjointly (:func:`xor_wdp`, by enumerating the ``prod_i (A_i + 1)`` choices; a
  welfare-maximising allocation of XOR bids is of this form); bidder ``i`` pays
  ``v_i(S_i) - (W'* - W'*_{-i})`` (Clarke), at least ``r |S_i|``. Strategy-proof and IR.
  :func:`tuned_xor_reserve` tunes ``r`` on training profiles.
* :func:`sequential_posted_prices` with XOR bidders: each, in turn, takes the bundle of
  one of her atoms among the items left that maximises ``v(S) - q |S|``, if it is >= 0.
"""

from __future__ import annotations

import math

import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.multi.affine import atom_options, xor_vcg_sales, xor_wdp  # noqa: F401 (xor_wdp: API)
from bundleflow.mechanisms.multi.outcome import MultiOutcome, bids_of, check_bidders, outcome_of
from bundleflow.oracles.multi_lp import assignments
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.items import AdditiveValuation
from bundleflow.valuations.xor import XORValuation

MAX_VCG_ASSIGNMENTS = 1 << 12


def second_price_items(bidders: list[Valuation], reserve=0.0) -> MultiOutcome:
    """Item-by-item second-price auctions with reserve ``reserve`` (a number or ``[m]``);
    additive bidders only (the items' auctions are then independent)."""
    B, n, m = check_bidders(bidders)
    if not all(isinstance(v, AdditiveValuation) for v in bidders):
        raise InputError("second_price_items: separate item auctions are for additive bidders")
    v = bids_of(bidders).double()  # [B, n, m]
    r = torch.as_tensor(reserve, dtype=torch.float64, device=v.device).expand(m)
    if not torch.isfinite(r).all() or (r < 0).any():
        raise InputError("second_price_items: reserves must be finite and non-negative")
    top, winner = v.max(1)  # first maximiser: ties to the lowest index
    others = v.clone()
    others.scatter_(1, winner[:, None], -torch.inf)
    second = others.amax(1) if n > 1 else torch.full_like(top, -torch.inf)
    sold = top >= r
    price = torch.maximum(second, r.expand_as(second))
    alloc = torch.zeros_like(v)
    alloc.scatter_(1, winner[:, None], sold[:, None].double())
    return _sold_at(alloc, price[:, None], v)


def _sold_at(alloc: torch.Tensor, price: torch.Tensor, v: torch.Tensor) -> MultiOutcome:
    """Outcome of sure allocations ``[B, n, m]`` paid item by item at ``price`` (broadcast to
    ``[B, n, m]``), valued additively at ``v``."""
    choice = torch.where(alloc.sum(-1) > 0, 0, -1)
    return outcome_of(alloc, (alloc * price).sum(-1), (alloc * v).sum(-1), choice)


def tuned_reserve(train: list[Valuation], grid: int = 101) -> float:
    """The common reserve in ``[0, max bid]`` (``grid`` points) that maximises the revenue of
    :func:`second_price_items` on ``train``."""
    return _best_common_price(train, second_price_items, grid)


def _fee_parts(v: torch.Tensor, reserve: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(wins [B, n, m], surplus [B, n], item_payment [B, n])`` of every bidder's best set at
    the item prices ``max(reserve, highest other bid)`` (bids ``v [B, n, m]``)."""
    B, n, m = v.shape
    if n > 1:
        top2 = v.topk(2, dim=1).values  # [B, 2, m]
        others = torch.where(v >= top2[:, :1], top2[:, 1:2], top2[:, :1])  # the highest other bid
    else:
        others = torch.full_like(v, -torch.inf)
    q = torch.clamp(others, min=reserve)
    wins = v > q
    gap = (v - q) * wins
    return wins, gap.sum(-1), (q * wins).sum(-1)


def item_auctions_with_entry_fee(bidders: list[Valuation], reserve: float, fee: float) -> MultiOutcome:
    """Second-price item auctions with reserve ``reserve`` and an entry fee ``fee`` per bidder
    (module doc); additive bidders. A bidder whose surplus equals the fee buys (the seller's
    way); one who wins no item pays nothing."""
    B, n, m = check_bidders(bidders)
    if not all(isinstance(v, AdditiveValuation) for v in bidders):
        raise InputError("item_auctions_with_entry_fee: for additive bidders")
    for name, x in (("reserve", reserve), ("fee", fee)):
        if not (math.isfinite(x) and x >= 0):
            raise InputError(f"item_auctions_with_entry_fee: the {name} must be finite and >= 0, got {x}")
    v = bids_of(bidders).double()
    wins, surplus, paid = _fee_parts(v, reserve)
    buy = wins.any(-1) & (surplus >= fee)  # [B, n]
    alloc = (wins & buy[..., None]).double()
    payment = torch.where(buy, paid + fee, torch.zeros_like(paid))
    return outcome_of(alloc, payment, (alloc * v).sum(-1), torch.where(buy, 0, -1))


def tuned_entry_fee(train: list[Valuation], grid: int = 101, fee_grid: int = 201) -> tuple[float, float]:
    """``(reserve, fee)`` that maximise the revenue of :func:`item_auctions_with_entry_fee` on
    ``train``: reserves on ``grid`` points of ``[0, max bid]``, and for each, fees on
    ``fee_grid`` points of ``[0, largest surplus]`` (the lowest of equals, reserve first)."""
    check_bidders(train)
    v = bids_of(train).double()
    best = (-math.inf, 0.0, 0.0)
    for r in torch.linspace(0, float(v.amax()), grid, dtype=torch.float64).tolist():
        wins, surplus, paid = _fee_parts(v, r)
        s = torch.where(wins.any(-1), surplus, torch.full_like(surplus, -1.0)).flatten()  # [B n]
        fees = torch.linspace(0, max(float(s.max()), 0.0), fee_grid, dtype=torch.float64)
        take = s[:, None] >= fees[None, :]  # [B n, F]
        revenue = (take * (paid.flatten()[:, None] + fees[None, :])).sum(0) / len(v)
        k = int(revenue.argmax())  # the first maximiser: the lowest of equal fees
        if float(revenue[k]) > best[0]:  # strictly: the lowest of equal reserves
            best = (float(revenue[k]), r, float(fees[k]))
    return best[1], best[2]


def sequential_posted_prices(bidders: list[Valuation], prices) -> MultiOutcome:
    """Bidders in index order buy at item prices ``prices`` (a number or ``[m]``) among the items
    still unsold; ties (utility exactly 0) buy, the seller's way."""
    B, n, m = check_bidders(bidders)
    v = bids_of(bidders).double()
    q = torch.as_tensor(prices, dtype=torch.float64, device=v.device).expand(m)
    if not torch.isfinite(q).all() or (q < 0).any():
        raise InputError("sequential_posted_prices: prices must be finite and non-negative")
    if isinstance(bidders[0], XORValuation):
        return _sequential_xor(bidders, float(q[0]))  # type: ignore[arg-type]
    unit = not isinstance(bidders[0], AdditiveValuation)
    left = torch.ones(B, m, dtype=torch.bool, device=v.device)
    alloc = torch.zeros_like(v)
    for i in range(n):
        if unit:
            u = torch.where(left, v[:, i] - q, -torch.inf)
            best, j = u.max(1)
            buy = torch.zeros_like(left)
            buy[torch.arange(B), j] = best >= 0
        else:
            buy = left & (v[:, i] >= q)
        alloc[:, i] = buy.double()
        left &= ~buy
    return _sold_at(alloc, q, v)  # unit demand: at most one item each, so values add up


def tuned_posted_price(train: list[Valuation], grid: int = 101) -> float:
    """The common item price in ``[0, max bid]`` (``grid`` points) that maximises the revenue of
    :func:`sequential_posted_prices` on ``train``."""
    return _best_common_price(train, sequential_posted_prices, grid)


def _best_common_price(train: list[Valuation], mechanism, grid: int) -> float:
    """The price ``x`` in ``[0, max bid]`` (``grid`` points; the lowest of equals) that maximises
    the revenue of ``mechanism(train, x)``."""
    top = float(bids_of(train).amax())
    xs = torch.linspace(0, top, grid, dtype=torch.float64).tolist()
    return max((mechanism(train, x).revenue, -x, x) for x in xs)[2]


def vcg(bidders: list[Valuation]) -> MultiOutcome:
    """VCG with Clarke payments over all ``(n+1)^m`` assignments (deterministic; ties to the
    first assignment in :func:`~bundleflow.oracles.multi_lp.assignments` order)."""
    B, n, m = check_bidders(bidders)
    if (n + 1) ** m > MAX_VCG_ASSIGNMENTS:
        raise InputError(f"vcg enumerates (n+1)^m = {(n + 1) ** m} assignments, more than {MAX_VCG_ASSIGNMENTS}")
    A = torch.as_tensor(assignments(n, m))  # [O, m]
    # V[b, i, o]: bidder i's value for her part of assignment o
    V = torch.stack([v.value((A == i).double()) for i, v in enumerate(bidders)], 1)
    W = V.sum(1)  # [B, O]
    best = W.argmax(1)
    pick = best[:, None, None].expand(B, n, 1)
    got = V.gather(2, pick)[..., 0]  # [B, n]
    others_at_best = W.gather(1, best[:, None]) - got
    without = (W[:, None, :] - V).amax(2)  # others' best welfare without i... (i's part ignored)
    payment = (without - others_at_best).clamp_min(0)
    owner = A[best]  # [B, m]
    alloc = (owner[:, None, :] == torch.arange(n)[None, :, None]).double()
    choice = torch.where(alloc.sum(-1) > 0, 0, -1)
    return outcome_of(alloc, payment, got, choice)


def xor_vcg(bidders: list[XORValuation], reserve: float = 0.0) -> MultiOutcome:
    """VCG with a per-item reserve for XOR bidders (module doc), exactly evaluated."""
    bundle, got, payment, sold = xor_vcg_sales(bidders, reserve)
    return outcome_of(bundle.double(), payment, got, torch.where(sold, 0, -1))


def tuned_xor_reserve(train: list[XORValuation], grid: int = 21) -> float:
    """The per-item reserve in ``[0, max per-item bid]`` (``grid`` points) that maximises the
    revenue of :func:`xor_vcg` on ``train``."""
    return _best_common_price(train, xor_vcg, grid)  # type: ignore[arg-type]


def _sequential_xor(bidders: list[XORValuation], q: float) -> MultiOutcome:
    """:func:`sequential_posted_prices` for XOR bidders at price ``q`` per item (module doc)."""
    B, n, m = len(bidders[0]), len(bidders), bidders[0].n_items
    bundles, worth, value = atom_options(bidders, q)
    none = bundles.shape[2] - 1
    left = torch.ones(B, m, dtype=torch.bool)
    alloc = torch.zeros(B, n, m, dtype=torch.float64)
    pay = torch.zeros(B, n, dtype=torch.float64)
    got = torch.zeros(B, n, dtype=torch.float64)
    choice = torch.full((B, n), -1, dtype=torch.long)
    rows = torch.arange(B)
    for i in range(n):
        fits = ~(bundles[:, i] & ~left[:, None, :]).any(-1)  # [B, O] inside the items left
        fits[:, none] = False
        u = torch.where(fits, worth[:, i], -torch.inf)
        best, a = u.max(1)
        buy = (best >= 0) & bundles[rows, i, a].any(-1)
        S = bundles[rows, i, a] & buy[:, None]
        alloc[:, i] = S.double()
        pay[:, i] = q * S.sum(-1)
        got[:, i] = torch.where(buy, value[rows, i, a], 0.0)
        choice[:, i] = torch.where(buy, 0, -1)
        left &= ~S
    return outcome_of(alloc, pay, got, choice)
