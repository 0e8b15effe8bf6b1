"""Training menus of two-part tariffs (issue 35, step 2): the relaxation tends to the exact
choice, fees and prices cannot diverge, the kept menu never earns less than item pricing on
the validation bidders."""

from __future__ import annotations

import math

import pytest
import torch

from bundleflow.baselines.items import item_pricing
from bundleflow.errors import InputError
from bundleflow.mechanisms.tariffs import TariffMenu, evaluate_tariffs
from bundleflow.training.tariffs import (
    TariffTraining,
    _Params,
    best_fee,
    fit_tariffs,
    polish_fees,
    soft_revenue,
)
from bundleflow.valuations.generators import additive_uniform, uniform_atoms
from bundleflow.valuations.xor import XORValuation


def test_relaxed_revenue_tends_to_the_exact_one():
    v = uniform_atoms(400, 6, 4, 0.4, seed=5)
    menu = TariffMenu([0.0, 0.3, 0.6], [[0.5] * 6, [0.3] * 6, [0.1] * 6])
    exact = evaluate_tariffs(menu, v).revenue
    params = _Params(menu.fees, menu.prices, fee_cap=2.0, cap=1.0)
    for tau, tol in ((1e-3, 0.02), (1e-5, 2e-4)):
        with torch.no_grad():
            soft = float(soft_revenue(params, v, tau, unit=1.0))
        assert soft == pytest.approx(exact, abs=tol)
    # a large temperature spreads the choice: the relaxation differs
    with torch.no_grad():
        assert abs(float(soft_revenue(params, v, 1.0, unit=1.0)) - exact) > 0.02


def test_fees_and_prices_stay_bounded_at_an_absurd_learning_rate():
    train, val = uniform_atoms(2000, 8, 4, 0.4, seed=1), uniform_atoms(500, 8, 4, 0.4, seed=2)
    fit = fit_tariffs(train, val, TariffTraining(n_tariffs=8, steps=150, lr=50.0, log_every=50))
    fee_cap, cap = float(train.grand_value().max()), train.max_value()
    for row in fit.history:
        assert row["val_revenue"] >= 0
    assert torch.isfinite(fit.menu.fees).all() and torch.isfinite(fit.menu.prices).all()
    assert float(fit.menu.fees.max()) <= fee_cap and float(fit.menu.prices.max()) <= cap
    # the kept menu is at least item pricing on the validation bidders (item pricing is a candidate)
    ip = evaluate_tariffs(TariffMenu.item_pricing(item_pricing(train).item_prices), val).revenue
    assert fit.item_pricing_val_revenue == pytest.approx(ip, abs=1e-12)
    assert fit.val_revenue >= ip
    assert evaluate_tariffs(fit.menu, val).revenue == pytest.approx(fit.val_revenue, abs=1e-12)


def test_bad_settings_and_inputs_are_refused():
    v = uniform_atoms(50, 4, 3, 0.5, seed=0)
    for bad in ({"n_tariffs": 0}, {"steps": True}, {"lr": float("nan")}, {"tau_end": -1.0}):
        with pytest.raises(InputError, match="tariff training"):
            fit_tariffs(v, v, TariffTraining(**bad))
    with pytest.raises(InputError, match="XOR bidders"):
        fit_tariffs(additive_uniform(50, 4), additive_uniform(50, 4))


def test_best_fee_matches_a_brute_force_over_every_threshold():
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        B = 40
        gain = torch.randn(B, generator=g, dtype=torch.float64)
        gain[torch.rand(B, generator=g) < 0.2] = -math.inf  # buys nothing under the tariff
        cost = torch.rand(B, generator=g, dtype=torch.float64)
        outside = torch.rand(B, generator=g, dtype=torch.float64) * 0.5
        fee_cap = 1.5

        def revenue(f, gain=gain, cost=cost, outside=outside):
            return float(torch.where(gain >= f, cost + f, outside).sum())

        candidates = [0.0, fee_cap, *[float(x) for x in gain[torch.isfinite(gain)].clamp(0, fee_cap)]]
        best = max(revenue(f) for f in candidates)
        f = best_fee(gain, cost, outside, fee_cap)
        assert 0.0 <= f <= fee_cap
        assert revenue(f) == pytest.approx(best, abs=1e-9)


def test_fee_polish_never_lowers_training_revenue_and_finds_the_hand_optimum():
    # bidders worth the grand bundle of 2 items at 1, 2, 3, 4; one tariff, items free, fee 0.5:
    # the best fee is 2 (three buyers, 6) or 3 (two buyers, 6) or 4 (4): polish reaches 6
    v = XORValuation(torch.ones(4, 1, 2, dtype=torch.bool), torch.tensor([[1.0], [2.0], [3.0], [4.0]]))
    menu = TariffMenu([0.5], [[0.0, 0.0]])
    polished = polish_fees(menu, v, fee_cap=4.0, rounds=2)
    assert evaluate_tariffs(polished, v).revenue == pytest.approx(6.0 / 4)
    train = uniform_atoms(1000, 6, 4, 0.4, seed=8)
    menu = TariffMenu([0.0, 0.4, 0.9], [[0.5] * 6, [0.3] * 6, [0.1] * 6])
    before = evaluate_tariffs(menu, train).revenue
    after = evaluate_tariffs(polish_fees(menu, train, float(train.grand_value().max())), train).revenue
    assert after >= before


def test_scaled_tariffs_charge_multiples_of_the_item_pricing_prices():
    train, val = uniform_atoms(2000, 8, 4, 0.4, seed=1), uniform_atoms(500, 8, 4, 0.4, seed=2)
    fit = fit_tariffs(train, val, TariffTraining(n_tariffs=3, steps=100, log_every=50, prices="scaled"))
    ip = item_pricing(train).item_prices.double()
    ratio = fit.menu.prices / ip[None]  # [K, m]: one scale per tariff
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-9, atol=1e-9)
    assert float(ratio.max()) <= 2.0
    assert fit.val_revenue >= fit.item_pricing_val_revenue
    with pytest.raises(InputError, match="'free' or 'scaled'"):
        fit_tariffs(train, val, TariffTraining(prices="other"))
