"""Re-seeding unused menu elements at bundles the data asks for (Stage 2, ``menu.reseed_every``).

A large menu leaves most elements unchosen (at J=5000 on CATS about 300-1,000 are chosen),
and an unchosen element gets no gradient from the relaxation once its utility is far
below the best one. Every ``menu.reseed_every`` steps, on a fresh sample of training bidders:

1. the current menu is evaluated exactly (:func:`bundleflow.mechanisms.choose`): each
   bidder's utility ``u[b]`` and payment ``pay[b]``, and which elements nobody chooses;
2. candidate bundles are the atoms of the bidders who buy nothing, then of the others
   (XOR valuations), or the data-driven start's bundles
   (:func:`bundleflow.training.initialisation.init_bundles`);
3. each candidate ``c`` alone, offered as a sure bundle at its exact best price against
   the current menu (:func:`bundleflow.baselines.prices.best_prices_given_outside` with
   ``threshold[c, b] = v_b(c) - u[b]``), would raise the sample's revenue by ``gain[c]``;
   the candidates with the largest gains, bought by at least ``min_buyers`` bidders,
   go to unused elements (at most ``max_new``);
4. each moved element is placed at the corner of its bundle (:meth:`MenuModel.place_at`)
   and priced exactly, one after the other, against the menu with the earlier ones; an
   element whose exact lottery after the flow does not raise the sample's revenue gets
   its old parameters back.

On the sample, revenue never falls; held-out revenue is what the log measures. The
optimiser's moments of the moved elements are reset.
"""

from __future__ import annotations

import torch

from bundleflow.baselines.prices import best_price_given_outside, best_prices_given_outside
from bundleflow.mechanisms.menu import Menu, choose, expected_values
from bundleflow.mechanisms.model import MenuModel
from bundleflow.training.initialisation import _set_price_logits, init_bundles
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.bundles import unique_rows
from bundleflow.valuations.xor import XORValuation

MAX_CANDIDATES = 2048  # candidate bundles scored per re-seeding (each scored on every sampled bidder)


def candidate_bundles(sample: Valuation, unserved: torch.Tensor, generator: torch.Generator, seed: int) -> torch.Tensor:
    """``[C, m]`` 0/1 float bundles to offer, ``C <= MAX_CANDIDATES``. XOR ``sample``: the distinct
    valued atoms of the ``unserved`` (``[B]`` bool) bidders, then of the others while there is room
    (random ones where there are too many); other valuations: :func:`init_bundles`."""
    if not isinstance(sample, XORValuation):
        return init_bundles(sample.to("cpu"), MAX_CANDIDATES, seed)
    out: list[torch.Tensor] = []
    room = MAX_CANDIDATES
    for who in (unserved, ~unserved):
        who = who.to(sample.device)
        atoms = sample.atoms[who][(sample.values[who] > 0) & sample.atoms[who].any(-1)].float().cpu()  # [n, m]
        if room == 0 or len(atoms) == 0:
            continue
        atoms = unique_rows(atoms)[0]
        if out:  # not offered already
            seen = {tuple(r.tolist()) for r in torch.cat(out).bool()}
            atoms = atoms[torch.tensor([tuple(r.tolist()) not in seen for r in atoms.bool()], dtype=torch.bool)]
        if len(atoms) > room:
            atoms = atoms[torch.randperm(len(atoms), generator=generator)[:room]]
        out.append(atoms)
        room -= len(atoms)
    return torch.cat(out) if out else torch.zeros(0, sample.n_items)


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
    cand = candidate_bundles(sample, choice.cpu() < 0, generator, seed)
    if len(cand) == 0:
        return report
    threshold = sample.bundle_values(cand.to(sample.device) > 0.5) - util[None]  # [C, B]
    p, revenue = best_prices_given_outside(threshold, pay, cap)
    buyers = (threshold >= p[:, None]).sum(1)
    gain = torch.where(buyers >= min_buyers, revenue - float(pay.sum()), torch.full_like(revenue, -1.0))
    order = torch.argsort(gain, descending=True)
    order = order[gain[order] > 1e-9 * max(1.0, cap)][: min(max_new, len(unused))]
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


def reset_moments(optimizer: torch.optim.Optimizer, model: MenuModel, elements: torch.Tensor) -> None:
    """Zero the optimiser state (Adam's moments) of ``elements``' rows, so they start afresh."""
    for p in model.element_parameters().values():
        for v in optimizer.state.get(p, {}).values():
            if torch.is_tensor(v) and v.shape == p.shape:
                v[elements.to(v.device)] = 0
