"""Baseline comparison of one setting: fit on a training sample, report exact held-out revenue.

Used by ``bundleflow demo`` and ``bundleflow baselines``; returns plain dict rows
so that the CLI, reports and benchmarks share one code path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bundleflow.baselines.bundling import atom_menu, grand_bundling
from bundleflow.baselines.items import item_pricing
from bundleflow.baselines.result import BaselineResult
from bundleflow.oracles.lp import lp_optimal_mechanism
from bundleflow.oracles.welfare import welfare_bound
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.xor import XORValuation


def baseline_rows(
    train: Valuation,
    test: Valuation,
    atom_menu_size: int = 32,
    lp: bool = False,
    fitted: dict | None = None,
    prefit: dict | None = None,
) -> list[dict]:
    """Fit every applicable baseline on ``train``; exact revenue on ``train`` and ``test``.

    ``fitted``, if given, receives each fitted :class:`BaselineResult` by method name;
    ``prefit`` supplies results already fitted on this ``train`` (by method name), which are
    reused instead of fitted again (their ``seconds`` is then 0).

    ``lp=True`` adds the LP optimum over the training sample (its in-sample revenue is the
    optimum for that empirical distribution; its held-out revenue is that of its menu).
    """
    fitters: dict[str, Callable[[Valuation], BaselineResult]] = {
        "grand_bundling": grand_bundling,
        "item_pricing": item_pricing,
    }
    if isinstance(train, XORValuation):
        xor_train = train
        fitters["atom_menu"] = lambda v: atom_menu(xor_train, atom_menu_size)
    rows = []
    for name, fit in fitters.items():
        t0 = time.perf_counter()
        res = (prefit or {}).get(name) or fit(train)
        seconds = time.perf_counter() - t0
        if name not in (prefit or {}) and res.fit_seconds is not None:  # a memoised fit: its own time
            seconds = res.fit_seconds
        if fitted is not None:
            fitted[res.name] = res
        rev, se = res.evaluate_se(test)
        rows.append(
            {
                "method": res.name,
                "train_revenue": res.revenue,
                "test_revenue": rev,
                "test_revenue_se": se,
                "seconds": seconds,
            }
        )
    if lp:
        from bundleflow.mechanisms.menu import evaluate_menu

        t0 = time.perf_counter()
        r = lp_optimal_mechanism(train)
        seconds = time.perf_counter() - t0
        out = evaluate_menu(r.menu, test)
        rows.append(
            {
                "method": "lp_optimum",
                "train_revenue": r.revenue,
                "test_revenue": out.revenue,
                "test_revenue_se": out.revenue_se,
                "seconds": seconds,
            }
        )
    wb_train, _ = welfare_bound(train)
    wb_test, wb_se = welfare_bound(test)
    rows.append(
        {
            "method": "welfare_bound",
            "train_revenue": wb_train,
            "test_revenue": wb_test,
            "test_revenue_se": wb_se,
            "seconds": 0.0,
        }
    )
    return rows
