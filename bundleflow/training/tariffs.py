"""Learning a menu of two-part tariffs (:mod:`bundleflow.mechanisms.tariffs`) for XOR bidders.

The bidder's choice of a tariff ``k`` and an atom ``a`` (or nothing) is relaxed by one softmax
over all ``(k, a)`` pairs and the null option, utilities in units of the value spread
(:func:`bundleflow.training.trainer.value_spread`, as for every learned family)::

    u[b, k, a] = v[b, a] - f_k - p_k . T[b, a],
    pi = softmax([u[b, :, :], 0] / tau),   soft revenue = E_b sum_{k,a} pi (f_k + p_k . T[b, a]),

with ``tau`` annealed geometrically from ``tau_start`` to ``tau_end``. Fees and prices are
bounded by construction, ``f_k = fee_cap * sigmoid(.)`` and ``p_{k,i} = cap * sigmoid(.)``
(``fee_cap`` the largest grand-bundle value, ``cap`` the largest atom value), so neither can
diverge. Tariff 0 starts at the exact item-pricing fit with a negligible fee; tariff ``k >= 1``
at those prices scaled by ``1 - k / (K + 1)`` with an entry fee of half the median gain of
the bidders who would gain from the discount. The kept menu is the one of highest exact
revenue on the validation bidders among the checkpoints logged every ``log_every`` steps and
**exact item pricing itself** (one tariff, fee 0), so the result never earns less than item
pricing on the validation split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from bundleflow.baselines.items import item_pricing
from bundleflow.errors import InputError
from bundleflow.mechanisms.tariffs import TariffMenu, evaluate_tariffs, tariff_demand
from bundleflow.training.relaxation import annealed
from bundleflow.training.trainer import value_spread
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.xor import XORValuation


@dataclass
class TariffTraining:
    """Settings of :func:`fit_tariffs` (``tau_*`` in units of the value spread)."""

    n_tariffs: int = 4
    steps: int = 1000
    batch: int = 1024
    lr: float = 0.02
    tau_start: float = 0.05
    tau_end: float = 0.005
    log_every: int = 100
    # "free": each tariff has its own item prices (K x m parameters); "scaled": tariff k charges
    # s_k times the exact item-pricing prices (K scales and K fees: 2K parameters, for many items
    # and few bidders)
    prices: str = "free"
    # rounds of exact coordinate ascent on the kept menu's fees (training bidders); kept only if
    # the validation revenue does not drop
    polish_rounds: int = 3
    seed: int = 0
    # stop training after this many seconds (0: no limit); the menu logged last is a candidate
    time_budget_s: float = 0.0

    def check(self) -> None:
        if isinstance(self.polish_rounds, bool) or not isinstance(self.polish_rounds, int) or self.polish_rounds < 0:
            raise InputError(f"tariff training: polish_rounds must be an integer >= 0, got {self.polish_rounds!r}")
        for name in ("n_tariffs", "steps", "batch", "log_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"tariff training: {name} must be an integer >= 1, got {v!r}")
        if self.prices not in ("free", "scaled"):
            raise InputError(f"tariff training: prices must be 'free' or 'scaled', got {self.prices!r}")
        if not (isinstance(self.time_budget_s, int | float) and 0 <= self.time_budget_s < math.inf):
            raise InputError(f"tariff training: time_budget_s must be >= 0 and finite, got {self.time_budget_s!r}")
        for name in ("lr", "tau_start", "tau_end"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0 and math.isfinite(v)):
                raise InputError(f"tariff training: {name} must be positive and finite, got {v!r}")


@dataclass
class TariffFit:
    """The kept menu, its exact validation revenue, exact item pricing's (the floor), the step it
    was logged at (``-1``: item pricing itself), the log, and seconds."""

    menu: TariffMenu
    val_revenue: float
    item_pricing_val_revenue: float
    step: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


MAX_SCALE = 2.0  # scaled tariffs: item prices between 0 and twice the item-pricing ones


def _logit(x: torch.Tensor, cap: float) -> torch.Tensor:
    frac = (x / cap).clamp(1e-6, 1 - 1e-6)
    return torch.log(frac / (1 - frac))


class _Params(torch.nn.Module):
    """Fees ``fee_cap * sigmoid(.)`` ``[K]``; prices ``cap * sigmoid(.)`` ``[K, m]``, or with
    ``base`` (``[m]``, the scaled form) ``s_k * base`` with ``s_k = MAX_SCALE * sigmoid(.)``."""

    def __init__(
        self, fees: torch.Tensor, prices: torch.Tensor, fee_cap: float, cap: float, base: torch.Tensor | None = None
    ):
        super().__init__()
        self.fee_cap, self.cap = fee_cap, cap
        self.fee_logit = torch.nn.Parameter(_logit(fees.double(), fee_cap))
        self.base: torch.Tensor | None = None
        if base is None:
            self.price_logit = torch.nn.Parameter(_logit(prices.double(), cap))
        else:  # one scale per tariff: the scale of its first positive base price
            self.base = base.double()
            i = int(torch.argmax(self.base))
            scale = prices[:, i].double() / self.base[i]
            self.price_logit = torch.nn.Parameter(_logit(scale, MAX_SCALE))

    def fees(self) -> torch.Tensor:
        return self.fee_cap * torch.sigmoid(self.fee_logit)

    def prices(self) -> torch.Tensor:
        if self.base is None:
            return self.cap * torch.sigmoid(self.price_logit)
        base = self.base.to(self.price_logit.device)
        return (MAX_SCALE * torch.sigmoid(self.price_logit))[:, None] * base[None]

    def menu(self) -> TariffMenu:
        with torch.no_grad():
            return TariffMenu(self.fees(), self.prices())


def soft_revenue(params: _Params, batch: XORValuation, tau: float, unit: float) -> torch.Tensor:
    """Relaxed revenue (module doc) of ``batch`` (``B`` XOR bidders), in value units; ``tau`` in
    units of ``unit``."""
    atoms = batch.atoms.double()  # [B, A, m]
    valid = batch.atoms.any(-1)  # [B, A] (padding atoms are empty)
    cost = torch.einsum("bam,km->bka", atoms, params.prices())  # [B, K, A]
    pay = params.fees()[None, :, None] + cost
    u = batch.values.double()[:, None, :] - pay
    u = torch.where(valid[:, None, :], u, torch.full_like(u, -math.inf)).flatten(1)  # [B, K*A]
    logits = torch.cat([u, torch.zeros(len(batch), 1, dtype=u.dtype, device=u.device)], 1) / (tau * unit)
    pi = torch.softmax(logits, 1)[:, :-1]
    return (pi * pay.flatten(1)).sum(1).mean()


def _start(train: XORValuation, ip: torch.Tensor, K: int, fee_cap: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fees [K], prices [K, m])``: item pricing, then discounted tariffs behind an entry fee."""
    prices = torch.stack([ip * (1 - k / (K + 1)) for k in range(K)])
    u, _ = tariff_demand(prices, train)  # [K, B]
    fees = torch.zeros(K, dtype=torch.float64)
    for k in range(1, K):
        gain = u[k] - u[0]
        pos = gain[gain > 0]
        fees[k] = 0.5 * float(pos.median()) if len(pos) else 0.5 * fee_cap
    return fees.clamp(1e-6 * fee_cap, 0.999 * fee_cap), prices


