"""Item pricing: one price per item, the bidder buys her utility-maximising bundle; exact coordinate
search over breakpoints, and the exact MILP on small type spaces."""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import replace

import torch

from bundleflow.baselines.prices import best_price_given_outside
from bundleflow.baselines.result import BaselineResult
from bundleflow.errors import InputError
from bundleflow.oracles.optimal_prices import MAX_MILP_CHOICES, optimal_item_prices
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.bundles import all_bundles
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation
from bundleflow.valuations.xor import XORValuation


def _item_price_candidates(valuation: Valuation, n: int) -> torch.Tensor:
    g = valuation.grand_value()
    hi = float(g.max()) if len(g) else 1.0
    if hi <= 0:
        return torch.zeros(1, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-4, 0, n - 1, dtype=torch.float64) * hi])


def _atom_form(valuation: Valuation) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(atoms [B, K, m] bool, values [B, K] float64)`` for XOR and unit-demand valuations (one
    atom per item for unit demand), ``None`` for additive ones (item pricing is separable there).
    Any other valuation class with ``m <= MAX_ENUMERATED_ITEMS`` is written as an XOR over all
    ``2^m`` bundles (exact for every valuation)."""
    if isinstance(valuation, XORValuation):
        return valuation.atoms, valuation.values.to(torch.float64)
    if isinstance(valuation, UnitDemandValuation):
        B, m = valuation.item_values.shape
        eye = torch.eye(m, dtype=torch.bool, device=valuation.device)
        return eye[None].expand(B, m, m), valuation.item_values.to(torch.float64)
    if isinstance(valuation, AdditiveValuation):
        return None
    m = valuation.n_items
    if m > MAX_ENUMERATED_ITEMS:
        raise InputError(
            f"item_pricing: {type(valuation).__name__} with m={m} items; other valuation classes than XOR, "
            f"additive and unit demand are supported up to m={MAX_ENUMERATED_ITEMS} (every bundle as an atom)"
        )
    bundles = all_bundles(m, valuation.device)  # [2^m, m]
    values = valuation.value(bundles).to(torch.float64)  # [B, 2^m]
    return (bundles > 0.5)[None].expand(len(valuation), -1, -1), values


# Largest m for which item pricing of a general valuation class enumerates every bundle as an atom.
MAX_ENUMERATED_ITEMS = 8


def _best_in_interval(
    thr: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor, cap: float
) -> tuple[float, float]:
    """Maximise ``R(x) = sum_b [x + inside_b if x <= thr_b else outside_b]`` over ``x in [0, cap]``.

    ``R`` rises with slope ``#{thr >= x}`` between breakpoints and drops at each ``thr_b``, so
    the maximum is at ``x = 0`` or at a breakpoint. Returns ``(x, R(x))``.
    """
    t, order = torch.sort(thr, descending=True)
    ins, outs = inside[order], outside[order]
    k = torch.arange(1, len(t) + 1, dtype=torch.float64, device=t.device)
    # x = t[k-1]: the first k bidders (thr >= x) take the option (ties: a later index counts them all)
    rev = t * k + torch.cumsum(ins, 0) + (outs.sum() - torch.cumsum(outs, 0))
    rev = torch.where((t >= 0) & (t <= cap), rev, torch.full_like(rev, -math.inf))
    buy0 = thr >= 0
    r0 = float(torch.where(buy0, inside, outside).sum())
    if len(t) and float(rev.max()) > r0:
        i = int(rev.argmax())
        return float(t[i]), float(rev[i])
    return 0.0, r0


def _revenue_at(x: float, thr, inside, outside) -> float:
    return float(torch.where(thr >= x, x + inside, outside).sum())


def item_price_ascent(
    atoms: torch.Tensor, values: torch.Tensor, prices: torch.Tensor, cap: float, max_rounds: int = 50, progress=None
) -> torch.Tensor:
    """Exact coordinate ascent on item prices for bidders with atom (XOR) valuations.

    Bidder ``b`` buys her utility-maximising atom at the sum of its item prices, or nothing
    (ties: the highest payment). With the other prices fixed, let ``c_k`` be atom ``k``'s
    cost without item ``i``; she buys an atom with ``i`` at price ``x`` iff
    ``x <= thr_b = max_{k owns i}(v_k - c_k) - max(0, max_{k lacks i}(v_k - c_k))`` and then
    pays ``x + c_*`` (``c_*``: that atom's other items), else the payment ``q_b`` of her best
    option without ``i``. Revenue in ``x`` is piecewise linear with a drop at every ``thr_b``
    (:func:`_best_in_interval`), so each step moves price ``i`` to its exact best response:
    ``O(B K + B log B)`` per item. Sweeps repeat until no price moves.

    Args:
        atoms: ``[B, K, m]`` bool; values: ``[B, K]``; prices: ``[m]`` start; cap: price cap.
    Returns:
        ``[m]`` float64 prices.
    """
    a_all = atoms.to(torch.float64)
    prices = prices.to(device=values.device, dtype=torch.float64).clone().clamp(0.0, cap)
    cost = torch.einsum("bkm,m->bk", a_all, prices)
    m = prices.shape[0]
    for _ in range(max_rounds):
        moved = False
        for i in range(m):
            has_i = atoms[:, :, i]
            a_i = a_all[:, :, i]
            c_wo = cost - a_i * prices[i]
            s = values - c_wo
            neg = torch.full_like(s, -math.inf)
            best_wo = torch.where(has_i, neg, s).amax(1).clamp_min(0.0)  # null option: utility 0
            tol_wo = 1e-9 * (1.0 + best_wo.abs())
            pay_wo = torch.where(~has_i & (s >= (best_wo - tol_wo)[:, None]), c_wo, torch.zeros_like(s)).amax(1)
            best_w = torch.where(has_i, s, neg).amax(1)
            tol_w = 1e-9 * (1.0 + best_w.abs().nan_to_num(0.0, 0.0, 0.0))
            c_star = torch.where(has_i & (s >= (best_w - tol_w)[:, None]), c_wo, neg).amax(1)
            thr = torch.where(torch.isfinite(best_w), best_w - best_wo, torch.full_like(best_w, -math.inf))
            c_star = torch.where(torch.isfinite(c_star), c_star, torch.zeros_like(c_star))
            x, r = _best_in_interval(thr, c_star, pay_wo, cap)
            now = _revenue_at(float(prices[i]), thr, c_star, pay_wo)
            if r > now + 1e-12 * max(1.0, abs(now)):
                prices[i] = x
                cost = c_wo + a_i * x
                moved = True
            if progress is not None:
                progress(1)
        if not moved:
            break
    return prices


def _value_share_prices(valuation: Valuation, atoms: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Start for item prices: each atom's value split evenly over its items, averaged per item,
    scaled by the best of 37 factors in ``[0.2, 2]`` (each evaluated exactly). ``[m]``."""
    a = atoms.to(torch.float64)
    share = (values / a.sum(-1).clamp_min(1.0))[..., None] * a  # [B, K, m]
    base = share.sum((0, 1)) / a.sum((0, 1)).clamp_min(1.0)
    scales = torch.linspace(0.2, 2.0, 37, dtype=torch.float64, device=base.device)
    _, pay = valuation.demand(scales[:, None] * base[None])
    return float(scales[int(pay.mean(1).argmax())]) * base


# item_pricing's last fits by (valuation class, digest of its atoms and values, arguments):
# a bench fits the same training split once per method and seed (12 fits of one split in a
# 3-seed bench); the ascent is deterministic, so a repeat returns the same prices bit for bit
_FITS: OrderedDict[tuple, tuple[BaselineResult, int]] = OrderedDict()
_MAX_FITS = 8


def _fit_key(valuation: Valuation, form: tuple[torch.Tensor, torch.Tensor], *args) -> tuple:
    h = hashlib.blake2b(digest_size=16)
    for t in form:
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.contiguous().cpu().numpy().tobytes())
    return (type(valuation).__name__, str(valuation.device), h.hexdigest(), *args)


