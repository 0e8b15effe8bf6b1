"""Re-seeding unused elements (``menu.reseed_every``) and the batched exact price search it uses."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_TRAIN, assert_one_line_error, cli, interrupt_at
from hypothesis import given, settings
from hypothesis import strategies as st

from bundleflow.baselines.prices import best_price_given_outside, best_prices_given_outside
from bundleflow.flow import train_flow
from bundleflow.mechanisms import BundleFlowMenu, evaluate_menu
from bundleflow.mechanisms.menu import TIE_TOL
from bundleflow.training.reseeding import candidate_bundles, greedy_bundles, reseed_unused, reset_moments
from bundleflow.valuations import XORValuation


def test_best_prices_by_hand():
    thr = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [2.0, 1.0, -1.0]], dtype=torch.float64)
    pay = torch.tensor([0.0, 0.0, 2.5], dtype=torch.float64)
    p, r = best_prices_given_outside(thr, torch.zeros(3, dtype=torch.float64), 10.0)
    # row 0: p=3 -> 3, p=2 -> 4, p=1 -> 3; row 2: p=2 -> 2, p=1 -> 2 (a plateau: the lower price)
    assert p.tolist() == [2.0, 2.0, 1.0] and r.tolist() == [4.0, 4.0, 2.0]
    p, r = best_prices_given_outside(thr[:1], pay, 10.0)
    assert (p.item(), r.item()) == (2.0, 6.5)  # bidder 3 keeps paying 2.5 elsewhere
    p, r = best_prices_given_outside(thr[:1], torch.zeros(3, dtype=torch.float64), 1.5)
    assert (p.item(), r.item()) == (1.0, 3.0)  # cap 1.5: 1.5 x 2 = 3 ties 1 x 3 = 3, the lower price
    p, r = best_prices_given_outside(torch.zeros(2, 0, dtype=torch.float64), torch.zeros(0), 1.0)
    assert p.tolist() == [1.0, 1.0] and r.tolist() == [0.0, 0.0]  # nobody to sell to


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 12).flatmap(
        lambda B: st.tuples(
            st.lists(st.lists(st.integers(-4, 8), min_size=B, max_size=B), min_size=1, max_size=5),
            st.lists(st.integers(0, 4), min_size=B, max_size=B),
            st.integers(1, 8),
            st.integers(1, 3),
        )
    )
)
def test_best_prices_equal_one_at_a_time(case):
    rows, pay, cap, chunk = case
    thr = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), -1) / 2
    pay_t = torch.tensor(pay, dtype=torch.float64) / 2
    p, r = best_prices_given_outside(thr, pay_t, cap / 2, chunk=chunk)
    for c in range(len(rows)):
        assert (p[c].item(), r[c].item()) == best_price_given_outside(thr[c], pay_t, cap / 2)


@pytest.fixture(scope="module")
def flow4():
    return train_flow(4, steps=300, batch=256, hidden=32, seed=0, device="cpu")


def two_kinds():
    """10 bidders want item 0 (value 2), 5 want items 1 and 2 together (value 3): ``[15]`` XOR."""
    atoms = torch.zeros(15, 1, 4)
    atoms[:10, 0, 0] = 1
    atoms[10:, 0, 1:3] = 1
    values = torch.tensor([2.0] * 10 + [3.0] * 5, dtype=torch.float64)[:, None]
    return XORValuation(atoms, values)


def grand_menu(flow4, price: float):
    model = BundleFlowMenu(flow4, n_elements=3, n_support=2, cap=4.0)
    g = torch.Generator().manual_seed(0)
    model.place(torch.ones(3, 4), g, corner=0.9)
    with torch.no_grad():
        model.price_logit.copy_(torch.logit(torch.tensor([price, 3.999, 3.999]) / 4.0))
    assert (model.menu().bundles == 1).all()  # the flow rounds every support to the grand bundle
    return model


def test_reseed_moves_unused_elements_to_what_the_unserved_want(flow4):
    sample = two_kinds()
    model = grand_menu(flow4, 3.9)  # nobody buys (values 2 and 3 < 3.9): all three elements unused
    assert evaluate_menu(model.menu(), sample).revenue == 0
    g = torch.Generator().manual_seed(1)
    report = reseed_unused(model, sample, (None, None), None, g, 0.9, TIE_TOL * 4, max_new=2)
    assert report["unused"] == 3 and len(report["moved"]) == 2
    menu = model.menu()
    offered = {tuple(menu.bundles[j, 0].int().tolist()): float(menu.prices[j]) for j in report["moved"]}
    assert offered.keys() == {(1, 0, 0, 0), (0, 1, 1, 0)}
    assert offered[(1, 0, 0, 0)] == pytest.approx(2.0, rel=1e-5) and offered[(0, 1, 1, 0)] == pytest.approx(
        3.0, rel=1e-5
    )
    # exact: 10 x 2 + 5 x 3 = 35 over 15 bidders, on the sample and in the exact evaluation
    assert report["sample_revenue_before"] == 0 and report["sample_revenue_after"] == pytest.approx(35 / 15)
    assert evaluate_menu(menu, sample).revenue == pytest.approx(35 / 15, rel=1e-5)
    (kept,) = set(range(3)) - set(report["moved"])
    assert (menu.bundles[kept] == 1).all() and float(menu.prices[kept]) > 3.8  # the third is untouched


def test_reseed_respects_min_buyers_and_max_new(flow4):
    sample = two_kinds()
    model = grand_menu(flow4, 3.9)
    g = torch.Generator().manual_seed(1)
    report = reseed_unused(model, sample, (None, None), None, g, 0.9, TIE_TOL * 4, max_new=5, min_buyers=6)
    menu = model.menu()
    assert [tuple(menu.bundles[j, 0].int().tolist()) for j in report["moved"]] == [(1, 0, 0, 0)]  # 5 < 6 buyers
    assert report["sample_revenue_after"] == pytest.approx(20 / 15)
    model = grand_menu(flow4, 3.9)
    report = reseed_unused(model, sample, (None, None), None, g, 0.9, TIE_TOL * 4, max_new=1)
    assert len(report["moved"]) == 1 and report["sample_revenue_after"] == pytest.approx(20 / 15)  # the larger gain


def test_reseed_with_nothing_to_gain_changes_nothing(flow4):
    sample = two_kinds()
    model = grand_menu(flow4, 1.5)  # all 15 buy the grand bundle at 1.5; item 0 alone or {1, 2} gain nothing
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    report = reseed_unused(model, sample, (None, None), None, g, 0.9, TIE_TOL * 4, max_new=2)
    assert report["unused"] == 2 and report["moved"] == []
    assert report["sample_revenue_after"] == report["sample_revenue_before"] == pytest.approx(1.5, rel=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_candidates_are_the_unserved_atoms_first_then_coarser_bundles():
    sample = two_kinds()
    g = torch.Generator().manual_seed(0)
    unserved = torch.arange(15) >= 10
    cand, tier = candidate_bundles(sample, unserved, g, 0)
    # distinct valued atoms (padding dropped), unserved first; then the grand bundle (a bidder's
    # one-atom unions are atoms already offered, so they are not repeated)
    assert cand.tolist() == [[0, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert tier.tolist() == [0, 0, 1]


def test_greedy_rescores_after_each_pick():
    # 3 bidders; values of 3 candidates. Alone, A earns 2 x 2 = 4, B 2 x 2 = 4 and C 3 (one buyer
    # at 3). A and B serve the same two bidders: after A, B adds nothing, C still adds 3.
    values = torch.tensor([[2.0, 2.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    zero = torch.zeros(3, dtype=torch.float64)
    picked = greedy_bundles(values, torch.zeros(3, dtype=torch.long), zero, zero, 10.0, k=2, min_buyers=1)
    assert picked.tolist() == [0, 2]  # ranked once, B would have been second
    # a coarse candidate D (3 to everyone: 9 alone, the most) comes after every fine one that
    # still gains: after A and C (revenue 7) it raises everyone to 3 (gain 2)
    values = torch.cat([values, torch.tensor([[3.0, 3.0, 3.0]], dtype=torch.float64)])
    tier = torch.tensor([0, 0, 0, 1])
    assert greedy_bundles(values, tier, zero, zero, 10.0, k=3, min_buyers=1).tolist() == [0, 2, 3]
    assert greedy_bundles(values, tier, zero, zero, 10.0, k=2, min_buyers=1).tolist() == [0, 2]
    assert greedy_bundles(values, tier, zero, zero, 10.0, k=3, min_buyers=2).tolist() == [0, 3]


def test_reset_moments_zeroes_only_the_moved_rows(flow4):
    model = grand_menu(flow4, 2.0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.1)
    (model.prices().sum() + model.z.sum() + model.w_logit.sum()).backward()
    opt.step()
    reset_moments(opt, model, torch.tensor([1]))
    for p in (model.z, model.w_logit, model.price_logit):
        m = opt.state[p]["exp_avg"]
        assert (m[1] == 0).all() and (m[0] != 0).all() and (m[2] != 0).all()


def test_reseeding_in_a_run_is_logged_and_resumes_identically(tmp_path, monkeypatch):
    args = [*TINY_TRAIN, "menu.init=random", "menu.reseed_every=2", "menu.n_elements=8", "menu.steps=6"]
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli("train", "--out", full, *args).exit_code == 0
    lines = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    logged = [x for x in lines if "reseeded" in x]
    assert [x["step"] for x in logged] == [0, 2, 4, 6]
    assert logged[0]["reseeded"] == 0 and all(a["reseeded"] <= b["reseeded"] for a, b in zip(logged, logged[1:]))
    assert logged[-1]["reseeded"] > 0  # the random start leaves elements unused that the data can use
    # killed after the step-2 checkpoint (which follows the step-2 re-seeding), then resumed
    interrupt_at(monkeypatch, 2)
    assert cli("train", "--out", part, *args).exit_code == 130
    monkeypatch.undo()
    assert cli("train", "--out", part, *args).exit_code == 0
    a, b = (json.loads((d / "summary.json").read_text())["learned"] for d in (full, part))
    assert a["val_revenue_best"] == b["val_revenue_best"] and a["test_revenue"] == b["test_revenue"]
    assert a["learning"] == b["learning"]


def test_reseeding_is_for_bundleflow_only(tmp_path):
    r = cli("train", "--out", tmp_path / "r", *TINY_TRAIN, "menu.model=rochetnet", "menu.reseed_every=2")
    assert_one_line_error(r, "reseed_every", "rochetnet")
