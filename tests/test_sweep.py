"""Sweeps (bundleflow.experiments.sweep): grids and seeds as ordinary run folders, read back
when finished, failures isolated, results aggregated over seeds; the Ray executor gives the
same menus as the local one."""

from __future__ import annotations

import json
import math

import pytest
from conftest import TINY_TRAIN, assert_one_line_error, cli

from bundleflow.errors import InputError
from bundleflow.experiments.sweep import SweepSpec, aggregate, parse_axis, parse_seeds, plan, run_sweep

# a tiny single-bidder run without the report (fast); its flow is trained per run
BASE = [*TINY_TRAIN, "menu.steps=6"]


def test_parse_seeds_and_axes():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4] and parse_seeds("0,3,7") == [0, 3, 7]
    assert parse_seeds("2-3,9") == [2, 3, 9]
    for bad in ("a", "3-1", "1,1", "-2"):
        with pytest.raises(InputError, match="seeds"):
            parse_seeds(bad)
    assert parse_axis("menu.lr=0.01,0.02") == ("menu.lr", ["0.01", "0.02"])
    assert parse_axis("gemnet.hidden=[64,64],[32]") == ("gemnet.hidden", ["[64,64]", "[32]"])
    for bad in ("menu.lr", "menu.lr=", "=1,2", "menu.lr=1,1"):
        with pytest.raises(InputError, match="axis"):
            parse_axis(bad)


def test_plan_is_the_grid_times_the_seeds_and_checks_configs_first():
    spec = SweepSpec(base=BASE, axes={"menu.n_elements": ["4", "8"], "menu.lr": ["0.01", "0.02"]}, seeds=[0, 5])
    runs = plan(spec)
    assert len(runs) == 8 and runs[0].folder == "n_elements=4__lr=0.01/seed0"
    assert "menu.seed=5" in runs[1].overrides and "flow.seed=5" in runs[1].overrides
    with pytest.raises(InputError, match="menu.n_elements"):
        plan(SweepSpec(base=BASE, axes={"menu.n_elements": ["4", "-1"]}))


def test_aggregate_over_seeds():
    rows = [
        {"cell": "a", "axis:x": "1", "seed": 0, "test_revenue": 1.0, "test_revenue_se": 0.1},
        {"cell": "a", "axis:x": "1", "seed": 1, "test_revenue": 2.0, "test_revenue_se": 0.3},
        {"cell": "b", "axis:x": "2", "seed": 0, "error": "boom"},
        {"cell": "b", "axis:x": "2", "seed": 1, "test_revenue": 4.0, "test_revenue_se": 0.2},
    ]
    a, b = aggregate(rows, ["x"])
    assert a["test_revenue_mean"] == 1.5 and a["seeds"] == 2 and a["failed"] == 0
    assert a["test_revenue_se_across_seeds"] == pytest.approx(math.sqrt(0.5) / math.sqrt(2))
    assert a["test_revenue_se_within_seed"] == pytest.approx(0.2)
    assert b["seeds"] == 1 and b["failed"] == 1 and b["test_revenue_se_across_seeds"] is None  # one seed: no spread


def test_sweep_runs_reads_back_and_isolates_failures(tmp_path):
    out = tmp_path / "sweep"
    res = cli("sweep", "--out", out, "--axis", "menu.n_elements=4,6", "--seeds", "0-1", *BASE)
    assert res.exit_code == 0, res.output
    r = json.loads((out / "results.json").read_text())
    assert [c["seeds"] for c in r["cells"]] == [2, 2] and all(c["failed"] == 0 for c in r["cells"])
    for c in r["cells"]:  # the aggregate is the mean of the run folders' own summaries
        revs = [
            json.loads((out / c["cell"] / f"seed{s}" / "summary.json").read_text())["learned"]["test_revenue"]
            for s in (0, 1)
        ]
        assert c["test_revenue_mean"] == pytest.approx(sum(revs) / 2, abs=1e-12)
    assert (out / "revenue.png").is_file() and "n_elements=4" in (out / "results.md").read_text()
    # seeds differ: the two seeds' menus are not the same
    menus = [(out / "n_elements=4" / f"seed{s}" / "menu.json").read_text() for s in (0, 1)]
    assert menus[0] != menus[1]
    # a re-launched sweep reads every finished run back (no run folder is written again)
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")}
    again = cli("sweep", "--out", out, "--axis", "menu.n_elements=4,6", "--seeds", "0-1", *BASE)
    assert again.exit_code == 0 and again.stdout.count("read back") == 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("summary.json")} == stamp
    # a run that fails is reported with its error; the others run; the exit is one line
    from bundleflow.cats.io import save_cats_npz
    from bundleflow.valuations.generators import uniform_atoms

    good = save_cats_npz(tmp_path / "good.npz", uniform_atoms(400, 3, 2, 0.5, seed=3))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip file")
    base = [x for x in BASE if not x.startswith(("data.n_items", "data.n_atoms"))]
    bad = cli("sweep", "--out", tmp_path / "bad", "--axis", f"data.path={broken},{good}", *base, "data.kind=file")
    assert_one_line_error(bad, "1 run(s) of the sweep failed")
    rb = json.loads((tmp_path / "bad" / "results.json").read_text())
    failed = [x for x in rb["runs"] if "error" in x]
    assert len(failed) == 1 and "broken.npz" in failed[0]["error"]
    assert sum("test_revenue" in x for x in rb["runs"]) == 1


