"""Exact one-dimensional price search and exact coordinate ascent on a menu's prices."""

from __future__ import annotations

import math

import torch

from bundleflow.mechanisms.menu import TIE_TOL, Menu, choose, expected_values, outside_option
from bundleflow.valuations.base import Valuation

# ----------------------------------------------------------------------------------------
# exact one-dimensional price search


def best_price_given_outside(threshold: torch.Tensor, outside_pay: torch.Tensor, cap: float) -> tuple[float, float]:
    """Exact revenue-maximising price of one option, all else fixed.

    Bidder ``b`` takes the option iff ``price <= threshold[b]`` (its value minus the
    utility of its best other choice); otherwise she pays ``outside_pay[b]``.
    Revenue ``R(p) = p * #{threshold >= p} + sum_{threshold < p} outside_pay``
    is maximised over the breakpoints ``p = threshold[b]`` within ``[0, cap]`` and
    over ``p = cap`` (nobody else buys). Among revenue-maximising prices (equal within
    1e-12 relative) the lowest positive one is returned: on a plateau the option is then
    taken by every bidder it can take at no loss, which frees the other prices to rise in
    later coordinate steps. Price 0 earns nothing from the option (``R(cap) >= R(0)``
    always), and would give the option away to bidders outside the sample and tie it with
    buying nothing; where only 0 and the cap maximise revenue the cap is returned.
    Returns ``(price, total revenue)``.
    """
    price, revenue = best_prices_given_outside(threshold[None], outside_pay, cap)
    return float(price[0]), float(revenue[0])


def best_prices_given_outside(
    threshold: torch.Tensor, outside_pay: torch.Tensor, cap: float, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`best_price_given_outside` for ``C`` options at once, each alone against the same outside.

    Args:
        threshold: ``[C, B]`` bidder ``b`` takes option ``c`` iff its price is ``<= threshold[c, b]``.
        outside_pay: ``[B]`` what bidder ``b`` pays otherwise.

    Returns ``(price [C], total revenue [C])`` float64 (``C x B`` work in chunks of ``chunk`` options).
    """
    C, B = threshold.shape
    pay = outside_pay.to(device=threshold.device, dtype=torch.float64)
    prices, revenues = [], []
    for c0 in range(0, C, chunk):
        thr = threshold[c0 : c0 + chunk].to(torch.float64)
        below = thr < cap
        # price = cap: only bidders with threshold >= cap buy
        rev_cap = cap * (~below).sum(1) + torch.where(below, pay[None], torch.zeros_like(thr)).sum(1)
        if B == 0:
            prices.append(torch.full_like(rev_cap, cap))
            revenues.append(rev_cap)
            continue
        t, order = torch.sort(thr, dim=1, descending=True)
        other = pay[order]  # [c, B]
        k = torch.arange(1, B + 1, dtype=torch.float64, device=t.device)
        # price t[:, k-1]: the first k bidders (threshold >= price) buy
        rev = t * k + (other.sum(1, keepdim=True) - torch.cumsum(other, 1))
        rev = torch.where((t >= 0) & (t <= cap), rev, torch.full_like(rev, -math.inf))
        best = torch.maximum(rev.amax(1), rev_cap)
        near = best - 1e-12 * best.abs().clamp_min(1.0)
        hit = (rev >= near[:, None]) & (t > 0)
        # thresholds descend: the last hit is the lowest positive revenue-maximising price
        last = (B - 1 - hit.flip(1).to(torch.int8).argmax(1))[:, None]
        use = hit.any(1)
        prices.append(torch.where(use, t.gather(1, last)[:, 0], torch.full_like(rev_cap, cap)))
        revenues.append(torch.where(use, rev.gather(1, last)[:, 0], rev_cap))
    if not prices:
        empty = torch.zeros(0, dtype=torch.float64, device=threshold.device)
        return empty, empty.clone()
    return torch.cat(prices), torch.cat(revenues)


def optimise_prices(
    ev: torch.Tensor,
    prices: torch.Tensor,
    cap: float,
    rounds: int = 5,
    outside_util: torch.Tensor | None = None,
    outside_pay: torch.Tensor | None = None,
    progress=None,
) -> torch.Tensor:
    """Coordinate ascent on the prices of a menu with fixed lotteries.

    Args:
        ev: ``[B, J]`` expected value of each element for each bidder.
        prices: ``[J]`` starting prices (float64).
        cap: largest allowed price (the largest value in the data).
        outside_util, outside_pay: ``[B]`` outside option (default: null, ``0, 0``),
            e.g. the a la carte purchase of a mixed-bundling menu.
        progress: optional ``advance(n)`` callback, called once per re-priced element.

    Each step sets one price to its exact best response (:func:`best_price_given_outside`)
    against every bidder's best option among the other elements (:func:`bundleflow.mechanisms.choose`,
    seller-favourable ties), so the sample revenue never decreases.

    Cost: re-pricing element ``j`` needs every bidder's choice without ``j``. It equals her
    choice from the whole menu unless ``j`` is among her optimal options (utility within
    the tie tolerance of her best), so only those bidders are re-evaluated, before and
    after the new price; each bidder's whole-menu choice (payment, utility, best utility)
    is kept up to date. A round costs ``O(J B log B)`` (the sort of the price search) plus
    ``O(J)`` per bidder whose optimal set ``j`` enters or leaves, instead of ``O(J^2 B)``.
    Prices and revenue are those of re-evaluating the others from scratch for every ``j``.
    """
    B, J = ev.shape
    dev = ev.device
    ev = ev.to(torch.float64)
    prices = prices.clone().to(device=dev, dtype=torch.float64).clamp(0.0, cap)
    tol = TIE_TOL * max(1.0, cap)
    zero = torch.zeros(B, dtype=torch.float64, device=dev)
    u0 = zero if outside_util is None else outside_util.to(device=dev, dtype=torch.float64)
    pay0 = zero if outside_pay is None else outside_pay.to(device=dev, dtype=torch.float64)

    def choice_of(rows: torch.Tensor, without: int | None = None):
        """``(payment, utility, best utility)`` of ``rows``' choice from the menu (less element ``without``)."""
        e = ev[rows]
        if without is not None:
            e[:, without] = -math.inf  # never optimal: the same choice as with the column removed
        _, pay, util, _ = choose(e, prices, tol, u0[rows], pay0[rows])
        best = torch.maximum((e - prices[None]).amax(1), u0[rows]) if J else u0[rows]
        return pay, util, best

    parts = [choice_of(torch.arange(b, min(B, b + 1024), device=dev)) for b in range(0, B, 1024)]
    pay, util, best = (torch.cat(x) for x in zip(*parts)) if parts else (zero, zero, zero)
    for _ in range(rounds):
        before = prices.clone()
        for j in range(J):
            # every bidder's choice without j: the kept choice unless j is one of her optimal options
            hit = torch.nonzero(ev[:, j] - prices[j] >= best - tol).flatten()
            pay_x, util_x, best_x = pay.clone(), util.clone(), best.clone()
            if len(hit):
                pay_x[hit], util_x[hit], best_x[hit] = choice_of(hit, without=j)
            p, _ = best_price_given_outside(ev[:, j] - util_x, pay_x, cap)
            prices[j] = p
            # the whole menu's choice at the new price: j enters the optimal set of these bidders
            pay, util, best = pay_x, util_x, best_x
            hit = torch.nonzero(ev[:, j] - p >= best - tol).flatten()
            if len(hit):
                pay[hit], util[hit], best[hit] = choice_of(hit)
            if progress is not None:
                progress(1)
        if torch.allclose(before, prices, rtol=0, atol=tol):
            break
    return prices


