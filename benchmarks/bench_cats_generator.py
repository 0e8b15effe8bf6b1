"""CATS generator throughput (moved here from the tests: speed is measured, never asserted in a test).

Times ``generate(distribution, m, n)`` with the numpy stream at 50 and 150 goods in the
same process and prints seconds per 1,000 valuations and the 150/50 ratio. Target:
10,000 valuations at 150 items in under a minute on 2 cores.

    python benchmarks/bench_cats_generator.py [--n 500] [--distribution arbitrary]
"""

from __future__ import annotations

import argparse
import json
import time

from bundleflow.cats.generator import generate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--distribution", default="arbitrary")
    args = ap.parse_args()
    per_1000 = {}
    for m in (50, 150):
        t0 = time.perf_counter()
        generate(args.distribution, m, args.n, seed=0)
        per_1000[m] = (time.perf_counter() - t0) * 1000 / args.n
    out = {
        "distribution": args.distribution,
        "seconds_per_1000": per_1000,
        "ratio_150_over_50": per_1000[150] / per_1000[50],
        "projected_seconds_10000_at_150": 10 * per_1000[150],
        "target_seconds_10000_at_150": 60.0,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
