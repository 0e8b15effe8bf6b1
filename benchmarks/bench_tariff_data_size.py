"""Tariff menus against exact item pricing as the training sample grows (issue 35, point 5).

    python benchmarks/bench_tariff_data_size.py runs/data/regions_50_80k.npz [sizes] [tariffs]

The file's last 15,000 bidders are held out, the 5,000 before them validate, and the first
``n`` train (``sizes``, default 3750,7500,15000,30000,60000). For each ``n`` and each number of
tariffs (default 2,4): exact item pricing and a tariff menu fitted on the same ``n`` bidders
(:func:`bundleflow.training.tariffs.fit_tariffs`, seed 0); one JSON line with the held-out gain
paired on the same bidders, its s.e. and z, and the in-sample gain (overfitting shows as an
in-sample gain the held-out one does not keep).
"""

from __future__ import annotations

import json
import sys
import time

import torch

from bundleflow.baselines.items import item_pricing
from bundleflow.cats.io import load_valuations
from bundleflow.mechanisms.tariffs import TariffMenu, evaluate_tariffs
from bundleflow.training.tariffs import TariffTraining, fit_tariffs
from bundleflow.utils.stats import mean_and_se


def main() -> None:
    path = sys.argv[1]
    sizes = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "3750,7500,15000,30000,60000").split(",")]
    counts = [int(x) for x in (sys.argv[3] if len(sys.argv) > 3 else "2,4").split(",")]
    torch.set_num_threads(1)
    v = load_valuations(path)
    n = len(v)
    test = v.subset(torch.arange(n - 15000, n))
    val = v.subset(torch.arange(n - 20000, n - 15000))
    for size in sizes:
        if size > n - 20000:
            continue
        train = v.subset(torch.arange(size))
        t0 = time.perf_counter()
        ip = item_pricing(train).item_prices
        floor = TariffMenu.item_pricing(ip)
        ip_seconds = time.perf_counter() - t0
        ip_test, ip_train = evaluate_tariffs(floor, test).payment, evaluate_tariffs(floor, train).payment
        for k in counts:
            t0 = time.perf_counter()
            fit = fit_tariffs(train, val, TariffTraining(n_tariffs=k, seed=0))
            gain, se = mean_and_se(evaluate_tariffs(fit.menu, test).payment - ip_test)
            in_sample = float((evaluate_tariffs(fit.menu, train).payment - ip_train).mean())
            row = {
                "file": path,
                "n_train": size,
                "tariffs": k,
                "item_pricing_test": round(float(ip_test.mean()), 3),
                "gain": round(gain, 3),
                "gain_se": round(se, 3),
                "z": round(gain / se, 2) if se > 0 else None,
                "in_sample_gain": round(in_sample, 3),
                "kept_step": fit.step,
                "seconds": round(time.perf_counter() - t0 + ip_seconds, 1),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
