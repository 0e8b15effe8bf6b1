"""Values that do not start at zero (issue 39): the relaxation's unit is the spread of the
values, not their level, for the single-bidder trainer and GemNet; old checkpoints resume with
the unit they ran with; learned menus reach the known optimum of shifted uniform values."""

from __future__ import annotations

import math

import pytest
import torch

from bundleflow.baselines.items import item_pricing
from bundleflow.errors import InputError
from bundleflow.experiments.config import load_config
from bundleflow.experiments.fit import fit_menu
from bundleflow.experiments.multi_runner import gemnet_choice_scale, gemnet_model
from bundleflow.experiments.runner import menu_model
from bundleflow.flow.stage1 import train_flow
from bundleflow.mechanisms.menu import evaluate_menu
from bundleflow.mechanisms.multi import GemNet
from bundleflow.training.gemnet import GemNetTrainer, GemNetTraining
from bundleflow.training.initialisation import pair_lotteries
from bundleflow.training.trainer import MenuTrainer, value_spread
from bundleflow.valuations.generators import additive_uniform, unit_demand_uniform
from bundleflow.valuations.xor import XORValuation


def _xor(values):
    """Bidders with one atom each, the grand bundle of 2 items, worth ``values``."""
    v = torch.tensor(values, dtype=torch.float64)[:, None]
    return XORValuation(torch.ones(len(v), 1, 2, dtype=torch.bool), v)


def test_value_spread_by_hand():
    assert value_spread(_xor([2.0, 3.0, 4.0])) == pytest.approx(1.0)  # mean 3 - min 2
    assert value_spread(_xor([7.0, 8.0, 9.0])) == pytest.approx(1.0)  # + 5 everywhere: unchanged
    assert value_spread(_xor([20.0, 30.0, 40.0])) == pytest.approx(10.0)  # x 10: x 10
    assert value_spread(_xor([0.0, 1.0, 2.0])) == pytest.approx(1.0)  # from 0: the level, as before
    assert value_spread(_xor([2.5, 2.5])) == pytest.approx(2.5)  # no spread: the level
    with pytest.raises(InputError, match="zero value everywhere"):
        value_spread(_xor([0.0, 0.0]))


def _trainer(train, val, **cfg):
    mc = load_config(
        overrides=["menu.model=rochetnet", "menu.n_elements=4", *[f"menu.{k}={v}" for k, v in cfg.items()]]
    )
    return MenuTrainer(menu_model(mc.menu, train), train, val, mc.menu, torch.device("cpu"))


def test_trainer_unit_ignores_a_common_offset_and_old_checkpoints_keep_the_level():
    base = additive_uniform(3000, 1, 0.0, 1.0, seed=4)
    shifted = additive_uniform(3000, 1, 5.0, 6.0, seed=4)  # the same draws + 5
    torch.testing.assert_close(shifted.item_values, base.item_values + 5.0)
    t0 = _trainer(base, base)
    t5 = _trainer(shifted, shifted)
    # the unit: E[v] - min v, the same for both (about 1/2), where the level E[v] is 5.5
    assert t5.scale == pytest.approx(t0.scale, rel=1e-9)
    assert t0.scale == pytest.approx(float(base.item_values.mean() - base.item_values.min()))
    state = t5.state()
    assert state["scale"] == t5.scale
    fresh = _trainer(shifted, shifted)
    fresh.load_state(state)
    assert fresh.scale == t5.scale
    # a checkpoint written before the unit was recorded ran with the level E[v(all items)]
    del state["scale"]
    fresh.load_state(state)
    assert fresh.scale == pytest.approx(float(shifted.item_values.mean()))
    assert fresh.scale > 10 * t5.scale


def test_gemnet_choice_scale_is_the_spread_and_old_checkpoints_keep_the_value_scale():
    cfg = load_config(overrides=["menu.model=gemnet", "data.kind=additive", "data.n_bidders=2", "data.n_items=1"])
    net = gemnet_model(cfg)
    assert net.value_scale == 1.0 and gemnet_choice_scale(cfg, net) == 1.0  # U[0, 1]: unchanged
    shifted = load_config(
        overrides=[
            "menu.model=gemnet",
            "data.kind=additive",
            "data.n_bidders=2",
            "data.n_items=1",
            "data.low=5",
            "data.high=6",
        ]
    )
    net6 = gemnet_model(shifted)
    assert net6.value_scale == 6.0 and gemnet_choice_scale(shifted, net6) == pytest.approx(1.0)
    xor = load_config(overrides=["menu.model=gemnet", "data.n_bidders=2", "data.n_items=2"])
    bidders = [_xor([7.0, 8.0, 9.0]), _xor([8.0, 8.0, 8.0])]  # grand values: mean 8, least 7
    assert gemnet_choice_scale(xor, gemnet_model(xor, bidders), bidders) == pytest.approx(1.0)

    def trainer(scale=None):
        return GemNetTrainer(
            GemNet(2, 1, 2, cap=6.0, value_scale=6.0),
            lambda B, g: 5 + torch.rand(B, 2, 1, generator=g, dtype=torch.float64),
            GemNetTraining(steps=1),
            torch.Generator().manual_seed(0),
            choice_scale=scale,
        )

    assert trainer().choice_scale == 6.0  # default: the model's value scale
    t = trainer(1.0)
    state = t.state()
    assert state["choice_scale"] == 1.0
    old = trainer(1.0)
    del state["choice_scale"]
    old.load_state(state)
    assert old.choice_scale == 6.0  # written before issue 39: tau was in units of the value scale
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(InputError, match="choice_scale"):
            trainer(bad)


