"""Does Stage 2 learn? Start vs end of pure BundleFlow, exactly, on three settings (issue 18).

    python benchmarks/bench_learning.py [--J 5000] [--D 8] [--steps 1000] [--inits data,random,mixed]
                                        [--settings regions_50,arbitrary_50,uniform_50] [--n-train 15000]

For every setting x ``menu.init``: one run folder under ``runs/bench_learning/<setting>_<init>``
(resumable: a finished cell is read back, not re-run), then a table of the step-0 menu's and the
kept menu's exact held-out revenue, the paired gain with its standard error, the share of
elements whose lottery changed, the distinct bundles offered before and after, and seconds.
CATS data: drawn with the Python CATS generator (``bundleflow data generate``, numpy stream,
seed 1) into ``runs/data/`` once, because J=5000 needs many more training bidders than the
reference files' 5,000 rows; uniform atoms: m=50, K=20, q=0.46.

Writes ``runs/bench_learning/results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bundleflow.cats.io import generate_npz
from bundleflow.experiments import load_config, run_training

OUT = Path("runs/bench_learning")
DATA = Path("runs/data")


def cats_file(distribution: str, n: int) -> Path:
    path = DATA / f"{distribution}_50_{n}_seed1.npz"
    if not path.is_file():
        DATA.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        generate_npz(path, distribution, 50, n, seed=1)
        print(f"generated {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def shared_flow(m: int = 50, steps: int = 3000) -> Path:
    """One Stage 1 flow for every cell (Stage 1 depends on m only), trained once."""
    path = OUT / f"flow_m{m}_{steps}.pt"
    if not path.is_file():
        from bundleflow.experiments import FlowConfig
        from bundleflow.experiments.runner import train_stage1
        from bundleflow.flow import flow_diagnostics, save_flow

        t0 = time.perf_counter()
        flow = train_stage1(FlowConfig(steps=steps), m, "cpu", progress=False)  # the defaults a run uses
        save_flow(path, flow, flow_diagnostics(flow))
        print(f"trained {path} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def data_overrides(setting: str, n_train: int) -> list[str]:
    sizes = [f"data.n_train={n_train}", "data.n_val=2000", "data.n_test=3000"]
    if setting == "uniform_50":
        return ["data.kind=uniform_atoms", "data.n_items=50", "data.n_atoms=20", "data.q=0.46", *sizes]
    distribution = setting.split("_")[0]
    return ["data.kind=file", f"data.path={cats_file(distribution, n_train + 5000)}", *sizes]


INITS = {  # name -> config overrides
    "data": ["menu.init=data"],
    "data_spread": ["menu.init=data", "menu.init_spread=0.02"],
    "random": ["menu.init=random"],
    "mixed": ["menu.init=mixed", "menu.init_spread=0.02"],
    # re-seeding unused elements every 100 steps (bundleflow.training.reseeding)
    "data_reseed": ["menu.init=data", "menu.reseed_every=100"],
    "random_reseed": ["menu.init=random", "menu.reseed_every=100"],
    # what Stage 2 alone adds: the kept menu without the final price polish
    "data_nopolish": ["menu.init=data", "menu.polish_rounds=0"],
    # a start priced on every training bidder, not on a sample of menu.init_sample
    "data_fullsample": ["menu.init=data", "menu.init_sample=1000000"],
    # the nested relaxed choice (menu-or-null by the best element first)
    "data_nested": ["menu.init=data", "menu.choice=nested"],
    # the other estimators from the paper's random start
    "random_st": ["menu.init=random", "menu.estimator=straight_through"],
    "random_gumbel": ["menu.init=random", "menu.estimator=gumbel"],
}


def cell_folder(setting: str, init: str, args) -> Path:
    return OUT / f"{setting}_{init}_J{args.J}_D{args.D}_s{args.steps}"


def run_cell(setting: str, init: str, args) -> dict:
    folder = cell_folder(setting, init, args)
    overrides = data_overrides(setting, args.n_train) + [
        *INITS[init],
        f"menu.n_elements={args.J}",
        f"menu.n_support={args.D}",
        f"menu.steps={args.steps}",
        f"menu.log_every={max(1, args.steps // 10)}",
        "menu.batch=128",
        f"flow.checkpoint={shared_flow()}",
        *args.extra,
    ]
    cfg = load_config(None, overrides)
    done = folder / "summary.json"
    t0 = time.perf_counter()
    summary = (
        json.loads(done.read_text())
        if done.is_file()
        else run_training(cfg, folder, progress=False, log=lambda *_: None, write_report_at_end=False)
    )
    L = summary["learned"]
    learning = L["learning"]
    row = {
        "setting": setting,
        "init": init,
        "J": args.J,
        "D": args.D,
        "steps": L["steps_done"],
        "start": learning["start_test_revenue"],
        "end": L["test_revenue"],
        "end_se": L["test_revenue_se"],
        "gain": learning["test_gain_over_start"],
        "gain_se": learning["test_gain_over_start_se"],
        "val_gain": learning["val_gain_over_start"],
        "changed": learning["allocations_changed"],
        "bundles_start": learning["distinct_bundles_start"],
        "bundles_end": learning["distinct_bundles"],
        "best_step": L.get("kept_step", L["best_step"]),
        "item_pricing": next(r["test_revenue"] for r in summary["baselines"] if r["method"] == "item_pricing"),
        "stage2_seconds": summary["stage2_seconds"],
        "seconds": summary["train_seconds"],
    }
    print(json.dumps(row), f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    head = (
        "| setting | init | J x D | start | end | gain +- s.e. (paired) | gain / s.e. | elements changed "
        "| distinct bundles | best step | item pricing | Stage 2 s |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )

    def row(r: dict) -> str:
        d = 4 if abs(r["item_pricing"]) < 10 else 1  # decimals on the setting's value scale
        return (
            f"| {r['setting']} | {r['init']} | {r['J']} x {r['D']} | {r['start']:.{d}f} | {r['end']:.{d}f} "
            f"| {r['gain']:+.{d}f} +- {r['gain_se']:.{d}f} | {r['gain'] / r['gain_se'] if r['gain_se'] else 0:+.1f} "
            f"| {r['changed']:.0%} | {r['bundles_start']} -> {r['bundles_end']} | {r['best_step']} of {r['steps']} "
            f"| {r['item_pricing']:.{d}f} | {r['stage2_seconds']:.0f} |\n"
        )

    return head + "".join(row(r) for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--J", type=int, default=5000)
    ap.add_argument("--D", type=int, default=8)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--n-train", type=int, default=15000)
    ap.add_argument("--inits", default=",".join(INITS))
    ap.add_argument("--settings", default="regions_50,arbitrary_50,uniform_50")
    ap.add_argument("--table-only", action="store_true", help="only tabulate the cells already finished")
    ap.add_argument("extra", nargs="*", help="more key=value config overrides for every cell")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    cells = [(s, i) for s in args.settings.split(",") for i in args.inits.split(",")]
    if args.table_only:
        cells = [(s, i) for s, i in cells if (cell_folder(s, i, args) / "summary.json").is_file()]
    rows = [run_cell(s, i, args) for s, i in cells]
    print(markdown(rows))
    # results.json keeps every cell measured so far (one row per setting x init x J x D x steps)
    key = lambda r: (r["setting"], r["init"], r["J"], r["D"], r["steps"])  # noqa: E731
    old = json.loads((OUT / "results.json").read_text()) if (OUT / "results.json").is_file() else []
    merged = {key(r): r for r in old} | {key(r): r for r in rows}
    table = sorted(
        merged.values(), key=lambda r: (r["setting"], list(INITS).index(r["init"]) if r["init"] in INITS else 99)
    )
    (OUT / "results.json").write_text(json.dumps(table, indent=1))
    (OUT / "results.md").write_text(markdown(table))


if __name__ == "__main__":
    main()
