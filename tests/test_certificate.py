"""The compatibility certificate on the whole value space (bundleflow.mechanisms.multi.certificate):
exact on hand-built menus, sound (every over-allocating profile lies in a box it leaves
uncertain) on trained and transformed GemNet menus."""

from __future__ import annotations

import math

import pytest
import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.multi import GemNet, evaluate_multi
from bundleflow.training.certificate import certify
from bundleflow.training.compatibility import make_compatible
from bundleflow.training.gemnet import GemNetTraining, train_gemnet
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation


def constant_menu(n: int, m: int, bundles: list[list[float]], prices: list[float], **kw) -> GemNet:
    """Every bidder is offered the same constant elements (allocation ~0/1, prices exact)."""
    K = len(bundles)
    net = GemNet(n, m, K, cap=float(m), generator=torch.Generator().manual_seed(0), **kw)
    with torch.no_grad():
        for mlp in net.nets:
            out = mlp[-1]
            out.weight.zero_()
            for k, a in enumerate(bundles):
                out.bias[k * m : (k + 1) * m] = torch.tensor([40.0 if x else -40.0 for x in a])
                out.bias[K * m + k] = math.log(prices[k] / (m - prices[k]))  # cap * sigmoid = price
            if kw.get("item_prices"):
                r = kw.get("reserve", 0.5)
                out.bias[K * m + K :] = math.log(r / (1 - r))
    return net


def profiles(B: int, n: int, m: int, seed: int, cls=AdditiveValuation) -> list:
    v = torch.rand(B, n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return [cls(v[:, i].contiguous()) for i in range(n)]


def assert_sound(mechanism, cert, bidders) -> torch.Tensor:
    """Every profile of ``bidders`` whose choices over-allocate lies outside the certified
    part; returns the over-allocating profiles' mask."""
    out = evaluate_multi(mechanism, bidders)
    bad = out.over > 0
    bids = torch.stack([v.item_values for v in bidders], 1)
    assert not cert.holds(bids[bad]).any()
    return bad


def test_item_auctions_are_certified_everywhere():
    # learned elements priced out (near cap), item sales at reserve 0.4: second-price auctions
    net = constant_menu(2, 2, [[0, 0]], [1.999], item_prices=True, reserve=0.4)
    cert = certify(net, 0.0, 1.0, levels=2)
    assert cert.complete and cert.certified_share == 1.0 and cert.boxes_checked == 16
    unit = constant_menu(2, 2, [[1, 0]], [1.999], item_prices=True, reserve=0.4, unit_demand=True)
    cert = certify(unit, 0.0, 1.0, levels=2, max_cells=4000)
    # unit-demand sales may both sell item j only where the bids on j tie within the tolerance
    assert cert.uncertain_boxes == 0 and 0 < cert.band_share < 1e-3 and not cert.complete
    assert cert.uncertain_share == pytest.approx(cert.band_share)
    tie = torch.tensor([[[0.7, 0.2], [0.7, 0.9]]], dtype=torch.float64)
    assert not cert.holds(tie).item() and cert.holds(tie + torch.tensor([0.05, 0.0, 0.0, 0.0]).reshape(1, 2, 2)).item()
    assert_sound(unit, cert, profiles(20000, 2, 2, seed=1, cls=UnitDemandValuation))


def test_one_item_offered_to_both_bidders_overallocates_on_a_quarter():
    # item 0 at 0.5 to both of two bidders: both buy when both values are >= 0.5 (a quarter of
    # the square); everywhere else at most one does
    net = constant_menu(2, 1, [[1]], [0.5])
    cert = certify(net, 0.0, 1.0, levels=4, max_cells=20000)
    assert 0.25 <= cert.uncertain_share < 0.26 and not cert.complete
    bad = assert_sound(net, cert, profiles(20000, 2, 1, seed=2))
    assert bad.double().mean().item() == pytest.approx(0.25, abs=0.01)
    # priced at 0.9 to bidder 0 only (a constant menu is the same for all, so price it by value
    # range): on [0, 0.8]^2 nobody can pay 0.9, certified everywhere
    assert certify(constant_menu(2, 1, [[1]], [0.9]), 0.0, 0.8, levels=1).complete


@pytest.mark.parametrize("unit_demand", [False, True])
def test_certificate_is_sound_on_trained_and_transformed_menus(unit_demand):
    n, m = 2, 2
    cls = UnitDemandValuation if unit_demand else AdditiveValuation
    net = GemNet(n, m, 8, cap=1.0 if unit_demand else 2.0, unit_demand=unit_demand,
                 generator=torch.Generator().manual_seed(3), hidden=(16, 16))  # fmt: skip

    def sample(B, g):
        return torch.rand(B, n, m, generator=g, dtype=torch.float64)

    cfg = GemNetTraining(steps=300, batch=256, log_every=300)
    train_gemnet(net, sample, cfg, torch.Generator().manual_seed(4))
    net.eval()
    test = profiles(40000, n, m, seed=5, cls=cls)
    cert = certify(net, 0.0, 1.0, levels=4, max_cells=60000)
    bad = assert_sound(net, cert, test)
    assert cert.uncertain_share >= bad.double().mean().item() - 0.005
    assert cert.certified_share > 0.3  # not a certificate of nothing
    levels = (torch.arange(4, dtype=torch.float64) + 0.5) / 4
    shifted, _ = make_compatible(net, levels)
    cert2 = certify(shifted, 0.0, 1.0, max_cells=60000)
    with pytest.raises(InputError, match="transform's grid"):  # its shifts are constant on other cells
        certify(shifted, 0.0, 2.0, max_cells=60000)
    assert cert2.boxes_checked >= 4 ** (n * m)
    assert_sound(shifted, cert2, test)


def test_certify_bad_input():
    xor = GemNet(2, 3, 2, cap=1.0, bundles=True)
    with pytest.raises(InputError, match="item bidders"):
        certify(xor, 0.0, 1.0)
    net = constant_menu(2, 1, [[1]], [0.5])
    with pytest.raises(InputError, match="low < high"):
        certify(net, 1.0, 1.0)
    with pytest.raises(InputError, match="max_cells"):
        certify(net, 0.0, 1.0, levels=300, max_cells=1000)
