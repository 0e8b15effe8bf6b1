"""BundleFlow acceptance runs (hard, exact revenue on held-out valuations).

    python benchmarks/bench_bundleflow.py uniform50   # m=50, K=20, q=0.46, J=128
    python benchmarks/bench_bundleflow.py m2          # m=2, K in {2,5,20}, J in {4,64} vs the LP
    python benchmarks/bench_bundleflow.py cats        # regions_50 and arbitrary_50 vs baselines
    python benchmarks/bench_bundleflow.py cats_mixed [J]  # the same, menu + a la carte item prices

Results go to runs/bench/<name>/ (one run folder per setting) and a JSON line per setting on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bundleflow.experiments.config import load_config
from bundleflow.experiments.data import make_data
from bundleflow.experiments.runner import run_training
from bundleflow.mechanisms.menu import evaluate_menu

CATS = Path(__file__).resolve().parents[2] / "shared" / "cats"
OUT = Path("runs/bench")


def _run(name: str, overrides: list[str]) -> dict:
    cfg = load_config(None, overrides)
    s = run_training(cfg, OUT / name, resume=False, progress=False, log=lambda *_: None)
    row = {
        "setting": name,
        **{
            k: s["learned"][k]
            for k in (
                "test_revenue",
                "test_revenue_se",
                "final_soft_revenue",
                "final_hard_revenue_val",
                "max_price",
                "price_cap",
            )
        },
    }
    row["gain_over_item_pricing"] = [
        round(s["learned"][k], 2) for k in ("test_gain_over_item_pricing", "test_gain_over_item_pricing_se")
    ]
    row["baselines"] = {r["method"]: round(r["test_revenue"], 4) for r in s["baselines"]}
    row["seconds"] = round(s["train_seconds"], 1)
    print(json.dumps(row), flush=True)
    return row


def uniform50() -> None:
    _run(
        "uniform50",
        [
            "data.n_items=50",
            "data.n_atoms=20",
            "data.q=0.46",
            "data.n_train=8000",
            "data.n_val=2000",
            "data.n_test=10000",
            "menu.n_elements=128",
            "menu.n_support=4",
            "menu.steps=600",
            "flow.steps=3000",
        ],
    )


def m2() -> None:
    from bundleflow.oracles.lp import lp_optimal_mechanism

    for k in (2, 5, 20):
        for j in (4, 64):
            ov = [
                "data.n_items=2",
                f"data.n_atoms={k}",
                "data.q=0.5",
                "data.n_train=300",
                "data.n_val=300",
                "data.n_test=5000",
                f"menu.n_elements={j}",
                "menu.n_support=4",
                "menu.steps=800",
                "flow.steps=1000",
            ]
            _run(f"m2_K{k}_J{j}", ov)
            train, _, test = make_data(load_config(None, ov))
            lp = lp_optimal_mechanism(train)
            print(
                json.dumps(
                    {
                        "setting": f"m2_K{k}_J{j}",
                        "lp_train": lp.revenue,
                        "lp_menu_test": evaluate_menu(lp.menu, test).revenue,
                    }
                ),
                flush=True,
            )


def cats(outside: str = "none", steps: int = 600, n_elements: int = 128) -> None:
    tag = ("" if outside == "none" else "_mixed") + ("" if n_elements == 128 else f"_J{n_elements}")
    for name in ("regions_50", "arbitrary_50"):
        _run(
            f"cats_{name}{tag}",
            [
                "data.kind=file",
                f"data.path={CATS / (name + '_single.npz')}",
                "data.n_train=3000",
                "data.n_val=1000",
                "data.n_test=1000",
                f"menu.n_elements={n_elements}",
                "menu.n_support=4",
                f"menu.steps={steps}",
                "flow.steps=3000",
                f"menu.outside={outside}",
            ],
        )


def cats_mixed() -> None:
    """Mixed bundling: the learned menu plus a la carte purchase at item prices."""
    cats("item_prices", steps=2000, n_elements=int(sys.argv[2]) if len(sys.argv) > 2 else 128)


if __name__ == "__main__":
    {"uniform50": uniform50, "m2": m2, "cats": cats, "cats_mixed": cats_mixed}[
        sys.argv[1] if len(sys.argv) > 1 else "uniform50"
    ]()
