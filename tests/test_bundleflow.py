import json
import math

import pytest
import torch
from conftest import interrupt_at

from bundleflow.errors import InputError
from bundleflow.experiments.config import load_config
from bundleflow.experiments.runner import run_training
from bundleflow.flow.model import BundleFlow
from bundleflow.flow.stage1 import load_flow, save_flow, train_flow
from bundleflow.mechanisms.bundleflow_menu import BundleFlowMenu
from bundleflow.mechanisms.menu import evaluate_menu
from bundleflow.training.trainer import MenuTrainer
from bundleflow.valuations.generators import uniform_atoms
from bundleflow.valuations.xor import XORValuation


def test_flow_closed_form_matches_ode_and_liouville():
    torch.manual_seed(0)
    flow = BundleFlow(3, hidden=16, n_quad=32)
    s0 = torch.rand(5, 3)
    s1, log_det = flow.push(s0)
    # explicit Euler on ds/dt = eta(t) Q(s0) s with a fine grid; divergence = eta(t) trace Q(s0)
    n = 20000
    s, div = s0.clone().double(), torch.zeros(5, dtype=torch.float64)
    q = flow.q(s0).double()
    with torch.no_grad():
        for k in range(n):
            t = torch.tensor([(k + 0.5) / n])
            e = float(flow.eta(t))
            s = s + e * q * s / n
            div = div - e * q.sum(-1) / n
    torch.testing.assert_close(s1.double().detach(), s, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(log_det.double().detach(), div, rtol=1e-3, atol=1e-4)


def test_bundles_and_log_det_match_push_and_flush_only_tiny_gradients():
    torch.manual_seed(1)
    flow = BundleFlow(4, hidden=8)
    s0 = torch.rand(6, 4, requires_grad=True)
    s1, log_det = flow.push(s0)
    b, ld = flow.bundles_and_log_det(s0)
    assert torch.equal(b, flow.round_end_points(s1)) and not b.requires_grad
    torch.testing.assert_close(ld, log_det)
    # ordinary gradients pass unchanged; entries below TINY_GRAD (subnormal-bound) become 0
    from bundleflow.flow.model import TINY_GRAD, _FlushTinyGrad

    x = torch.zeros(4, requires_grad=True)
    _FlushTinyGrad.apply(x).backward(torch.tensor([1.0, -3e-5, 1e-31, -1e-39]))
    assert x.grad.tolist() == [1.0, pytest.approx(-3e-5), 0.0, 0.0]
    assert TINY_GRAD < 1e-20
    (g_ref,) = torch.autograd.grad(log_det.sum(), s0)
    (g,) = torch.autograd.grad(ld.sum(), s0)
    torch.testing.assert_close(g, g_ref)


def test_support_probabilities_sum_to_one():
    flow = BundleFlow(4, hidden=8)
    mp = BundleFlowMenu(flow, 6, 3, cap=2.0)
    with torch.no_grad():
        mp.z.normal_()
        mp.w_logit.normal_()
        mp.price_logit.normal_(0, 3)
    b, p = mp.lottery()
    assert b.shape == (6, 3, 4) and set(b.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(p.sum(-1), torch.ones(6))
    assert float(mp.prices().detach().max()) < 2.0


def _trainer(tau_end=1e-4, steps=10):
    cfg = load_config(None, ["menu.n_elements=5", "menu.n_support=2", f"menu.steps={steps}", f"menu.tau_end={tau_end}"])
    flow = train_flow(3, steps=50, batch=64, hidden=16)
    v = uniform_atoms(400, 3, 4, 0.5, seed=1)
    tr, va = v.split(300)
    t = MenuTrainer(flow, tr, va, cfg.menu, torch.device("cpu"))
    t.initialise()
    return t


def test_soft_revenue_converges_to_hard_as_tau_goes_to_zero():
    t = _trainer()
    hard = evaluate_menu(t.menu(), t.val).revenue
    gaps = []
    with torch.no_grad():
        for tau in (0.3, 0.03, 1e-3, 1e-5):
            soft = t.soft_revenue(t.val, tau)[0]
            gaps.append(abs(float(soft) * t.scale - hard))
    assert gaps[-1] < 1e-3 * max(1.0, hard)
    assert gaps[0] > gaps[-1]


def test_flow_checkpoint_roundtrip_and_domain_check(tmp_path):
    flow = BundleFlow(3, hidden=8)
    save_flow(tmp_path / "f.pt", flow)
    again = load_flow(tmp_path / "f.pt")
    s0 = torch.rand(4, 3)
    torch.testing.assert_close(again.push(s0)[0], flow.push(s0)[0])
    payload = torch.load(tmp_path / "f.pt", weights_only=True)
    payload["meta"]["domain"] = "gaussian"
    torch.save(payload, tmp_path / "g.pt")
    with pytest.raises(InputError, match="domain"):
        load_flow(tmp_path / "g.pt")
    (tmp_path / "h.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a bundleflow flow checkpoint"):
        load_flow(tmp_path / "h.pt")
    v = uniform_atoms(20, 4, 2, 0.5)
    cfg = load_config(None, [])
    with pytest.raises(InputError, match="m=3 items"):
        MenuTrainer(flow, v, v, cfg.menu, torch.device("cpu"))


OVR = [
    "data.n_items=2",
    "data.n_atoms=5",
    "data.n_train=400",
    "data.n_val=400",
    "data.n_test=3000",
    "flow.steps=300",
    "flow.hidden=32",
    "menu.n_elements=8",
    "menu.n_support=4",
    "menu.steps=60",
    "menu.log_every=20",
]


def test_tiny_training_run_resume_and_reproducible(tmp_path, monkeypatch):
    cfg = load_config(None, OVR)
    a = run_training(cfg, tmp_path / "a", resume=False, progress=False, log=lambda *_: None)
    bf = a["learned"]
    grand = next(r for r in a["baselines"] if r["method"] == "grand_bundling")
    # m=2 uniform atoms: the learned menu is at least as good as grand bundling (held-out, within noise)
    assert bf["test_revenue"] >= grand["test_revenue"] - 3 * bf["test_revenue_se"]
    assert bf["max_price"] <= bf["price_cap"]
    metrics = [json.loads(l) for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 20, 40, 60]
    for key in ("soft_revenue", "hard_revenue", "null_rate", "elements_used", "mean_bundle_size", "zero_value_share"):
        assert key in metrics[-1]
    assert abs(metrics[-1]["soft_revenue"] - metrics[-1]["hard_revenue"]) <= 0.05 * metrics[-1]["hard_revenue"]
    for f in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "flow.pt", "menu.json", "summary.json"):
        assert (tmp_path / "a" / f).is_file()

    # interrupted at step 45, then resumed from the step-40 checkpoint: same result as uninterrupted
    orig = interrupt_at(monkeypatch, 45)
    with pytest.raises(KeyboardInterrupt):
        run_training(cfg, tmp_path / "b", resume=False, progress=False, log=lambda *_: None)
    assert not (tmp_path / "b" / "summary.json").exists()
    monkeypatch.setattr(MenuTrainer, "train_step", orig)
    b = run_training(cfg, tmp_path / "b", resume=True, progress=False, log=lambda *_: None)
    assert b["learned"]["test_revenue"] == pytest.approx(bf["test_revenue"], abs=1e-9)
    steps_b = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps_b == [0, 20, 40, 60]
    # a different config in the same folder is refused, and nothing there is touched
    before = (tmp_path / "b" / "summary.json").read_bytes()
    with pytest.raises(InputError, match="different config"):
        run_training(load_config(None, OVR + ["menu.lr=0.5"]), tmp_path / "b", progress=False)
    assert (tmp_path / "b" / "summary.json").read_bytes() == before


def test_bad_config_messages(tmp_path):
    with pytest.raises(InputError, match="menu.steps"):
        load_config(None, ["menu.steps=-3"])
    with pytest.raises(InputError, match="data.high"):
        load_config(None, ["data.low=2", "data.high=1"])
    with pytest.raises(InputError, match="must look like"):
        load_config(None, ["menu.steps"])
    with pytest.raises(InputError, match="data.path"):
        load_config(None, ["data.kind=file"])
    bad = tmp_path / "c.yaml"
    bad.write_text("menu: [1, 2")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)