def best_fee(gain: torch.Tensor, cost: torch.Tensor, outside_pay: torch.Tensor, fee_cap: float) -> float:
    """The fee ``f in [0, fee_cap]`` of one tariff maximising exact revenue, others fixed.

    Bidder ``b`` takes the tariff iff ``gain[b] >= f`` (``gain`` = her utility under it before the
    fee minus her best elsewhere, ``-inf`` if she buys nothing under it), paying
    ``cost[b] + f``; else she pays ``outside_pay[b]``. Revenue is piecewise linear in ``f`` and
    maximal at some ``f = gain[b]``: all candidates are scored at once by sorting (``O(B log B)``).
    """
    cand = gain.clamp(0.0, fee_cap)  # [B]
    order = torch.argsort(cand, descending=True)
    t, c, o = cand[order], cost[order], outside_pay[order]
    ok = torch.isfinite(gain[order]) & (gain[order] >= 0)  # a negative gain: never takes it
    # at f = t[i], bidders 0..i (and ties) take the tariff
    take_cost = torch.cumsum(torch.where(ok, c, 0.0), 0)
    n_take = torch.cumsum(ok.double(), 0)
    out_rest = o.sum() - torch.cumsum(o, 0)
    rev = take_cost + n_take * t + out_rest
    # ties: bidders with equal thresholds all take it; score each distinct value at its last index
    last = torch.ones_like(t, dtype=torch.bool)
    last[:-1] = t[:-1] != t[1:]
    rev = torch.where(last & ok, rev, torch.full_like(rev, -math.inf))
    i = int(torch.argmax(rev))
    return float(t[i]) if bool(torch.isfinite(rev[i])) else 0.0


