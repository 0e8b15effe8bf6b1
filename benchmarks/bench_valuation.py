"""Valuation throughput: 128 bidders x 40,000 bundles at m=50 with 20 XOR atoms.

Reports the median time of each containment kernel (subset tables, bit-packed
64-bit AND, float matmul) for ``value`` (``[B, A]``) and the table kernel for
``bundle_values`` (``[A, B]`` float32, what Stage 2 uses), and their ratios, measured
in the same run. Target: well under 1 s on 2 CPU cores.

    python benchmarks/bench_valuation.py [--device auto|cpu|cuda] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from bundleflow.utils.device import resolve_device
from bundleflow.valuations.generators import uniform_atoms


def _time(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bidders", type=int, default=128)
    ap.add_argument("--bundles", type=int, default=40000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--atoms", type=int, default=20)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    v = uniform_atoms(args.bidders, args.items, args.atoms, 0.46, seed=0).to(dev)
    g = torch.Generator().manual_seed(1)
    S = (torch.rand(args.bundles, args.items, generator=g) < 0.8).float().to(dev)
    res = {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "shape": [args.bidders, args.bundles, args.items, args.atoms],
    }
    for method in ("table", "bitpack", "matmul"):
        res[f"{method}_s"] = _time(lambda method=method: v.value(S, method=method), args.repeats, sync)
    res["table_bundle_values_f32_s"] = _time(
        lambda: v.bundle_values(S, dtype=torch.float32, method="table"), args.repeats, sync
    )
    ref = v.value(S, method="bitpack")
    assert torch.equal(ref, v.value(S, method="matmul")) and torch.equal(ref, v.value(S, method="table"))
    res["matmul_over_bitpack"] = res["matmul_s"] / res["bitpack_s"]
    res["bitpack_over_table"] = res["bitpack_s"] / res["table_s"]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