@pytest.mark.parametrize("c", [1.0, 5.0])
def test_rochetnet_on_one_item_shifted_by_c_reaches_myerson(c):
    """1 item U[c, c+1]: Myerson's price max(c, (c+1)/2) = c sells to everyone, revenue c.

    Held-out on 20,000 bidders, whose revenue s.e. is at most (c+1) * sqrt(1/4 / 20,000) < 0.0036 c
    for c >= 1, so 0.5% of c is more than 1.4 s.e. away; measured 0.9993 c (c=1) and 0.9994 c (c=5).
    Before the relaxation's unit was the spread, RochetNet stayed at its start at c=5: 0.960 c."""
    price = max(c, (c + 1) / 2)
    optimum = price * min(1.0, c + 1 - price)  # price * P(v >= price)
    train = additive_uniform(20000, 1, c, c + 1, seed=1)
    val = additive_uniform(2000, 1, c, c + 1, seed=2)
    test = additive_uniform(20000, 1, c, c + 1, seed=3)
    fit = fit_menu(train, val, {"model": "rochetnet"}, device="cpu")
    out = evaluate_menu(fit.menu, test)
    assert out.revenue >= 0.995 * optimum
    if c == 5.0:  # a strict corner: the revenue falls at slope 4 above the price, so the price is pinned down
        sold = out.payment > 0
        assert float(sold.double().mean()) > 0.99
        assert float(out.payment[sold].max()) <= 1.005 * price


def test_pair_lotteries_by_hand():
    # frequent atoms {0} (3 times), {0, 1} (2), {1} (1): the only disjoint pair is {0} and {1}
    atoms = torch.tensor(
        [[[1, 0], [1, 1]], [[1, 0], [1, 1]], [[1, 0], [0, 1]]],
        dtype=torch.bool,
    )
    train = XORValuation(atoms, torch.ones(3, 2, dtype=torch.float64))
    supports, probs = pair_lotteries(train, 5, 4)
    assert supports.shape == (1, 4, 2) and probs.shape == (1, 4)
    assert supports[0].tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    assert probs[0].tolist() == [0.25, 0.25, 0.25, 0.25]
    supports, probs = pair_lotteries(train, 5, 3)  # odd D: each bundle still 1/2 in all
    assert probs[0].tolist() == [0.25, 0.5, 0.25]
    assert pair_lotteries(train, 5, 1)[0].shape[0] == 0  # one support: no lottery
    assert pair_lotteries(train, 0, 4)[0].shape[0] == 0
    # item valuations: pairs of single items, lowest indices first
    items = additive_uniform(4, 3)
    supports, probs = pair_lotteries(items, 2, 2)
    assert supports.tolist() == [[[1, 0, 0], [0, 1, 0]], [[1, 0, 0], [0, 0, 1]]]
    assert probs.tolist() == [[0.5, 0.5], [0.5, 0.5]]


_FLOW2: list = []


def _flow2():
    if not _FLOW2:
        _FLOW2.append(train_flow(2, steps=400, batch=256, hidden=32, seed=0))
    return _FLOW2[0]


