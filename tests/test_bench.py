import json

import numpy as np
import pytest
import torch

from bundleflow.errors import InputError
from bundleflow.experiments.bench import run_bench, steps_to_fraction
from bundleflow.training import MenuTrainer
from bundleflow.utils.files import read_jsonl


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
    # paired on the same held-out bidders: the mean difference is the difference of the means
    bf, rn = rows["bundleflow"], rows["rochetnet"]
    assert bf["gain_over_rochetnet"] == pytest.approx(bf["test_revenue"] - rn["test_revenue"], abs=1e-9)
    assert bf["gain_over_rochetnet_se"] >= 0 and "gain_over_rochetnet" not in rn
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == res["rows"]
    assert "| uniform_m2 | bundleflow |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "revenue_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "uniform_m2" / "bundleflow" / "summary.json").is_file()


def test_bench_sittings_fill_one_table(tmp_path):
    args = dict(budget_s=30, quick=True, log=lambda *_: None)
    run_bench(tmp_path, ["uniform_m2"], ["grand_bundling"], **args)
    first = run_bench(tmp_path, ["additive_2"], ["grand_bundling", "welfare_bound"], **args)["rows"]
    assert [(r["setting"], r["method"]) for r in first] == [
        ("uniform_m2", "grand_bundling"),
        ("additive_2", "grand_bundling"),
        ("additive_2", "welfare_bound"),
        ("additive_2", "known_optimum"),
    ]
    assert "| uniform_m2 | grand_bundling |" in (tmp_path / "results.md").read_text()
    # a method run again replaces its row in place, it does not add to it; a method not rerun
    # keeps its row
    again = run_bench(tmp_path, ["additive_2"], ["grand_bundling"], **args)["rows"]
    assert [(r["setting"], r["method"]) for r in again] == [
        ("uniform_m2", "grand_bundling"),
        ("additive_2", "grand_bundling"),
        ("additive_2", "welfare_bound"),
        ("additive_2", "known_optimum"),
    ]
    # another budget: the earlier table is not mixed in
    said: list[str] = []
    other = run_bench(tmp_path, ["additive_2"], ["grand_bundling"], **{**args, "budget_s": 31, "log": said.append})
    assert {r["setting"] for r in other["rows"]} == {"additive_2"} and any("replaced" in s for s in said)
    kept = json.loads((tmp_path / "results.replaced.json").read_text())  # the earlier table, kept whole
    assert kept["budget_s"] != 31 and [(r["setting"], r["method"]) for r in kept["rows"]] == [
        (r["setting"], r["method"]) for r in again
    ]
    (tmp_path / "results.json").write_text("{not json")
    assert {r["setting"] for r in run_bench(tmp_path, ["additive_2"], ["grand_bundling"], **args)["rows"]} == {
        "additive_2"
    }
    assert (tmp_path / "results.replaced.json").read_text() == "{not json"


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