def polish_prices(menu: Menu, valuation: Valuation, cap: float, rounds: int = 3, progress=None) -> Menu:
    """``menu`` with the best element prices found for its lotteries on ``valuation``.

    Exact coordinate ascent (:func:`optimise_prices`) from the menu's prices; when the
    bidders' distinct rows of expected values are few (at most ``MAX_PRICE_MILP_CHOICES``
    binaries) also the exact price MILP (:func:`bundleflow.oracles.optimal_menu_prices`),
    followed by the same ascent (which snaps its prices to exact breakpoints). The prices
    with the highest exact revenue are kept. Lotteries and a la carte item prices are
    unchanged. ``cap``: largest price.
    """
    from bundleflow.oracles.optimal_prices import MAX_PRICE_MILP_CHOICES, optimal_menu_prices

    ev = expected_values(menu, valuation).to(torch.float64)
    u0, pay0 = outside_option(menu, valuation)
    zero = torch.zeros(ev.shape[0], dtype=torch.float64, device=ev.device)
    u0, pay0 = (zero, zero) if u0 is None else (u0.double(), pay0.double())
    tol = TIE_TOL * max(1.0, cap)
    candidates = [optimise_prices(ev, menu.prices.to(ev.device), cap, rounds, u0, pay0, progress)]
    rows, inverse = torch.unique(torch.cat([ev, u0[:, None], pay0[:, None]], 1), dim=0, return_inverse=True)
    if rows.shape[0] * (menu.n_elements + 1) <= MAX_PRICE_MILP_CHOICES:
        weights = torch.bincount(inverse, minlength=rows.shape[0]).double() / len(inverse)
        exact, _ = optimal_menu_prices(rows[:, :-2], cap, rows[:, -2], rows[:, -1], weights)
        candidates.append(optimise_prices(ev, torch.as_tensor(exact).to(ev.device), cap, rounds, u0, pay0))
    revenue = [float(choose(ev, p, tol, u0, pay0)[1].mean()) for p in candidates]
    best = candidates[max(range(len(candidates)), key=revenue.__getitem__)]
    return Menu(menu.bundles, menu.probs, best.cpu(), menu.item_prices)


# ----------------------------------------------------------------------------------------
# baselines
