"""Learned menus against known optima, values starting at zero or not (issue 39).

    python benchmarks/bench_known_optima.py                      # every setting and family
    python benchmarks/bench_known_optima.py ud2_23 rochetnet '{"choice": "nested"}'

Settings (optimum): ``one_0``, ``one_1``, ``one_5`` (1 item U[c, c+1], Myerson's price
max(c, (c+1)/2)); ``add2_01`` (2 additive U[0,1], 0.5491, Manelli-Vincent); ``ud2_01`` (2
unit-demand U[0,1], 2/(3 sqrt 3)); ``ud2_23`` (2 unit-demand U[2,3], 2.137, Pavlov); a
trailing ``x`` (``ud2_23x``) gives the unit-demand bidders as XOR atoms {1}, {2}. Families:
``bundleflow``, ``rochetnet``, ``bundle_rochetnet``, ``a_la_carte`` (BundleFlow with
``menu.outside=item_prices``). Each cell: 20,000 training, 2,000 validation, 100,000 held-out
bidders (seeds 1, 2, 3), the default Stage 1 flow and Stage 2 presets plus the optional JSON
overrides, :func:`bundleflow.experiments.fit_menu`; one JSON line per cell with held-out
revenue, its ratio to the optimum, the start's and the kept menu's validation revenue, the
share of elements moved, seconds, and item pricing's held-out revenue.
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch

from bundleflow.baselines.items import item_pricing
from bundleflow.experiments.config import FlowConfig
from bundleflow.experiments.fit import fit_menu
from bundleflow.experiments.runner import train_stage1
from bundleflow.mechanisms.menu import evaluate_menu
from bundleflow.valuations import generators as G
from bundleflow.valuations.xor import XORValuation


def _myerson(c: float) -> float:
    price = max(c, (c + 1) / 2)
    return price * min(1.0, c + 1 - price)


SETTINGS = {  # name: (sampler, items, low, high, optimum)
    "one_0": (G.additive_uniform, 1, 0.0, 1.0, _myerson(0.0)),
    "one_1": (G.additive_uniform, 1, 1.0, 2.0, _myerson(1.0)),
    "one_5": (G.additive_uniform, 1, 5.0, 6.0, _myerson(5.0)),
    "add2_01": (G.additive_uniform, 2, 0.0, 1.0, 0.5491),
    "ud2_01": (G.unit_demand_uniform, 2, 0.0, 1.0, 2 / (3 * math.sqrt(3))),
    "ud2_23": (G.unit_demand_uniform, 2, 2.0, 3.0, 2.137),
}


def _as_xor(v) -> XORValuation:
    """Unit-demand bidders ``v`` as XOR bidders with atoms {1}, ..., {m}."""
    m = v.n_items
    return XORValuation(torch.eye(m, dtype=torch.bool).expand(len(v), m, m).clone(), v.item_values.clone())


FAMILIES = ("bundleflow", "rochetnet", "bundle_rochetnet", "a_la_carte")


def main() -> None:
    settings = sys.argv[1].split(",") if len(sys.argv) > 1 else [*SETTINGS, "ud2_23x"]
    families = sys.argv[2].split(",") if len(sys.argv) > 2 else list(FAMILIES)
    overrides = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    torch.set_num_threads(1)
    flows: dict[int, object] = {}
    for name in settings:
        xor = name.endswith("x")
        sampler, m, low, high, optimum = SETTINGS[name.removesuffix("x")]
        train, val, test = (sampler(n, m, low, high, seed=s) for n, s in ((20000, 1), (2000, 2), (100000, 3)))
        if xor:  # unit demand as XOR atoms {1}, ..., {m}
            train, val, test = (_as_xor(v) for v in (train, val, test))
        baseline = item_pricing(train).evaluate(test)
        for family in families:
            cfg = dict(overrides, model="bundleflow" if family == "a_la_carte" else family)
            if family == "a_la_carte":
                cfg["outside"] = "item_prices"
            flow = None
            if cfg["model"] == "bundleflow":
                if m not in flows:
                    flows[m] = train_stage1(FlowConfig(), m, torch.device("cpu"), False)
                flow = flows[m]
            t0 = time.perf_counter()
            fit = fit_menu(train, val, cfg, flow=flow, device="cpu")  # type: ignore[arg-type]
            revenue = evaluate_menu(fit.menu, test).revenue
            row = {
                "setting": name,
                "family": family,
                "overrides": overrides,
                "test_revenue": round(revenue, 5),
                "ratio_to_optimum": round(revenue / optimum, 5),
                "start_val_revenue": round(fit.start_revenue, 5),
                "val_revenue": round(fit.val_revenue, 5),
                "elements_moved": round(fit.allocations_changed, 3),
                "kept_step": fit.trainer.best["step"],
                "seconds": round(time.perf_counter() - t0, 1),
                "item_pricing_test_revenue": round(baseline, 5),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