def test_paper_preset_draws_its_data_with_the_cats_stream_and_resumes(tmp_path, monkeypatch):
    from conftest import interrupt_at

    from bundleflow.cats.generator import generate
    from bundleflow.cats.io import load_valuations

    args = dict(budget_s=60, quick=True, log=lambda *_: None, preset="paper")
    # first sitting: Ctrl-C at step 20 of 30
    real = interrupt_at(monkeypatch, 20)
    with pytest.raises(KeyboardInterrupt):
        run_bench(tmp_path, ["paper_regions_50"], ["bundleflow", "item_pricing"], **args)
    data = tmp_path / "data" / "regions_50_1000_rand48_seed1.npz"
    v = load_valuations(data)
    assert len(v) == 1000 and v.n_items == 50
    # the first rows are CATS's rand48 draws (regenerated from their seeds)
    with np.load(data, allow_pickle=False) as z:
        seeds, seeds2 = z["seeds"][:3], z["seeds2"][:3]
    again, _ = generate("regions", 50, 3, cats_seeds=(seeds, seeds2))
    assert torch.equal(again.values.float(), v.values[:3].float()) and torch.equal(
        again.atoms, v.atoms[:3]
    )  # float32 in the file
    folder = tmp_path / "paper_regions_50" / "bundleflow"
    assert [m["step"] for m in read_jsonl(folder / "metrics.jsonl")][-1] == 20
    # second sitting: continues from step 20, to 30
    monkeypatch.setattr(MenuTrainer, "train_step", real)
    res = run_bench(tmp_path, ["paper_regions_50"], ["bundleflow", "item_pricing"], **args)
    assert [m["step"] for m in read_jsonl(folder / "metrics.jsonl")] == [0, 10, 20, 30]
    assert [r["method"] for r in res["rows"]] == ["bundleflow", "item_pricing"] and res["preset"] == "paper"
    assert (tmp_path / "revenue_vs_steps.png").read_bytes()[:4] == b"\x89PNG"
    # third: the finished cell is read back, not trained again
    said: list[str] = []
    stamp = (folder / "summary.json").stat().st_mtime_ns
    res2 = run_bench(tmp_path, ["paper_regions_50"], ["bundleflow"], **{**args, "log": said.append})
    assert res2["rows"][0]["test_revenue"] == res["rows"][0]["test_revenue"]
    assert (folder / "summary.json").stat().st_mtime_ns == stamp and any("done earlier" in s for s in said)
    # another budget is another config: an error, unless resume=False
    with pytest.raises(InputError, match="different config"):
        run_bench(tmp_path, ["paper_regions_50"], ["bundleflow"], **{**args, "budget_s": 61})
    run_bench(tmp_path, ["paper_regions_50"], ["bundleflow"], **{**args, "budget_s": 61}, resume=False)
    assert (folder / "summary.json").stat().st_mtime_ns != stamp


def test_bench_rejects_an_unknown_preset(tmp_path):
    with pytest.raises(InputError, match="unknown preset"):
        run_bench(tmp_path, None, preset="papers", quick=True)


def test_paper_figures_by_hand():
    from bundleflow.experiments.bench import markdown, paper_figures

    def row(setting, method, rev, s99=None):
        return {
            "setting": setting,
            "method": method,
            "test_revenue": rev,
            "test_revenue_se": 1.0,
            "train_seconds": 1.0,
            "steps": None,
            "steps_to_99pct": s99,
        }

    rows = [
        {**row("a", "bundleflow", 300.0, 50), "gain_over_rochetnet": 100.0, "gain_over_rochetnet_se": 10.0},
        row("a", "rochetnet", 200.0, 100),
        row("a", "bundle_rochetnet", 150.0, 400),
        row("a", "item_pricing", 250.0),
        row("a", "welfare_bound", 900.0),  # a bound, not a baseline
        {**row("a", "bundleflow_mixed", 280.0), "gain_over_item_pricing": 30.0, "gain_over_item_pricing_se": 7.5},
        row("b", "item_pricing", 10.0),  # no BundleFlow row: no figures
    ]
    (fig,) = paper_figures(rows)
    assert fig["best_baseline"] == "item_pricing" and fig["ratio_to_best"] == pytest.approx(1.2)
    assert fig["ratio_to_rochetnet"] == pytest.approx(1.5) and fig["ratio_to_item_pricing"] == pytest.approx(1.2)
    assert fig["speedup_vs_bundle_rochetnet"] == pytest.approx(8.0)
    text = markdown({"preset": "paper", "rows": rows, "checks": []})
    assert fig["mixed_gain_over_item_pricing"] == 30.0 and fig["mixed_gain_over_item_pricing_se"] == 7.5
    assert "| a | 1.20 (item_pricing) |" in text and "| 8.00 |" in text and "+30 +- 7.5 (+4.0 s.e.)" in text
    assert fig["gain_over_rochetnet"] == 100.0 and "| +100 +- 10 (+10.0 s.e.) |" in text
    assert "RochetNet on 1 of 1" in text and "item pricing on 1 of 1" in text and "> 3 s.e. on 1 of 1" in text
    assert "1.20 (item_pricing)" not in markdown({"preset": "default", "rows": rows, "checks": []})


