"""Re-seeding unused menu elements at bundles the data asks for (Stage 2, ``menu.reseed_every``).

A large menu leaves most elements unchosen (at J=5000 on CATS about 300-1,000 are chosen),
and an unchosen element gets no gradient from the relaxation once its utility is far
below the best one. Every ``menu.reseed_every`` steps, on a fresh sample of training bidders:

1. the current menu is evaluated exactly (:func:`bundleflow.mechanisms.choose`): each
   bidder's utility ``u[b]`` and payment ``pay[b]``, and which elements nobody chooses;
2. candidate bundles (:func:`candidate_bundles`) come in two tiers: the atoms of the bidders
   who buy nothing, then of the others (XOR valuations), and then coarser bundles, the grand
   bundle and unions of one bidder's atoms; other valuations offer the data-driven start's
   bundles (:func:`bundleflow.training.initialisation.init_bundles`);
3. candidates are picked greedily (:func:`greedy_bundles`), fine tier first: each is offered
   as a sure bundle at its exact best price against the current menu and the earlier picks
   (:func:`bundleflow.baselines.prices.best_prices_given_outside` with
   ``threshold[c, b] = v_b(c) - u[b]``), and the one that raises the sample's revenue most,
   bought by at least ``min_buyers`` bidders, goes next to an unused element (at most
   ``max_new``). Fine before coarse: a bidder's own atom discriminates her price, a union
   only reaches those the atoms leave out;
4. each moved element is placed at the corner of its bundle (:meth:`MenuModel.place_at`)
   and priced exactly, one after the other, against the menu with the earlier ones; an
   element whose exact lottery after the flow does not raise the sample's revenue gets
   its old parameters back.

On the sample, revenue never falls; held-out revenue is what the log measures. The
optimiser's moments of the moved elements are reset.
"""

from __future__ import annotations

import heapq

import torch

from bundleflow.baselines.prices import best_price_given_outside, best_prices_given_outside
from bundleflow.mechanisms.menu import Menu, choose, expected_values
from bundleflow.mechanisms.model import MenuModel
from bundleflow.training.initialisation import _set_price_logits, init_bundles
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.bundles import first_occurrences, pack_bits
from bundleflow.valuations.xor import XORValuation

MAX_CANDIDATES = 2048  # candidate bundles scored per re-seeding (each scored on every sampled bidder)
MAX_UNIONS = 256  # of which unions of a bidder's atoms (the coarse tier, with the grand bundle)


