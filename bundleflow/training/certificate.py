"""A certificate of compatibility on the whole value space, by interval bounds on cells.

GemNet's menus (:mod:`.gemnet`) are strategy-proof by construction; whether the bidders'
choices can over-allocate an item is a property of the trained networks. The grid transform
(:mod:`bundleflow.training.compatibility`) removes over-allocation on a grid of bids; the paper
(Wang, Jiang, Parkes, arXiv:2406.07428) extends the guarantee off the grid with Lipschitz
bounds. Here the bounds are local instead: the value space ``[low, high]^(n m)`` of item
bidders (additive or unit demand) is cut into boxes, and on each box every quantity of every
menu is bounded by interval arithmetic through the networks (interval bound propagation:
``W c + b`` with radius ``|W| r`` through a linear layer, endpoint images through the monotone
``tanh`` and ``sigmoid``; for unit demand's ``softmax([z, 0])``, ``a_j`` rises with ``z_j`` and
falls with every other logit). On a box ``X``, with bidder ``i``'s utilities bounded by
``u_ik in [lo_ik, hi_ik]`` (the null option: 0),

    C_i(X) = {k : hi_ik >= max(0, max_l lo_il) - tol}

holds every element she may take somewhere in ``X`` (``tol``: the evaluation's tie tolerance,
:func:`~bundleflow.mechanisms.multi.outcome.tie_tolerance`, within which the seller-favourable
choice may take a worse element, plus a margin for the float32 menus), and item ``j`` cannot be
over-allocated in ``X`` if

    sum_i max_{k in C_i(X)} hi(a_ikj) <= 1 + OVER_TOL.

Item sales (``item_prices``) are exclusive: an additive bidder's best set takes item ``j``
only if her bid is strictly above every other bid, so at most one bidder holds ``j`` through
them, and the bound for ``j`` is also ``sum_i max_{k in C_i, learned} hi(a_ikj) + 1`` when a
sale may take it (the smaller bound counts); an entry fee on the sales (``entry_fee``) enters
their utility bounds through its own output's bounds. A unit-demand bidder may take item ``j`` at
``q_ij >= b_lj`` within the tie tolerance, so two may take it only where ``|b_ij - b_lj| <=
tol``: those *tie bands* are left out of the certified part, and their share, at most
``n (n - 1) / 2 * m * 2 tol / (high - low)``, is added to the uncertain share.

A box that is not certified is halved along its longest side, up to ``max_cells`` boxes in
all; what is left uncertain bounds, from above, the share of the value space (the chance,
under uniform values) on which the choices may over-allocate. With a transform's shifts
(:class:`~bundleflow.training.compatibility.ShiftedMenus`) the first boxes are the transform
grid's cells, inside which each bidder's shifts are constant (a bid on a cell's edge belongs to
a neighbour's shifts; such edges have no volume). Sound, not exact: a box left uncertain may
hold no over-allocating profile.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.menu import TIE_TOL
from bundleflow.mechanisms.multi.gemnet import GemNet
from bundleflow.mechanisms.multi.outcome import OVER_TOL
from bundleflow.training.compatibility import ShiftedMenus

_CHUNK = 4096  # boxes bounded at once
# the menus are computed in float32, the bounds in float64: learned allocations are widened by
# ALLOC_MARGIN and utilities by UTIL_MARGIN times the largest price or value (float32 rounds a
# sigmoid or a price to about 6e-8 of its size)
ALLOC_MARGIN = 1e-6
UTIL_MARGIN = 1e-5


@dataclass
class Certificate:
    """What :func:`certify` found: the share of the value space certified, the share left
    uncertain (an upper bound on the chance of over-allocation under uniform values), the
    boxes, and the final boxes left uncertain (``[U, n, m]`` corners)."""

    certified_share: float
    uncertain_share: float
    boxes_checked: int
    uncertain_boxes: int
    seconds: float
    uncertain_low: torch.Tensor
    uncertain_high: torch.Tensor
    band_tol: float = 0.0  # unit-demand item sales: the tie bands |b_ij - b_lj| <= band_tol
    band_share: float = 0.0  # (their share of the space, at most; counted in uncertain_share)

    @property
    def complete(self) -> bool:
        """Whether the whole value space is certified: the choices never over-allocate."""
        return self.uncertain_boxes == 0 and self.band_share == 0

    def summary(self) -> dict:
        return {
            "certified_share": self.certified_share,
            "uncertain_share": self.uncertain_share,
            "boxes_checked": self.boxes_checked,
            "uncertain_boxes": self.uncertain_boxes,
            "tie_band_share": self.band_share,
            "complete": self.complete,
            "seconds": self.seconds,
        }

    def holds(self, bids: torch.Tensor) -> torch.Tensor:
        """``[B]`` whether each profile ``bids [B, n, m]`` lies in a certified part of the space
        (outside every uncertain box)."""
        b = bids.double()
        inside = torch.zeros(len(b), dtype=torch.bool)
        if self.band_tol > 0:
            n = b.shape[1]
            for i in range(n):
                for k in range(i + 1, n):
                    inside |= ((b[:, i] - b[:, k]).abs() <= self.band_tol).any(-1)
        for s in range(0, len(self.uncertain_low), 256):
            lo, hi = self.uncertain_low[s : s + 256], self.uncertain_high[s : s + 256]
            hit = ((b[:, None] >= lo[None]) & (b[:, None] <= hi[None])).flatten(2).all(-1)
            inside |= hit.any(1)
        return ~inside


def _linear_bounds(net: torch.nn.Module, lo: torch.Tensor, hi: torch.Tensor):
    """``(lo, hi)`` of the network's outputs over the input box ``[lo, hi]`` (float64)."""
    for layer in net.children():
        if isinstance(layer, torch.nn.Linear):
            W, b = layer.weight.double(), layer.bias.double()
            c, r = (lo + hi) / 2, (hi - lo) / 2
            c, r = c @ W.T + b, r @ W.abs().T
            lo, hi = c - r, c + r
        elif isinstance(layer, torch.nn.Tanh):
            lo, hi = torch.tanh(lo), torch.tanh(hi)
        else:
            raise InputError(f"certify: no interval bound for a {type(layer).__name__} layer")
    return lo, hi


