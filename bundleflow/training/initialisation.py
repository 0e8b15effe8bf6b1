"""The data-driven start of Stage 2: start bundles and exact starting prices."""

from __future__ import annotations

import math
from typing import Any

import torch

from bundleflow.baselines.bundling import atom_menu, frequent_atoms
from bundleflow.baselines.prices import best_price_given_outside, optimise_prices
from bundleflow.baselines.result import BaselineResult
from bundleflow.mechanisms.menu import TIE_TOL, Menu, choose, expected_values
from bundleflow.mechanisms.model import MenuModel
from bundleflow.utils.progress import progress_bar
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.bundles import first_occurrences
from bundleflow.valuations.xor import XORValuation


def init_bundles(train: Valuation, n_elements: int, seed: int, n_atoms: int = 64) -> torch.Tensor:
    """Grand bundle, then frequent atoms (at least the ``min(n_atoms, J)`` of the atom-menu start,
    and up to ``J / 2``), then unions of a random bidder's atoms: ``[J, m]``; padded with random
    bundles when there are fewer distinct candidates than ``J``."""
    return init_candidates(train, n_elements, seed, n_atoms)[0]


def init_candidates(train: Valuation, n_elements: int, seed: int, n_atoms: int = 64) -> tuple[torch.Tensor, int]:
    """:func:`init_bundles` and the number of distinct candidates before the padding."""
    m = train.n_items
    out = [torch.ones(1, m)]
    if isinstance(train, XORValuation):
        out.append(frequent_atoms(train, max(n_elements // 2, min(n_atoms, n_elements))))
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(len(train), (4 * n_elements,), generator=g)
        pick = torch.rand(4 * n_elements, train.n_atoms_max, generator=g) < 0.5
        unions = (train.atoms[idx.to(train.device)].cpu() & pick[:, :, None]).any(1).float()
        out.append(unions[unions.any(-1)])
    else:  # item valuations: single items, pairs, random bundles
        out.append(torch.eye(m))
        g = torch.Generator().manual_seed(seed)
        out.append((torch.rand(4 * n_elements, m, generator=g) < 0.5).float())
    cand = torch.cat(out)
    cand = cand[first_occurrences(cand)]
    distinct = min(cand.shape[0], n_elements)
    if cand.shape[0] < n_elements:
        g = torch.Generator().manual_seed(seed + 1)
        extra = (torch.rand(n_elements - cand.shape[0], m, generator=g) < 0.5).float()
        cand = torch.cat([cand, extra])
    return cand[:n_elements], distinct


def single_atoms(train: Valuation, n: int) -> torch.Tensor:
    """The ``n`` most frequent atoms (XOR data) or the single items (item valuations), ``[<= n, m]``."""
    if isinstance(train, XORValuation):
        return frequent_atoms(train, n)
    return torch.eye(train.n_items)[:n]


def pair_lotteries(train: Valuation, n: int, n_support: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``n`` even lotteries between two disjoint frequent atoms (item valuations: two single
    items), most frequent pairs first: ``(supports [<= n, D, m], probs [<= n, D])``, the two
    bundles on alternate supports (even and odd ``d``), each bundle with probability 1/2 in all.

    Why: with values that do not start at zero, the optimal menu sells such lotteries to the
    bidders who value every atom about the same (Pavlov 2011: two unit-demand items U[c, c+1],
    each item at a high price and the even lottery between them at a lower one; 2.137 against
    2.112 for item pricing at c = 2), and a lottery is not reached from sure bundles by gradient
    steps, which only see bundles already offered.
    """
    D = n_support
    atoms = single_atoms(train, max(2, math.isqrt(2 * n) + 2))
    pairs = [
        (a, b)
        for a in range(atoms.shape[0])
        for b in range(a + 1, atoms.shape[0])
        if not bool((atoms[a].bool() & atoms[b].bool()).any())
    ]
    pairs = sorted(pairs, key=lambda ab: ab[0] + ab[1])[:n] if D >= 2 else []
    m = train.n_items
    supports = torch.zeros(len(pairs), D, m)
    probs = torch.zeros(len(pairs), D, dtype=torch.float64)
    for k, (a, b) in enumerate(pairs):
        supports[k, 0::2], supports[k, 1::2] = atoms[a], atoms[b]
        probs[k, 0::2], probs[k, 1::2] = 0.5 / len(range(0, D, 2)), 0.5 / len(range(1, D, 2))
    return supports, probs


# Prices are cap * sigmoid(logit) in float32 (relative error ~1e-7). An exact price sits at
# some bidder's indifference point; rounded up she stops buying. Set prices this much lower.
PRICE_SHADE = 1e-6


@torch.no_grad()
def _set_price_logits(logit: torch.Tensor, prices: torch.Tensor, cap: float, margin: float) -> None:
    """``logit`` such that ``cap * sigmoid(logit)`` is ``prices`` shaded down by :data:`PRICE_SHADE`."""
    frac = (prices.double() * (1 - PRICE_SHADE) / cap).clamp(margin, 1 - margin)
    logit.copy_(torch.log(frac / (1 - frac)).to(device=logit.device, dtype=logit.dtype))


def neighbour_lotteries(
    bundles: torch.Tensor, n_support: int, spread: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Element ``j``: ``bundles[j]`` with probability ``1 - (D - 1) * spread`` and ``D - 1`` neighbours
    (``bundles[j]`` with one item flipped, distinct items while there are enough) with ``spread`` each.

    Returns ``(supports [J, D, m], probs [J, D])``.
    """
    J, m = bundles.shape
    D = n_support
    flip = torch.rand(J, m, generator=generator).argsort(-1)  # a random order of the items per element
    supports = bundles[:, None, :].repeat(1, D, 1)
    for d in range(1, D):
        item = flip[:, (d - 1) % m]
        supports[torch.arange(J), d, item] = 1 - supports[torch.arange(J), d, item]
    probs = torch.full((J, D), spread, dtype=torch.float64)
    probs[:, 0] = 1 - (D - 1) * spread
    return supports, probs


def _seed_from_menu(menu: Menu, baseline: Menu, cap: float, majority: bool = False) -> torch.Tensor | None:
    """``[J]`` prices for ``menu``: the ``baseline`` (deterministic) menu's price on the first
    element of ``menu`` that is the same sure bundle (with ``majority``: whose most likely bundle
    it is, with probability at least 1/2), ``cap`` (unsold) elsewhere; ``None`` if no element matches."""
    where: dict[tuple[bool, ...], int] = {}
    if majority:
        main = menu.probs.argmax(-1)  # [J]
        key = menu.bundles[torch.arange(menu.n_elements), main]  # [J, m]
        share = (menu.probs * (menu.bundles == key[:, None, :]).all(-1)).sum(-1)  # [J]
        for j in torch.nonzero(share >= 0.5).flatten().tolist():
            where.setdefault(tuple(key[j].bool().tolist()), j)
    else:
        sure = (menu.bundles == menu.bundles[:, :1]).all(-1).all(-1)  # all supports one bundle
        for j in torch.nonzero(sure).flatten().tolist():
            where.setdefault(tuple(menu.bundles[j, 0].bool().tolist()), j)
    prices = torch.full((menu.n_elements,), cap, dtype=torch.float64)
    hit = False
    for e in range(baseline.n_elements):
        j = where.get(tuple(baseline.bundles[e, 0].bool().tolist()))
        if j is not None:
            prices[j] = min(float(baseline.prices[e]), cap)
            hit = True
    return prices if hit else None


def data_driven_start(
    model: MenuModel,
    train: Valuation,
    cfg: Any,
    cap: float,
    generator: torch.Generator,
    mixed: bool,
    progress: bool = False,
) -> tuple[dict, BaselineResult | None]:
    """Data-driven start (module doc): every element a sure bundle, prices by exact coordinate ascent.

    Every element is placed at its start bundle (:meth:`MenuModel.place`); when there are fewer
    distinct start bundles than elements (small ``m``) and the model can place lotteries, the
    spare elements become even lotteries of two disjoint frequent atoms (:func:`pair_lotteries`;
    ``coverage["pair_lotteries"]`` counts them) instead of repeated random bundles. Its prices
    are then optimised (:func:`bundleflow.baselines.optimise_prices`) on the lotteries the
    model actually produces, on the first ``cfg.init_sample`` training bidders, from each of these starts,
    keeping the one with the highest exact revenue:

    - *grand bundle*: element 0 (the grand bundle) at its best price, the others unsold;
    - *atom menu* (pure menus, XOR data): the atom-menu baseline's prices on the elements
      that are its bundles, the others unsold;
    - *a la carte priced out* (mixed menus): item prices at the cap with either start
      above, so a mixed menu can start as plain grand bundling or the atom menu.

    Coordinate ascent never lowers revenue, so the start earns at least grand bundling
    (and the atom menu, item pricing for mixed menus) on that sample whenever the flow
    reaches their bundles as sure lotteries (``coverage`` in the summary says so).

    ``cfg`` is the menu config (:class:`bundleflow.experiments.MenuConfig`). Sets ``model``'s
    supports and prices (and a la carte prices if ``mixed``); returns ``(coverage, atom-menu
    fit on the whole training split or None)``.
    """
    J, D = cfg.n_elements, cfg.n_support
    primary, distinct = init_candidates(train.to("cpu"), J, cfg.seed, cfg.init_atoms)  # [J, m]
    intended = primary[:, None, :]  # [J, 1 or D, m] the bundles the supports are placed at
    lottery_slots = J - distinct if cfg.init_spread == 0 and D > 1 and model.places_lotteries else 0
    lot_supports, lot_probs = pair_lotteries(train.to("cpu"), lottery_slots, D) if lottery_slots else (None, None)
    pairs = 0 if lot_supports is None else lot_supports.shape[0]
    if cfg.init_spread > 0 and D > 1:
        intended, probs = neighbour_lotteries(primary, D, cfg.init_spread, generator)
        model.place_lotteries(intended, probs, generator, cfg.corner)
    else:
        model.place(primary, generator, cfg.corner)
    if pairs:  # the padding after the distinct candidates becomes even lotteries of two atoms
        assert lot_supports is not None and lot_probs is not None
        index = torch.arange(distinct, distinct + pairs)
        model.place_lotteries(lot_supports, lot_probs, generator, cfg.corner, index=index)
    scattered = torch.zeros(J, dtype=torch.bool)
    if cfg.init != "data":  # the paper's random start, for all elements or the second half
        scattered = torch.arange(J) >= (0 if cfg.init == "random" else J // 2)
        model.scatter(scattered, generator)
    counted = ~scattered
    counted[distinct : distinct + pairs] = False
    item_prices = model.item_prices().detach().double() if mixed else None
    menu = model.menu(item_prices)
    coverage: dict = {
        "pair_lotteries": pairs,  # elements started as an even lottery of two atoms
        # element 0's supports round to the grand bundle (and, with init_spread, its neighbours) as placed
        "grand_bundle_reached": bool((menu.bundles[0] == intended[0]).all()) and not bool(scattered[0]),
        # share of the placed supports the flow rounds to the bundle intended (random ones excluded)
        # (the even lotteries of two atoms, placed after the distinct candidates, are not counted)
        "init_bundles_reached": float((menu.bundles == intended).all(-1)[counted].float().mean())
        if counted.any()
        else float("nan"),
    }
    sub = train.subset(torch.arange(min(len(train), cfg.init_sample), device=train.device))
    ev = expected_values(menu, sub)
    zero = torch.zeros_like(ev[:, 0], dtype=torch.float64)

    def grand_start(u0, pay0):
        start = torch.full((J,), cap, dtype=torch.float64, device=ev.device)
        start[0], _ = best_price_given_outside(ev[:, 0] - u0, pay0, cap)
        return start

    out_u, out_pay = sub.demand(item_prices) if item_prices is not None else (None, None)
    u0, pay0 = (zero, zero) if out_u is None or out_pay is None else (out_u.double(), out_pay.double())
    # (label, start prices [J], outside utility [B], outside payment [B], a la carte prices [m] or None)
    starts: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]] = [
        ("grand bundle", grand_start(u0, pay0), u0, pay0, None)
    ]
    seeded = None
    atom_menu_fit: BaselineResult | None = None
    if isinstance(sub, XORValuation):
        fit = atom_menu(sub, min(cfg.init_atoms, J))
        if len(sub) == len(train):  # the run's atom-menu baseline row reuses it
            atom_menu_fit = fit
        assert fit.menu is not None
        seeded = _seed_from_menu(menu, fit.menu, cap, majority=cfg.init_spread > 0)
    if seeded is not None and not mixed:
        starts.append(("atom menu", seeded.to(ev.device), u0, pay0, None))
    if mixed:  # a la carte priced out: the pure menu's starts, plus whatever a la carte still sells at the cap
        priced_out = torch.full((train.n_items,), cap, dtype=torch.float64, device=ev.device)
        uc, pc = (x.double() for x in sub.demand(priced_out))
        starts.append(("grand bundle, a la carte priced out", grand_start(uc, pc), uc, pc, priced_out))
        if seeded is not None:
            starts.append(("atom menu, a la carte priced out", seeded.to(ev.device), uc, pc, priced_out))
    rounds = cfg.init_price_rounds
    tol = TIE_TOL * max(1.0, cap)
    best: tuple[float, str, torch.Tensor, torch.Tensor | None] | None = None
    with progress_bar(
        f"initial prices ({len(starts)} starts x {rounds} rounds x {J} elements)",
        len(starts) * rounds * J,
        enabled=progress,
    ) as advance:
        for label, start, a, b, carte in starts:
            ascended = optimise_prices(ev, start, cap, rounds, a, b, advance) if rounds else start
            # the ascent's price model is optimistic at exact ties, so the start itself competes too
            for prices in (start, ascended):
                revenue = float(choose(ev, prices, tol, a, b)[1].mean())
                if best is None or revenue > best[0]:
                    best = (revenue, label, prices, carte)
    assert best is not None
    revenue, label, prices, carte = best
    coverage["start"] = label
    coverage["start_train_revenue"] = revenue
    _set_price_logits(model.price_logit, prices, cap, 1e-4)
    if carte is not None:
        _set_price_logits(model.item_logit, carte, cap, 1e-6)
    return coverage, atom_menu_fit
