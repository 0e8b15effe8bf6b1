"""Revenue baselines optimised exactly (or by exact coordinate search) on a sample.

- :func:`grand_bundling`: one price for the grand bundle, the exact optimum on the sample.
- :func:`item_pricing`: one price per item; the bidder buys her utility-maximising
  bundle (for XOR valuations, one of her atoms). Prices are found by exact
  coordinate search (each step evaluates candidate prices exactly).
- :func:`atom_menu`: deterministic menu of the data's most frequent atom bundles
  (plus the grand bundle); prices by exact coordinate ascent.

Every baseline returns a :class:`BaselineResult` whose revenue is the exact
(hard) revenue on the sample it was fitted on; evaluate it on held-out data with
:meth:`BaselineResult.evaluate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bundleflow.errors import InputError
from bundleflow.menu import Menu, choose, evaluate_menu, expected_values, outside_option, TIE_TOL
from bundleflow.oracles import MAX_MILP_CHOICES, optimal_item_prices
from bundleflow.valuations import UnitDemandValuation, Valuation, XORValuation


@dataclass
class BaselineResult:
    """A fitted baseline: either a menu or a vector of item prices."""

    name: str
    revenue: float  # exact revenue on the fitting sample
    menu: Menu | None = None
    item_prices: torch.Tensor | None = None

    def payments(self, valuation: Valuation) -> torch.Tensor:
        """``[B]`` exact payment of every bidder of ``valuation`` (float64, CPU)."""
        if self.menu is not None:
            return evaluate_menu(self.menu, valuation).payment.double()
        _, pay = valuation.demand(self.item_prices.to(valuation.device))
        return pay.double().cpu()

    def evaluate(self, valuation: Valuation) -> float:
        """Exact revenue of this mechanism on ``valuation``."""
        return float(self.payments(valuation).mean())

    def evaluate_se(self, valuation: Valuation) -> tuple[float, float]:
        """``(revenue, standard error)`` on ``valuation``."""
        pay = self.payments(valuation)
        return float(pay.mean()), float(pay.std() / len(pay) ** 0.5) if len(pay) > 1 else 0.0


# ----------------------------------------------------------------------------------------
# exact one-dimensional price search


def best_price_given_outside(threshold: torch.Tensor, outside_pay: torch.Tensor, cap: float) -> tuple[float, float]:
    """Exact revenue-maximising price of one option, all else fixed.

    Bidder ``b`` takes the option iff ``price <= threshold[b]`` (its value minus the
    utility of its best other choice); otherwise she pays ``outside_pay[b]``.
    Revenue ``R(p) = p * #{threshold >= p} + sum_{threshold < p} outside_pay``
    is maximised over the breakpoints ``p = threshold[b]`` within ``[0, cap]`` and
    over ``p = cap`` (nobody else buys). Among revenue-maximising prices (equal within
    1e-12 relative) the lowest is returned: on a plateau the option is then taken by
    every bidder it can take at no loss, which frees the other prices to rise in later
    coordinate steps. Returns ``(price, total revenue)``.
    """
    B = threshold.shape[0]
    t, order = torch.sort(threshold, descending=True)
    other = outside_pay[order]
    total_other = float(other.sum())
    k = torch.arange(1, B + 1, dtype=torch.float64, device=t.device)
    # price t[k-1]: the first k bidders (threshold >= price) buy
    rev = t * k + (total_other - torch.cumsum(other, 0))
    valid = (t >= 0) & (t <= cap)
    rev = torch.where(valid, rev, torch.full_like(rev, -float("inf")))
    # price = cap: only bidders with threshold >= cap buy
    n_cap = int((threshold >= cap).sum())
    rev_cap = cap * n_cap + float(outside_pay[threshold < cap].sum())
    best = max(float(rev.max()), rev_cap) if B else rev_cap
    near = best - 1e-12 * max(1.0, abs(best))
    if B and float(rev.max()) >= near:
        i = int(torch.nonzero(rev >= near).flatten().max())  # thresholds descend: the last is the lowest price
        return float(t[i]), float(rev[i])
    return float(cap), rev_cap


def optimise_prices(ev: torch.Tensor, prices: torch.Tensor, cap: float, rounds: int = 5,
                    outside_util: torch.Tensor | None = None, outside_pay: torch.Tensor | None = None,
                    progress=None) -> torch.Tensor:
    """Coordinate ascent on the prices of a menu with fixed lotteries.

    Args:
        ev: ``[B, J]`` expected value of each element for each bidder.
        prices: ``[J]`` starting prices (float64).
        cap: largest allowed price (the largest value in the data).
        outside_util, outside_pay: ``[B]`` outside option (default: null, ``0, 0``),
            e.g. the a la carte purchase of a mixed-bundling menu.
        progress: optional ``advance(n)`` callback, called once per re-priced element.

    Each step sets one price to its exact best response (:func:`best_price_given_outside`)
    against every bidder's best option among the other elements (:func:`bundleflow.menu.choose`,
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
    from bundleflow.oracles import MAX_PRICE_MILP_CHOICES, optimal_menu_prices

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