def test_mixed_bundling_start_earns_at_least_item_pricing():
    from bundleflow.baselines.items import item_pricing

    cfg = load_config(None, ["menu.n_elements=6", "menu.n_support=2", "menu.steps=5", "menu.outside=item_prices"])
    flow = train_flow(4, steps=50, batch=64, hidden=16)
    # XOR bidders who want one item each (values skewed per item): item pricing beats bundling here
    g = torch.Generator().manual_seed(3)
    atoms = torch.eye(4, dtype=torch.bool)[None].expand(500, 4, 4).clone()
    values = torch.rand(500, 4, generator=g, dtype=torch.float64) ** 3 * torch.tensor(
        [1.0, 2.0, 3.0, 4.0], dtype=torch.float64
    )
    tr, va = XORValuation(atoms, values).split(400)
    t = MenuTrainer(flow, tr, va, cfg.menu, torch.device("cpu"))
    t.initialise()
    ip = item_pricing(tr)
    assert t.coverage["start"] == "grand bundle"  # a la carte kept at the item-pricing fit
    torch.testing.assert_close(t.item_prices.cpu(), ip.item_prices.double(), rtol=2e-6, atol=1e-6 * t.cap)
    start = evaluate_menu(t.menu(), tr).revenue
    assert start >= ip.revenue - 1e-4
    before = t.item_prices.clone()
    for _ in range(5):
        t.train_step()
    assert not torch.equal(before, t.item_prices)  # XOR: item prices are learned jointly
    m = t.log_metrics(0.0, 0.0)
    assert 0.0 <= m.a_la_carte_rate <= 1.0 and m.null_rate + m.a_la_carte_rate <= 1.0


