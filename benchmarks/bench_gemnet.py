"""GemNet's speed and scale on this machine (issue 14, point 5).

    python benchmarks/bench_gemnet.py [--grids 4,6,8,10,12] [--sizes 2x2,2x5,3x10,5x10] [--xor-sizes 2x50,3x50,5x50]

1. **Training step**: seconds per step (median of 30 after 5 warm-up steps) for additive
   U[0,1] bidders at each ``n x m`` of ``--sizes``, with the bench's menu sizes (16 elements
   at m <= 2, 32 at m <= 5, else 64), batch 512, hidden (64, 64); and the steps an hour buys.
   The same for XOR bidders (deterministic bundles, 64 elements; 6 atoms of about m/8 items
   each, like CATS regions at 50 items) at each ``n x m`` of ``--xor-sizes``.
2. **Transform vs grid size**: a 2x2 GemNet trained for 4,000 steps, made compatible on grids
   of ``L`` levels per bid (``L^4`` profiles): MILP seconds, over-allocating grid profiles
   before, held-out revenue and over-allocation off the grid on 20,000 profiles.

Writes ``runs/bench_gemnet/results.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from bundleflow.mechanisms.multi import GemNet, evaluate_multi
from bundleflow.training.compatibility import make_compatible
from bundleflow.training.gemnet import GemNetTrainer, GemNetTraining, train_gemnet
from bundleflow.utils.files import atomic_write_json
from bundleflow.valuations.generators import uniform_atoms
from bundleflow.valuations.items import AdditiveValuation

OUT = Path("runs/bench_gemnet")


def elements(m: int) -> int:
    return 16 if m <= 2 else 32 if m <= 5 else 64


def step_seconds(n: int, m: int, xor: bool = False) -> float:
    g = torch.Generator().manual_seed(0)
    if xor:
        pool = uniform_atoms(4096, m, 6, 1 / 8, seed=0)  # atoms of about m/8 items

        def sample(B, gen):
            return [pool.subset(torch.randint(len(pool), (B,), generator=gen)) for _ in range(n)]

        net = GemNet(n, m, 64, cap=float(pool.grand_value().max()), bundles=True, generator=g)
    else:
        net = GemNet(n, m, elements(m), cap=float(m), generator=g)

        def sample(B, gen):
            return torch.rand(B, n, m, generator=gen)

    cfg = GemNetTraining(steps=35, log_every=1000)
    trainer = GemNetTrainer(net, sample, cfg, g)
    times = []
    for _ in range(35):
        cfg.steps = trainer.step + 1
        t0 = time.perf_counter()
        trainer.run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[5:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grids", default="4,6,8,10,12")
    ap.add_argument("--sizes", default="2x2,2x5,3x10,5x10")
    ap.add_argument("--xor-sizes", default="2x50,3x50,5x50")
    args = ap.parse_args()
    results: dict = {"threads": torch.get_num_threads(), "steps": [], "transform": []}
    print("| bidders x items | elements | seconds per step | steps per hour |\n|---|---:|---:|---:|")
    for size in args.sizes.split(","):
        n, m = (int(x) for x in size.split("x"))
        s = step_seconds(n, m)
        results["steps"].append({"n": n, "m": m, "elements": elements(m), "seconds_per_step": s})
        print(f"| {n} x {m} | {elements(m)} | {s:.4f} | {3600 / s:,.0f} |", flush=True)
    for size in filter(None, args.xor_sizes.split(",")):
        n, m = (int(x) for x in size.split("x"))
        s = step_seconds(n, m, xor=True)
        results["steps"].append({"n": n, "m": m, "elements": 64, "xor": True, "seconds_per_step": s})
        print(f"| {n} x {m} XOR | 64 | {s:.4f} | {3600 / s:,.0f} |", flush=True)

    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = GemNet(2, 2, 16, cap=2.0, generator=g)
    t0 = time.perf_counter()
    train_gemnet(
        net, lambda B, gen: torch.rand(B, 2, 2, generator=gen), GemNetTraining(steps=4000, penalty_end=100.0), g
    )
    results["train_seconds_2x2"] = time.perf_counter() - t0
    net = net.double()
    test = torch.rand(20000, 2, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    bidders = [AdditiveValuation(test[:, i]) for i in range(2)]
    before = evaluate_multi(net, bidders)
    print(
        f"\n2x2 GemNet, 4,000 steps ({results['train_seconds_2x2']:.0f} s): held-out {before.revenue:.4f} "
        f"+- {before.revenue_se:.4f}, {before.over_rate:.2%} of profiles over-allocated\n"
    )
    print(
        "| levels | grid profiles | over-allocating before | MILP s | transform s | held-out revenue | "
        "over-allocated off the grid |\n|---:|---:|---:|---:|---:|---:|---:|"
    )
    for L in (int(x) for x in args.grids.split(",")):
        levels = (torch.arange(L, dtype=torch.float64) + 0.5) / L
        shifted, rep = make_compatible(net, levels)
        out = evaluate_multi(shifted, bidders)
        row = {"levels": L, **rep.summary(), "test_revenue": out.revenue, "test_over_allocation_rate": out.over_rate}
        results["transform"].append(row)
        print(
            f"| {L} | {rep.grid_profiles} | {rep.violating_before} | {rep.milp_seconds:.1f} | {rep.seconds:.1f} "
            f"| {out.revenue:.4f} | {out.over_rate:.2%} |",
            flush=True,
        )
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write_json(OUT / "results.json", results)


if __name__ == "__main__":
    main()