def test_bench_over_seeds_runs_each_seed_and_combines_them(tmp_path):
    from bundleflow.experiments.bench import markdown

    args = dict(budget_s=30, quick=True, log=lambda *_: None)
    methods = ["bundleflow", "rochetnet", "item_pricing"]
    res = run_bench(tmp_path, ["uniform_m2"], methods, seeds=[0, 1], **args)
    rows = {r["method"]: r for r in res["rows"]}
    assert res["seeds"] == [0, 1] and list(rows) == methods
    for method in ("bundleflow", "rochetnet"):
        r = rows[method]
        runs = [
            json.loads((tmp_path / "uniform_m2" / method / f"seed{k}" / "summary.json").read_text()) for k in (0, 1)
        ]
        revs = [s["learned"]["test_revenue"] for s in runs]
        ses = [s["learned"]["test_revenue_se"] for s in runs]
        assert [e["test_revenue"] for e in r["per_seed"]] == revs and r["seeds"] == [0, 1]
        # two seeds: s.e. across seeds = sd / sqrt(2) = |a - b| / 2
        assert r["test_revenue"] == pytest.approx((revs[0] + revs[1]) / 2, abs=1e-12)
        assert r["test_revenue_se_across_seeds"] == pytest.approx(abs(revs[0] - revs[1]) / 2, abs=1e-12)
        assert r["test_revenue_se"] == pytest.approx((ses[0] + ses[1]) / 2, abs=1e-12)
        assert r["steps"] == 30
        # the seed reached the run: different seeds, different menus
        menus = [(tmp_path / "uniform_m2" / method / f"seed{k}" / "menu.json").read_text() for k in (0, 1)]
        assert menus[0] != menus[1]
        assert "seed: 1" in (tmp_path / "uniform_m2" / method / "seed1" / "config.yaml").read_text()
    # paired seed by seed; the mean of paired gains is the difference of the mean revenues
    bf = rows["bundleflow"]
    assert bf["gain_over_rochetnet"] == pytest.approx(bf["test_revenue"] - rows["rochetnet"]["test_revenue"], abs=1e-9)
    gains = [e["gain_over_rochetnet"] for e in bf["per_seed"]]
    assert bf["gain_over_rochetnet_se_across_seeds"] == pytest.approx(abs(gains[0] - gains[1]) / 2, abs=1e-12)
    assert "test_revenue_se_across_seeds" not in rows["item_pricing"]
    md = (tmp_path / "results.md").read_text()
    assert "± s.e. across seeds | seeds |" in md and "| uniform_m2 | bundleflow |" in md and "| 0,1 |" in md
    assert markdown(res) == md
    assert (tmp_path / "revenue_vs_steps.png").read_bytes()[:4] == b"\x89PNG"
    # a second sitting reads every seed back; a single-seed sitting replaces the seeded table
    said: list[str] = []
    again = run_bench(tmp_path, ["uniform_m2"], methods, seeds=[0, 1], **{**args, "log": said.append})

    def strip(rows):
        return [
            {k: v for k, v in r.items() if r["method"] in ("bundleflow", "rochetnet") and k != "wall_seconds"}
            for r in rows
        ]

    assert strip(again["rows"]) == strip(res["rows"])
    assert sum("done earlier" in s for s in said) == 4
    said.clear()
    run_bench(tmp_path, ["additive_2"], ["grand_bundling"], **{**args, "log": said.append})
    assert any("--seeds; replaced" in s for s in said)
    for bad in ([], [0, 0], [-1]):
        with pytest.raises(InputError, match="seeds"):
            run_bench(tmp_path, ["uniform_m2"], ["rochetnet"], seeds=bad, **args)


