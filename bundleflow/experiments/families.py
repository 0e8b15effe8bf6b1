"""The registry of single-bidder mechanism families: one interface that `design` iterates over.

A family fits a mechanism on training bidders, using validation bidders where it selects
(learned families choose their kept checkpoint on them); the result is a
:data:`~bundleflow.mechanisms.mechanism.Mechanism` (a lottery menu or a tariff menu) that is
evaluated exactly, saved and described by :mod:`bundleflow.mechanisms.mechanism`. A new family
is one fit function and one :class:`Family` line in :data:`FAMILIES`.

Families (baselines first: their exact fits are the floor every learned family must beat):

- ``grand_bundling``, ``item_pricing``, ``atom_menu``: the exact baselines of
  :mod:`bundleflow.baselines` (the atom menu needs XOR bidders);
- ``tariffs``: a menu of two-part tariffs (:func:`bundleflow.training.tariffs.fit_tariffs`;
  XOR bidders), never below item pricing on validation;
- ``bundleflow``, ``bundleflow_mixed`` (with a la carte item prices), ``rochetnet``:
  Stage 2 menus (:func:`bundleflow.experiments.fit.fit_menu`) with a time budget; the
  BundleFlow families share one Stage 1 flow per item count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bundleflow.baselines.bundling import atom_menu, grand_bundling
from bundleflow.baselines.items import item_pricing
from bundleflow.errors import InputError
from bundleflow.mechanisms.mechanism import Mechanism, mechanism_payments
from bundleflow.mechanisms.tariffs import TariffMenu
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.xor import XORValuation


@dataclass
class FitContext:
    """What a fit may use: ``seed``, ``budget_s`` (seconds of training for a learned family; 0:
    its default step count), ``device``, ``progress`` bars, and a cache shared by the families
    of one run (the Stage 1 flow per item count)."""

    seed: int = 0
    budget_s: float = 0.0
    device: str = "cpu"
    progress: bool = False
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fitted:
    """A fitted mechanism, its exact validation revenue, fit seconds and family-specific facts."""

    mechanism: Mechanism
    val_revenue: float
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """A mechanism family: ``fit(train, val, context) -> Fitted``; ``learned`` families train
    (and get a share of a time budget); ``needs_xor``: only for XOR bidders (atoms)."""

    name: str
    summary: str
    fit: Callable[[Valuation, Valuation, FitContext], Fitted]
    learned: bool = False
    needs_xor: bool = False

    def applies_to(self, valuation: Valuation) -> str | None:
        """``None`` if the family can be fitted on ``valuation``, else the reason why not."""
        if self.needs_xor and not isinstance(valuation, XORValuation):
            return "needs XOR bidders (atoms)"
        return None


def _timed(fit: Callable[[], tuple[Mechanism, dict]], val: Valuation) -> Fitted:
    t0 = time.perf_counter()
    mechanism, details = fit()
    seconds = time.perf_counter() - t0
    return Fitted(mechanism, float(mechanism_payments(mechanism, val).mean()), seconds, details)


def _grand_bundling(train: Valuation, val: Valuation, ctx: FitContext) -> Fitted:
    def fit():
        menu = grand_bundling(train).menu
        assert menu is not None
        return menu, {}

    return _timed(fit, val)


def _item_pricing(train: Valuation, val: Valuation, ctx: FitContext) -> Fitted:
    def fit():
        prices = item_pricing(train, seed=ctx.seed).item_prices
        assert prices is not None
        return TariffMenu.item_pricing(prices), {}

    return _timed(fit, val)


def _atom_menu(train: Valuation, val: Valuation, ctx: FitContext) -> Fitted:
    def fit():
        menu = atom_menu(train)  # needs_xor: XOR bidders only
        assert menu.menu is not None
        return menu.menu, {}

    return _timed(fit, val)


def _tariffs(train: Valuation, val: Valuation, ctx: FitContext) -> Fitted:
    from bundleflow.training.tariffs import TariffTraining, fit_tariffs

    def fit():
        res = fit_tariffs(train, val, TariffTraining(seed=ctx.seed, time_budget_s=ctx.budget_s), device=ctx.device)
        return res.menu, {
            "kept_step": res.step,
            "item_pricing_val_revenue": res.item_pricing_val_revenue,
        }

    return _timed(fit, val)


def _menu_family(overrides: dict[str, Any]) -> Callable[[Valuation, Valuation, FitContext], Fitted]:
    """A Stage 2 family: :func:`fit_menu` with ``overrides``, ``menu.seed`` and the time budget."""

    def fit_family(train: Valuation, val: Valuation, ctx: FitContext) -> Fitted:
        from bundleflow.experiments.config import FlowConfig
        from bundleflow.experiments.fit import fit_menu
        from bundleflow.experiments.runner import train_stage1
        from bundleflow.utils.device import resolve_device

        def fit():
            flow = None
            if overrides["model"] == "bundleflow":
                key = f"flow_m{train.n_items}_seed{ctx.seed}"
                if key not in ctx.cache:
                    cfg = FlowConfig(seed=ctx.seed)
                    ctx.cache[key] = train_stage1(cfg, train.n_items, resolve_device(ctx.device), ctx.progress)
                flow = ctx.cache[key]
            config = dict(overrides, seed=ctx.seed, time_budget_s=ctx.budget_s)
            res = fit_menu(train, val, config, flow=flow, device=ctx.device, progress=ctx.progress)
            return res.menu, {
                "start_val_revenue": res.start_revenue,
                "elements_moved": res.allocations_changed,
                "kept_step": res.trainer.kept()["step"],
            }

        return _timed(fit, val)

    return fit_family


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("grand_bundling", "the grand bundle at its exactly optimal price", _grand_bundling),
        Family("item_pricing", "one price per item, by exact coordinate ascent", _item_pricing),
        Family(
            "atom_menu", "the most frequent atoms as sure bundles, prices by exact ascent", _atom_menu, needs_xor=True
        ),
        Family("tariffs", "a menu of two-part tariffs (fee + item prices)", _tariffs, learned=True, needs_xor=True),
        Family(
            "bundleflow", "BundleFlow lotteries (Stage 1 flow + Stage 2)", _menu_family({"model": "bundleflow"}), True
        ),
        Family(
            "bundleflow_mixed",
            "BundleFlow with a la carte item prices as the outside option",
            _menu_family({"model": "bundleflow", "outside": "item_prices"}),
            True,
        ),
        Family("rochetnet", "RochetNet item-wise lotteries", _menu_family({"model": "rochetnet"}), True),
    )
}


def family(name: str) -> Family:
    """The family called ``name`` (an :class:`InputError` naming the known ones otherwise)."""
    if name not in FAMILIES:
        raise InputError(f"unknown mechanism family {name[:60]!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]
