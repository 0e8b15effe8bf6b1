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
"""

from __future__ import annotations

import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.multi.outcome import MultiOutcome, bids_of, check_bidders, outcome_of
from bundleflow.oracles.multi_lp import assignments
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.items import AdditiveValuation

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
    payment = (alloc * price[:, None]).sum(-1)  # [B, n]
    values = (alloc * v).sum(-1)
    choice = torch.where(alloc.sum(-1) > 0, 0, -1)
    return outcome_of(alloc, payment, values, choice)


def tuned_reserve(train: list[Valuation], grid: int = 101) -> float:
    """The common reserve in ``[0, max bid]`` (``grid`` points) that maximises the revenue of
    :func:`second_price_items` on ``train``."""
    top = float(bids_of(train).amax())
    best = max(
        (second_price_items(train, r).revenue, -r, r)
        for r in torch.linspace(0, top, grid, dtype=torch.float64).tolist()
    )
    return best[2]


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
