"""Menu-based multi-bidder mechanisms and their exact evaluation.

A *menu mechanism* for ``n`` bidders and ``m`` items offers bidder ``i`` a menu that depends
on the other bidders' bids ``b_-i`` only (GemNet, Wang, Jiang, Parkes, arXiv:2406.07428):
``K`` elements, element ``k`` an allocation ``a_ik in [0,1]^m`` (item ``j`` with probability
``a_ikj``) at price ``p_ik``. Bidder ``i`` takes the element of highest utility
``v_i(a_ik) - p_ik``, or nothing (utility 0), with the seller-favourable ties of
:func:`bundleflow.mechanisms.menu.choose`. Her report cannot change her own options, so the
mechanism is dominant-strategy IC and ex-post IR whatever the menus are.

What it does *not* guarantee by construction is *compatibility*: the elements the bidders
take may together allocate an item more than once. :func:`evaluate_multi` reports it on
every profile ``b``: ``over(b) = sum_j relu(sum_i a_{i,k*_i(b),j} - 1)``, with its rate and
size. A compatible choice is realisable: additive bidders draw items independently (each
item's marginals sum to at most 1); unit-demand bidders' marginals form a doubly
substochastic matrix, a mixture of matchings (Birkhoff-von Neumann).

Values of an allocation: additive ``v . a``; unit demand ``v . a`` with ``sum_j a_j <= 1`` (a
lottery over single items); XOR (CATS) bidders are offered deterministic bundles
``a in {0,1}^m``, valued ``v(a) = max{p_t : T_t subset of a}``. Bidders are
:class:`~bundleflow.valuations.Valuation` s of one of these classes, one per bidder, all of
the same length ``B`` (one row per profile).

Bids. A menu reads the others' *bids* ``[B, n, m]`` (:func:`bids_of`): item bidders' item
values; an XOR bidder's per-item bid is ``max{p_t / |T_t| : j in T_t}``, the largest value
per item of an atom that holds item ``j`` (0 if none). A menu that reads these features of
``b_-i`` only is still a function of ``b_-i``, so strategy-proofness is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.menu import TIE_TOL, choose
from bundleflow.utils.stats import mean_and_se
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation
from bundleflow.valuations.xor import XORValuation

BIDDER_CLASSES = (AdditiveValuation, UnitDemandValuation, XORValuation)

# an item allocated with total probability above 1 + OVER_TOL is over-allocated: the slack
# covers float32 round-off of allocations near 1 and HiGHS's feasibility tolerance (1e-7)
OVER_TOL = 1e-6
_PROFILE_CHUNK = 4096


class MultiMenuMechanism(Protocol):
    """Bidder ``i``'s menu as a function of ``b_-i`` (never of ``b_i``)."""

    n_bidders: int
    n_items: int

    def menus(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``bids [B, n, m]`` -> ``(allocations [B, n, K, m] in [0,1], prices [B, n, K])``."""
        ...


def check_bidders(bidders: Sequence[Valuation]) -> tuple[int, int, int]:
    """``(B, n, m)`` of a list of per-bidder valuations, or a one-line :class:`InputError`."""
    if not bidders:
        raise InputError("a multi-bidder profile needs at least one bidder")
    B, m = len(bidders[0]), bidders[0].n_items
    for i, v in enumerate(bidders):
        if not isinstance(v, BIDDER_CLASSES):
            raise InputError(
                f"bidder {i}: multi-bidder menus take additive, unit-demand or XOR valuations, got {type(v).__name__}"
            )
        if type(v) is not type(bidders[0]):
            raise InputError(
                f"bidder {i} is {type(v).__name__}, bidder 0 {type(bidders[0]).__name__}: one class for all"
            )
        if len(v) != B or v.n_items != m:
            raise InputError(f"bidder {i} has {len(v)} profiles over {v.n_items} items; bidder 0 has {B} over {m}")
    if B == 0:
        raise InputError("a multi-bidder profile batch is empty")
    return B, len(bidders), m


def xor_item_bids(v: XORValuation) -> torch.Tensor:
    """``[B, m]`` an XOR bidder's per-item bids ``max{p_t / |T_t| : j in T_t}`` (module doc)."""
    T = v.atoms.double()  # [B, A, m]
    size = T.sum(-1).clamp_min(1.0)  # [B, A]
    per_item = (v.values / size)[..., None] * T  # [B, A, m]
    if per_item.shape[1] == 0:
        return torch.zeros(len(v), v.n_items, dtype=torch.float64, device=v.device)
    return per_item.amax(1)


def bids_of(bidders: list[Valuation]) -> torch.Tensor:
    """``[B, n, m]`` truthful bids (module doc): item values, or XOR bidders' per-item bids."""
    check_bidders(bidders)
    if isinstance(bidders[0], XORValuation):
        return torch.stack([xor_item_bids(v) for v in bidders], 1)  # type: ignore[arg-type]
    return torch.stack([v.item_values for v in bidders], 1)  # type: ignore[attr-defined]


def xor_bundle_values(v: XORValuation, bundles: torch.Tensor, soft: bool = False) -> torch.Tensor:
    """``[B, K]`` value of bidder ``b`` (row ``b`` of ``v``) for her own bundles ``bundles [B, K, m]``.

    Exact (``soft=False``): bundles must be 0/1; ``max{p_t : T_t subset of a}``. Relaxed
    (``soft=True``, for training): ``max_t p_t relu(1 - sum_{j in T_t} (1 - a_j))``, the value
    of atom ``t`` times a lower bound (the union bound) on the chance it is held when item
    ``j`` is drawn with probability ``a_j``. It equals the exact value on 0/1 bundles, where
    its gradient in ``a_j`` is ``p_t`` for the atoms held or missing one item (``relu``'s
    gradient taken as 1 at 0): a bundle one item short of an atom learns to add it."""
    T = v.atoms.to(bundles.dtype)  # [B, A, m]
    p = v.values.to(bundles.dtype)  # [B, A]
    if T.shape[1] == 0:
        return torch.zeros(bundles.shape[:2], dtype=bundles.dtype, device=bundles.device)
    if soft:  # relu(1 - missing); clamp passes the gradient at 0, so one missing item still learns
        held = (1 - torch.einsum("bam,bkm->bka", T, 1 - bundles)).clamp(min=0)
    else:
        if not ((bundles == 0) | (bundles == 1)).all():
            raise InputError("XOR bidders are offered deterministic bundles: allocations must be 0 or 1")
        held = atoms_held(T, bundles).to(bundles.dtype)
    return (held * p[:, None, :]).amax(-1)


def atoms_held(atoms: torch.Tensor, bundles: torch.Tensor) -> torch.Tensor:
    """``[B, K, A]`` whether atom ``t`` (``atoms [B, A, m]``, 0/1) is inside bundle ``k``
    (``bundles [B, K, m]``, 0/1): no item of the atom is missing from the bundle."""
    return torch.einsum("bam,bkm->bka", atoms, 1 - bundles) < 0.5


def element_values(alloc: torch.Tensor, bidders: list[Valuation], soft: bool = False) -> torch.Tensor:
    """``[B, n, K]`` bidder ``i``'s value for each element of her menu ``alloc [B, n, K, m]``:
    linear for item bidders, :func:`xor_bundle_values` for XOR bidders."""
    if isinstance(bidders[0], XORValuation):
        xor = [cast(XORValuation, v).to(alloc.device) for v in bidders]
        return torch.stack([xor_bundle_values(v, alloc[:, i], soft) for i, v in enumerate(xor)], 1)
    values = torch.stack([v.item_values for v in bidders], 1).to(alloc)  # type: ignore[attr-defined]
    return torch.einsum("bnkm,bnm->bnk", alloc, values)


def over_allocation(allocation: torch.Tensor) -> torch.Tensor:
    """``[B]`` total excess ``sum_j relu(sum_i a_ij - 1)`` of allocations ``[B, n, m]``."""
    return (allocation.sum(1) - 1).clamp_min(0).sum(-1)


@dataclass
class MultiOutcome:
    """Exact outcome of a multi-bidder mechanism on ``B`` profiles.

    Attributes:
        revenue, revenue_se: mean total payment per profile and its standard error.
        welfare: mean total expected value of what the bidders receive.
        null_rate: share of (profile, bidder) pairs that take nothing.
        over_rate: share of profiles whose choices over-allocate some item (above ``1 + OVER_TOL``).
        over_mean, over_max: mean and largest ``over(b)`` (module doc).
        payment: ``[B, n]``; choice: ``[B, n]`` element taken (``-1`` nothing);
        allocation: ``[B, n, m]`` item probabilities received; over: ``[B]``.
    """

    revenue: float
    revenue_se: float
    welfare: float
    null_rate: float
    over_rate: float
    over_mean: float
    over_max: float
    payment: torch.Tensor
    choice: torch.Tensor
    allocation: torch.Tensor
    over: torch.Tensor

    @property
    def n_profiles(self) -> int:
        return int(self.payment.shape[0])

    def summary(self) -> dict:
        return {
            "revenue": self.revenue,
            "revenue_se": self.revenue_se,
            "welfare": self.welfare,
            "null_rate": self.null_rate,
            "over_allocation_rate": self.over_rate,
            "over_allocation_mean": self.over_mean,
            "over_allocation_max": self.over_max,
            "n_profiles": self.n_profiles,
        }


def outcome_of(allocation: torch.Tensor, payment: torch.Tensor, values: torch.Tensor, choice: torch.Tensor):
    """:class:`MultiOutcome` of allocations ``[B, n, m]``, payments ``[B, n]``, values received
    ``[B, n]`` and choices ``[B, n]`` (``-1`` = nothing)."""
    over = over_allocation(allocation)
    revenue, se = mean_and_se(payment.sum(1))
    return MultiOutcome(
        revenue=revenue,
        revenue_se=se,
        welfare=float(values.sum(1).double().mean()),
        null_rate=float((choice < 0).double().mean()),
        over_rate=float((over > OVER_TOL).double().mean()),
        over_mean=float(over.double().mean()),
        over_max=float(over.max()),
        payment=payment.cpu(),
        choice=choice.cpu(),
        allocation=allocation.cpu(),
        over=over.cpu(),
    )


def tie_tolerance(bidders: list[Valuation], tie_tol: float = TIE_TOL) -> float:
    """The absolute tie tolerance of :func:`evaluate_multi` for these bidders: ``tie_tol``
    times the largest value of a bundle (at least 1)."""
    if isinstance(bidders[0], XORValuation):
        scale = max(float(v.grand_value().amax()) for v in bidders)
    else:
        scale = float(bids_of(bidders).amax()) * bidders[0].n_items
    return tie_tol * max(1.0, scale)


@torch.no_grad()
def evaluate_multi(mechanism: MultiMenuMechanism, bidders: list[Valuation], tie_tol: float = TIE_TOL) -> MultiOutcome:
    """Exact evaluation: every bidder reports truthfully (a dominant strategy) and takes her
    best element of the menu she is offered; payments, allocations and over-allocation."""
    B, n, m = check_bidders(bidders)
    if (n, m) != (mechanism.n_bidders, mechanism.n_items):
        raise InputError(
            f"the mechanism is for {mechanism.n_bidders} bidders x {mechanism.n_items} items; "
            f"the profiles have {n} x {m}"
        )
    bids = bids_of(bidders).double()
    tol = tie_tolerance(bidders, tie_tol)
    allocs, pays, vals, choices = [], [], [], []
    for b0 in range(0, B, _PROFILE_CHUNK):
        v = bids[b0 : b0 + _PROFILE_CHUNK]
        rows = torch.arange(b0, b0 + len(v))
        chunk = [bidder.subset(rows) for bidder in bidders]
        if getattr(mechanism, "needs_bidders", False):  # menus made with the bidders and this tolerance
            alloc, price = mechanism.menus(v.to(torch.get_default_dtype()), bidders=chunk, tol=tol)  # type: ignore[call-arg]
        else:
            alloc, price = mechanism.menus(v.to(torch.get_default_dtype()))
        alloc, price = alloc.double(), price.double()
        ev = element_values(alloc, chunk)  # [b, n, K]
        a_i, p_i, v_i, c_i = [], [], [], []
        for i in range(n):
            c, p, _, val = choose(ev[:, i], price[:, i], tol)
            got = alloc[torch.arange(len(v)), i, c.clamp_min(0)] * (c >= 0)[:, None]
            a_i.append(got)
            p_i.append(p)
            v_i.append(val)
            c_i.append(c)
        allocs.append(torch.stack(a_i, 1))
        pays.append(torch.stack(p_i, 1))
        vals.append(torch.stack(v_i, 1))
        choices.append(torch.stack(c_i, 1))
    return outcome_of(torch.cat(allocs), torch.cat(pays), torch.cat(vals), torch.cat(choices))
