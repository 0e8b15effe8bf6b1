"""Stage 2 initialisation time vs menu size J on CATS regions_50 (issue 17, point 1).

For each J: the data-driven start (placing J elements of D supports, their exact lotteries,
expected values for up to 4,000 training bidders, ``init_price_rounds`` rounds of exact
coordinate ascent on the prices). Prints seconds per J, the 5000/512 ratio (about 10 when
linear in J), and, in the same process, the price optimisation alone against the quadratic
reference (re-evaluating all other elements for each re-priced one) at small J, checking
both give the same prices.

    python benchmarks/bench_init.py [--sizes 128,512,2048,5000] [--support 8] [--reference-sizes 128,512]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bundleflow.baselines.prices import best_price_given_outside, optimise_prices
from bundleflow.experiments.config import load_config
from bundleflow.experiments.data import make_data
from bundleflow.flow.stage1 import train_flow
from bundleflow.mechanisms.menu import TIE_TOL, choose, expected_values
from bundleflow.training.trainer import MenuTrainer

CATS = Path(__file__).resolve().parents[2] / "shared" / "cats"


def quadratic_reference(ev, prices, cap, rounds):
    """Re-pricing j re-evaluates every bidder's choice among the J-1 others: O(J^2 B) a round."""
    prices = prices.clone().to(torch.float64).clamp(0.0, cap)
    tol = TIE_TOL * max(1.0, cap)
    for _ in range(rounds):
        for j in range(ev.shape[1]):
            others = torch.cat([ev[:, :j], ev[:, j + 1 :]], 1)
            _, pay, util, _ = choose(others, torch.cat([prices[:j], prices[j + 1 :]]), tol)
            prices[j], _ = best_price_given_outside(ev[:, j] - util, pay, cap)
    return prices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,512,2048,5000")
    ap.add_argument("--reference-sizes", default="128,512")
    ap.add_argument("--support", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", default=str(CATS / "regions_50_single.npz"))
    args = ap.parse_args()
    cfg = load_config(
        None, ["data.kind=file", f"data.path={args.data}", "data.n_train=3000", "data.n_test=1000", "device=cpu"]
    )
    train, val, _ = make_data(cfg)
    flow = train_flow(train.n_items, steps=300, batch=512, seed=0)  # timing only: flow quality does not matter
    rows = []
    for J in [int(x) for x in args.sizes.split(",")]:
        mc = cfg.menu.model_copy(update={"n_elements": J, "n_support": args.support, "init_price_rounds": args.rounds})
        trainer = MenuTrainer(flow, train, val, mc, torch.device("cpu"))
        t0 = time.perf_counter()
        trainer.initialise()
        sec = time.perf_counter() - t0
        rows.append({"J": J, "D": args.support, "init_seconds": round(sec, 2)})
        print(json.dumps(rows[-1]), flush=True)
    by_j = {r["J"]: r["init_seconds"] for r in rows}
    if 5000 in by_j and 512 in by_j:
        print(
            json.dumps(
                {
                    "ratio_5000_over_512": round(by_j[5000] / by_j[512], 2),
                    "linear_would_be": round(5000 / 512, 2),
                    "target_seconds_J5000": 60.0,
                }
            )
        )
    # price optimisation alone: incremental vs quadratic reference, same process, same inputs
    for J in [int(x) for x in args.reference_sizes.split(",") if x]:
        mc = cfg.menu.model_copy(update={"n_elements": J, "n_support": args.support, "init_price_rounds": 0})
        trainer = MenuTrainer(flow, train, val, mc, torch.device("cpu"))
        trainer.initialise()
        menu = trainer.menu()
        ev = expected_values(menu, train)
        start = menu.prices.double()
        t0 = time.perf_counter()
        fast = optimise_prices(ev, start, trainer.cap, args.rounds)
        t_fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        slow = quadratic_reference(ev, start, trainer.cap, args.rounds)
        t_slow = time.perf_counter() - t0
        print(
            json.dumps(
                {
                    "J": J,
                    "B": len(train),
                    "price_seconds_incremental": round(t_fast, 3),
                    "price_seconds_quadratic": round(t_slow, 3),
                    "speedup": round(t_slow / t_fast, 1),
                    "same_prices": bool(torch.equal(fast, slow)),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
