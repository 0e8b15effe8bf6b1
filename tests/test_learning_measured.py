"""Stage 2's learning is measured: which elements moved, distinct bundles, gain over the start."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import TINY_TRAIN, cli, interrupt_at

from bundleflow.errors import InputError
from bundleflow.mechanisms import Menu, allocation_changed, distinct_bundles, evaluate_menu
from bundleflow.training import learning_summary, paired_gain
from bundleflow.valuations import AdditiveValuation


def _menu(bundles, probs, prices=None):
    b = torch.tensor(bundles, dtype=torch.float32)
    p = torch.tensor(probs, dtype=torch.float64)
    return Menu(b, p, torch.ones(b.shape[0], dtype=torch.float64) if prices is None else torch.tensor(prices))


START = _menu([[[1, 0], [1, 0]], [[0, 1], [1, 1]], [[1, 1], [1, 1]]], [[0.5, 0.5], [0.3, 0.7], [0.5, 0.5]])


def test_allocation_changed_by_bundle_or_probability_not_by_price():
    assert allocation_changed(START, START).tolist() == [False, False, False]
    moved = _menu(
        [[[1, 0], [0, 0]], [[0, 1], [1, 1]], [[1, 1], [1, 1]]],  # element 0: second support's bundle flipped
        [[0.5, 0.5], [0.32, 0.68], [0.505, 0.495]],  # element 1 by 0.02 > 0.01; element 2 by 0.005
        [9.0, 9.0, 9.0],  # prices are not allocations
    )
    assert allocation_changed(moved, START).tolist() == [True, True, False]
    assert allocation_changed(moved, START, prob_tol=0.001).tolist() == [True, True, True]
    with pytest.raises(InputError, match="cannot be compared"):
        allocation_changed(_menu([[[1, 0]]], [[1.0]]), START)


def test_distinct_bundles_counts_offered_bundles_once():
    assert distinct_bundles(START) == 3  # {1,0}, {0,1}, {1,1}
    sure = _menu([[[1, 0], [0, 1]], [[1, 0], [1, 0]]], [[1.0, 0.0], [0.5, 0.5]])
    assert distinct_bundles(sure) == 1  # {0,1} has probability 0: not offered


def test_paired_gain_by_hand():
    gain, se = paired_gain(torch.tensor([1.0, 2.0, 3.0, 6.0]), torch.tensor([1.0, 1.0, 1.0, 1.0]))
    # differences 0, 1, 2, 5: mean 2, sample sd sqrt(14/3), se sqrt(14/3)/2
    assert gain == 2.0 and se == pytest.approx((14 / 3) ** 0.5 / 2)


def test_learning_summary_is_exact_and_paired():
    test = AdditiveValuation(torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.6], [0.1, 0.1]]))
    start = _menu([[[1, 0]], [[0, 1]]], [[1.0], [1.0]], [0.5, 0.5])
    kept = _menu([[[1, 0]], [[1, 1]]], [[1.0], [1.0]], [0.5, 1.0])
    out = evaluate_menu(kept, test)
    s = learning_summary(kept, {"menu": start.to_tensors(), "val_revenue": 0.3}, 0.4, test, out.payment)
    # start: bidders pay 0.5, 0.5, 0.5 (equal utilities: the seller's favourite), 0 -> 0.375
    # kept: 0.5, 1.0 (utility 0 buys), 1.0 (0.2 > 0.1), 0 -> 0.625; paired differences 0, 0.5, 0.5, 0
    assert s["start_test_revenue"] == pytest.approx(0.375) and out.revenue == pytest.approx(0.625)
    assert s["test_gain_over_start"] == pytest.approx(0.25)
    assert s["test_gain_over_start_se"] == pytest.approx(float(torch.tensor([0.0, 0.5, 0.5, 0.0]).std() / 2))
    assert s["allocations_changed"] == 0.5 and s["elements_changed"] == 1
    assert (s["distinct_bundles_start"], s["distinct_bundles"]) == (2, 2)
    assert s["val_gain_over_start"] == pytest.approx(0.1)
    assert learning_summary(kept, None, 0.4, test, out.payment) is None


def test_a_run_logs_and_summarises_learning(tmp_path):
    res = cli("train", "--out", tmp_path / "r", *TINY_TRAIN)
    assert res.exit_code == 0, res.output
    assert "learning:" in res.stdout and "held-out gain over the start" in res.stdout
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 2, 4]
    assert lines[0]["allocations_changed"] == 0.0 and lines[0]["val_gain_over_start"] == 0.0
    for x in lines:
        assert 0.0 <= x["allocations_changed"] <= 1.0 and 1 <= x["distinct_bundles"] <= 4 * 2
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    learned = summary["learned"]
    L = learned["learning"]
    # the held-out gain is exactly the kept menu's held-out revenue minus the start's
    assert L["test_gain_over_start"] == pytest.approx(learned["test_revenue"] - L["start_test_revenue"], abs=1e-12)
    assert L["val_gain_over_start"] == pytest.approx(learned["val_revenue_kept"] - L["start_val_revenue"], abs=1e-12)
    assert lines[0]["hard_revenue"] == pytest.approx(L["start_val_revenue"], abs=1e-12)
    report = (tmp_path / "r" / "report" / "index.html").read_text()
    assert "held-out gain over the start" in report


def test_resume_keeps_the_start(tmp_path, monkeypatch):
    run = tmp_path / "run"
    interrupt_at(monkeypatch, 2)
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 130
    monkeypatch.undo()
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    resumed = json.loads((run / "summary.json").read_text())["learned"]["learning"]
    assert cli("train", "--out", tmp_path / "fresh", *TINY_TRAIN).exit_code == 0
    fresh = json.loads((tmp_path / "fresh" / "summary.json").read_text())["learned"]["learning"]
    assert resumed == fresh  # same seed: the same start, and the same menu after resuming
