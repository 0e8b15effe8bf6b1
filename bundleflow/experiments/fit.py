"""Fit a menu in memory, without a run folder: the library call behind a ten-line script.

:func:`fit_menu` does what ``bundleflow train`` does between loading data and writing files:
Stage 1 (BundleFlow only, unless a flow is given), the data-driven start, Stage 2 with the
menu of best exact validation revenue kept, and the exact price polish. For checkpoints,
resume, metrics files and a report use :func:`bundleflow.experiments.run_training`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bundleflow.errors import InputError
from bundleflow.experiments.config import FlowConfig, MenuConfig
from bundleflow.experiments.runner import menu_model, polish_menu, train_stage1
from bundleflow.flow.model import BundleFlow
from bundleflow.mechanisms.menu import Menu, allocation_changed
from bundleflow.training.trainer import MenuTrainer
from bundleflow.utils.device import resolve_device
from bundleflow.utils.progress import progress_bar
from bundleflow.valuations.base import Valuation


@dataclass
class FitResult:
    """A fitted menu and how it was reached.

    ``menu`` is the kept menu (best exact revenue on the validation bidders, prices polished);
    ``val_revenue`` its exact validation revenue; ``history`` the logged
    :class:`~bundleflow.training.StepMetrics` as dicts; ``start_revenue`` the exact validation
    revenue of the data-driven start (step 0); ``allocations_changed`` the share of the kept
    menu's elements whose lottery differs from the start's.
    """

    menu: Menu
    val_revenue: float
    start_revenue: float
    allocations_changed: float
    history: list[dict] = field(default_factory=list)
    trainer: MenuTrainer | None = None
    flow: BundleFlow | None = None
    seconds: float = 0.0


def _config(cls, value, name: str):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        return cls(**value)
    raise InputError(f"{name} must be a {cls.__name__} or a dict, got {type(value).__name__}")


def fit_menu(
    train: Valuation,
    val: Valuation | None = None,
    config: MenuConfig | dict[str, Any] | None = None,
    flow: BundleFlow | None = None,
    flow_config: FlowConfig | dict[str, Any] | None = None,
    device: str = "auto",
    progress: bool = False,
) -> FitResult:
    """Learn a menu for the bidders ``train`` (any :class:`Valuation`).

    Args:
        train: ``B`` training bidders over ``m`` items.
        val: validation bidders used to keep the best menu; default: the last fifth of ``train``
            (then the first four fifths are trained on).
        config: Stage 2 settings (:class:`MenuConfig` or a dict of its fields; ``model`` picks
            BundleFlow, RochetNet or Bundle-RochetNet).
        flow: a trained Stage 1 flow for ``m`` items; trained here with ``flow_config`` if ``None``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        progress: show progress bars.

    Returns:
        :class:`FitResult`; evaluate ``result.menu`` on held-out bidders with
        :func:`bundleflow.mechanisms.evaluate_menu`.
    """
    mc = _config(MenuConfig, config, "config")
    dev = resolve_device(device)
    if val is None:
        if len(train) < 5:
            raise InputError(f"need at least 5 training bidders to split off a validation fifth, got {len(train)}")
        train, val = train.split(len(train) - len(train) // 5)
    t0 = time.perf_counter()
    if mc.model == "bundleflow" and flow is None:
        f = _config(FlowConfig, flow_config, "flow_config")
        flow = train_stage1(f, train.n_items, dev, progress)
    trainer = MenuTrainer(menu_model(mc, train, flow), train, val, mc, dev)
    trainer.initialise(progress=progress)
    t1 = time.perf_counter()
    history = [trainer.log_metrics(float("nan"), t1).__dict__]

    def record(soft: float) -> dict:
        history.append(trainer.log_metrics(soft, t1).__dict__)
        return history[-1]

    with progress_bar(f"stage 2 ({mc.model})", mc.steps, enabled=progress) as advance:
        trainer.run(t1, record, lambda step, logged: advance(1))
    best = Menu.from_dict(trainer.kept()["menu"])
    polish = polish_menu(best, train, None, trainer.cap, mc.polish_rounds, progress, val=val)
    start = trainer.start_menu()
    assert start is not None  # set by initialise()
    return FitResult(
        menu=polish["menu"],
        allocations_changed=float(allocation_changed(best, start).float().mean()),
        val_revenue=polish["val_revenue_after"],
        start_revenue=history[0]["hard_revenue"],
        history=history,
        trainer=trainer,
        flow=flow,
        seconds=time.perf_counter() - t0,
    )