@pytest.mark.parametrize("estimator", ["straight_through", "gumbel"])
def test_straight_through_forward_is_the_hard_choice(estimator):
    t = _trainer(tau_end=1e-2, steps=5)
    batch = t.val
    tau = 0.05
    with torch.no_grad():
        rev = float(t.soft_revenue(batch, tau, "straight_through")[0])
    # no noise: the forward value is the exact revenue of the hard choice
    out = evaluate_menu(t.menu(), batch)
    assert rev * t.scale == pytest.approx(out.revenue, rel=1e-4, abs=1e-6)
    soft = float(t.soft_revenue(batch, tau)[0].detach())
    assert abs(soft - rev) > 1e-6  # the relaxation itself differs at this temperature
    # gradients reach the prices through the softmax
    t.opt.zero_grad()
    (-t.soft_revenue(batch, tau, estimator)[0]).backward()
    g = t.params.price_logit.grad
    assert g is not None and torch.isfinite(g).all() and float(g.abs().sum()) > 0
    t.cfg = t.cfg.model_copy(update={"estimator": estimator})
    for _ in range(3):
        assert math.isfinite(t.train_step())


def test_validation_soft_revenue_in_chunks_equals_one_batch(monkeypatch):
    import bundleflow.mechanisms.menu as menu_mod

    t = _trainer(steps=5)
    tau = t.tau(t.step)
    with torch.no_grad():
        whole, _, _, best = t.soft_revenue(t.val, tau, diagnostics=True)
    J, D = best.shape
    monkeypatch.setattr(menu_mod, "VALUE_TABLE_ENTRIES", J * D * 7)  # 7 bidders a chunk
    soft, _, _, best_c = t._validation_soft_revenue()
    assert len(t.val) > 7 and soft == pytest.approx(float(whole), rel=1e-5)
    torch.testing.assert_close(best_c, best)
