"""The relaxed choice (bundleflow.training.relaxation), by hand: flat and nested."""

from __future__ import annotations

import math

import pytest
import torch

from bundleflow.training.relaxation import relaxed_revenue

NULL = torch.zeros(1, 1, dtype=torch.float64)


def _rev(u, price, tau, nested, u_out=None, pay_out=None):
    u = torch.tensor([u], dtype=torch.float64)
    price = torch.tensor(price, dtype=torch.float64)
    u_out = NULL if u_out is None else torch.tensor([u_out], dtype=torch.float64)
    pay_out = NULL if pay_out is None else torch.tensor([pay_out], dtype=torch.float64)
    return float(relaxed_revenue(u, price, u_out, pay_out, tau, nested=nested))


def test_nested_by_hand():
    # u = [0.1, 0], prices [0.5, 0.3], tau 0.1: menu-or-null on logits [1, 0], then softmax([1, 0])
    s = math.e / (math.e + 1)
    assert _rev([0.1, 0.0], [0.5, 0.3], 0.1, nested=True) == pytest.approx(s * (s * 0.5 + (1 - s) * 0.3), abs=1e-12)
    # flat: one softmax over [1, 0, 0]
    z = math.e + 2
    assert _rev([0.1, 0.0], [0.5, 0.3], 0.1, nested=False) == pytest.approx((math.e * 0.5 + 0.3) / z, abs=1e-12)


@pytest.mark.parametrize("J", [1, 10, 5000])
def test_many_elements_below_zero_utility_do_not_crowd_out_the_null_option(J):
    # J elements of utility -c at price 1: the hard choice is null (revenue 0)
    c, tau = 0.02, 0.01
    nested = _rev([-c] * J, [1.0] * J, tau, nested=True)
    flat = _rev([-c] * J, [1.0] * J, tau, nested=False)
    e = math.exp(-c / tau)
    assert nested == pytest.approx(e / (1 + e), abs=1e-12)  # whatever J
    assert flat == pytest.approx(J * e / (1 + J * e), abs=1e-12)
    assert nested < 0.5
    if J == 1:
        assert flat == pytest.approx(nested, abs=1e-12)  # one element: the same relaxation
    if J == 5000:
        assert flat > 0.99  # the flat relaxation sells to a bidder who buys nothing


def test_nested_with_outside_options_and_its_limit():
    # two elements, an a la carte option (utility 0.05, pays 0.4) and null
    u, price = [0.2, 0.1], [0.6, 0.7]
    tau = 0.1
    logits = torch.tensor([2.0, 0.5, 0.0], dtype=torch.float64)  # [max u, a la carte, null] / tau
    top = torch.softmax(logits, 0)
    within = torch.softmax(torch.tensor([2.0, 1.0], dtype=torch.float64), 0)
    want = float(top[0] * (within * torch.tensor(price, dtype=torch.float64)).sum() + top[1] * 0.4)
    got = _rev(u, price, tau, nested=True, u_out=[0.05, 0.0], pay_out=[0.4, 0.0])
    assert got == pytest.approx(want, abs=1e-12)
    # tau -> 0: the hard choice (element 0, price 0.6)
    assert _rev(u, price, 1e-4, nested=True, u_out=[0.05, 0.0], pay_out=[0.4, 0.0]) == pytest.approx(0.6, abs=1e-9)


def test_nested_gradient_reaches_the_best_elements_price():
    u = torch.tensor([[0.3, 0.1]], dtype=torch.float64)
    price = torch.tensor([0.5, 0.7], dtype=torch.float64, requires_grad=True)
    # utility falls with price: u = v - p
    v = u + price.detach()
    rev = relaxed_revenue(v - price[None], price, NULL, NULL, 0.1, nested=True)
    rev.backward()
    assert price.grad is not None and torch.isfinite(price.grad).all()
    assert float(price.grad[0]) != 0.0 and float(price.grad[1]) != 0.0
