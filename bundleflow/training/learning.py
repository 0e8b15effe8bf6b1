"""Did Stage 2 learn? The kept menu against the menu it started from (step 0), exactly.

Logged every ``log_every`` steps by :meth:`bundleflow.training.MenuTrainer.log_metrics`
(``allocations_changed``, ``distinct_bundles``, ``val_gain_over_start``) and summarised at
the end of a run by :func:`learning_summary`: the share of elements whose lottery moved, the
distinct bundles offered before and after, and the held-out revenue gain over the start with
its paired standard error (both menus evaluated on the same held-out bidders).
"""

from __future__ import annotations

from typing import Any

import torch

from bundleflow.mechanisms.menu import Menu, allocation_changed, distinct_bundles, evaluate_menu
from bundleflow.utils.stats import mean_and_se
from bundleflow.valuations.base import Valuation


def paired_gain(pay: torch.Tensor, pay_ref: torch.Tensor) -> tuple[float, float]:
    """``(mean, standard error)`` of ``pay - pay_ref`` over the same ``[B]`` bidders."""
    return mean_and_se(pay.double().cpu() - pay_ref.double().cpu())


def learning_summary(
    menu: Menu, start: dict[str, Any] | None, val_revenue: float, test: Valuation, test_payment: torch.Tensor
) -> dict[str, Any] | None:
    """The kept ``menu`` against the ``start`` recorded by the trainer (``None`` if there is none).

    Args:
        menu: the kept menu; val_revenue: its exact validation revenue.
        start: ``{"menu": Menu.to_tensors(), "val_revenue": float}``.
        test: held-out bidders; test_payment: ``[B]`` the kept menu's exact payments on them.
    """
    if start is None:
        return None
    start_menu = Menu.from_dict(start["menu"])
    start_test = evaluate_menu(start_menu, test)
    gain, se = paired_gain(test_payment, start_test.payment)
    changed = allocation_changed(menu, start_menu)
    return {
        "start_val_revenue": start["val_revenue"],
        "start_test_revenue": start_test.revenue,
        "val_gain_over_start": val_revenue - start["val_revenue"],
        "test_gain_over_start": gain,
        "test_gain_over_start_se": se,
        "allocations_changed": float(changed.float().mean()),
        "elements_changed": int(changed.sum()),
        "distinct_bundles_start": distinct_bundles(start_menu),
        "distinct_bundles": distinct_bundles(menu),
    }


def describe(learning: dict[str, Any] | None) -> str:
    """One line for the console and the report."""
    if not learning:
        return "learning: not measured (no start recorded)"
    n = learning["elements_changed"]
    return (
        f"learning: {learning['allocations_changed']:.1%} of elements changed their lottery since the start ({n}); "
        f"distinct bundles {learning['distinct_bundles_start']} -> {learning['distinct_bundles']}; "
        f"held-out gain over the start {learning['test_gain_over_start']:+.4g} "
        f"+- {learning['test_gain_over_start_se']:.2g} (paired s.e.; start {learning['start_test_revenue']:.4f})"
    )
