"""Grand bundling and the atom menu (the data's most frequent atom bundles), prices found exactly."""

from __future__ import annotations

import torch

from bundleflow.baselines.prices import best_price_given_outside, optimise_prices
from bundleflow.baselines.result import BaselineResult
from bundleflow.errors import InputError
from bundleflow.mechanisms.menu import Menu, evaluate_menu, expected_values
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.xor import XORValuation


def grand_bundling(valuation: Valuation) -> BaselineResult:
    """Sell the grand bundle at the exactly optimal single price on ``valuation``."""
    if len(valuation) == 0:
        raise InputError("grand_bundling: empty valuation batch")
    g = valuation.grand_value()
    cap = float(g.max())
    price, _ = best_price_given_outside(g, torch.zeros_like(g), cap)
    menu = Menu.deterministic(torch.ones(1, valuation.n_items), torch.tensor([price], dtype=torch.float64))
    return BaselineResult("grand_bundling", evaluate_menu(menu, valuation).revenue, menu=menu)


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
    grand_menu = grand_bundling(valuation).menu
    assert grand_menu is not None
    start[0] = grand_menu.prices[0]
    ev = expected_values(Menu.deterministic(bundles, start), valuation)
    prices = optimise_prices(ev, start.to(ev.device), cap, rounds)
    menu = Menu.deterministic(bundles, prices.cpu())
    return BaselineResult("atom_menu", evaluate_menu(menu, valuation).revenue, menu=menu)
