import math

import numpy as np
import pytest
import torch

from bundleflow.baselines.bundling import atom_menu, grand_bundling
from bundleflow.baselines.items import item_pricing
from bundleflow.baselines.prices import best_price_given_outside
from bundleflow.mechanisms.menu import Menu, evaluate_menu
from bundleflow.oracles.lp import lp_optimal_mechanism
from bundleflow.oracles.welfare import welfare_bound
from bundleflow.valuations.bundles import all_bundles
from bundleflow.valuations.generators import (
    additive_uniform,
    bivalued_type_space,
    product_type_space,
    uniform_atoms,
    uniform_grid_type_space,
)
from bundleflow.valuations.xor import XORValuation


def test_best_price_exact_on_hand_case():
    # values 1, 2, 3: price 2 sells to 2 bidders (rev 4), price 3 -> 3, price 1 -> 3
    t = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    p, rev = best_price_given_outside(t, torch.zeros(3, dtype=torch.float64), cap=3.0)
    assert p == 2.0 and rev == 4.0


def test_best_price_plateau_lowest_positive_never_zero():
    z = torch.zeros(2, dtype=torch.float64)
    # thresholds 4 and 2: prices 4 and 2 both earn 4; the lower one is kept
    assert best_price_given_outside(torch.tensor([4.0, 2.0], dtype=torch.float64), z, cap=5.0) == (2.0, 4.0)
    # an option worth nothing to anyone (thresholds 0 and -1, the second pays 2 elsewhere):
    # prices 0 and 5 both earn 2; price 0 would give it away, so the cap is returned
    thr = torch.tensor([0.0, -1.0], dtype=torch.float64)
    pay = torch.tensor([0.0, 2.0], dtype=torch.float64)
    assert best_price_given_outside(thr, pay, cap=5.0) == (5.0, 2.0)


def test_one_item_uniform_grand_and_item_pricing_quarter():
    v = additive_uniform(40000, 1, seed=1)
    g = grand_bundling(v)
    ip = item_pricing(v)
    # optimum 1/4 at price 1/2; in-sample optimum is within ~3 standard errors
    se = 0.5 * 0.5 / math.sqrt(40000) * 2
    assert g.revenue == pytest.approx(0.25, abs=4 * se + 1e-3)
    assert float(g.menu.prices[0]) == pytest.approx(0.5, abs=0.03)
    assert ip.revenue == pytest.approx(0.25, abs=4 * se + 2e-3)
    held = additive_uniform(40000, 1, seed=2)
    assert g.evaluate(held) == pytest.approx(0.25, abs=0.006)


def test_one_item_lp_on_grid_quarter():
    v, p = uniform_grid_type_space(1, 100)
    r = lp_optimal_mechanism(v, p)
    # midpoint grid (k+0.5)/100: price 0.505 sells with prob 0.5 -> 0.2525, the grid optimum
    assert r.revenue == pytest.approx(0.2525, abs=1e-9)
    assert evaluate_menu(r.menu, v.subset(torch.arange(len(v)))).revenue == pytest.approx(0.2525, abs=1e-7)


def test_two_item_additive_lp_manelli_vincent():
    res = {}
    for G in (6, 12):
        v, p = uniform_grid_type_space(2, G)
        r = lp_optimal_mechanism(v, p)
        # the LP menu earns exactly the LP value under seller-favourable tie-breaking
        out = evaluate_menu(r.menu, v)
        assert float((out.payment.numpy() * p.numpy()).sum()) == pytest.approx(r.revenue, abs=1e-6)
        res[G] = r.revenue
    assert 0.5491 < res[12] < 0.5491 + 0.04
    # grid error is O(1/G): Richardson extrapolation removes it
    extrapolated = (12 * res[12] - 6 * res[6]) / 6
    assert extrapolated == pytest.approx(0.5491, abs=0.006)