def candidate_bundles(
    sample: Valuation, unserved: torch.Tensor, generator: torch.Generator, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bundles to offer, in two tiers: ``(bundles [C, m] 0/1 float, tier [C] long)``, ``C <= MAX_CANDIDATES``.

    XOR ``sample``: tier 0 is the distinct valued atoms of the ``unserved`` (``[B]`` bool) bidders,
    then of the others while there is room (random ones where there are too many); tier 1 is
    coarser: the grand bundle and up to :data:`MAX_UNIONS` unions of a random half of one sampled
    bidder's atoms (an atom sought by one bidder alone is bought by too few; a union or the grand
    bundle by many, as with uniform atoms). Other valuations: :func:`init_bundles`, all tier 0.
    """
    if not isinstance(sample, XORValuation):
        cand = init_bundles(sample.to("cpu"), MAX_CANDIDATES, seed)
        return cand, torch.zeros(len(cand), dtype=torch.long)
    m = sample.n_items
    if len(sample) == 0:
        return torch.zeros(0, m), torch.zeros(0, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(sample), (MAX_UNIONS,), generator=g)
    pick = torch.rand(MAX_UNIONS, sample.n_atoms_max, generator=g) < 0.5
    held = sample.atoms[idx.to(sample.device)].cpu() & (sample.values[idx.to(sample.device)].cpu() > 0)[..., None]
    unions = (held & pick[:, :, None]).any(1).float()
    coarse = torch.cat([torch.ones(1, m), unions[unions.any(-1)]])
    groups = [
        sample.atoms[who][(sample.values[who] > 0) & sample.atoms[who].any(-1)].float().cpu()  # [n, m]
        for who in (unserved.to(sample.device), ~unserved.to(sample.device))
    ] + [coarse]
    fine_room = MAX_CANDIDATES - MAX_UNIONS - 1  # for the atoms of both groups together
    out: list[torch.Tensor] = []
    seen: set[tuple[int, ...]] = set()  # packed rows offered already
    for k, rows in enumerate(groups):
        room = len(coarse) if k == 2 else fine_room - sum(len(r) for r in out)
        rows = rows[first_occurrences(rows)]
        keys = [tuple(w) for w in pack_bits(rows > 0.5).tolist()]
        new = [i for i, w in enumerate(keys) if w not in seen]
        if len(new) > room:
            new = [new[i] for i in torch.randperm(len(new), generator=generator)[:room].sort().values.tolist()]
        seen.update(keys[i] for i in new)
        out.append(rows[torch.tensor(new, dtype=torch.long)])
    tier = torch.cat([torch.zeros(len(out[0]) + len(out[1])), torch.ones(len(out[2]))]).long()
    return torch.cat(out), tier


@torch.no_grad()
def reseed_unused(
    model: MenuModel,
    sample: Valuation,
    outside: tuple[torch.Tensor | None, torch.Tensor | None],
    item_prices: torch.Tensor | None,
    generator: torch.Generator,
    corner: float,
    tol: float,
    max_new: int,
    min_buyers: int = 3,
    seed: int = 0,
) -> dict:
    """Move up to ``max_new`` unused elements of ``model`` to the bundles with the largest exact
    revenue gain on ``sample`` (module doc). ``outside`` is the sample's outside option
    ``(utility [B], payment [B])`` (``None, None``: the null option).

    Returns ``{"moved": [element indices], "unused": int, "sample_revenue_before": float,
    "sample_revenue_after": float}`` (revenues are per bidder, on ``sample``).
    """
    cap = model.cap
    menu = model.menu(item_prices)
    B = len(sample)
    ev = expected_values(menu, sample)  # [B, J]
    prices = menu.prices.to(ev)
    u0, pay0 = outside
    choice, pay, util, _ = choose(ev, prices, tol, u0, pay0)
    used = torch.zeros(menu.n_elements, dtype=torch.bool)
    used[choice[choice >= 0].cpu()] = True
    unused = torch.nonzero(~used).flatten()
    before = float(pay.sum()) / B
    report = {"moved": [], "unused": len(unused), "sample_revenue_before": before, "sample_revenue_after": before}
    if len(unused) == 0 or max_new <= 0:
        return report
    cand, tier = candidate_bundles(sample, choice.cpu() < 0, generator, seed)
    if len(cand) == 0:
        return report
    values = sample.bundle_values(cand.to(sample.device) > 0.5)  # [C, B]
    order = greedy_bundles(values, tier, util, pay, cap, min(max_new, len(unused)), min_buyers)
    if len(order) == 0:
        return report
    slots = unused[torch.randperm(len(unused), generator=generator)[: len(order)]].sort().values
    rows = {name: param.data for name, param in model.element_parameters().items()}  # [J, ...] each
    saved = {name: t[slots.to(t.device)].clone() for name, t in rows.items()}
    model.place_at(slots, cand[order.cpu()], generator, corner)
    b_new, p_new = model.lottery()
    ev_new = expected_values(
        Menu(
            b_new[slots.to(b_new.device)].cpu(), p_new[slots.to(p_new.device)].double().cpu(), torch.zeros(len(slots))
        ),
        sample,
    )  # [B, n]
    new_prices = torch.full((len(slots),), cap, dtype=torch.float64)
    kept = torch.zeros(len(slots), dtype=torch.bool)
    total = float(pay.sum())
    for k in range(len(slots)):
        thr = ev_new[:, k] - util
        price, rev = best_price_given_outside(thr, pay, cap)
        if rev > total + 1e-9 * max(1.0, total):
            buy = thr >= price
            util = torch.where(buy, thr + util - price, util)
            pay = torch.where(buy, torch.full_like(pay, price), pay)
            total, new_prices[k], kept[k] = rev, price, True
    for name, t in rows.items():  # elements that did not pay back their old selves
        t[slots[~kept].to(t.device)] = saved[name][~kept.to(saved[name].device)]
    moved = slots[kept]
    logits = torch.empty(len(moved), dtype=model.price_logit.dtype)
    _set_price_logits(logits, new_prices[kept], cap, 1e-4)
    model.price_logit.data[moved.to(model.price_logit.device)] = logits.to(model.price_logit.device)
    report["moved"] = moved.tolist()
    report["sample_revenue_after"] = total / B
    return report


def greedy_bundles(
    values: torch.Tensor,
    tier: torch.Tensor,
    util: torch.Tensor,
    pay: torch.Tensor,
    cap: float,
    k: int,
    min_buyers: int,
) -> torch.Tensor:
    """Up to ``k`` candidates picked greedily, tier 0 first, then tier 1: each time the sure bundle
    whose exact best price against the menu with the earlier picks raises the revenue most, if
    at least ``min_buyers`` bidders buy it (lazy greedy: a candidate's gain is recomputed when it
    tops the queue, and it is taken if it still beats the next candidate's last known gain).

    Args:
        values: ``[C, B]`` bidder ``b``'s value of candidate ``c``.
        tier: ``[C]`` long; a lower tier is exhausted first.
        util, pay: ``[B]`` each bidder's utility and payment in the current menu.

    Returns the picked candidates ``[n]`` (long, ``n <= k``) in the order picked.
    """
    util, pay = util.double().clone(), pay.to(util.device).double().clone()
    eps = 1e-9 * max(1.0, cap)

    def score(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        thr = values[idx.to(values.device)].double() - util[None]  # [n, B]
        price, revenue = best_prices_given_outside(thr, pay, cap)
        gain = revenue - float(pay.sum())
        gain = torch.where((thr >= price[:, None]).sum(1) >= min_buyers, gain, torch.full_like(gain, -1.0))
        return gain, price, thr

    picked: list[int] = []
    for t in tier.unique(sorted=True).tolist():
        idx = torch.nonzero(tier == t).flatten()
        queue = [(-g, c) for g, c in zip(score(idx)[0].tolist(), idx.tolist()) if g > eps]
        heapq.heapify(queue)
        while queue and len(picked) < k:
            _, c = heapq.heappop(queue)
            gain, price, thr = score(torch.tensor([c]))
            if float(gain[0]) <= eps:
                continue
            if queue and float(gain[0]) < -queue[0][0]:  # another may now gain more: re-queue
                heapq.heappush(queue, (-float(gain[0]), c))
                continue
            buy = thr[0] >= price[0]
            util = torch.where(buy, thr[0] + util - price[0], util)
            pay = torch.where(buy, price[0].to(pay), pay)
            picked.append(c)
    return torch.tensor(picked, dtype=torch.long)


def reset_moments(optimizer: torch.optim.Optimizer, model: MenuModel, elements: torch.Tensor) -> None:
    """Zero the optimiser state (Adam's moments) of ``elements``' rows, so they start afresh."""
    for p in model.element_parameters().values():
        for v in optimizer.state.get(p, {}).values():
            if torch.is_tensor(v) and v.shape == p.shape:
                v[elements.to(v.device)] = 0