def test_sweep_file_and_bad_input(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(
        "base:\n  data: {n_items: 3, n_atoms: 2, n_train: 200, n_val: 60, n_test: 60}\n"
        "  flow: {steps: 20, hidden: 16}\n"
        "  menu: {n_elements: 4, n_support: 2, steps: 4, log_every: 2, batch: 64}\n"
        "  device: cpu\n"
        "axes:\n  menu.lr: [0.01, 0.02]\nseeds: 3\n"
    )
    res = cli("sweep", f, "--out", tmp_path / "s")
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [c["cell"] for c in r["cells"]] == ["lr=0.01", "lr=0.02"] and r["seeds"] == [3]
    (tmp_path / "bad.yaml").write_text("axes: [1, 2]\n")
    assert_one_line_error(cli("sweep", tmp_path / "bad.yaml", "--out", tmp_path / "x"), "axes must map")
    assert_one_line_error(cli("sweep", "--out", tmp_path / "x", "--executor", "spark", *BASE), "executor")
    assert_one_line_error(cli("sweep", "--out", tmp_path / "x", "--seeds", "4-1", *BASE), "runs backwards")


def test_ray_executor_gives_the_same_runs_as_the_local_one(tmp_path):
    """Slow: starts a local Ray (workers start in 20-40 s) and runs the sweep twice."""
    ray = pytest.importorskip("ray")
    import torch

    from bundleflow.experiments.bench import run_bench
    from bundleflow.experiments.multi_bench import run_multi_bench

    spec = SweepSpec(base=BASE, axes={"menu.n_elements": ["4", "6"]}, seeds=[0, 1])
    local = run_sweep(spec, tmp_path / "local", "local", log=lambda *a: None, progress=False)
    # the bench's learned cells (a budget they do not reach, so the steps are the same)
    bench = dict(setting_names=["uniform_m2"], methods=["bundleflow", "rochetnet"], budget_s=600.0, quick=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a task of one CPU
    try:
        bench_local = run_bench(tmp_path / "bench_local", log=lambda *a: None, **bench)
        multi_local = run_multi_bench(tmp_path / "multi_local", ["multi_additive_2x2"], quick=True, log=lambda *a: None)
    finally:
        torch.set_num_threads(threads)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = run_sweep(spec, tmp_path / "ray", "ray", log=lambda *a: None, progress=False)
        bench_ray = run_bench(tmp_path / "bench_ray", log=lambda *a: None, executor="ray", **bench)
        multi_ray = run_multi_bench(
            tmp_path / "multi_ray", ["multi_additive_2x2"], quick=True, log=lambda *a: None, executor="ray"
        )
    finally:
        ray.shutdown()
    assert [r["test_revenue"] for r in remote["runs"]] == [r["test_revenue"] for r in local["runs"]]
    for run in local["runs"]:
        folder = f"{run['cell']}/seed{run['seed']}"
        mine, theirs = (tmp_path / side / folder / "menu.json" for side in ("ray", "local"))
        assert mine.read_text() == theirs.read_text()
    rows = lambda res: [(r["method"], r["test_revenue"], r["steps"]) for r in res["rows"]]  # noqa: E731
    assert rows(bench_ray) == rows(bench_local) and len(rows(bench_local)) == 2
    # the multi preset: GemNet's cells as Ray tasks, the same mechanisms and held-out figures
    assert rows(multi_ray) == rows(multi_local) and {"gemnet", "gemnet_items", "vcg"} <= {
        r["method"] for r in multi_local["rows"]
    }
    for variant in ("gemnet", "gemnet_items"):
        mine, theirs = (
            tmp_path / side / "multi_additive_2x2" / variant / "summary.json" for side in ("multi_ray", "multi_local")
        )
        assert (
            json.loads(mine.read_text())["learned"]["test_revenue"]
            == json.loads(theirs.read_text())["learned"]["test_revenue"]
        )
