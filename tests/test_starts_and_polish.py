"""Issue 17, points 3-4: learned menus start at or above the best baseline and end at exact prices.

Type spaces: XOR bidders over 2-3 items, 2-4 equally likely types, whose optimal mechanism
(the LP) is a menu of sure bundles (checked against the deterministic MILP oracle): there a
learned menu's allocations can be right, and the price polish must bring its revenue within
1% of the optimum.
"""

from __future__ import annotations

import math
import time

import pytest
import torch

from bundleflow.baselines.bundling import atom_menu, grand_bundling
from bundleflow.baselines.items import item_pricing
from bundleflow.experiments.config import load_config
from bundleflow.experiments.runner import polish_menu
from bundleflow.flow.stage1 import train_flow
from bundleflow.mechanisms.menu import Menu, evaluate_menu
from bundleflow.mechanisms.rochetnet import BundleRochetNetMenu
from bundleflow.oracles.lp import lp_optimal_mechanism
from bundleflow.training.trainer import MenuTrainer
from bundleflow.valuations.generators import additive_uniform, uniform_atoms
from bundleflow.valuations.xor import XORValuation

_FLOWS: dict[int, object] = {}


def flow(m: int):
    if m not in _FLOWS:
        _FLOWS[m] = train_flow(m, steps=400, batch=256, hidden=32, seed=0)
    return _FLOWS[m]


def type_space(seed: int, m: int, n: int) -> XORValuation:
    g = torch.Generator().manual_seed(seed)
    atoms = torch.rand(n, 3, m, generator=g) < 0.5
    atoms[:, :, 0] |= ~atoms.any(-1)  # no empty atom
    atoms[:, 0, :] = True
    values = torch.randint(1, 9, (n, 3), generator=g).double()
    values[:, 0] = values.max(1).values + torch.randint(0, 3, (n,), generator=g).double()
    return XORValuation(atoms, values)


def train_like_the_runner(model, train, overrides, steps: int = 60):
    """Start, log step 0, train, keep the best hard revenue, polish: what `bundleflow train` does."""
    cfg = load_config(None, [*overrides, f"menu.steps={steps}", "menu.log_every=20", "device=cpu"])
    trainer = MenuTrainer(model, train, train, cfg.menu, torch.device("cpu"))
    trainer.initialise()
    t0 = time.perf_counter()
    trainer.log_metrics(math.nan, t0)
    while trainer.step < steps:
        trainer.train_step()
        if trainer.step % 20 == 0:
            trainer.log_metrics(math.nan, t0)
    best = Menu.from_dict(trainer.best["menu"])
    return trainer, polish_menu(best, train, train, trainer.cap, 3, progress=False)


CASES = [(0, 2, 2), (3, 3, 2), (7, 3, 3), (20, 2, 4), (25, 3, 3), (38, 2, 4)]
# Bundle-RochetNet deploys D=4 bundles sampled from a product lottery: on this case none of its
# elements is the sure bundle {0,1} the optimum sells to type 2, so prices cannot recover it
BRN_MISSES = pytest.mark.xfail(
    strict=True, reason="no sure {0,1} among Bundle-RochetNet's sampled supports: 6.0 of 6.33"
)


@pytest.mark.parametrize(
    "kind,seed,m,n",
    [(k, *c) for k in ("bundleflow", "bundleflow_mixed") for c in CASES]
    + [pytest.param("bundle_rochetnet", *c, marks=BRN_MISSES if c[0] == 25 else ()) for c in CASES],
)
def test_learned_menus_within_one_percent_of_the_optimum(kind, seed, m, n):
    types = type_space(seed, m, n)
    optimum = lp_optimal_mechanism(types).revenue
    assert lp_optimal_mechanism(types, deterministic=True).revenue == pytest.approx(optimum, abs=1e-9)
    train = types.subset(torch.arange(n).repeat(25))  # every type equally likely
    overrides = ["menu.n_elements=16", "menu.n_support=4", "menu.batch=128"]
    if kind == "bundle_rochetnet":
        model = BundleRochetNetMenu(16, m, 4, train.max_value(), 50, seed=0)
    else:
        model = flow(m)
        overrides += ["menu.outside=item_prices"] if kind == "bundleflow_mixed" else []
    trainer, polish = train_like_the_runner(model, train, overrides)
    assert polish["train_revenue_after"] >= polish["train_revenue_before"]
    assert evaluate_menu(polish["menu"], types).revenue >= 0.99 * optimum


