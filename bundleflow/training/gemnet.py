"""Training GemNet's menus: the softmax relaxation of every bidder's choice, revenue summed
over bidders, and a penalty on the relaxed over-allocation (GemNet, arXiv:2406.07428, Sec. 3).

For bids ``v [B, n, m]`` and menus ``(a [B, n, K, m], p [B, n, K])``, bidder ``i``'s utilities
are ``u_ik = v_i . a_ik - p_ik`` and her relaxed choice is

    pi_i = softmax([u_i1 .. u_iK, 0] / tau)              (the last entry: buying nothing)

with ``tau`` a fraction of the trainer's ``choice_scale`` (so the relaxation means the same at
any scale): by default the model's ``value_scale``; runs pass the spread of the values
(``high - low`` for U[low, high] items), which a common offset does not change (issue 39).
The relaxed revenue is ``R = E_b sum_i sum_k pi_ik p_ik`` and the relaxed over-allocation
``C = E_b sum_j relu(sum_i sum_k pi_ik a_ikj - 1)``. The loss is ``-R / scale + lambda * C``;
``tau`` falls and ``lambda`` grows geometrically over training, so the relaxed choice
approaches the exact one while incompatibility is priced ever higher. What is reported is
the exact evaluation (:func:`bundleflow.mechanisms.multi.evaluate_multi`), never ``R``.

Serial menus (XOR bidders, :mod:`bundleflow.mechanisms.multi.gemnet`) are compatible by
construction and trained without the penalty: :func:`relaxed_serial` relaxes the earlier
bidders' choices into the chance ``t_j`` that item ``j`` is already taken, and bidder ``k``'s
element ``e`` enters her softmax with weight ``prod_{j in e} (1 - t_j)``, the relaxed chance that
it is still on her menu, so an earlier sale learns what it costs the later bidders.
Conflict prices and affine menus with entry fees (XOR bidders) are compatible by
construction too: :func:`relaxed_multi` without the penalty (for affine menus the softmax of
one element against nothing is ``sigmoid((u_i - f_i) / tau)``, the relaxed chance that
bidder ``i`` still buys at her fee ``f_i``). All three keep the validation-best menus
(:class:`GemNetTrainer`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.multi.gemnet import GemNet
from bundleflow.mechanisms.multi.outcome import bids_of, element_values, evaluate_multi
from bundleflow.utils.stats import mean_and_se
from bundleflow.valuations.base import Valuation


@dataclass
class GemNetTraining:
    """Hyper-parameters of :func:`train_gemnet` (``tau_*`` in units of the trainer's ``choice_scale``)."""

    steps: int = 4000
    batch: int = 512
    lr: float = 3e-3
    lr_final: float = 1e-4  # cosine decay to this
    tau_start: float = 0.05
    tau_end: float = 0.005
    penalty_start: float = 1.0
    penalty_end: float = 10.0
    log_every: int = 500

    def check(self) -> None:
        for name in ("steps", "batch", "log_every"):
            if getattr(self, name) < 1:
                raise InputError(f"GemNet training: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "lr_final", "tau_start", "tau_end", "penalty_start", "penalty_end"):
            x = getattr(self, name)
            if not (x > 0 and math.isfinite(x)):
                raise InputError(f"GemNet training: {name} must be positive and finite, got {x}")

    def schedule(self, step: int) -> tuple[float, float]:
        """``(tau, lambda)`` at ``step``: geometric from start to end."""
        f = step / max(1, self.steps - 1)
        tau = self.tau_start * (self.tau_end / self.tau_start) ** f
        lam = self.penalty_start * (self.penalty_end / self.penalty_start) ** f
        return tau, lam


def relaxed_multi(
    alloc: torch.Tensor, price: torch.Tensor, values: torch.Tensor | list[Valuation], tau: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R, C)`` of the module doc for one batch: relaxed revenue and relaxed over-allocation.

    Args:
        alloc: ``[B, n, K, m]``; price: ``[B, n, K]``; values: item values ``[B, n, m]``
            (additive or unit demand: the value of an allocation is linear) or the bidders
            (XOR bidders: relaxed bundle values, :func:`element_values`); tau: softmax
            temperature (> 0).
    """
    if isinstance(values, torch.Tensor):
        ev = torch.einsum("bnkm,bnm->bnk", alloc, values)
    else:
        ev = element_values(alloc, values, soft=True)
    u = ev - price
    pi = torch.softmax(torch.cat([u, torch.zeros_like(u[..., :1])], -1) / tau, -1)[..., :-1]
    revenue = (pi * price).sum((1, 2)).mean()
    expected = torch.einsum("bnk,bnkm->bnm", pi, alloc)
    over = (expected.sum(1) - 1).clamp_min(0).sum(-1).mean()
    return revenue, over


def relaxed_serial(
    model: GemNet, bids: torch.Tensor, bidders: list[Valuation], tau: float, charge_blocking: bool = True
):
    """``(R, C)`` of :func:`relaxed_multi` for serial menus (module doc): ``bids [B, n, m]`` in
    the model's dtype and device, one XOR ``bidders`` entry per bidder, temperature ``tau``.
    ``C`` is the over-allocation of the relaxed choices (reported, not penalised: the exact
    menus never over-allocate). ``charge_blocking=False`` treats the items taken as given (no
    gradient from a later bidder's revenue to the earlier choices; an ablation)."""
    B, n, m = bids.shape
    taken = torch.zeros(B, m, dtype=bids.dtype, device=bids.device)  # t_j: relaxed, in [0, 1]
    revenue = bids.new_zeros(())
    total = torch.zeros_like(taken)
    for i in range(n):
        a, p = model.bidder_menu(bids, i, tau, bidders, taken.detach())
        gone = taken if charge_blocking else taken.detach()
        still = torch.exp(torch.einsum("bkm,bm->bk", a, torch.log1p(-gone.clamp(max=1 - 1e-6))))
        u = element_values(a[:, None], [bidders[i]], soft=True)[:, 0] - p  # [B, K']
        logits = torch.cat([u / tau + torch.log(still.clamp_min(1e-30)), torch.zeros_like(u[:, :1])], -1)
        pi = torch.softmax(logits, -1)[:, :-1]
        revenue = revenue + (pi * p).sum(-1).mean()
        got = torch.einsum("bk,bkm->bm", pi, a)
        total = total + got
        taken = (taken + got).clamp(max=1.0)
    return revenue, (total - 1).clamp_min(0).sum(-1).mean()


# (batch, generator) -> item bids [B, n, m], or the bidders (one Valuation each, B rows)
Sampler = Callable[[int, torch.Generator], "torch.Tensor | list[Valuation]"]


class GemNetTrainer:
    """:func:`train_gemnet` as an object that can be checkpointed and resumed
    (:meth:`state` / :meth:`load_state`: model, optimiser, schedule, sampler stream, step).

    With ``keep_best`` (default: for menus compatible by construction, given validation
    profiles) the trainer also keeps the menus of the highest exact validation revenue seen,
    the start included; :meth:`restore_best` puts them back after training. With
    ``keep_margin_se = z > 0`` later menus replace the first kept ones (the start, when it is
    compatible) only if their paired gain over them on the validation profiles is above ``z``
    standard errors: a guard against keeping menus for a validation gain that is noise."""

    def __init__(
        self,
        model: GemNet,
        sample: Sampler,
        cfg: GemNetTraining,
        generator: torch.Generator,
        validation: list[Valuation] | None = None,
        keep_best: bool | None = None,
        keep_margin_se: float = 0.0,
        choice_scale: float | None = None,
    ):
        """``choice_scale``: the unit of ``tau`` (default ``model.value_scale``)."""
        cfg.check()
        scale = model.value_scale if choice_scale is None else float(choice_scale)
        if not (scale > 0 and math.isfinite(scale)):
            raise InputError(f"GemNet training: choice_scale must be positive and finite, got {choice_scale}")
        self.choice_scale = scale
        if not (keep_margin_se >= 0 and math.isfinite(keep_margin_se)):
            raise InputError(f"GemNet training: keep_margin_se must be finite and >= 0, got {keep_margin_se}")
        self.keep_margin_se = float(keep_margin_se)
        self.model, self.sample, self.cfg, self.generator, self.validation = model, sample, cfg, generator, validation
        self.opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, cfg.steps, eta_min=cfg.lr_final)
        self.step = 0
        default = model.compatible_by_construction and validation is not None
        self.keep_best = bool(default) if keep_best is None else keep_best
        if self.keep_best and validation is None:
            raise InputError("GemNet training: keeping the best menus needs validation profiles")
        # {"step", "revenue", "start_revenue", "start_payment" [B_val], "gain_se", "model"}
        self.best: dict | None = None

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "sched": self.sched.state_dict(),
            "generator": self.generator.get_state(),
            "step": self.step,
            "best": self.best,
            "choice_scale": self.choice_scale,
        }

    def load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.best = state.get("best")
        # checkpoints written before issue 39 measured tau in units of the model's value scale
        self.choice_scale = float(state.get("choice_scale", self.model.value_scale))

    def _validate(self) -> tuple[dict, torch.Tensor]:
        """Exact revenue and over-allocation rate on the validation profiles, and the revenue
        ``[B_val]`` of each profile."""
        was = self.model.training
        self.model.eval()
        out = evaluate_multi(self.model, self.validation)  # type: ignore[arg-type]
        self.model.train(was)
        return {"hard_revenue": out.revenue, "over_allocation_rate": out.over_rate}, out.payment.sum(1)

    def _offer_best(self, revenue: float, over_rate: float, payment: torch.Tensor) -> None:
        """Keep the current menus if their validation revenue is the best so far among menus
        that never over-allocate on the validation profiles (and, with ``keep_margin_se``, if
        their paired gain over the first kept menus is significant); ``payment [B_val]``: the
        revenue of each validation profile."""
        if over_rate > 0:
            return
        payment = payment.detach().double().cpu()
        start_revenue, gain_se = revenue, 0.0
        start_payment: torch.Tensor | None = payment
        if self.best is not None:
            if revenue <= self.best["revenue"]:
                return
            start_revenue, start_payment = self.best["start_revenue"], self.best.get("start_payment")
            if start_payment is not None:  # (None: a checkpoint written before the guard)
                gain, gain_se = mean_and_se(payment - start_payment)
                if self.keep_margin_se > 0 and gain <= self.keep_margin_se * gain_se:
                    return
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.best = {
            "step": self.step,
            "revenue": revenue,
            "start_revenue": start_revenue,
            "start_payment": start_payment,
            "gain_se": gain_se,
            "model": state,
        }

    def restore_best(self) -> dict | None:
        """Put back the kept menus (``keep_best``); returns ``{"step", "validation_revenue",
        "start_validation_revenue", "validation_gain_se", "keep_margin_se"}`` (the s.e. of the
        paired validation gain over the first kept menus; 0 when those are kept) or None when
        nothing is kept."""
        if not self.keep_best or self.best is None:
            return None
        self.model.load_state_dict(self.best["model"])
        return {
            "step": int(self.best["step"]),
            "validation_revenue": float(self.best["revenue"]),
            "start_validation_revenue": float(self.best["start_revenue"]),
            "validation_gain_se": float(self.best.get("gain_se", 0.0)),
            "keep_margin_se": self.keep_margin_se,
        }

    def run(
        self, log: Callable[[dict], None] | None = None, time_budget_s: float = 0.0, prior_seconds: float = 0.0
    ) -> bool:
        """Train up to ``cfg.steps``; every ``log_every`` steps (and at the last) call ``log`` with
        the relaxed figures and, given validation profiles, the exact revenue and over-allocation
        on them. Stops early once ``prior_seconds`` + this sitting's seconds reach
        ``time_budget_s`` (0: no budget); returns whether it did."""
        cfg, model = self.cfg, self.model
        p0 = next(model.parameters())
        t0 = time.perf_counter() - prior_seconds
        if self.keep_best and self.best is None:  # the start is a candidate
            start, paid = self._validate()
            self._offer_best(start["hard_revenue"], start["over_allocation_rate"], paid)
        while self.step < cfg.steps:
            tau, lam = cfg.schedule(self.step)
            drawn = self.sample(cfg.batch, self.generator)
            values: torch.Tensor | list[Valuation]
            if isinstance(drawn, torch.Tensor):
                v = values = drawn.to(p0.device, p0.dtype)
            else:
                values = [b.to(p0.device) for b in drawn]
                v = bids_of(values).to(p0.device, p0.dtype)
            if not torch.isfinite(v).all():
                raise InputError("GemNet training: the sampler returned non-finite bids")
            if model.serial:  # compatible by construction: no penalty
                revenue, over = relaxed_serial(model, v, values, tau * self.choice_scale)  # type: ignore[arg-type]
                loss = -revenue / model.value_scale
            else:
                alloc, price = model.menus(
                    v, relax=tau * self.choice_scale, bidders=None if isinstance(values, torch.Tensor) else values
                )
                revenue, over = relaxed_multi(alloc, price, values, tau * self.choice_scale)
                loss = -revenue / model.value_scale + (0.0 if model.compatible_by_construction else lam) * over
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sched.step()
            self.step += 1
            out_of_time = time_budget_s > 0 and time.perf_counter() - t0 >= time_budget_s
            if self.step % cfg.log_every == 0 or self.step == cfg.steps or out_of_time:
                row = {
                    "step": self.step,
                    "seconds": time.perf_counter() - t0,
                    "tau": tau,
                    "penalty": lam,
                    "soft_revenue": float(revenue.detach()),
                    "soft_over_allocation": float(over.detach()),
                }
                if self.validation is not None:
                    exact, paid = self._validate()
                    row.update(exact)
                    if self.keep_best:
                        self._offer_best(row["hard_revenue"], row["over_allocation_rate"], paid)
                if log is not None:
                    log(row)
            if out_of_time:
                return True
        return False


def train_gemnet(
    model: GemNet,
    sample: Sampler,
    cfg: GemNetTraining,
    generator: torch.Generator,
    validation: list[Valuation] | None = None,
    log: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``model`` on fresh batches ``sample(cfg.batch, generator)`` (:class:`GemNetTrainer`;
    serial menus given ``validation`` end as the validation-best ones); returns the logged rows."""
    history: list[dict] = []

    def keep(row: dict) -> None:
        history.append(row)
        if log is not None:
            log(row)

    trainer = GemNetTrainer(model, sample, cfg, generator, validation)
    trainer.run(keep)
    trainer.restore_best()
    return history
