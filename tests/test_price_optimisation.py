"""Exact coordinate ascent on menu prices (issue 17, point 1): the incremental implementation
gives the prices and revenue of the quadratic reference that re-evaluates every other
element from scratch for each re-priced element."""

from __future__ import annotations

import pytest
import torch

from bundleflow.baselines.prices import best_price_given_outside, optimise_prices
from bundleflow.mechanisms.menu import TIE_TOL, choose


def reference_prices(ev, prices, cap, rounds, outside_util=None, outside_pay=None):
    """The quadratic reference: for each j, the others' choice is computed from scratch."""
    B, J = ev.shape
    prices = prices.clone().to(torch.float64).clamp(0.0, cap)
    tol = TIE_TOL * max(1.0, cap)
    for _ in range(rounds):
        before = prices.clone()
        for j in range(J):
            others = torch.cat([ev[:, :j], ev[:, j + 1 :]], 1)
            other_prices = torch.cat([prices[:j], prices[j + 1 :]])
            _, pay, util, _ = choose(others, other_prices, tol, outside_util, outside_pay)
            prices[j], _ = best_price_given_outside(ev[:, j] - util, pay, cap)
        if torch.allclose(before, prices, rtol=0, atol=tol):
            break
    return prices


def revenue(ev, prices, cap, outside_util=None, outside_pay=None):
    return float(choose(ev, prices, TIE_TOL * max(1.0, cap), outside_util, outside_pay)[1].mean())


def _case(seed: int, ties: bool, outside: bool):
    g = torch.Generator().manual_seed(seed)
    B = int(torch.randint(5, 60, (1,), generator=g))
    J = int(torch.randint(1, 31, (1,), generator=g))
    if ties:  # values and prices on a coarse grid: many exact ties between elements and with the outside option
        ev = torch.randint(0, 5, (B, J), generator=g).double()
        start = torch.randint(0, 5, (J,), generator=g).double()
        h = J // 2
        ev[:, J - h :] = ev[:, :h].clone()  # duplicated elements: identical lotteries
    else:
        ev = torch.rand(B, J, generator=g, dtype=torch.float64) * 4
        start = torch.rand(J, generator=g, dtype=torch.float64) * 4
    cap = float(ev.max()) if ev.max() > 0 else 1.0
    u0 = pay0 = None
    if outside:  # a la carte outside option: some utility, some payment
        pay0 = (
            torch.randint(0, 3, (B,), generator=g).double() if ties else torch.rand(B, generator=g, dtype=torch.float64)
        )
        u0 = (
            torch.randint(0, 2, (B,), generator=g).double()
            if ties
            else torch.rand(B, generator=g, dtype=torch.float64) * 0.5
        )
    return ev, start, cap, u0, pay0


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("outside", [False, True])
def test_incremental_equals_quadratic_reference(seed, ties, outside):
    ev, start, cap, u0, pay0 = _case(seed, ties, outside)
    want = reference_prices(ev, start, cap, 3, u0, pay0)
    got = optimise_prices(ev, start, cap, 3, u0, pay0)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert revenue(ev, got, cap, u0, pay0) == revenue(ev, want, cap, u0, pay0)
    assert revenue(ev, got, cap, u0, pay0) >= revenue(ev, start.clamp(0, cap), cap, u0, pay0) - 1e-12


def test_float32_values_and_single_element():
    ev = torch.tensor([[0.3], [0.7], [0.9]], dtype=torch.float32)
    got = optimise_prices(ev, torch.tensor([0.1], dtype=torch.float64), 0.9, 2)
    assert float(got[0]) == pytest.approx(0.7)  # 0.7 * 2 buyers beats 0.9 * 1 and 0.3 * 3