def _unit_softmax_bounds(lo: torch.Tensor, hi: torch.Tensor):
    """Bounds of ``softmax([z, 0])[:m]`` for ``z`` in ``[lo, hi]`` (``[..., m]``)."""
    elo, ehi = lo.exp(), hi.exp()
    rest_lo = elo.sum(-1, keepdim=True) - elo + 1  # the other logits at their least, and the 0
    rest_hi = ehi.sum(-1, keepdim=True) - ehi + 1
    return elo / (elo + rest_hi), ehi / (ehi + rest_lo)


def _menu_bounds(net: GemNet, lo: torch.Tensor, hi: torch.Tensor, i: int):
    """Bidder ``i``'s learned menu over the boxes ``[lo, hi] [C, n, m]``: ``(alo, ahi [C, K, m],
    plo, phi [C, K], q)``, bounds of allocations and prices, and with item sales the bounds
    ``(qlo, qhi [C, m], flo, fhi [C, 1])`` of her item prices and entry fee (0 without one;
    else None)."""
    C, n, m = lo.shape
    K = net.n_elements
    keep = [j for j in range(n) if j != i]
    if n == 1:
        xlo = xhi = torch.zeros(C, 1, dtype=torch.float64)
    else:
        xlo = (lo[:, keep] / net.value_scale).reshape(C, -1)
        xhi = (hi[:, keep] / net.value_scale).reshape(C, -1)
    zlo, zhi = _linear_bounds(net.nets[i], xlo, xhi)
    llo, lhi = zlo[:, : K * m].reshape(C, K, m), zhi[:, : K * m].reshape(C, K, m)
    if net.unit_demand:
        alo, ahi = _unit_softmax_bounds(llo, lhi)
    else:
        alo, ahi = torch.sigmoid(llo), torch.sigmoid(lhi)
    plo = net.cap * torch.sigmoid(zlo[:, K * m : K * m + K])
    phi = net.cap * torch.sigmoid(zhi[:, K * m : K * m + K])
    if not net.item_prices:
        return alo, ahi, plo, phi, None
    rlo = net.value_scale * torch.sigmoid(zlo[:, K * m + K : K * m + K + m])
    rhi = net.value_scale * torch.sigmoid(zhi[:, K * m + K : K * m + K + m])
    if n > 1:  # q_ij = max(r_ij, highest other bid on j)
        rlo, rhi = torch.maximum(rlo, lo[:, keep].amax(1)), torch.maximum(rhi, hi[:, keep].amax(1))
    flo = fhi = torch.zeros(C, 1, dtype=torch.float64)
    if net.entry_fee:  # GemNet.item_fee, monotone in its output z
        flo, fhi = net.item_fee(zlo[:, -1:]), net.item_fee(zhi[:, -1:])
    return alo, ahi, plo, phi, (rlo, rhi, flo, fhi)