def test_over_seeds_and_mean_curve_by_hand():
    from bundleflow.experiments.bench import markdown, mean_curve, over_seeds

    def seed_row(rev, se, steps, gain):
        return {
            "setting": "s",
            "method": "bundleflow",
            "test_revenue": rev,
            "test_revenue_se": se,
            "train_seconds": 10.0,
            "wall_seconds": 12.0,
            "steps": steps,
            "steps_to_99pct": 100,
            "stopped_by_time_budget": steps < 300,
            "gain_over_item_pricing": gain,
            "gain_over_item_pricing_se": 1.0,
        }

    r = over_seeds(
        [seed_row(1.0, 0.1, 300, 2.0), seed_row(2.0, 0.2, 200, 4.0), seed_row(3.0, 0.3, 301, None)], [0, 1, 2]
    )
    assert r["test_revenue"] == pytest.approx(2.0) and r["test_revenue_se"] == pytest.approx(0.2)
    assert r["test_revenue_se_across_seeds"] == pytest.approx(1.0 / 3**0.5)  # sd 1 over sqrt(3)
    assert r["steps"] == 267 and r["stopped_by_time_budget"]
    assert r["gain_over_item_pricing"] is None  # one seed lacks it: no mean of the others
    one = over_seeds([seed_row(1.0, 0.1, 300, 2.0)], [5])
    assert one["test_revenue_se_across_seeds"] is None and one["gain_over_item_pricing_se_across_seeds"] is None
    assert "| 1.0000 | 0.1 | - | 5 |" in markdown({"seeds": [5], "rows": [one], "checks": []})  # not "0"
    r2 = over_seeds([seed_row(1.0, 0.1, 300, 2.0), seed_row(2.0, 0.2, 300, 4.0)], [3, 7])
    assert r2["gain_over_item_pricing"] == 3.0 and r2["gain_over_item_pricing_se_across_seeds"] == 1.0
    assert [e["seed"] for e in r2["per_seed"]] == [3, 7] and not r2["stopped_by_time_budget"]
    # seeds that agree to the last digit: their value and exactly 0 across seeds (the mean of three
    # copies of 1558.4864551315309 differs from it in the last bit, and its spread is not 0)
    v = 1558.4864551315309
    assert sum([v, v, v]) / 3 != v
    same = over_seeds([seed_row(v, 7.6, 300, 0.0), seed_row(v, 7.6, 300, 0.0), seed_row(v, 7.6, 300, 0.0)], [0, 1, 2])
    assert same["test_revenue"] == v and same["test_revenue_se_across_seeds"] == 0.0
    assert same["gain_over_item_pricing_se_across_seeds"] == 0.0
    xs, ys, band = mean_curve([[(0, 1.0, 1.0), (10, 3.0, 2.0)], [(0, 2.0, 3.0), (10, 5.0, 4.0), (20, 9.0, 5.0)]], 1)
    assert xs == [1.5, 4.0] and ys == [2.0, 3.0] and band == [1.0, 1.0]
    assert mean_curve([[(0, 1.0, 1.0)]], 0) == ([0], [1.0], [0.0]) and mean_curve([], 0) == ([], [], [])


def test_bench_cli_seeds_errors_are_one_line(tmp_path):
    from conftest import assert_one_line_error, cli

    assert_one_line_error(
        cli("bench", "--preset", "multi", "--seeds", "0,0", "--out", tmp_path / "m"), "repeats a seed"
    )
    assert_one_line_error(cli("bench", "--quick", "--seeds", "2-0", "--out", tmp_path / "b"), "runs backwards")
    assert_one_line_error(cli("bench", "--quick", "--seeds", "x", "--out", tmp_path / "b"), "seeds")


def test_bench_fits_registry_families_and_pairs_them_with_item_pricing(tmp_path):
    """``tariffs`` comes from the family registry: one row per setting where it applies (XOR
    bidders), its gain over the item-pricing row paired on the same held-out bidders; over
    seeds, combined like the learned cells."""
    said: list[str] = []
    args = dict(budget_s=5, quick=True, log=said.append)
    res = run_bench(tmp_path, ["uniform_m2", "additive_2"], ["tariffs", "item_pricing"], seeds=[0, 1], **args)
    rows = {(r["setting"], r["method"]): r for r in res["rows"]}
    assert ("additive_2", "tariffs") not in rows and ("additive_2", "item_pricing") in rows
    assert "additive_2: skip tariffs (needs XOR bidders (atoms))" in said
    t, ip = rows[("uniform_m2", "tariffs")], rows[("uniform_m2", "item_pricing")]
    assert t["seeds"] == [0, 1] and len(t["per_seed"]) == 2
    # the paired mean gain is the difference of the means (same bidders, same item prices)
    for e in t["per_seed"]:
        assert e["gain_over_item_pricing"] == pytest.approx(e["test_revenue"] - ip["test_revenue"], abs=1e-9)
    assert t["gain_over_item_pricing"] == pytest.approx(t["test_revenue"] - ip["test_revenue"], abs=1e-9)
    assert t["gain_over_item_pricing"] >= -0.02  # never far below its floor (validation keeps item pricing)
    assert "| uniform_m2 | tariffs |" in (tmp_path / "results.md").read_text()