def polish_fees(menu: TariffMenu, train: Valuation, fee_cap: float, rounds: int = 3) -> TariffMenu:
    """Coordinate ascent on the fees, each set by :func:`best_fee` on ``train`` (prices fixed);
    never lowers the exact training revenue (a fee is kept only if it does not)."""
    fees = menu.fees.clone()
    u, cost = tariff_demand(menu.prices, train)  # [K, B]
    buys = (cost > 0) | (u > 0)
    current = evaluate_tariffs(TariffMenu(fees, menu.prices), train).revenue
    for _ in range(rounds):
        for k in range(menu.n_tariffs):
            others = [j for j in range(menu.n_tariffs) if j != k]
            if others:
                rest = TariffMenu(fees[others], menu.prices[others])
                out = evaluate_tariffs(rest, train)
                u_o, pay_o = out.utility, out.payment
            else:
                u_o = pay_o = torch.zeros(len(train), dtype=torch.float64)
            gain = torch.where(buys[k], u[k] - u_o, torch.full_like(u_o, -math.inf))
            trial = fees.clone()
            trial[k] = best_fee(gain, cost[k], pay_o, fee_cap)
            rev = evaluate_tariffs(TariffMenu(trial, menu.prices), train).revenue
            if rev >= current:
                fees, current = trial, rev
    return TariffMenu(fees, menu.prices)


def fit_tariffs(
    train: Valuation,
    val: Valuation,
    cfg: TariffTraining | None = None,
    device: str | torch.device = "cpu",
    on_step: Callable[[int], None] | None = None,
) -> TariffFit:
    """Learn ``cfg.n_tariffs`` two-part tariffs for the XOR bidders ``train`` (module doc);
    ``val`` picks the kept menu. ``on_step(step)`` is called after every step (progress)."""
    cfg = cfg or TariffTraining()
    cfg.check()
    if not isinstance(train, XORValuation) or not isinstance(val, XORValuation):
        raise InputError("tariff menus are trained on XOR bidders (atoms); convert the valuations first")
    if train.n_items != val.n_items:
        raise InputError(f"train has m={train.n_items} items, validation m={val.n_items}")
    t0 = time.perf_counter()
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 11)
    unit = value_spread(train)
    cap = train.max_value()
    fee_cap = float(train.grand_value().max())
    fit = item_pricing(train)
    assert fit.item_prices is not None
    ip = fit.item_prices.double().cpu()
    floor = TariffMenu.item_pricing(ip)
    best_rev = evaluate_tariffs(floor, val).revenue
    ip_val = best_rev
    best: tuple[float, TariffMenu, int] = (best_rev, floor, -1)
    inside = ip.clamp(1e-6 * cap, 0.999 * cap)  # item-pricing prices inside the sigmoid's range
    fees, prices = _start(train.to("cpu"), inside, cfg.n_tariffs, fee_cap)
    base = inside if cfg.prices == "scaled" else None
    params = _Params(fees, prices, fee_cap, cap, base).to(dev)
    opt = torch.optim.Adam(params.parameters(), lr=cfg.lr)
    train_d = train.to(dev)
    history: list[dict] = []

    def log(step: int, soft: float) -> None:
        nonlocal best
        menu = params.menu()
        rev = evaluate_tariffs(menu, val).revenue
        history.append(
            {"step": step, "train_soft_revenue": soft, "val_revenue": rev, "seconds": time.perf_counter() - t0}
        )
        if rev > best[0]:
            best = (rev, menu, step)

    log(0, float("nan"))
    for step in range(1, cfg.steps + 1):
        tau = annealed(cfg.tau_start, cfg.tau_end, step - 1, cfg.steps)
        idx = torch.randint(len(train_d), (min(cfg.batch, len(train_d)),), generator=gen)
        rev = soft_revenue(params, train_d.subset(idx.to(dev)), tau, unit)
        opt.zero_grad(set_to_none=True)
        (-rev / unit).backward()
        opt.step()
        if on_step is not None:
            on_step(step)
        over = cfg.time_budget_s > 0 and time.perf_counter() - t0 > cfg.time_budget_s
        if step % cfg.log_every == 0 or step == cfg.steps or over:
            log(step, float(rev.detach()))
        if over:
            break
    if cfg.polish_rounds and best[2] >= 0:
        polished = polish_fees(best[1], train, fee_cap, cfg.polish_rounds)
        polished_rev = evaluate_tariffs(polished, val).revenue
        history.append({"step": best[2], "polished_val_revenue": polished_rev, "seconds": time.perf_counter() - t0})
        if polished_rev >= best[0]:
            best = (polished_rev, polished, best[2])
    return TariffFit(
        menu=best[1],
        val_revenue=best[0],
        item_pricing_val_revenue=ip_val,
        step=best[2],
        history=history,
        seconds=time.perf_counter() - t0,
    )
