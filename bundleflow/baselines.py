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

from dataclasses import dataclass

import torch

from bundleflow.errors import InputError
from bundleflow.menu import Menu, choose, evaluate_menu, expected_values, TIE_TOL
from bundleflow.valuations import Valuation, XORValuation


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
    over ``p = cap`` (nobody else buys). Returns ``(price, total revenue)``.
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
    if B and float(rev.max()) > rev_cap:
        i = int(rev.argmax())
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

    Each step sets one price to its exact best response (:func:`best_price_given_outside`),
    so the sample revenue never decreases.
    """
    B, J = ev.shape
    prices = prices.clone().to(torch.float64).clamp(0.0, cap)
    tol = TIE_TOL * max(1.0, cap)
    for _ in range(rounds):
        before = prices.clone()
        for j in range(J):
            others = torch.cat([ev[:, :j], ev[:, j + 1 :]], 1)
            other_prices = torch.cat([prices[:j], prices[j + 1 :]])
            _, pay, util, _ = choose(others, other_prices, tol, outside_util, outside_pay)
            p, _ = best_price_given_outside(ev[:, j] - util, pay, cap)
            prices[j] = p
            if progress is not None:
                progress(1)
        if torch.allclose(before, prices, rtol=0, atol=tol):
            break
    return prices


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


def item_pricing(valuation: Valuation, rounds: int = 3, grid: int = 48, progress=None) -> BaselineResult:
    """Item prices found by exact coordinate search on ``valuation``.

    1. Uniform price ``c`` on every item, the best of ``grid`` log-spaced candidates.
    2. ``rounds`` sweeps over the items; each tries ``grid`` multiplicative moves of
       that item's price (and 0) and keeps the best. Every candidate's revenue is the
       exact demand-based revenue, so the result's revenue never decreases.
    """
    if len(valuation) == 0:
        raise InputError("item_pricing: empty valuation batch")
    m = valuation.n_items
    dev = valuation.device
    cand = _item_price_candidates(valuation, grid).to(dev)
    _, pay = valuation.demand(cand[:, None].expand(-1, m))
    rev = pay.mean(1)
    prices = torch.full((m,), float(cand[int(rev.argmax())]), dtype=torch.float64, device=dev)
    best = float(rev.max())
    factors = torch.cat(
        [torch.zeros(1, dtype=torch.float64), torch.logspace(-1, 1, grid - 1, dtype=torch.float64)]
    ).to(dev)
    for _ in range(rounds):
        improved = False
        for i in range(m):
            if progress is not None:
                progress(1)
            trial = prices[None].repeat(len(factors), 1)
            base = prices[i] if prices[i] > 0 else cand[1]
            trial[:, i] = factors * base
            _, pay = valuation.demand(trial)
            rev = pay.mean(1)
            k = int(rev.argmax())
            if float(rev[k]) > best + 1e-12:
                best, prices, improved = float(rev[k]), trial[k].clone(), True
        if not improved:
            break
    return BaselineResult("item_pricing", best, item_prices=prices.cpu())


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