def test_start_offers_pavlovs_lottery_for_two_unit_demand_items_at_two_to_three():
    """Two unit-demand items U[2, 3]: item pricing earns 2.112; Pavlov's optimum (2.137) also
    sells the even lottery between the items at a lower price. The data-driven start fills its
    spare elements with that lottery, priced exactly, and earns more than item pricing on its
    own sample (by hand: items at 2.28 and the lottery at 2.115 earn 2.134 on 400,000 bidders)."""
    train = unit_demand_uniform(4000, 2, 2.0, 3.0, seed=1)
    mc = load_config(overrides=["menu.n_elements=16"]).menu
    t = MenuTrainer(_flow2(), train, train, mc, torch.device("cpu"))
    t.initialise()
    assert t.coverage["pair_lotteries"] == 1
    menu = t.start_menu()
    same = (menu.bundles[:, :, None, :] == menu.bundles[:, None, :, :]).all(-1).double()  # [J, D, D]
    top = (same @ menu.probs[:, :, None].double())[..., 0].amax(1)  # [J] most likely bundle's probability
    lottery = torch.nonzero(top < 0.9).flatten().tolist()
    assert len(lottery) == 1
    j = lottery[0]
    for item in (0, 1):  # each item with probability 1/2
        assert float(menu.probs[j][menu.bundles[j][:, item] == 1].sum()) == pytest.approx(0.5, abs=0.02)
    assert float(menu.bundles[j].sum(-1).max()) == 1.0  # never both
    out = evaluate_menu(menu, train)
    assert out.choice.eq(j).float().mean() > 0.2  # the lottery sells
    # measured 2.1267 against 2.1187 (without the lottery the start earned 2.103 on validation)
    assert t.coverage["start_train_revenue"] > item_pricing(train).revenue + 0.005


def test_training_keeps_the_last_menu_unless_the_validation_best_beats_it_significantly():
    """``kept()``: the last logged menu, unless the validation-best beats it by more than
    ``keep_margin_se`` paired s.e. Four validation bidders, payments set by hand: the best (step
    1) pays 0.2 more than the last (step 2) to two of the four (paired differences 0, 0.2, 0,
    0.2: gain 0.1, sample s.d. 0.2/sqrt(3), s.e. 0.1/sqrt(3), so gain = sqrt(3) s.e.): kept at
    margins 0 and 1.7, not at 1.8 (the default 2 keeps the last); a best ahead by 1 on everyone
    (s.e. 0) is kept at any margin."""
    v = additive_uniform(4, 1, 0.0, 1.0, seed=0)
    menu = _trainer(v, v).menu()
    last = torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    lucky = last + torch.tensor([0.0, 0.2, 0.0, 0.2], dtype=torch.float64)
    for margin, keeps_best in ((0.0, True), (1.7, True), (1.8, False), (2.0, False)):
        t = _trainer(v, v, keep_margin_se=margin)
        for step, pay in ((1, lucky), (2, last)):
            t.step = step
            t.offer_best(menu, float(pay.mean()), pay)
        assert t.best["step"] == 1 and t.last is not None and t.last["step"] == 2
        assert t.kept()["step"] == (1 if keeps_best else 2)
        t.step = 3
        t.offer_best(menu, 0.4, last - 0.1)  # a worse last menu
        t.step = 4
        t.offer_best(menu, 0.0, last - 0.5)  # far worse: the best (step 1) beats it with s.e. 0
        assert t.kept()["step"] == 1
    assert _trainer(v, v).cfg.keep_margin_se == 2.0  # the default
    # the rule survives a checkpoint; one written before it (no "last") keeps the validation-best
    t = _trainer(v, v)
    for step, pay in ((1, lucky), (2, last)):
        t.step = step
        t.offer_best(menu, float(pay.mean()), pay)
    state = t.state()
    fresh = _trainer(v, v)
    fresh.load_state(state)
    assert fresh.kept()["step"] == 2
    del state["last"]
    fresh.load_state(state)
    assert fresh.kept()["step"] == 1


@pytest.mark.parametrize(
    "sampler, low, optimum",
    [(additive_uniform, 0.0, 0.5491), (unit_demand_uniform, 2.0, 2.137)],
    ids=["two_additive_0_1", "two_unit_demand_2_3"],
)
def test_rochetnet_defaults_reach_known_two_item_optima_within_half_a_percent(sampler, low, optimum):
    """Issue 39's sizes: 20,000 training, 2,000 validation, 100,000 held-out bidders, the default
    preset (1,000 steps). Held-out s.e. is about 0.0012 on 2 additive U[0,1] (0.2% of 0.5491) and
    0.0013 on 2 unit-demand U[2,3] (0.06% of 2.137), so 0.5% is at least 2.3 s.e. below the optimum.
    Measured 0.9978 and 0.9970 of the optima. Before the kept menu was the last one unless the
    validation-best beat it by 2 paired s.e., the validation maximum kept step 800 on 2 additive
    items (0.9933), and before the relaxation's unit was the spread RochetNet stayed at item
    pricing on U[2, 3] (0.988)."""
    train, val, test = (sampler(n, 2, low, low + 1.0, seed=s) for n, s in ((20000, 1), (2000, 2), (100000, 3)))
    fit = fit_menu(train, val, {"model": "rochetnet"}, device="cpu")
    assert evaluate_menu(fit.menu, test).revenue >= 0.995 * optimum
