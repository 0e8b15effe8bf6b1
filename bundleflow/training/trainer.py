"""Stage 2 of BundleFlow: learn the menu (support points, weights, prices).

Element ``j`` has ``D`` Dirac support points ``s0[j, d] = sigmoid(z[j, d])`` in the
flow's domain ``[0,1]^m``; each is pushed by the Stage 1 flow and rounded to a
bundle. Its probability is (paper Eq. for the pushed mixture density)

    alpha[j, d] = softmax_d( log w[j, d] - trace Q(s0[j, d]) * E ),

so support locations receive gradients through ``Q(s0)``. Prices are
``cap * sigmoid(r_j)`` with ``cap`` the largest value in the training data.

The relaxed revenue is a softmax over the ``J`` elements **and the null option**
of utilities measured in units of the value spread (:func:`value_spread`)::

    pi = softmax([u_1, ..., u_J, 0] / tau),  soft revenue = sum_j pi_j price_j,
    spread = E[v(all items)] - min_b v_b(all items)

with ``tau`` annealed from ``tau_start`` to ``tau_end`` (units of the spread), which makes
the relaxation's scale independent of the data's value scale *and* of a common offset in
the values: choices are decided by utility differences, which an offset does not change.
(Until issue 39 the unit was the level ``E[v(all items)]``; on values U[c, c+1] that made
the relaxation ``c + 1/2`` times coarser than on U[0, 1]. When some bidder values the
grand bundle near 0, as on U[0, 1] or CATS data, the two units agree; checkpoints written
before record no unit and resume with the level, the unit they ran with.) The hard revenue
(:func:`bundleflow.mechanisms.evaluate_menu`) is logged beside it; the menu kept is the
one with the best hard revenue on the validation split. ``menu.estimator``
switches the training objective to a straight-through estimator (forward: the hard
choice ``argmax``; backward: the softmax's gradient) or its Gumbel-perturbed variant;
the logged soft revenue is always the plain softmax relaxation.

With ``menu.outside = "item_prices"`` the menu is a mixed-bundling mechanism: the
outside option is the bidder's a la carte purchase at item prices
``cap * sigmoid(item_logit)``, initialised at the item-pricing baseline fitted on
the training split. For XOR valuations the item prices are learned jointly: each
atom ``k`` bought at item prices is one more option of the softmax (utility
``p_k - sum_{i in T_k} item_price_i``, payment the sum). For other valuations the
item prices stay fixed and the null option ``(utility 0, payment 0)`` is replaced by
the exact a la carte demand ``(u_carte, pay_carte)``. Starting with every element
priced by exact coordinate ascent against that option, the start earns at least
item pricing on the training sample.

Initialisation reaches the grand bundle and bundles suggested by the data: element
0 is the grand bundle, the others the most frequent atoms and unions of a random
bidder's atoms, with support points at the corresponding corners of the cube and
prices set by exact coordinate ascent on the deterministic menu.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from bundleflow.baselines.items import item_pricing
from bundleflow.baselines.result import BaselineResult
from bundleflow.errors import InputError
from bundleflow.flow.model import BundleFlow
from bundleflow.mechanisms.bundleflow_menu import BundleFlowMenu
from bundleflow.mechanisms.menu import (
    TIE_TOL,
    Menu,
    allocation_changed,
    bidder_chunks,
    distinct_bundles,
    evaluate_menu,
)
from bundleflow.mechanisms.model import MenuModel
from bundleflow.training.initialisation import _set_price_logits, data_driven_start
from bundleflow.training.relaxation import annealed, relaxed_revenue
from bundleflow.training.reseeding import reseed_unused, reset_moments
from bundleflow.utils.device import tune_cpu_allocator
from bundleflow.utils.stats import mean_and_se
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.bundles import unique_rows
from bundleflow.valuations.xor import XORValuation


def value_spread(train: Valuation) -> float:
    """The relaxation's unit: ``E[g] - min g`` over the training bidders' grand-bundle values
    ``g = v(all items)`` (the level ``E[g]`` when every bidder has the same ``g``).

    Invariant to a common offset in the values and proportional to their scale; equal to the
    level ``E[g]`` up to ``min g / E[g]`` (at most 1.1% on the CATS reference files, 0 on
    U[0, 1] data), so settings tuned in the old unit keep their meaning there.
    """
    g = train.grand_value().double()
    level = float(g.mean())
    if not level > 0:
        raise InputError("training data has zero value everywhere: nothing to sell")
    spread = level - float(g.min())
    return spread if spread > 1e-9 * level else level


@dataclass
class StepMetrics:
    step: int
    tau: float
    train_soft_revenue: float  # relaxed revenue of the last training batch
    soft_revenue: float  # relaxed revenue on the validation split
    hard_revenue: float  # exact revenue on the validation split
    null_rate: float
    a_la_carte_rate: float  # share buying at item prices (mixed bundling only)
    elements_used: int
    mean_bundle_size: float
    zero_value_share: float
    max_price: float
    allocations_changed: float  # share of elements whose lottery differs from the start's (NaN without a start)
    distinct_bundles: int  # distinct bundles offered with probability > 1e-3
    val_gain_over_start: float  # hard_revenue minus the start's exact validation revenue (NaN without a start)
    reseeded: int  # elements moved by re-seeding (menu.reseed_every) so far
    seconds: float


class MenuTrainer:
    """Stage 2 training loop with logging, checkpoints and resume."""

    def __init__(self, model: MenuModel | BundleFlow, train: Valuation, val: Valuation, cfg, device: torch.device):
        """``model``: a :class:`MenuModel`, or a Stage 1 flow (then a :class:`BundleFlowMenu` is built)."""
        if isinstance(model, BundleFlow) and model.n_items != train.n_items:
            raise InputError(f"flow is for m={model.n_items} items, data has m={train.n_items}")
        if train.n_items != val.n_items:
            raise InputError(f"train has m={train.n_items} items, validation m={val.n_items}")
        device = torch.device(device)
        self.train, self.val, self.cfg, self.device = train.to(device), val.to(device), cfg, device
        if device.type == "cpu":
            tune_cpu_allocator()
        self.cap = train.max_value()
        self.scale = value_spread(train)  # the unit of utilities and tau in the relaxation
        torch.manual_seed(cfg.seed)
        if isinstance(model, BundleFlow):
            model = BundleFlowMenu(model, cfg.n_elements, cfg.n_support, self.cap)
        if model.n_items != train.n_items:
            raise InputError(f"menu model is for m={model.n_items} items, data has m={train.n_items}")
        if cfg.reseed_every and not model.supports_reseeding:
            raise InputError(model.reseeding_error())
        self.params = model.to(device)
        self.step = 0
        self.reseeded = 0  # elements moved by re-seeding so far
        self.best: dict[str, Any] = {"hard_revenue": -1.0, "menu": None, "step": -1}
        self.last: dict[str, Any] | None = None  # the last logged menu (same fields as best)
        self.gen = torch.Generator().manual_seed(cfg.seed + 7)
        self.coverage: dict = {}
        # the step-0 menu (after initialise): {"menu": Menu.to_tensors(), "val_revenue": exact validation revenue}
        self.start: dict[str, Any] | None = None
        self._start_menu: Menu | None = None
        self.mixed = cfg.outside == "item_prices"
        self.learn_item_prices = self.mixed and isinstance(self.train, XORValuation)
        self.item_pricing_fit: BaselineResult | None = None
        self.atom_menu_fit: BaselineResult | None = (
            None  # fitted by initialise() on the whole training split, if it was
        )
        if self.mixed:
            self.item_pricing_fit = item_pricing(self.train)
            assert self.item_pricing_fit.item_prices is not None
            _set_price_logits(self.params.item_logit, self.item_pricing_fit.item_prices, self.cap, 1e-6)
        if not self.learn_item_prices:
            self.params.item_logit.requires_grad_(False)
        self.opt = torch.optim.Adam([p for p in self.params.parameters() if p.requires_grad], lr=cfg.lr, fused=True)

    @property
    def item_prices(self) -> torch.Tensor | None:
        """``[m]`` float64 a la carte prices of a mixed-bundling menu, else ``None``."""
        return self.params.item_prices().detach().double() if self.mixed else None

    def menu(self) -> Menu:
        """The current menu (hard lotteries from the flow, prices, a la carte prices if any)."""
        return self.params.menu(self.item_prices)

    def outside(self, batch: Valuation) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(utility [B], payment [B])`` of the outside option (``None, None`` for the null option)."""
        if self.item_prices is None:
            return None, None
        return batch.demand(self.item_prices)

    # -- initialisation ------------------------------------------------------------
    def initialise(self, progress: bool = False) -> None:
        """Data-driven start (:func:`bundleflow.training.initialisation.data_driven_start`)."""
        self.coverage, fit = data_driven_start(
            self.params, self.train, self.cfg, self.cap, self.gen, self.mixed, progress
        )
        if fit is not None:
            self.atom_menu_fit = fit
        menu = self.menu()
        self.start = {"menu": menu.to_tensors(), "val_revenue": evaluate_menu(menu, self.val).revenue}
        self._start_menu = menu

    def start_menu(self) -> Menu | None:
        """The menu Stage 2 started from (step 0), or ``None`` if :meth:`initialise` was not run."""
        if self._start_menu is None and self.start is not None:
            self._start_menu = Menu.from_dict(self.start["menu"])
        return self._start_menu

    # -- one step ------------------------------------------------------------------
    def tau(self, step: int) -> float:
        return annealed(self.cfg.tau_start, self.cfg.tau_end, step, self.cfg.steps)

    def soft_revenue(self, batch: Valuation, tau: float, estimator: str = "softmax", diagnostics: bool = False):
        """Relaxed revenue in value-scale units on ``batch``.

        Returns ``(revenue (scalar), bundles [J, D, m], probs [J, D], best [J, D] or None)`` where
        ``best`` (only with ``diagnostics``) is the largest value over ``batch`` of each support
        bundle, / scale. Each distinct support bundle is valued once (``V [U, B]``, bundle-major
        so that gathering the ``J*D`` support points copies whole rows), then
        ``ev[b, j] = sum_d probs[j, d] * V[inv[j, d], b]`` is one batched matmul.
        """
        bundles, probs = self.params.lottery()
        J, D, m = bundles.shape
        uniq, inv = unique_rows(bundles.reshape(J * D, m))
        V = batch.bundle_values(uniq > 0.5, unit=self.scale, dtype=torch.float32)  # [U, B]
        per_support = V.index_select(0, inv).view(J, D, len(batch))
        ev = torch.bmm(probs[:, None, :], per_support)[:, 0].T  # [B, J]
        best = V.amax(1)[inv].view(J, D) if diagnostics else None
        price = self.params.prices() / self.scale
        u = ev - price[None]
        zero = torch.zeros(len(batch), 1, device=u.device)
        if self.learn_item_prices:  # each atom at item prices is an option, then null
            assert isinstance(batch, XORValuation)
            cost = batch.atoms.float() @ (self.params.item_prices() / self.scale)  # [B, K]
            u_out = torch.cat([batch.values.float() / self.scale - cost, zero], 1)
            pay_out = torch.cat([cost, zero], 1)
        elif self.mixed:  # fixed item prices: exact a la carte demand
            u0, pay0 = self.outside(batch)
            assert u0 is not None and pay0 is not None
            u_out, pay_out = (u0 / self.scale).float()[:, None], (pay0 / self.scale).float()[:, None]
        else:
            u_out = pay_out = zero
        rev = relaxed_revenue(u, price, u_out, pay_out, tau, estimator, self.gen, nested=self.cfg.choice == "nested")
        return rev, bundles, probs, best

    def train_step(self) -> float:
        idx = torch.randint(len(self.train), (min(self.cfg.batch, len(self.train)),), generator=self.gen)
        batch = self.train.subset(idx.to(self.train.device))
        rev = self.soft_revenue(batch, self.tau(self.step), self.cfg.estimator)[0]
        self.opt.zero_grad(set_to_none=True)
        (-rev).backward()
        self.opt.step()
        self.step += 1
        self.params.on_step(self.step)
        return float(rev.detach()) * self.scale

    @torch.no_grad()
    def _validation_soft_revenue(self):
        """:meth:`soft_revenue` on the validation split with diagnostics, in chunks of bidders
        (:func:`bundleflow.mechanisms.menu.bidder_chunks`) so that the value table ``[J*D, b]``
        stays bounded (a RochetNet menu at J=5000 on 150 items has about 755,000 supports: 6 GB
        a table for 2,000 bidders at once)."""
        bundles, _ = self.params.lottery()
        total, best = 0.0, None
        for sub in bidder_chunks(self.val, bundles.shape[0] * bundles.shape[1]):
            rev, bundles, probs, b = self.soft_revenue(sub, self.tau(self.step), diagnostics=True)
            total += float(rev) * len(sub)
            best = b if best is None else torch.maximum(best, b)
        return total / max(1, len(self.val)), bundles, probs, best

    @torch.no_grad()
    def log_metrics(self, train_soft: float, t0: float) -> StepMetrics:
        menu = self.menu()
        out = evaluate_menu(menu, self.val)
        soft, bundles, probs, best = self._validation_soft_revenue()
        offered = probs > 1e-3
        zero = (best <= 0) & offered  # no sampled bidder values this offered bundle
        start = self.start_menu()
        nan = float("nan")
        self.offer_best(menu, out.revenue, out.payment)
        return StepMetrics(
            step=self.step,
            tau=self.tau(self.step),
            train_soft_revenue=train_soft,
            soft_revenue=float(soft) * self.scale,
            hard_revenue=out.revenue,
            null_rate=out.null_rate,
            a_la_carte_rate=out.a_la_carte_rate,
            elements_used=out.elements_used,
            mean_bundle_size=float((bundles.sum(-1) * probs).sum(-1).mean()),
            zero_value_share=float(zero.sum() / offered.sum().clamp_min(1)),
            max_price=float(menu.prices.max()),
            allocations_changed=float(allocation_changed(menu, start).float().mean()) if start is not None else nan,
            distinct_bundles=distinct_bundles(menu),
            val_gain_over_start=out.revenue - self.start["val_revenue"] if self.start is not None else nan,
            reseeded=self.reseeded,
            seconds=time.perf_counter() - t0,
        )

    def offer_best(self, menu: Menu, revenue: float, payment: torch.Tensor) -> None:
        """Record a logged menu (exact validation ``revenue``, ``payment [B_val]`` per bidder):
        it is the last logged menu, and the validation-best one if its revenue is the highest
        so far (:meth:`kept` chooses between the two)."""
        entry = {
            "hard_revenue": revenue,
            "menu": menu.to_tensors(),
            "step": self.step,
            "payment": payment.detach().double().cpu(),
        }
        self.last = entry
        if revenue > self.best["hard_revenue"]:
            self.best = entry

    def kept(self) -> dict:
        """The menu training keeps, ``{"hard_revenue", "menu", "step", ...}``: the last logged
        menu, unless the validation-best one beats it by more than ``cfg.keep_margin_se`` paired
        standard errors of the gain on the validation bidders (``0``: the validation-best, the
        rule before issue 39). Validation picks among menus the training sample already ranks:
        with 2,000 validation bidders a checkpoint's revenue has a s.e. near 1%, so the plain
        maximum often trades the trained menu for an earlier one that was lucky on validation.
        A checkpoint written before ``last`` was recorded keeps its validation-best menu."""
        last, best = self.last, self.best
        if last is None or best["menu"] is None or best["step"] == last["step"]:
            return best
        gain, se = mean_and_se(best["payment"] - last["payment"])
        return best if gain > self.cfg.keep_margin_se * se else last

    @torch.no_grad()
    def reseed(self) -> dict:
        """Move unused elements to bundles the data asks for, priced exactly, on a fresh sample of
        ``cfg.init_sample`` training bidders (:func:`bundleflow.training.reseeding.reseed_unused`);
        their optimiser moments are reset. Returns the report of ``reseed_unused``."""
        cfg = self.cfg
        idx = torch.randperm(len(self.train), generator=self.gen)[: cfg.init_sample]
        sample = self.train.subset(idx.to(self.train.device))
        report = reseed_unused(
            self.params,
            sample,
            self.outside(sample),
            self.item_prices,
            self.gen,
            cfg.corner,
            TIE_TOL * max(1.0, self.cap),
            cfg.reseed_max,
            cfg.reseed_min_buyers,
            cfg.seed + self.step,
        )
        moved = torch.tensor(report["moved"], dtype=torch.long)
        reset_moments(self.opt, self.params, moved)
        self.reseeded += len(moved)
        return report

    # -- the loop ------------------------------------------------------------------
    def run(
        self, t0: float, record: Callable[[float], dict], on_step: Callable[[int, dict | None], None] | None = None
    ) -> bool:
        """Train until ``cfg.steps`` or until ``cfg.time_budget_s`` seconds after ``t0``.

        ``record(train_soft_revenue)`` is called every ``cfg.log_every`` steps, at the last
        step and when the budget runs out (it logs, e.g. :meth:`log_metrics`, and returns the
        logged dict); ``on_step(step, logged or None)`` after every step. Returns whether the
        time budget stopped training.
        """
        cfg = self.cfg
        while self.step < cfg.steps:
            soft = self.train_step()
            if cfg.reseed_every and self.step % cfg.reseed_every == 0 and self.step < cfg.steps:
                self.reseed()
            over = cfg.time_budget_s > 0 and time.perf_counter() - t0 > cfg.time_budget_s
            logged = record(soft) if self.step % cfg.log_every == 0 or self.step == cfg.steps or over else None
            if on_step is not None:
                on_step(self.step, logged)
            if over:
                return True
        return False

    # -- checkpointing ---------------------------------------------------------------
    def state(self) -> dict:
        return {
            "step": self.step,
            "reseeded": self.reseeded,
            "params": self.params.state_dict(),
            "opt": self.opt.state_dict(),
            "best": self.best,
            "last": self.last,
            "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "coverage": self.coverage,
            "start": self.start,
            "scale": self.scale,
        }

    def load_state(self, st: dict) -> None:
        self.step = st["step"]
        self.reseeded = st.get("reseeded", 0)
        self.params.load_state_dict(st["params"])
        self.opt.load_state_dict(st["opt"])
        self.best = st["best"]
        self.last = st.get("last")  # absent before issue 39: kept() then gives the best
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        self.coverage = st.get("coverage", {})
        self.start = st.get("start")  # absent in checkpoints written before it was logged
        # the relaxation's unit the run trained with: checkpoints written before issue 39 used the level
        self.scale = float(st.get("scale", self.train.grand_value().double().mean()))
        self._start_menu = None