def test_pure_start_is_at_least_grand_bundling_and_the_atom_menu():
    train = uniform_atoms(600, 5, 3, 0.5, seed=4)
    cfg = load_config(None, ["menu.n_elements=32", "menu.n_support=4", "device=cpu"])
    trainer = MenuTrainer(flow(5), train, train, cfg.menu, torch.device("cpu"))
    trainer.initialise()
    assert trainer.coverage["init_bundles_reached"] == 1.0
    start = evaluate_menu(trainer.menu(), train).revenue
    gb, am = grand_bundling(train).revenue, atom_menu(train, 32).revenue
    assert start >= max(gb, am) * (1 - 2e-6)  # prices are shaded by 1e-6 for float32 (training.PRICE_SHADE)
    assert trainer.coverage["start_train_revenue"] == pytest.approx(start, rel=1e-5)


def test_mixed_start_is_at_least_grand_bundling_and_item_pricing():
    # 2 additive U[0,1] items: grand bundling (0.54) beats item pricing (0.50) here
    train = additive_uniform(2000, 2, seed=0)
    cfg = load_config(None, ["menu.n_elements=16", "menu.n_support=4", "menu.outside=item_prices", "device=cpu"])
    trainer = MenuTrainer(flow(2), train, train, cfg.menu, torch.device("cpu"))
    trainer.initialise()
    start = evaluate_menu(trainer.menu(), train).revenue
    gb, ip = grand_bundling(train).revenue, item_pricing(train).revenue
    assert gb > ip
    assert start >= max(gb, ip) - 1e-6 * gb


@pytest.mark.parametrize("seed,m,n", CASES)
def test_rochetnet_polish_on_type_spaces(seed, m, n):
    """RochetNet's nested lotteries give every item a probability below 1 (sigmoids), so on XOR types
    it never offers the optimum's sure bundles: measured 95-98% of the optimum after the polish."""
    from bundleflow.mechanisms.rochetnet import RochetNetMenu

    types = type_space(seed, m, n)
    train = types.subset(torch.arange(n).repeat(25))
    _, polish = train_like_the_runner(
        RochetNetMenu(16, m, train.max_value()), train, ["menu.n_elements=16", "menu.batch=128"]
    )
    assert polish["train_revenue_after"] >= polish["train_revenue_before"]
    assert evaluate_menu(polish["menu"], types).revenue >= 0.94 * lp_optimal_mechanism(types).revenue


def test_polish_that_loses_on_validation_is_not_kept():
    grand = torch.ones(1, 1, 2, dtype=torch.bool)
    train = XORValuation(grand, torch.tensor([[10.0]], dtype=torch.float64))
    val = XORValuation(grand, torch.tensor([[5.0]], dtype=torch.float64))
    menu = Menu.deterministic(torch.ones(1, 2), torch.tensor([5.0], dtype=torch.float64))
    out = polish_menu(menu, train, val, 10.0, 3, progress=False, val=val)
    assert out["polished_train_revenue_after"] == pytest.approx(10.0)  # the polish found the training optimum
    assert out["polished_val_revenue_after"] == 0.0
    assert not out["kept"] and float(out["menu"].prices[0]) == 5.0
    assert out["train_revenue_after"] == out["train_revenue_before"] == 5.0
    kept = polish_menu(menu, train, val, 10.0, 3, progress=False)  # without validation: kept
    assert kept["kept"] and float(kept["menu"].prices[0]) == pytest.approx(10.0)
