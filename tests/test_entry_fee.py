"""Entry fees on item sales (issue 14): second-price item auctions with an entry fee (VCG with
entry fees, Yao 2015) by hand and against plain item auctions; GemNet's learned fee
f_i(b_-i) >= 0 is strategy-proof, equals the baseline when constant, is certified, and learns
far above item auctions on many items."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import assert_one_line_error, cli

from bundleflow.baselines.multi import (
    item_auctions_with_entry_fee,
    second_price_items,
    tuned_entry_fee,
    tuned_reserve,
)
from bundleflow.errors import InputError
from bundleflow.mechanisms.multi import GemNet, evaluate_multi
from bundleflow.training.certificate import certify
from bundleflow.training.gemnet import GemNetTraining, train_gemnet
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation


def bidders_of(v: torch.Tensor, cls=AdditiveValuation) -> list:
    return [cls(v[:, i].contiguous()) for i in range(v.shape[1])]


def uniform(B: int, n: int, m: int, seed: int, cls=AdditiveValuation) -> list:
    return bidders_of(torch.rand(B, n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), cls)


def test_item_auctions_with_entry_fee_by_hand():
    # bidder 0 (0.9, 0.8) faces item prices (max(0.5, 0.3), max(0.5, 0.6)) = (0.5, 0.6): she wins
    # both with surplus 0.4 + 0.2 = 0.6; bidder 1 (0.3, 0.6) faces (0.9, 0.8) and wins nothing
    v = torch.tensor([[[0.9, 0.8], [0.3, 0.6]]], dtype=torch.float64)
    b = bidders_of(v)
    out = item_auctions_with_entry_fee(b, 0.5, 0.2)  # 0.6 >= 0.2: pays 0.5 + 0.6 + 0.2
    assert out.payment[0].tolist() == pytest.approx([1.3, 0.0], abs=1e-12)
    assert out.allocation[0].tolist() == [[1.0, 1.0], [0.0, 0.0]] and out.choice[0].tolist() == [0, -1]
    assert out.welfare == pytest.approx(1.7)
    out = item_auctions_with_entry_fee(b, 0.5, 0.7)  # 0.6 < 0.7: nobody buys
    assert out.revenue == 0.0 and out.allocation.sum() == 0 and out.choice[0].tolist() == [-1, -1]
    assert item_auctions_with_entry_fee(b, 0.5, 0.6).revenue == pytest.approx(1.7)  # a tie buys
    # no fee: the item auctions, payment for payment
    many = uniform(3000, 3, 4, seed=1)
    for r in (0.0, 0.4):
        assert torch.allclose(item_auctions_with_entry_fee(many, r, 0.0).payment, second_price_items(many, r).payment)
    with pytest.raises(InputError, match="fee must be finite"):
        item_auctions_with_entry_fee(b, 0.5, float("nan"))
    with pytest.raises(InputError, match="additive"):
        item_auctions_with_entry_fee(bidders_of(v, UnitDemandValuation), 0.5, 0.1)


def test_tuned_entry_fee_takes_the_surplus_of_many_items():
    # 3 bidders x 10 items U[0,1]: item by item (Myerson per item) about 5.31; a common fee near
    # 0.18 with the reserve near 0.44 about 5.48 (a bidder's surplus over 10 items concentrates)
    train, test = uniform(4000, 3, 10, seed=2), uniform(20000, 3, 10, seed=3)
    r, f = tuned_entry_fee(train, grid=41, fee_grid=101)
    assert 0.3 < r < 0.5 and 0.1 < f < 0.3
    fee = item_auctions_with_entry_fee(test, r, f)
    items = second_price_items(test, tuned_reserve(train, grid=41))
    assert items.revenue == pytest.approx(10 * (0.5 + 1 / 32), abs=0.03)  # (n-1)/(n+1) + 1/(2^n (n+1))
    assert fee.revenue > items.revenue + 0.12 and fee.over_rate == 0.0
    # one bidder and one item: the fee only adds to the reserve, so the best is the monopoly price
    r1, f1 = tuned_entry_fee(uniform(4000, 1, 1, seed=4), grid=101, fee_grid=101)
    assert r1 + f1 == pytest.approx(0.5, abs=0.03)


def fee_gemnet(n: int, m: int, unit_demand: bool = False, seed: int = 0, hidden=(16, 16)) -> GemNet:
    return GemNet(n, m, 4, cap=1.0 if unit_demand else float(m), unit_demand=unit_demand, item_prices=True,
                  entry_fee=True, hidden=hidden, generator=torch.Generator().manual_seed(seed))  # fmt: skip


def test_a_constant_fee_is_the_item_auctions_with_that_fee():
    bidders = uniform(4000, 3, 4, seed=5)
    net = fee_gemnet(3, 4)
    net.start_as_item_auctions(0.4, 0.15)
    out = evaluate_multi(net, bidders)
    ref = item_auctions_with_entry_fee(bidders, 0.4, 0.15)
    assert torch.allclose(out.payment, ref.payment, atol=1e-6) and out.over_rate == 0.0
    assert 0 < (ref.choice < 0).double().mean() < 1  # the fee turns some winners away
    # unit demand by hand: bidder 0 (0.9, 0.5) faces (0.3, 0.8) + fee 0.1 per item: item 0, pays 0.4;
    # bidder 1 (0.2, 0.8) faces (0.9, 0.5) + 0.1: item 1 at 0.6
    unit = fee_gemnet(2, 2, unit_demand=True)
    unit.start_as_item_auctions(0.3, 0.1)
    v = torch.tensor([[[0.9, 0.5], [0.2, 0.8]]], dtype=torch.float64)
    out = evaluate_multi(unit, bidders_of(v, UnitDemandValuation))
    assert out.payment[0].tolist() == pytest.approx([0.4, 0.6], abs=1e-6)
    unit.start_as_item_auctions(0.3, 0.35)  # item 1 leaves bidder 1 0.3 - 0.35 < 0
    out = evaluate_multi(unit, bidders_of(v, UnitDemandValuation))
    assert out.payment[0].tolist() == pytest.approx([0.65, 0.0], abs=1e-6)
    with pytest.raises(InputError, match="entry_fee=True"):
        GemNet(2, 2, 3, cap=2.0, item_prices=True).start_as_item_auctions(0.4, 0.1)
    with pytest.raises(InputError, match="entry fees are charged on item sales"):
        GemNet(2, 2, 3, cap=2.0, entry_fee=True)


@pytest.mark.parametrize("unit_demand", [False, True])
def test_learned_fees_stay_strategy_proof(unit_demand):
    net = fee_gemnet(2, 3, unit_demand, seed=7).double()
    with torch.no_grad():  # a fee that moves with the others' bids, positive on part of them
        for mlp in net.nets:
            mlp[-1].weight[-1].normal_(0, 2.0, generator=torch.Generator().manual_seed(8))
            mlp[-1].bias[-1] = 0.05
    cls = UnitDemandValuation if unit_demand else AdditiveValuation
    bids = torch.rand(400, 2, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    _, price = net.menus(bids)
    lie_bids = bids.clone()
    lie_bids[:, 0] = torch.rand(400, 3, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    _, price2 = net.menus(lie_bids)
    if not unit_demand:  # bidder 1's fee (in her sale's price) moves with bidder 0's bid
        assert not torch.allclose(price[:, 1, -1], price2[:, 1, -1])
    truth = bidders_of(bids, cls)
    honest = evaluate_multi(net, truth)
    u_honest = (honest.allocation[:, 0] * bids[:, 0]).sum(-1) - honest.payment[:, 0]
    assert (u_honest >= -1e-12).all()
    for seed in range(4):
        lie = torch.rand(400, 3, generator=torch.Generator().manual_seed(100 + seed), dtype=torch.float64)
        out = evaluate_multi(net, [cls(lie)] + truth[1:])
        u_lie = (out.allocation[:, 0] * bids[:, 0]).sum(-1) - out.payment[:, 0]
        assert (u_honest >= u_lie - 1e-12).all() and (u_lie < u_honest - 1e-6).any()


def test_certificate_bounds_the_fee():
    net = fee_gemnet(2, 2)
    net.start_as_item_auctions(0.4, 0.1)  # item sales alone (learned elements priced out)
    assert certify(net, 0.0, 1.0, levels=2).complete
    # learned elements offered beside fees that move with the others' bids: sound
    net = fee_gemnet(2, 2, seed=11)
    with torch.no_grad():
        for mlp in net.nets:
            mlp[-1].weight[-1].normal_(0, 2.0, generator=torch.Generator().manual_seed(12))
    cert = certify(net, 0.0, 1.0, levels=4, max_cells=20000)
    test = uniform(20000, 2, 2, seed=13)
    out = evaluate_multi(net, test)
    bids = torch.stack([v.item_values for v in test], 1)
    assert out.over_rate > 0 and not cert.holds(bids[out.over > 0]).any() and cert.certified_share > 0.2


def test_fees_learn_far_above_the_item_auctions_on_two_by_five():
    # from the item auctions (reserve 0.5, no fee), 300 steps: the fee rises and the exact
    # revenue passes both the item auctions (about 2.08) and their best common fee (about 2.16)
    n, m = 2, 5
    test = uniform(20000, n, m, seed=14)
    net = fee_gemnet(n, m)
    net.start_as_item_auctions(0.5, 0.0)
    start = evaluate_multi(net, test)
    assert start.revenue == pytest.approx(second_price_items(test, 0.5).revenue, abs=1e-6)

    def sample(B, g):
        return torch.rand(B, n, m, generator=g, dtype=torch.float64)

    train_gemnet(net, sample, GemNetTraining(steps=300, batch=256, log_every=300), torch.Generator().manual_seed(2))
    net.eval()
    out = evaluate_multi(net, test)
    constant = item_auctions_with_entry_fee(test, 0.4, 0.19)
    assert out.over_rate == 0.0 and out.revenue > constant.revenue + 0.03 > start.revenue + 0.1


TINY_FEES = [
    "menu.model=gemnet", "data.kind=additive", "data.n_bidders=2", "data.n_items=3", "data.n_train=500",
    "data.n_val=300", "data.n_test=2000", "menu.n_elements=4", "menu.steps=60", "menu.log_every=20",
    "gemnet.hidden=[8]", "gemnet.grid_levels=3", "gemnet.item_prices=true", "gemnet.entry_fee=true",
    "gemnet.start=item_auctions",
]  # fmt: skip


def test_run_with_entry_fees_and_its_mechanism_file(tmp_path):
    import numpy as np

    out = tmp_path / "fees"
    res = cli("train", "--out", out, *TINY_FEES)
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    fee_row = next(r for r in s["baselines"] if "entry fee" in r["method"])
    assert fee_row["over_allocation_rate"] == 0.0 and "entry fee" in res.stdout
    kept = s["learned"]["kept"]  # the start is the tuned item auctions with an entry fee
    assert kept["validation_revenue"] >= kept["start_validation_revenue"]
    bids = torch.rand(500, 2, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    np.save(tmp_path / "bids.npy", bids.numpy())
    from bundleflow.experiments.multi_runner import load_mechanism

    mech = load_mechanism(out / "mechanism.pt")
    ev = cli("evaluate", out / "mechanism.pt", tmp_path / "bids.npy")
    assert ev.exit_code == 0, ev.output
    want = evaluate_multi(mech, bidders_of(bids)).revenue
    assert json.loads(ev.stdout)["revenue"] == pytest.approx(want, rel=1e-12)
    # a crafted file whose sizes lack the fee's output: one line
    state = torch.load(out / "mechanism.pt", weights_only=True)
    state["gemnet"]["entry_fee"] = False
    torch.save(state, tmp_path / "bad.pt")
    assert_one_line_error(cli("evaluate", tmp_path / "bad.pt", tmp_path / "bids.npy"), "not a GemNet mechanism")


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["gemnet.item_prices=false", "gemnet.start=random"], "gemnet.entry_fee is charged on item sales"),
        (["data.kind=uniform_atoms", "gemnet.start=random", "gemnet.grid_levels=0"], "gemnet.entry_fee"),
    ],
)
def test_entry_fee_config_errors(tmp_path, extra, fragment):
    assert_one_line_error(cli("train", "--out", tmp_path / "x", *TINY_FEES, *extra), fragment)
    assert not (tmp_path / "x").exists()


def test_a_bad_starting_fee_changes_nothing():
    net = fee_gemnet(2, 2)
    net.start_as_item_auctions(0.4, 0.1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    for fee in (-0.1, math.inf):
        with pytest.raises(InputError, match="starting entry fee"):
            net.start_as_item_auctions(0.3, fee)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_without_a_grid_the_run_certifies_from_one_box_and_the_certify_command_agrees(tmp_path):
    out = tmp_path / "nogrid"
    res = cli("train", "--out", out, *TINY_FEES, "gemnet.grid_levels=0", "gemnet.certify_boxes=3000")
    assert res.exit_code == 0, res.output
    cert = json.loads((out / "summary.json").read_text())["learned"]["certificate"]
    assert 1 <= cert["boxes_checked"] <= 3000 and "certificate: no over-allocation" in res.stdout
    again = cli("certify", out / "mechanism.pt", "--boxes", "3000")
    assert again.exit_code == 0, again.output
    got = json.loads(again.stdout)
    assert got["certified_share"] == cert["certified_share"] and got["boxes_checked"] == cert["boxes_checked"]
    assert_one_line_error(cli("certify", out / "mechanism.pt", "--low", "1", "--high", "0"), "need 0 <= low < high")
    assert_one_line_error(cli("certify", out / "summary.json"), "mechanism.pt")
