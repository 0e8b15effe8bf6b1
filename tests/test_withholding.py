"""Withholding (bundleflow.training.withholding): every allocation and price times 1 - eps keeps
each choice, scales revenue and every load by 1 - eps exactly, and with it the certificate
closes where trained menus sit at load 1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error, cli

from bundleflow.errors import InputError
from bundleflow.mechanisms.multi import GemNet, evaluate_multi
from bundleflow.training.certificate import certify
from bundleflow.training.withholding import WithheldMenus, choose_withholding
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation


def half_and_a_bit(share: float = 0.502, price: float = 0.2) -> GemNet:
    """One item, two bidders, each offered ``share`` of it at ``price``: both buy when both
    values reach ``price / share``, and then the item is allocated ``2 share > 1`` times."""
    net = GemNet(2, 1, 1, cap=1.0, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        for mlp in net.nets:
            out = mlp[-1]
            out.weight.zero_()
            out.bias[0] = math.log(share / (1 - share))
            out.bias[1] = math.log(price / (1 - price))
    return net


def profiles(B: int, n: int, m: int, seed: int, cls=AdditiveValuation) -> list:
    v = torch.rand(B, n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return [cls(v[:, i].contiguous()) for i in range(n)]


def test_withholding_keeps_choices_and_scales_revenue_and_load_by_hand():
    net = half_and_a_bit()
    bidders = profiles(20000, 2, 1, seed=3)
    plain = evaluate_multi(net, bidders)
    both = (torch.stack([v.item_values[:, 0] for v in bidders], 1) >= 0.2 / 0.502).all(1)
    assert plain.over_rate == pytest.approx(both.double().mean().item(), abs=1e-12)  # load 1.004 there
    assert plain.over_max == pytest.approx(0.004, abs=1e-9)
    kept = evaluate_multi(WithheldMenus(net, 0.01), bidders)
    assert torch.equal(kept.choice, plain.choice)  # every bidder takes what she took
    assert kept.revenue == pytest.approx(0.99 * plain.revenue, rel=1e-12)
    assert torch.allclose(kept.allocation, 0.99 * plain.allocation, rtol=0, atol=1e-12)
    assert kept.over_rate == 0.0  # 2 x 0.502 x 0.99 = 0.99396
    # too little: 2 x 0.502 x 0.999 = 1.002 is still over
    assert evaluate_multi(WithheldMenus(net, 0.001), bidders).over_rate == pytest.approx(plain.over_rate)


def test_certificate_of_withheld_menus():
    net = half_and_a_bit()
    cert = certify(net, 0.0, 1.0, levels=4, max_cells=20000)
    share = (1 - 0.2 / 0.502) ** 2  # both buy: the load exceeds 1 on this share exactly
    assert share <= cert.uncertain_share < share + 0.02
    assert certify(WithheldMenus(net, 0.01), 0.0, 1.0, levels=4, max_cells=20000).complete
    assert not certify(WithheldMenus(net, 0.001), 0.0, 1.0, levels=4, max_cells=20000).complete


def test_choose_withholding_takes_the_smallest_share_that_clears_validation():
    net = half_and_a_bit()
    val = profiles(2000, 2, 1, seed=4)
    share, tried = choose_withholding(net, val)
    assert share == 1e-2 and [t["withhold"] for t in tried] == [0.0, 1e-4, 1e-3, 1e-2]
    assert [t["over_rate"] == 0 for t in tried] == [False, False, False, True]
    assert choose_withholding(half_and_a_bit(share=0.6), val)[0] == 0.0  # 1.2: no share on the ladder clears it
    fits = half_and_a_bit(share=0.49)  # compatible already: nothing withheld, one evaluation
    assert choose_withholding(fits, val) == (0.0, [{"withhold": 0.0, "revenue": pytest.approx(
        evaluate_multi(fits, val).revenue), "over_rate": 0.0}])  # fmt: skip


def test_withholding_bad_input():
    for bad in (-0.1, 1.0, math.nan):
        with pytest.raises(InputError, match="withholding"):
            WithheldMenus(half_and_a_bit(), bad)
    xor = GemNet(2, 3, 2, cap=1.0, bundles=True)
    with pytest.raises(InputError, match="item bidders"):
        WithheldMenus(xor, 0.01)


TINY_UNIT = [
    "menu.model=gemnet", "data.kind=unit_demand", "data.n_bidders=2", "data.n_items=2", "data.n_train=300",
    "data.n_val=300", "data.n_test=2000", "menu.n_elements=4", "menu.steps=60", "menu.log_every=30",
    "gemnet.hidden=[8]", "gemnet.grid_levels=4", "gemnet.certify_boxes=2000",
]  # fmt: skip


def test_run_with_withholding_and_its_mechanism_file(tmp_path):
    out = tmp_path / "w"
    res = cli("train", "--out", out, *TINY_UNIT, "gemnet.withhold=0.01")
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    g = s["learned"]
    w = g["withholding"]
    assert w["share"] == 0.01 and w["chosen_by"] == "config" and "withholding 0.01" in res.stdout
    assert g["test_revenue"] == pytest.approx(0.99 * w["test_revenue_before"], rel=1e-9)  # the same choices
    assert g["test_over_allocation_rate"] <= w["test_over_allocation_rate_before"]
    assert "certificate" in g
    # the saved mechanism is the withheld one: the evaluate command gives the run's figures
    import numpy as np

    bids = torch.rand(500, 2, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    np.save(tmp_path / "bids.npy", bids.numpy())
    from bundleflow.experiments.multi_runner import load_mechanism

    mech = load_mechanism(out / "mechanism.pt")
    assert isinstance(mech, WithheldMenus) and mech.withhold == 0.01
    ev = cli("evaluate", out / "mechanism.pt", tmp_path / "bids.npy")
    assert ev.exit_code == 0, ev.output
    want = evaluate_multi(mech, [UnitDemandValuation(bids[:, i].contiguous()) for i in range(2)]).revenue
    assert json.loads(ev.stdout)["revenue"] == pytest.approx(want, rel=1e-12)
    # a crafted file with an impossible share: one line
    state = torch.load(out / "mechanism.pt", weights_only=True)
    state["withhold"] = 2.0
    torch.save(state, tmp_path / "bad.pt")
    assert_one_line_error(cli("evaluate", tmp_path / "bad.pt", tmp_path / "bids.npy"), "withhold")


def test_withholding_config_errors(tmp_path):
    assert_one_line_error(cli("train", "--out", tmp_path / "a", *TINY_UNIT, "gemnet.withhold=1.5"), "gemnet.withhold")
    xor = ["menu.model=gemnet", "data.kind=uniform_atoms", "data.n_bidders=2", "data.n_items=4", "gemnet.withhold=auto"]
    assert_one_line_error(cli("train", "--out", tmp_path / "b", *xor), "item bidders")


def test_multi_bench_withholds_on_item_settings_and_lists_the_shares():
    from bundleflow.experiments.multi_bench import MULTI_CATS, MULTI_SETTINGS, multi_markdown, setting_overrides

    assert all("gemnet.withhold=auto" in o for o in MULTI_SETTINGS.values())
    assert not any("withhold" in x for x in setting_overrides(next(iter(MULTI_CATS)), Path(".")))  # XOR: never
    row = {"setting": "multi_unit_2x2", "method": "gemnet_items", "test_revenue": 0.68, "test_revenue_se": 0.0025,
           "over_allocation_rate": 0.0, "train_seconds": 60.0, "steps": 4000, "gain_over_best_baseline": None,
           "per_seed": [{"withhold": 1e-4}, {"withhold": 0.0}, {"withhold": 1e-3}]}  # fmt: skip
    plain = {**row, "method": "gemnet", "per_seed": [{"withhold": 0.0}] * 3}
    md = multi_markdown({"seeds": [0, 1, 2], "rows": [row, plain], "checks": []})
    assert "multi_unit_2x2 gemnet_items 0.0001/0/0.001." in md and "multi_unit_2x2 gemnet " not in md