def _box_check(
    net: GemNet, shifts: ShiftedMenus | None, lo: torch.Tensor, hi: torch.Tensor, tol: float, keep: float = 1.0
) -> torch.Tensor:
    """``[C]`` whether each box ``[lo, hi] [C, n, m]`` is certified (module doc); ``keep``:
    withholding's factor on every allocation and price, so on every utility and load."""
    C, n, m = lo.shape
    learned = torch.zeros(C, n, m, dtype=torch.float64)  # max over learned candidates of hi(a)
    sold = torch.zeros(C, n, m, dtype=torch.float64)  # whether an item sale may take j
    for i in range(n):
        alo, ahi, plo, phi, q = _menu_bounds(net, lo, hi, i)
        alo, ahi = (alo - ALLOC_MARGIN).clamp_min(0), (ahi + ALLOC_MARGIN).clamp(max=1)
        K = alo.shape[1]
        d = shifts.bidder_shifts((lo + hi) / 2, i) if shifts is not None else None  # [C, K'] constant on the box
        if d is not None:
            plo, phi = plo + d[:, :K], phi + d[:, :K]
        vlo, vhi = lo[:, i], hi[:, i]
        ulo = torch.einsum("ckm,cm->ck", alo, vlo) - phi
        uhi = torch.einsum("ckm,cm->ck", ahi, vhi) - plo
        sale_a = None
        if q is not None:
            qlo, qhi, flo, fhi = q
            if net.unit_demand:  # item j alone at q_ij (plus the entry fee)
                slo, shi = vlo - qhi - fhi, vhi - qlo - flo
                sale_a = torch.eye(m, dtype=torch.float64).expand(C, m, m)
            else:  # the best set {j : b_ij > q_ij} at sum q_ij (plus the entry fee)
                slo = (vlo - qhi).clamp_min(0).sum(-1, keepdim=True) - fhi
                shi = (vhi - qlo).clamp_min(0).sum(-1, keepdim=True) - flo
                sale_a = (vhi > qlo).double()[:, None]  # [C, 1, m]
            if d is not None:
                slo, shi = slo - d[:, K:], shi - d[:, K:]
            ulo, uhi = torch.cat([ulo, slo], 1), torch.cat([uhi, shi], 1)
        ulo, uhi = ulo * keep, uhi * keep
        best_low = ulo.amax(1).clamp_min(0)
        cand = uhi >= (best_low - tol)[:, None]  # [C, K'']
        learned[:, i] = torch.where(cand[:, :K, None], ahi, torch.zeros_like(ahi)).amax(1)
        if sale_a is not None:
            sold[:, i] = torch.where(cand[:, K:, None], sale_a, torch.zeros_like(sale_a)).amax(1)
    # item sales are exclusive (outside the tie bands, for unit demand: module doc)
    load = keep * torch.minimum(torch.maximum(learned, sold).sum(1), learned.sum(1) + sold.amax(1))
    return (load <= 1 + OVER_TOL).all(-1)


MAX_BOXES = 100_000_000


