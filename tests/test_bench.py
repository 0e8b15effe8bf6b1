import json

import pytest

from bundleflow.errors import InputError
from bundleflow.experiments.bench import run_bench, steps_to_fraction


def test_steps_to_fraction():
    ms = [
        {"step": 0, "hard_revenue": 0.5},
        {"step": 10, "hard_revenue": 0.985},
        {"step": 20, "hard_revenue": 0.99},
        {"step": 30, "hard_revenue": 1.0},
    ]
    assert steps_to_fraction(ms) == 20
    assert steps_to_fraction(ms, 0.5) == 0
    assert steps_to_fraction([]) is None


def test_quick_bench_writes_results_table_and_plot(tmp_path):
    res = run_bench(
        tmp_path,
        ["uniform_m2"],
        ["bundleflow", "rochetnet", "grand_bundling", "welfare_bound"],
        budget_s=30,
        quick=True,
        log=lambda *_: None,
    )
    methods = [r["method"] for r in res["rows"]]
    assert methods == ["bundleflow", "rochetnet", "grand_bundling", "welfare_bound"]
    rows = {r["method"]: r for r in res["rows"]}
    wb = rows["welfare_bound"]["test_revenue"]
    for m in ("bundleflow", "rochetnet", "grand_bundling"):
        assert 0 < rows[m]["test_revenue"] <= wb
        assert rows[m]["test_revenue_se"] > 0
    assert rows["bundleflow"]["steps"] == 30 and rows["bundleflow"]["steps_to_99pct"] is not None
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == res["rows"]
    assert "| uniform_m2 | bundleflow |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "revenue_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "uniform_m2" / "bundleflow" / "summary.json").is_file()


def test_bench_time_budget_stops_training(tmp_path):
    res = run_bench(tmp_path, ["uniform_m2"], ["rochetnet"], budget_s=1e-9, quick=True, log=lambda *_: None)
    r = res["rows"][0]
    assert r["stopped_by_time_budget"] and r["steps"] == 1


def test_bench_rejects_unknown_names(tmp_path):
    with pytest.raises(InputError, match="unknown setting"):
        run_bench(tmp_path, ["nope"], quick=True)
    with pytest.raises(InputError, match="unknown method"):
        run_bench(tmp_path, ["uniform_m2"], ["magic"], quick=True)
    with pytest.raises(InputError, match="budget"):
        run_bench(tmp_path, ["uniform_m2"], ["rochetnet"], budget_s=0, quick=True)
    assert not (tmp_path / "results.json").exists()
