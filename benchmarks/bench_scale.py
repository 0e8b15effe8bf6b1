"""Scale: one BundleFlow run at m=500 items with J=5000, D=8, end to end on this machine (issue 19).

    python benchmarks/bench_scale.py [--items 500] [--J 5000] [--D 8] [--budget 900] [key=value ...]

Uniform atoms (K=20 atoms per bidder, each item in an atom with probability q=0.46, values
U[0, 1]): 10,000 training, 2,000 validation and 3,000 held-out bidders. Everything a user's
``bundleflow train`` does is timed together: data, Stage 1, the data-driven start and its
exact prices, Stage 2 (stopped by ``--budget`` seconds or ``menu.steps``), the price polish,
the exact held-out evaluation and the baselines. Stage 2 uses the nested relaxed choice
(``menu.choice=nested``): with the flat softmax, hard revenue fell 0.81 -> 0.41 at m=500 while
the relaxation rose (README, "Command line"). Peak memory is the process's maximum
resident set size. Writes ``runs/bench_scale/<name>/`` (an ordinary run folder, resumable)
and ``runs/bench_scale/results.json``; prints one markdown row.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

from bundleflow.experiments import load_config, run_training
from bundleflow.utils.files import atomic_write_json

OUT = Path("runs/bench_scale")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--J", type=int, default=5000)
    ap.add_argument("--D", type=int, default=8)
    ap.add_argument("--budget", type=float, default=900.0, help="Stage 2 wall-clock budget, seconds")
    ap.add_argument("extra", nargs="*", help="more key=value config overrides")
    args = ap.parse_args()
    name = f"uniform_{args.items}_J{args.J}_D{args.D}"
    overrides = [
        "data.kind=uniform_atoms",
        f"data.n_items={args.items}",
        "data.n_atoms=20",
        "data.q=0.46",
        "data.n_train=10000",
        "data.n_val=2000",
        "data.n_test=3000",
        f"menu.n_elements={args.J}",
        f"menu.n_support={args.D}",
        "menu.batch=128",
        "menu.steps=1000",
        "menu.log_every=100",
        f"menu.time_budget_s={args.budget}",
        "menu.choice=nested",
        *args.extra,
    ]
    cfg = load_config(None, overrides)
    t0 = time.perf_counter()
    summary = run_training(cfg, OUT / name, progress=sys.stderr.isatty(), write_report_at_end=False)
    wall = time.perf_counter() - t0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux
    L = summary["learned"]
    base = {r["method"]: r for r in summary["baselines"]}
    row = {
        "setting": name,
        "items": args.items,
        "J": args.J,
        "D": args.D,
        "bundleflow": L["test_revenue"],
        "bundleflow_se": L["test_revenue_se"],
        "grand_bundling": base["grand_bundling"]["test_revenue"],
        "item_pricing": base["item_pricing"]["test_revenue"],
        "steps": L["steps_done"],
        "stopped_by_time_budget": L["stopped_by_time_budget"],
        "stage2_seconds": summary["stage2_seconds"],
        "polish_seconds": L["polish"]["seconds"],
        "baseline_seconds": {r["method"]: r.get("seconds") for r in summary["baselines"]},
        "start_test_revenue": L["learning"]["start_test_revenue"],
        "gain_over_start": L["learning"]["test_gain_over_start"],
        "gain_over_start_se": L["learning"]["test_gain_over_start_se"],
        "machine": summary.get("machine"),
        "train_seconds": summary["train_seconds"],
        "wall_seconds": wall,  # this sitting only, if the run folder was resumed
        "peak_rss_gib": peak_gib,
        "overrides": overrides,
    }
    results = OUT / "results.json"
    old = json.loads(results.read_text()) if results.is_file() else {}
    old[name] = row
    atomic_write_json(results, old)
    print(
        "| setting | BundleFlow | grand bundling | item pricing | Stage 2 steps | Stage 2 s | run s | peak memory |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {name} | {row['bundleflow']:.4f} +- {row['bundleflow_se']:.4f} | {row['grand_bundling']:.4f} | "
        f"{row['item_pricing']:.4f} | {row['steps']} | {row['stage2_seconds']:.0f} | {row['train_seconds']:.0f} | "
        f"{peak_gib:.1f} GiB |",
        flush=True,
    )


if __name__ == "__main__":
    main()
