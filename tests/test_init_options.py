"""Stage 2's starts: ``menu.init=data|random|mixed`` and ``menu.init_spread`` (distinct supports)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_TRAIN, cli

from bundleflow.errors import InputError
from bundleflow.experiments import MenuConfig, load_config
from bundleflow.flow import train_flow
from bundleflow.mechanisms import BundleFlowMenu, RochetNetMenu
from bundleflow.training import MenuTrainer
from bundleflow.training.initialisation import neighbour_lotteries
from bundleflow.valuations import uniform_atoms


@pytest.fixture(scope="module")
def flow4():
    return train_flow(4, steps=300, batch=256, hidden=32, seed=0, device="cpu")


def test_neighbour_lotteries_by_hand():
    g = torch.Generator().manual_seed(0)
    bundles = torch.tensor([[1.0, 0, 1], [0, 0, 0]])
    supports, probs = neighbour_lotteries(bundles, 3, 0.1, g)
    assert supports.shape == (2, 3, 3) and torch.equal(supports[:, 0], bundles)
    for j in range(2):
        flipped = [int((supports[j, d] != bundles[j]).sum()) for d in range(3)]
        assert flipped == [0, 1, 1]  # each neighbour differs in exactly one item
        assert len({tuple(s.tolist()) for s in supports[j]}) == 3  # distinct supports
    assert torch.allclose(probs, torch.tensor([[0.8, 0.1, 0.1]] * 2, dtype=torch.float64))


def test_place_lotteries_gives_the_probabilities_asked_for(flow4):
    model = BundleFlowMenu(flow4, n_elements=5, n_support=3, cap=1.0)
    g = torch.Generator().manual_seed(1)
    bundles = (torch.rand(5, 4, generator=g) < 0.5).float()
    supports, probs = neighbour_lotteries(bundles, 3, 0.05, g)
    model.place_lotteries(supports, probs, g, corner=0.9)
    menu = model.menu()
    assert torch.allclose(menu.probs, probs, atol=1e-5)  # the flow's density change is compensated exactly
    assert (menu.bundles == supports).all(-1).float().mean() >= 0.9  # and it rounds the corners right


def test_scatter_is_the_papers_random_start(flow4):
    model = BundleFlowMenu(flow4, n_elements=6, n_support=8, cap=1.0)
    g = torch.Generator().manual_seed(2)
    model.place(torch.ones(6, 4), g, corner=0.9)
    mask = torch.tensor([False, False, False, True, True, True])
    model.scatter(mask, g)
    s0 = model.s0().detach()
    assert ((s0[3:] >= 0.05 - 1e-6) & (s0[3:] <= 0.95 + 1e-6)).all()
    assert torch.allclose(s0[:3], torch.full_like(s0[:3], 0.95), atol=0.02)  # untouched: at the corner
    assert torch.equal(model.w_logit[3:].detach(), torch.zeros(3, 8))
    assert len({tuple(b.tolist()) for b in model.menu().bundles[3:].reshape(-1, 4)}) > 3  # spread over bundles


def test_random_init_is_only_for_bundleflow():
    with pytest.raises(InputError, match="menu.init=random / mixed is for bundleflow"):
        RochetNetMenu(3, 2, 1.0).scatter(torch.ones(3, dtype=torch.bool), torch.Generator())


def test_spread_must_leave_the_bundle_most_of_the_probability():
    assert MenuConfig(n_support=8, init_spread=0.1).init_spread == 0.1
    with pytest.raises(Exception, match="init_spread"):
        MenuConfig(n_support=8, init_spread=0.15)
    with pytest.raises(InputError, match="menu.init"):
        load_config(None, ["menu.init=sideways"])


@pytest.mark.parametrize("init", ["random", "mixed"])
def test_random_starts_learn_and_keep_exact_prices(flow4, init):
    train, val = uniform_atoms(600, 4, 3, 0.5, seed=3), uniform_atoms(300, 4, 3, 0.5, seed=4)
    cfg = MenuConfig(n_elements=8, n_support=4, steps=30, init=init, batch=128)
    trainer = MenuTrainer(flow4, train, val, cfg, torch.device("cpu"))
    trainer.initialise()
    start = trainer.start_menu()
    scattered = slice(0, 8) if init == "random" else slice(4, 8)
    # random supports: several distinct bundles per random element
    assert all(len({tuple(b.tolist()) for b in start.bundles[j]}) > 1 for j in range(8)[scattered])
    if init == "mixed":
        assert (start.bundles[0] == 1).all()  # the data half keeps the grand bundle first
    assert trainer.coverage["grand_bundle_reached"] == (init == "mixed")  # element 0 is random in "random"
    assert trainer.start["val_revenue"] > 0  # exact prices make the random lotteries sell
    t0 = 0.0
    for _ in range(30):
        trainer.train_step()
    m = trainer.log_metrics(float("nan"), t0)
    assert m.allocations_changed > 0  # distinct supports: the gradient moves probability between them


def test_spread_start_in_a_run(tmp_path):
    res = cli("train", "--out", tmp_path / "s", *TINY_TRAIN, "menu.init_spread=0.05")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())["learned"]
    assert summary["learning"]["distinct_bundles_start"] > 1
    # element 0 is the grand bundle and its one-item-less neighbours, as placed
    assert summary["coverage"]["grand_bundle_reached"] is True