def item_pricing(
    valuation: Valuation, restarts: int = 4, seed: int = 0, grid: int = 48, max_rounds: int = 50, progress=None
) -> BaselineResult:
    """Item prices by exact coordinate ascent (:func:`item_price_ascent`) on ``valuation``.

    Starts: the best uniform price (``grid`` log-spaced candidates), the value-share prices
    (:func:`_value_share_prices`), ``restarts`` random perturbations of them (each price
    times ``U[0.7, 1.3]``), with at most 6 items 16 broad random starts (each price uniform
    up to its item's largest atom value), and with at most ``MAX_MILP_CHOICES`` bidder-atom
    pairs the exact optimum of the pricing MILP (:func:`bundleflow.oracles.optimal_item_prices`).
    Every start is ascended; the prices with the highest exact revenue
    (:meth:`Valuation.demand`) are kept. Additive bidders: each item alone at its
    exact optimal posted price (revenue is separable). ``progress(n)`` is called once per
    item step of the ascents.
    """
    if len(valuation) == 0:
        raise InputError("item_pricing: empty valuation batch")
    m = valuation.n_items
    dev = valuation.device
    cap = valuation.max_value()
    form = _atom_form(valuation)
    if form is None:  # additive: one exact posted price per item
        assert isinstance(valuation, AdditiveValuation)  # _atom_form returns None for those only
        vals = valuation.item_values.to(torch.float64)
        zero = torch.zeros(len(valuation), dtype=torch.float64, device=dev)
        starts = [
            torch.tensor([best_price_given_outside(vals[:, i], zero, cap)[0] for i in range(m)], dtype=torch.float64)
        ]
    else:
        key = _fit_key(valuation, form, restarts, seed, grid, max_rounds)
        if key in _FITS:  # the same bidders and arguments: the same deterministic ascent
            _FITS.move_to_end(key)
            done, steps = _FITS[key]
            if progress is not None:
                progress(steps)
            assert done.item_prices is not None
            return replace(done, item_prices=done.item_prices.clone())
        t0 = time.perf_counter()
        steps = 0
        outer = progress

        def progress(n: int) -> None:
            nonlocal steps
            steps += n
            if outer is not None:
                outer(n)

        cand = _item_price_candidates(valuation, grid).to(dev)
        _, pay = valuation.demand(cand[:, None].expand(-1, m))
        uniform = torch.full((m,), float(cand[int(pay.mean(1).argmax())]), dtype=torch.float64, device=dev)
        share = _value_share_prices(valuation, *form)
        g = torch.Generator().manual_seed(seed)
        starts = [uniform, share] + [
            share * (0.7 + 0.6 * torch.rand(m, generator=g, dtype=torch.float64)).to(dev) for _ in range(restarts)
        ]
        # few items: coordinate ascent's local optima are few but sharp; add broad random starts
        # (each price U[0, its item's largest atom value]), cheap at this size
        n_broad = 16 if m <= 6 else 0
        top = torch.where(form[0], form[1][..., None], torch.zeros((), dtype=torch.float64, device=dev)).amax((0, 1))
        starts += [top * torch.rand(m, generator=g, dtype=torch.float64).to(dev) for _ in range(n_broad)]
        if form[0].shape[0] * form[0].shape[1] <= MAX_MILP_CHOICES:  # small sample: the exact optimum
            starts.append(torch.as_tensor(optimal_item_prices(*form)[0], dtype=torch.float64).to(dev))
        # every start, the MILP's too, ends at an exact best response in each price
        starts = [item_price_ascent(form[0], form[1], st, cap, max_rounds, progress) for st in starts]
    best_rev, best_p = -math.inf, None
    for p in starts:
        rev = float(valuation.demand(p.to(dev))[1].mean())
        if rev > best_rev:
            best_rev, best_p = rev, p
    assert best_p is not None  # starts is never empty
    if form is None:
        return BaselineResult("item_pricing", best_rev, item_prices=best_p.cpu())
    prices = best_p.cpu()
    fit = BaselineResult("item_pricing", best_rev, item_prices=prices, fit_seconds=time.perf_counter() - t0)
    _FITS[key] = (replace(fit, item_prices=prices.clone()), steps)
    while len(_FITS) > _MAX_FITS:
        _FITS.popitem(last=False)
    return fit