def grand_bundling(valuation: Valuation) -> BaselineResult:
    """Sell the grand bundle at the exactly optimal single price on ``valuation``."""
    if len(valuation) == 0:
        raise InputError("grand_bundling: empty valuation batch")
    g = valuation.grand_value()
    cap = float(g.max())
    price, _ = best_price_given_outside(g, torch.zeros_like(g), cap)
    menu = Menu.deterministic(torch.ones(1, valuation.n_items), torch.tensor([price], dtype=torch.float64))
    return BaselineResult("grand_bundling", evaluate_menu(menu, valuation).revenue, menu=menu)


def _item_price_candidates(valuation: Valuation, n: int) -> torch.Tensor:
    g = valuation.grand_value()
    hi = float(g.max()) if len(g) else 1.0
    if hi <= 0:
        return torch.zeros(1, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-4, 0, n - 1, dtype=torch.float64) * hi])


def _atom_form(valuation: Valuation) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(atoms [B, K, m] bool, values [B, K] float64)`` for XOR and unit-demand valuations (one
    atom per item for unit demand), ``None`` for additive ones (item pricing is separable there)."""
    if isinstance(valuation, XORValuation):
        return valuation.atoms, valuation.values.to(torch.float64)
    if isinstance(valuation, UnitDemandValuation):
        B, m = valuation.item_values.shape
        eye = torch.eye(m, dtype=torch.bool, device=valuation.device)
        return eye[None].expand(B, m, m), valuation.item_values.to(torch.float64)
    return None


def _best_in_interval(thr: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor, cap: float) -> tuple[float, float]:
    """Maximise ``R(x) = sum_b [x + inside_b if x <= thr_b else outside_b]`` over ``x in [0, cap]``.

    ``R`` rises with slope ``#{thr >= x}`` between breakpoints and drops at each ``thr_b``, so
    the maximum is at ``x = 0`` or at a breakpoint. Returns ``(x, R(x))``.
    """
    t, order = torch.sort(thr, descending=True)
    ins, outs = inside[order], outside[order]
    k = torch.arange(1, len(t) + 1, dtype=torch.float64, device=t.device)
    # x = t[k-1]: the first k bidders (thr >= x) take the option (ties: a later index counts them all)
    rev = t * k + torch.cumsum(ins, 0) + (outs.sum() - torch.cumsum(outs, 0))
    rev = torch.where((t >= 0) & (t <= cap), rev, torch.full_like(rev, -math.inf))
    buy0 = thr >= 0
    r0 = float(torch.where(buy0, inside, outside).sum())
    if len(t) and float(rev.max()) > r0:
        i = int(rev.argmax())
        return float(t[i]), float(rev[i])
    return 0.0, r0


def _revenue_at(x: float, thr, inside, outside) -> float:
    return float(torch.where(thr >= x, x + inside, outside).sum())


def item_price_ascent(atoms: torch.Tensor, values: torch.Tensor, prices: torch.Tensor, cap: float,
                      max_rounds: int = 50, progress=None) -> torch.Tensor:
    """Exact coordinate ascent on item prices for bidders with atom (XOR) valuations.

    Bidder ``b`` buys her utility-maximising atom at the sum of its item prices, or nothing
    (ties: the highest payment). With the other prices fixed, let ``c_k`` be atom ``k``'s
    cost without item ``i``; she buys an atom with ``i`` at price ``x`` iff
    ``x <= thr_b = max_{k owns i}(v_k - c_k) - max(0, max_{k lacks i}(v_k - c_k))`` and then
    pays ``x + c_*`` (``c_*``: that atom's other items), else the payment ``q_b`` of her best
    option without ``i``. Revenue in ``x`` is piecewise linear with a drop at every ``thr_b``
    (:func:`_best_in_interval`), so each step moves price ``i`` to its exact best response:
    ``O(B K + B log B)`` per item. Sweeps repeat until no price moves.

    Args:
        atoms: ``[B, K, m]`` bool; values: ``[B, K]``; prices: ``[m]`` start; cap: price cap.
    Returns:
        ``[m]`` float64 prices.
    """
    a_all = atoms.to(torch.float64)
    prices = prices.to(device=values.device, dtype=torch.float64).clone().clamp(0.0, cap)
    cost = torch.einsum("bkm,m->bk", a_all, prices)
    m = prices.shape[0]
    for _ in range(max_rounds):
        moved = False
        for i in range(m):
            has_i = atoms[:, :, i]
            a_i = a_all[:, :, i]
            c_wo = cost - a_i * prices[i]
            s = values - c_wo
            neg = torch.full_like(s, -math.inf)
            best_wo = torch.where(has_i, neg, s).amax(1).clamp_min(0.0)  # null option: utility 0
            tol_wo = 1e-9 * (1.0 + best_wo.abs())
            pay_wo = torch.where(~has_i & (s >= (best_wo - tol_wo)[:, None]), c_wo, torch.zeros_like(s)).amax(1)
            best_w = torch.where(has_i, s, neg).amax(1)
            tol_w = 1e-9 * (1.0 + best_w.abs().nan_to_num(0.0, 0.0, 0.0))
            c_star = torch.where(has_i & (s >= (best_w - tol_w)[:, None]), c_wo, neg).amax(1)
            thr = torch.where(torch.isfinite(best_w), best_w - best_wo, torch.full_like(best_w, -math.inf))
            c_star = torch.where(torch.isfinite(c_star), c_star, torch.zeros_like(c_star))
            x, r = _best_in_interval(thr, c_star, pay_wo, cap)
            now = _revenue_at(float(prices[i]), thr, c_star, pay_wo)
            if r > now + 1e-12 * max(1.0, abs(now)):
                prices[i] = x
                cost = c_wo + a_i * x
                moved = True
            if progress is not None:
                progress(1)
        if not moved:
            break
    return prices


def _value_share_prices(valuation: Valuation, atoms: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Start for item prices: each atom's value split evenly over its items, averaged per item,
    scaled by the best of 37 factors in ``[0.2, 2]`` (each evaluated exactly). ``[m]``."""
    a = atoms.to(torch.float64)
    share = (values / a.sum(-1).clamp_min(1.0))[..., None] * a  # [B, K, m]
    base = share.sum((0, 1)) / a.sum((0, 1)).clamp_min(1.0)
    scales = torch.linspace(0.2, 2.0, 37, dtype=torch.float64, device=base.device)
    _, pay = valuation.demand(scales[:, None] * base[None])
    return float(scales[int(pay.mean(1).argmax())]) * base


def item_pricing(valuation: Valuation, restarts: int = 4, seed: int = 0, grid: int = 48, max_rounds: int = 50,
                 progress=None) -> BaselineResult:
    """Item prices by exact coordinate ascent (:func:`item_price_ascent`) on ``valuation``.

    Starts: the best uniform price (``grid`` log-spaced candidates), the value-share prices
    (:func:`_value_share_prices`), ``restarts`` random perturbations of them (each price
    times ``U[0.7, 1.3]``), with at most 6 items 16 broad random starts (each price uniform
    up to its item's largest atom value), and with at most ``MAX_MILP_CHOICES`` bidder-atom
    pairs the exact optimum of the pricing MILP (:func:`bundleflow.oracles.optimal_item_prices`).
    Every start is ascended; the prices with the highest exact revenue
    (:meth:`Valuation.demand`) are kept. Additive bidders: each item alone at its
    exact optimal posted price (revenue is separable). ``progress(n)`` is called once per
    item step of the ascents.
    """
    if len(valuation) == 0:
        raise InputError("item_pricing: empty valuation batch")
    m = valuation.n_items
    dev = valuation.device
    cap = valuation.max_value()
    form = _atom_form(valuation)
    if form is None:  # additive: one exact posted price per item
        vals = valuation.item_values.to(torch.float64)
        zero = torch.zeros(len(valuation), dtype=torch.float64, device=dev)
        starts = [torch.tensor([best_price_given_outside(vals[:, i], zero, cap)[0] for i in range(m)], dtype=torch.float64)]
    else:
        cand = _item_price_candidates(valuation, grid).to(dev)
        _, pay = valuation.demand(cand[:, None].expand(-1, m))
        uniform = torch.full((m,), float(cand[int(pay.mean(1).argmax())]), dtype=torch.float64, device=dev)
        share = _value_share_prices(valuation, *form)
        g = torch.Generator().manual_seed(seed)
        starts = [uniform, share] + [share * (0.7 + 0.6 * torch.rand(m, generator=g, dtype=torch.float64)).to(dev)
                                     for _ in range(restarts)]
        # few items: coordinate ascent's local optima are few but sharp; add broad random starts
        # (each price U[0, its item's largest atom value]), cheap at this size
        n_broad = 16 if m <= 6 else 0
        top = torch.where(form[0], form[1][..., None], torch.zeros((), dtype=torch.float64, device=dev)).amax((0, 1))
        starts += [top * torch.rand(m, generator=g, dtype=torch.float64).to(dev) for _ in range(n_broad)]
        if form[0].shape[0] * form[0].shape[1] <= MAX_MILP_CHOICES:  # small sample: the exact optimum
            starts.append(torch.as_tensor(optimal_item_prices(*form)[0], dtype=torch.float64).to(dev))
        # every start, the MILP's too, ends at an exact best response in each price
        starts = [item_price_ascent(form[0], form[1], st, cap, max_rounds, progress) for st in starts]
    best_rev, best_p = -math.inf, None
    for p in starts:
        rev = float(valuation.demand(p.to(dev))[1].mean())
        if rev > best_rev:
            best_rev, best_p = rev, p
    return BaselineResult("item_pricing", best_rev, item_prices=best_p.cpu())


def frequent_atoms(valuation: XORValuation, n: int) -> torch.Tensor:
    """The ``n`` most frequent distinct non-empty atom bundles of ``valuation``, ``[<=n, m]`` float32."""
    if not isinstance(valuation, XORValuation):
        raise InputError("atom menus need XOR valuations (atoms)")
    flat = valuation.atoms.reshape(-1, valuation.n_items)
    flat = flat[flat.any(-1)]
    if flat.shape[0] == 0:
        return torch.zeros(0, valuation.n_items)
    uniq, counts = torch.unique(flat, dim=0, return_counts=True)
    order = torch.argsort(counts, descending=True, stable=True)
    return uniq[order[:n]].to(torch.float32)


def atom_menu(valuation: XORValuation, n_elements: int = 64, rounds: int = 5) -> BaselineResult:
    """Deterministic menu: the grand bundle plus the ``n_elements - 1`` most frequent atoms.

    Starts from optimal grand bundling (every other element priced at the cap, so
    unsold) and improves prices by exact coordinate ascent: its sample revenue is
    at least grand bundling's.
    """
    if n_elements < 1:
        raise InputError(f"atom_menu: n_elements must be >= 1, got {n_elements}")
    m = valuation.n_items
    grand = torch.ones(1, m)
    atoms = frequent_atoms(valuation, n_elements)
    atoms = atoms[(atoms < 0.5).any(-1)][: n_elements - 1]  # the grand bundle is added once
    bundles = torch.cat([grand, atoms], 0)
    cap = valuation.max_value()
    start = torch.full((bundles.shape[0],), cap, dtype=torch.float64)
    start[0] = grand_bundling(valuation).menu.prices[0]
    ev = expected_values(Menu.deterministic(bundles, start), valuation)
    prices = optimise_prices(ev, start.to(ev.device), cap, rounds)
    menu = Menu.deterministic(bundles, prices.cpu())
    return BaselineResult("atom_menu", evaluate_menu(menu, valuation).revenue, menu=menu)
