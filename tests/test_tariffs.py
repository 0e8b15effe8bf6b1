"""Menus of two-part tariffs (issue 35, step 1): exact evaluation against brute force over all
bundles, monotone schedules, item pricing as the one-tariff case, a hand-computed choice."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bundleflow.baselines.items import item_pricing
from bundleflow.errors import InputError
from bundleflow.mechanisms.tariffs import TariffMenu, brute_force_tariffs, evaluate_tariffs
from bundleflow.valuations.generators import additive_uniform, uniform_atoms, unit_demand_uniform
from bundleflow.valuations.xor import XORValuation


def test_hand_computed_choice_between_two_tariffs():
    # one bidder: {0} worth 5, {0, 1} worth 8
    v = XORValuation(torch.tensor([[[1, 0], [1, 1]]], dtype=torch.bool), torch.tensor([[5.0, 8.0]]))
    menu = TariffMenu([0.0, 3.0], [[4.0, 4.0], [1.0, 1.0]])
    # tariff 0: {0} leaves 1, {0, 1} leaves 0; tariff 1: {0} leaves 5 - 3 - 1 = 1, {0, 1} 8 - 3 - 2 = 3
    out = evaluate_tariffs(menu, v)
    assert out.tariff.tolist() == [1] and out.payment.tolist() == [5.0] and out.utility.tolist() == [3.0]
    # the schedule: P({0}) = min(4, 4) = 4, P({1}) = 4, P({0, 1}) = min(8, 5) = 5, P({}) = 0
    S = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    assert menu.schedule(S).tolist() == [0.0, 4.0, 4.0, 5.0]
    # a fee above what any bundle leaves: nothing
    assert evaluate_tariffs(TariffMenu([9.0], [[0.0, 0.0]]), v).tariff.tolist() == [-1]
    # free items behind a fee: taken when the value covers it (8 - 6 = 2 > 0)
    out = evaluate_tariffs(TariffMenu([6.0], [[0.0, 0.0]]), v)
    assert out.payment.tolist() == [6.0] and out.utility.tolist() == [2.0]


@pytest.mark.parametrize("kind", ["xor", "additive", "unit_demand"])
def test_one_tariff_without_fee_is_item_pricing_payment_for_payment(kind):
    v = {
        "xor": lambda: uniform_atoms(3000, 8, 4, 0.4, seed=3),
        "additive": lambda: additive_uniform(3000, 3, seed=3),
        "unit_demand": lambda: unit_demand_uniform(3000, 3, seed=3),
    }[kind]()
    fit = item_pricing(v)
    out = evaluate_tariffs(TariffMenu.item_pricing(fit.item_prices), v)
    assert torch.equal(out.payment, fit.payments(v))
    assert out.revenue == pytest.approx(fit.revenue, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), K=st.integers(1, 4), m=st.integers(1, 5))
def test_tariffs_equal_brute_force_over_every_bundle_and_the_schedule_is_monotone(seed, K, m):
    g = torch.Generator().manual_seed(seed)
    v = uniform_atoms(64, m, 3, 0.5, seed=seed)
    fees = torch.rand(K, generator=g, dtype=torch.float64) * 0.6 * (torch.rand(K, generator=g) < 0.7)
    prices = torch.rand(K, m, generator=g, dtype=torch.float64) * 0.5
    menu = TariffMenu(fees, prices)
    out = evaluate_tariffs(menu, v)
    utility, payment = brute_force_tariffs(menu, lambda S: v.value(S.bool()))  # values [B, 2^m]
    torch.testing.assert_close(out.utility, utility, rtol=0, atol=1e-9)
    torch.testing.assert_close(out.payment, payment, rtol=0, atol=1e-9)
    # monotone: adding an item never lowers the price
    S = torch.tensor([[(b >> i) & 1 for i in range(m)] for b in range(2**m)])
    P = menu.schedule(S)
    for b in range(2**m):
        for i in range(m):
            if not (b >> i) & 1:
                assert P[b | (1 << i)] >= P[b] - 1e-12


def test_bad_tariffs_are_refused_and_round_trip():
    for fees, prices in (([-1.0], [[1.0]]), ([0.0], [[-0.5]]), ([float("nan")], [[1.0]]), ([0.0, 1.0], [[1.0]])):
        with pytest.raises(InputError, match="tariff"):
            TariffMenu(fees, prices)
    menu = TariffMenu([0.0, 2.0], [[1.0, 2.0], [0.5, 0.5]])
    back = TariffMenu.from_dict(menu.to_dict())
    assert torch.equal(back.fees, menu.fees) and torch.equal(back.prices, menu.prices)
    assert "tariff 1: fee 2" in menu.describe()
    with pytest.raises(InputError, match="m=2 items"):
        evaluate_tariffs(menu, additive_uniform(5, 3))
    with pytest.raises(InputError, match="'fees' and 'prices'"):
        TariffMenu.from_dict({"fees": [0.0]})


def test_a_free_tariff_under_which_she_buys_nothing_is_the_null_option():
    v = XORValuation(torch.tensor([[[1, 0]]], dtype=torch.bool), torch.tensor([[1.0]]))
    out = evaluate_tariffs(TariffMenu([0.0], [[2.0, 2.0]]), v)  # item 0 costs more than it is worth
    assert out.tariff.tolist() == [-1] and out.payment.tolist() == [0.0] and out.utility.tolist() == [0.0]
