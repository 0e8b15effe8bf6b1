import pytest
import torch

from bundleflow.experiments.config import load_config
from bundleflow.experiments.runner import run_training
from bundleflow.mechanisms.menu import expected_values
from bundleflow.mechanisms.rochetnet import BundleRochetNetMenu, RochetNetMenu
from bundleflow.valuations.generators import additive_uniform, uniform_atoms, unit_demand_uniform
from bundleflow.valuations.items import AdditiveValuation


def test_nested_lottery_has_the_allocation_as_marginals_and_additive_value():
    torch.manual_seed(0)
    m = RochetNetMenu(5, 4, cap=3.0)
    with torch.no_grad():
        m.a.normal_(0, 2)
    b, p = m.lottery()
    assert b.shape == (5, 5, 4)
    torch.testing.assert_close(p.sum(1), torch.ones(5))
    torch.testing.assert_close((b * p[..., None]).sum(1), m.allocation())
    # nested: every support contains the previous one
    assert bool((b[:, 1:] >= b[:, :-1]).all())
    v = AdditiveValuation(torch.rand(7, 4).double())
    torch.testing.assert_close(expected_values(m.menu(), v), v.item_values @ m.allocation().double().T.detach())


def test_unit_demand_lottery_and_hand_case():
    m = RochetNetMenu(1, 2, cap=1.0, unit_demand=True)
    with torch.no_grad():
        m.a.copy_(torch.tensor([[0.0, 0.0]]))
    b, p = m.lottery()
    # softmax([0, 0, 0]) -> each item 1/3, nothing 1/3
    torch.testing.assert_close(p, torch.full((1, 3), 1 / 3))
    assert b[0].tolist() == [[1, 0], [0, 1], [0, 0]]


def test_bundle_rochetnet_weights_are_likelihood_ratios():
    br = BundleRochetNetMenu(2, 3, n_support=16, cap=1.0, seed=1)
    br.place(torch.tensor([[1.0, 0, 1], [1, 1, 1]]), torch.Generator().manual_seed(0), corner=0.9)
    _, p = br.lottery()
    torch.testing.assert_close(p, torch.full((2, 16), 1 / 16))  # at the sampling point: uniform
    with torch.no_grad():
        br.a.zero_()  # x = 1/2 everywhere
    br.resample()
    b = br.support
    has = b[0, :, 1] > 0
    assert 0 < int(has.sum()) < 16  # seeded: both kinds of support present
    with torch.no_grad():
        br.a[0, 1] = 1.0  # item 1 now more likely: x = sigmoid(1)
        _, p = br.lottery()
    ratio = torch.sigmoid(torch.tensor(1.0)) / 0.5, (1 - torch.sigmoid(torch.tensor(1.0))) / 0.5
    w = torch.where(has, ratio[0], ratio[1])
    torch.testing.assert_close(p[0], w / w.sum())
    torch.testing.assert_close(p.sum(1), torch.ones(2))


@pytest.mark.parametrize(
    "kind, low, optimum",
    [("additive", 0.52, 0.5491), ("unit_demand", 0.36, 0.3843)],
)
def test_rochetnet_learns_two_item_uniform_menu(tmp_path, kind, low, optimum):
    """Short run; the full known-answer check (>= 0.545 / >= 0.380) lives in `bundleflow bench`."""
    cfg = load_config(
        None,
        [
            f"data.kind={kind}",
            "data.n_items=2",
            "data.n_train=3000",
            "data.n_val=1000",
            "data.n_test=20000",
            "menu.model=rochetnet",
            "menu.n_elements=32",
            "menu.steps=300",
            "menu.batch=1024",
            "menu.log_every=100",
            "menu.tau_start=0.02",
            "menu.tau_end=0.002",
        ],
    )
    s = run_training(cfg, tmp_path / kind, resume=False, progress=False, log=lambda *_: None)
    rev = s["learned"]["test_revenue"]
    assert low <= rev <= optimum + 4 * s["learned"]["test_revenue_se"]


def test_bundle_rochetnet_runs_and_resumes_on_xor(tmp_path):
    ov = [
        "data.n_items=4",
        "data.n_atoms=3",
        "data.n_train=300",
        "data.n_val=200",
        "data.n_test=500",
        "menu.model=bundle_rochetnet",
        "menu.n_elements=6",
        "menu.n_support=8",
        "menu.steps=40",
        "menu.log_every=20",
        "menu.resample_every=10",
    ]
    a = run_training(load_config(None, ov), tmp_path / "a", resume=False, progress=False, log=lambda *_: None)
    assert a["learned"]["model"] == "bundle_rochetnet"
    assert a["learned"]["test_revenue"] >= 0.9 * max(
        r["test_revenue"] for r in a["baselines"] if r["method"] == "grand_bundling"
    )
    # interrupted after 20 steps, then resumed: identical result
    half = load_config(None, ov[:-3] + ["menu.steps=20", "menu.log_every=20", "menu.resample_every=10"])
    run_training(half, tmp_path / "b", resume=False, progress=False, log=lambda *_: None)
    import yaml

    (tmp_path / "b" / "config.yaml").write_text(
        yaml.safe_dump(load_config(None, ov).model_dump(mode="json"), sort_keys=False)
    )
    b = run_training(load_config(None, ov), tmp_path / "b", resume=True, progress=False, log=lambda *_: None)
    assert b["learned"]["test_revenue"] == pytest.approx(a["learned"]["test_revenue"], abs=1e-9)


def test_generators_used_here_are_seeded():
    assert torch.equal(additive_uniform(5, 2, seed=3).item_values, additive_uniform(5, 2, seed=3).item_values)
    assert torch.equal(unit_demand_uniform(5, 2, seed=3).item_values, unit_demand_uniform(5, 2, seed=3).item_values)
    assert torch.equal(uniform_atoms(5, 3, 2, 0.5, seed=3).values, uniform_atoms(5, 3, 2, 0.5, seed=3).values)
