"""Exact item pricing (issue 17, point 2): coordinate ascent with exact best responses."""

from __future__ import annotations

import itertools

import pytest
import torch

from bundleflow.baselines.items import item_price_ascent, item_pricing
from bundleflow.valuations.generators import additive_uniform
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation
from bundleflow.valuations.xor import XORValuation


def _xor(bidders: list[list[tuple[set, float]]], m: int) -> XORValuation:
    K = max(len(b) for b in bidders)
    atoms = torch.zeros(len(bidders), K, m, dtype=torch.bool)
    values = torch.zeros(len(bidders), K, dtype=torch.float64)
    for b, bid in enumerate(bidders):
        for k, (items, v) in enumerate(bid):
            atoms[b, k, list(items)] = True
            values[b, k] = v
    return XORValuation(atoms, values)


def brute_force(v, step: float) -> float:
    """Best exact revenue over every price vector on a grid of ``step`` in ``[0, max value]``."""
    grid = torch.arange(0, v.max_value() + step / 2, step, dtype=torch.float64)
    prices = torch.tensor(list(itertools.product(grid.tolist(), repeat=v.n_items)), dtype=torch.float64)
    return float(v.demand(prices)[1].mean(1).max())


def test_two_items_exact_optimum():
    # item 0 alone worth 1, item 1 alone worth 2, the pair worth 3: prices (1, 2) earn exactly 2.0
    v = _xor([[({0}, 1.0)], [({1}, 2.0)], [({0, 1}, 3.0)]], 2)
    res = item_pricing(v)
    assert res.revenue >= 2.0
    assert res.revenue == pytest.approx(2.0, abs=1e-12)
    torch.testing.assert_close(res.item_prices, torch.tensor([1.0, 2.0], dtype=torch.float64))


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_on_small_type_spaces(seed):
    g = torch.Generator().manual_seed(seed)
    m = 2 + seed % 2
    bidders = []
    for _ in range(int(torch.randint(2, 6, (1,), generator=g))):
        bid = []
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            items = {i for i in range(m) if torch.rand(1, generator=g) < 0.5} or {
                int(torch.randint(m, (1,), generator=g))
            }
            bid.append((items, float(torch.randint(1, 7, (1,), generator=g))))
        bidders.append(bid)
    v = _xor(bidders, m)
    # integer values: every best response is an integer combination, so the 0.5-grid holds the optimum
    assert item_pricing(v).revenue >= brute_force(v, 0.5) - 1e-9


def test_each_step_is_a_best_response():
    g = torch.Generator().manual_seed(3)
    atoms = torch.rand(40, 3, 4, generator=g) < 0.5
    values = torch.rand(40, 3, generator=g, dtype=torch.float64) * 4
    v = XORValuation(atoms, values)
    p = item_price_ascent(v.atoms, v.values.double(), torch.ones(4, dtype=torch.float64), v.max_value())
    rev = float(v.demand(p)[1].mean())
    # at a fixed point no single price on a fine grid does better
    for i in range(4):
        trial = p.repeat(401, 1)
        trial[:, i] = torch.linspace(0, v.max_value(), 401, dtype=torch.float64)
        assert float(v.demand(trial)[1].mean(1).max()) <= rev + 1e-9


def test_item_valuations():
    add = additive_uniform(4000, 3, seed=0)
    res = item_pricing(add)
    for i in range(3):  # separable: each price is the exact posted price of its item
        vals = add.item_values[:, i]
        best = max(float(x) * float((vals >= x).double().mean()) for x in vals)
        assert float(res.item_prices[i]) * float((vals >= res.item_prices[i]).double().mean()) == pytest.approx(best)
    ud = UnitDemandValuation(torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.5, 1.5]], dtype=torch.float64))
    assert item_pricing(ud).revenue >= brute_force(ud, 0.5) - 1e-9
    assert isinstance(add, AdditiveValuation)


@pytest.mark.parametrize("seed", range(6))
def test_milp_oracle_equals_brute_force(seed):
    from bundleflow.oracles.optimal_prices import optimal_item_prices

    g = torch.Generator().manual_seed(100 + seed)
    atoms = torch.rand(int(torch.randint(2, 7, (1,), generator=g)), 2, 2, generator=g) < 0.6
    values = torch.randint(1, 6, atoms.shape[:2], generator=g).double()
    v = XORValuation(atoms, values)
    prices, rev = optimal_item_prices(v.atoms, v.values)
    assert rev == pytest.approx(brute_force(v, 0.5), abs=1e-6)
    assert float(v.demand(torch.as_tensor(prices))[1].mean()) >= rev - 1e-6  # its prices earn it, exactly evaluated


def test_a_repeated_fit_is_memoised_bit_for_bit_and_keyed_by_the_data():
    from bundleflow.baselines import items
    from bundleflow.valuations.generators import uniform_atoms

    v = uniform_atoms(300, 8, 4, 0.4, seed=11)
    items._FITS.clear()
    steps: list[int] = []
    first = item_pricing(v, progress=steps.append)
    n_steps = sum(steps)
    assert n_steps > 0 and first.fit_seconds is not None and len(items._FITS) == 1
    first.item_prices.add_(1.0)  # a caller changing its copy does not change the memo
    again = item_pricing(uniform_atoms(300, 8, 4, 0.4, seed=11), progress=steps.append)
    assert sum(steps) == 2 * n_steps  # a progress bar still reaches its total
    fresh = items._FITS.clear() or item_pricing(v)
    assert torch.equal(again.item_prices, fresh.item_prices) and again.revenue == fresh.revenue
    # other bidders, or other arguments, are fitted afresh
    item_pricing(v.subset(torch.arange(299)))
    assert len(items._FITS) == 2
    item_pricing(v, restarts=1)
    assert len(items._FITS) == 3