def certify(mechanism, low: float, high: float, levels: int = 4, max_cells: int = 200_000) -> Certificate:
    """Certify that the choices from ``mechanism``'s menus (a :class:`GemNet` for item bidders,
    or a transformed one) never over-allocate on ``[low, high]^(n m)`` (module doc).

    ``levels``: the first boxes split every coordinate into that many equal parts (a
    transformed mechanism uses its grid's levels instead); ``max_cells``: how many boxes may be
    bounded in all. Returns a :class:`Certificate`."""
    from bundleflow.training.withholding import WithheldMenus

    t0 = time.perf_counter()
    keep = 1.0  # withholding's factor on every allocation and price (bundleflow.training.withholding)
    if isinstance(mechanism, WithheldMenus):
        keep, mechanism = mechanism.keep, mechanism.base
    shifts = mechanism if isinstance(mechanism, ShiftedMenus) else None  # the transform's, or none
    net = mechanism.base if shifts is not None else mechanism
    if not isinstance(net, GemNet) or net.bundles:
        raise InputError("certify: for GemNet menus of item bidders (additive or unit demand)")
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
        raise InputError(f"certify: need 0 <= low < high, got [{low}, {high}]")
    if levels < 1 or max_cells < 1:
        raise InputError(f"certify: levels and max_cells must be >= 1, got {levels}, {max_cells}")
    if max_cells > MAX_BOXES:
        raise InputError(f"certify: --boxes {max_cells} is more than {MAX_BOXES} (each box keeps bounds in memory)")
    n, m = net.n_bidders, net.n_items
    if shifts is not None:  # the first boxes must be the transform grid's cells
        levels = len(mechanism.levels)
        centres = low + (high - low) * (torch.arange(levels, dtype=torch.float64) + 0.5) / levels
        if not torch.allclose(mechanism.levels.double().cpu(), centres, rtol=0, atol=1e-12 * max(1.0, high)):
            raise InputError(
                f"certify: the transform's grid is not made of {levels} equal cells of [{low}, {high}]; "
                "give the low and high of its data"
            )
    if levels ** (n * m) > max_cells:
        raise InputError(f"certify: {levels}^{n * m} first boxes are more than max_cells={max_cells}")
    edges = torch.linspace(low, high, levels + 1, dtype=torch.float64)

    idx = torch.tensor(list(itertools.product(range(levels), repeat=n * m)), dtype=torch.long).reshape(-1, n, m)
    lo, hi = edges[idx], edges[idx + 1]
    # the evaluation's tie tolerance at its largest, and the float32 margin
    tol = TIE_TOL * max(1.0, high * m) + UTIL_MARGIN * (net.cap + high * m)
    total = (high - low) ** (n * m)
    checked, certified = 0, 0.0
    left_lo, left_hi = [], []
    was = net.training
    net.eval()
    with torch.no_grad():
        while len(lo):
            ok = torch.cat([_box_check(net, shifts, lo[s : s + _CHUNK], hi[s : s + _CHUNK], tol, keep)
                            for s in range(0, len(lo), _CHUNK)])  # fmt: skip
            checked += len(lo)
            vol = (hi - lo).flatten(1).prod(-1)
            certified += float(vol[ok].sum())
            lo, hi = lo[~ok], hi[~ok]
            if checked + 2 * len(lo) > max_cells:
                left_lo.append(lo)
                left_hi.append(hi)
                break
            # halve each box along its longest side
            width = (hi - lo).flatten(1)
            axis = width.argmax(1)
            mid = ((lo + hi) / 2).flatten(1).gather(1, axis[:, None])[:, 0]
            rows = torch.arange(len(lo))
            lo1, hi1 = lo.flatten(1).clone(), hi.flatten(1).clone()
            hi1[rows, axis] = mid
            lo2, hi2 = lo.flatten(1).clone(), hi.flatten(1).clone()
            lo2[rows, axis] = mid
            lo = torch.cat([lo1, lo2]).reshape(-1, n, m)
            hi = torch.cat([hi1, hi2]).reshape(-1, n, m)
    net.train(was)
    ulo = torch.cat(left_lo) if left_lo else torch.zeros(0, n, m, dtype=torch.float64)
    uhi = torch.cat(left_hi) if left_hi else torch.zeros(0, n, m, dtype=torch.float64)
    share = certified / total
    band_tol, band_share = 0.0, 0.0
    if net.item_prices and net.unit_demand and n > 1:
        band_tol = tol
        band_share = min(1.0, n * (n - 1) / 2 * m * 2 * tol / (high - low))
    return Certificate(
        certified_share=share,
        uncertain_share=min(1.0, 1.0 - share + band_share),
        boxes_checked=checked,
        uncertain_boxes=len(ulo),
        seconds=time.perf_counter() - t0,
        uncertain_low=ulo,
        uncertain_high=uhi,
        band_tol=band_tol,
        band_share=band_share,
    )