def test_two_item_unit_demand_lp():
    res = {G: lp_optimal_mechanism(*uniform_grid_type_space(2, G, "unit_demand")).revenue for G in (6, 12)}
    extrapolated = (12 * res[12] - 6 * res[6]) / 6
    assert extrapolated == pytest.approx(0.3843, abs=0.006)


def test_lp_discrete_hand_cases():
    # one item, value 1 or 2 w.p. 1/2: optimum max(1, 2*0.5) = 1
    v, p = bivalued_type_space(1, 1.0, 2.0, 0.5)
    assert lp_optimal_mechanism(v, p).revenue == pytest.approx(1.0)
    # one item, value 1 (prob 0.6) or 3 (prob 0.4): max(1, 1.2) = 1.2
    v, p = product_type_space([[1.0, 3.0]], [[0.6, 0.4]])
    assert lp_optimal_mechanism(v, p).revenue == pytest.approx(1.2)
    # two additive items, values {1, 2} each w.p. 1/2. Deterministic candidates: bundle at 2 -> 2,
    # bundle at 3 -> 3*0.75 = 2.25, bundle at 4 -> 1; items at 2 each -> 2; the LP finds >= 2.25
    v, p = bivalued_type_space(2, 1.0, 2.0, 0.5)
    r = lp_optimal_mechanism(v, p)
    assert r.revenue >= 2.25 - 1e-9
    assert r.revenue <= float((v.grand_value() * p).sum()) + 1e-9


def test_lp_empirical_sample_beats_baselines():
    v = uniform_atoms(150, 3, 4, 0.5, seed=3)
    r = lp_optimal_mechanism(v)
    g = grand_bundling(v).revenue
    ip = item_pricing(v).revenue
    am = atom_menu(v, 8).revenue
    wb, _ = welfare_bound(v)
    assert max(g, ip, am) <= r.revenue + 1e-7 <= wb + 1e-6
    assert evaluate_menu(r.menu, v).revenue == pytest.approx(r.revenue, abs=1e-6)


def test_grand_bundling_uniform_atoms_m50():
    # v(all) = max of 20 U[0,1] atoms -> revenue max_p p (1 - p^20), at p = 21^(-1/20):
    # (20/21) * 21^(-1/20) = 0.81790 (the issue quotes it as 0.8177/0.818)
    p = np.linspace(0, 1, 200001)
    exact = float((p * (1 - p**20)).max())
    assert exact == pytest.approx(20 / 21 * 21 ** (-1 / 20), abs=1e-9)
    assert exact == pytest.approx(0.8177, abs=3e-4)
    v = uniform_atoms(20000, 50, 20, 0.46, seed=5)
    fit = grand_bundling(v)
    held = uniform_atoms(20000, 50, 20, 0.46, seed=6)
    se = math.sqrt(0.82 * 0.18 / 20000)
    assert fit.evaluate(held) == pytest.approx(exact, abs=4 * se)


def test_item_pricing_equals_menu_of_all_bundles():
    # item pricing evaluated through demand == menu of every bundle at additive prices
    v = uniform_atoms(300, 4, 3, 0.5, seed=2)
    ip = item_pricing(v)
    S = all_bundles(4)
    menu = Menu.deterministic(S, (S.double() @ ip.item_prices.double()))
    assert evaluate_menu(menu, v).revenue == pytest.approx(ip.revenue, abs=1e-9)


def test_atom_menu_at_least_grand_bundling():
    v = uniform_atoms(2000, 10, 5, 0.3, seed=0)
    g = grand_bundling(v).revenue
    am = atom_menu(v, 32)
    assert am.revenue >= g - 1e-9
    assert float(am.menu.prices.max()) <= v.max_value() + 1e-9
    assert float(am.menu.prices.min()) >= 0.0


def test_welfare_bound_hand():
    v = XORValuation(torch.tensor([[[1, 0]], [[0, 1]]], dtype=torch.bool), torch.tensor([[2.0], [4.0]]))
    wb, se = welfare_bound(v)
    assert wb == 3.0 and se == pytest.approx(1.0)
