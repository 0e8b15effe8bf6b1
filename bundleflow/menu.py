"""Menus of lotteries and their exact (hard) evaluation.

A menu has ``J`` elements. Element ``j`` is a lottery over ``D`` support bundles
``bundles[j, d]`` (0/1 rows over ``m`` items) with probabilities ``probs[j, d]``
(summing to 1) and a price ``prices[j]``. A bidder with valuation ``v`` gets
expected utility ``u_j = sum_d probs[j, d] * v(bundles[j, d]) - prices[j]`` and
takes the element of highest utility, or nothing (utility 0, payment 0). The
menu is therefore strategy-proof and individually rational by construction.

Tie-breaking (documented, in favour of the seller): every option whose utility
is within ``tie_tol * scale`` of the best (``scale = max(1, largest value of any
bidder)``) is optimal for the bidder; among those the bidder takes the one with
the highest price, and the null option (price 0) only wins if no optimal
element has a non-negative price. This is the convention under which the LP
optimum's revenue is attained, so evaluating an LP menu gives back the LP value.

:func:`evaluate_menu` is the only revenue this project reports as "revenue".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.valuations import Valuation

TIE_TOL = 1e-9
_BIDDER_CHUNK = 512


@dataclass
class Menu:
    """A menu of ``J`` lotteries.

    Attributes:
        bundles: ``[J, D, m]`` float 0/1 support bundles.
        probs: ``[J, D]`` probabilities, non-negative, each row summing to 1.
        prices: ``[J]`` prices.
    """

    bundles: torch.Tensor
    probs: torch.Tensor
    prices: torch.Tensor

    def __post_init__(self):
        b = torch.as_tensor(self.bundles).detach()
        p = torch.as_tensor(self.probs).detach().to(torch.float64)
        c = torch.as_tensor(self.prices).detach().to(torch.float64)
        if b.dim() != 3:
            raise InputError(f"menu bundles must have shape [J, D, m], got {tuple(b.shape)}")
        J, D, m = b.shape
        if p.shape != (J, D):
            raise InputError(f"menu probs must have shape [J, D] = {(J, D)}, got {tuple(p.shape)}")
        if c.shape != (J,):
            raise InputError(f"menu prices must have shape [J] = ({J},), got {tuple(c.shape)}")
        bf = b.to(torch.float32)
        if not ((bf == 0) | (bf == 1)).all():
            raise InputError("menu bundles must contain only 0/1 entries")
        if not torch.isfinite(p).all() or (p < 0).any():
            raise InputError("menu probs must be finite and non-negative")
        if J and not torch.allclose(p.sum(-1), torch.ones(J, dtype=p.dtype, device=p.device), atol=1e-6):
            raise InputError("menu probs of every element must sum to 1")
        if not torch.isfinite(c).all():
            raise InputError("menu prices must be finite (no NaN or inf)")
        self.bundles, self.probs, self.prices = bf, p, c

    @property
    def n_elements(self) -> int:
        return int(self.bundles.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.bundles.shape[2])

    @classmethod
    def deterministic(cls, bundles, prices) -> "Menu":
        """Menu of ``J`` sure bundles ``[J, m]`` with prices ``[J]``."""
        b = torch.as_tensor(bundles).to(torch.float32)
        if b.dim() != 2:
            raise InputError(f"deterministic menu bundles must have shape [J, m], got {tuple(b.shape)}")
        return cls(b[:, None, :], torch.ones(b.shape[0], 1, dtype=torch.float64), torch.as_tensor(prices))

    def to(self, device) -> "Menu":
        return Menu(self.bundles.to(device), self.probs.to(device), self.prices.to(device))

    def to_dict(self) -> dict:
        return {
            "bundles": self.bundles.cpu().numpy().astype(np.uint8).tolist(),
            "probs": self.probs.cpu().numpy().tolist(),
            "prices": self.prices.cpu().numpy().tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Menu":
        try:
            return cls(
                torch.as_tensor(np.asarray(d["bundles"], dtype=np.float32)),
                torch.as_tensor(np.asarray(d["probs"], dtype=np.float64)),
                torch.as_tensor(np.asarray(d["prices"], dtype=np.float64)),
            )
        except KeyError as exc:
            raise InputError(f"menu file lacks field {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise InputError(f"menu file is malformed: {exc}") from exc


@dataclass
class MenuOutcome:
    """Result of :func:`evaluate_menu` over ``B`` bidders.

    Attributes:
        revenue: mean payment.
        revenue_se: standard error of the mean payment.
        welfare: mean expected value of the chosen lottery.
        null_rate: share of bidders who buy nothing.
        sales: ``[J]`` number of bidders choosing each element.
        choice: ``[B]`` chosen element, ``-1`` for nothing.
        payment: ``[B]``; utility: ``[B]``; expected_value: ``[B]`` of the chosen option.
    """

    revenue: float
    revenue_se: float
    welfare: float
    null_rate: float
    sales: torch.Tensor
    choice: torch.Tensor
    payment: torch.Tensor
    utility: torch.Tensor
    expected_value: torch.Tensor
    n_bidders: int = field(default=0)

    @property
    def elements_used(self) -> int:
        return int((self.sales > 0).sum())

    def summary(self) -> dict:
        return {
            "revenue": self.revenue,
            "revenue_se": self.revenue_se,
            "welfare": self.welfare,
            "null_rate": self.null_rate,
            "elements_used": self.elements_used,
            "n_bidders": self.n_bidders,
        }


def expected_values(menu: Menu, valuation: Valuation) -> torch.Tensor:
    """Expected value of every element for every bidder, ``[B, J]`` float64.

    Distinct support bundles are valued once.
    """
    if menu.n_items != valuation.n_items:
        raise InputError(f"menu has {menu.n_items} items but the valuation has {valuation.n_items}")
    J, D, m = menu.bundles.shape
    dev = valuation.device
    flat = menu.bundles.reshape(J * D, m).to(dev)
    uniq, inverse = torch.unique(flat, dim=0, return_inverse=True)
    vals = valuation.value(uniq)  # [B, U]
    per_support = vals[:, inverse].view(len(valuation), J, D)
    return (per_support * menu.probs.to(dev)[None]).sum(-1)


def choose(ev: torch.Tensor, prices: torch.Tensor, tol: float):
    """Seller-favourable choice given expected values ``[B, J]``, prices ``[J]``, absolute tie tolerance.

    Returns ``(choice [B] with -1 for nothing, payment [B], utility [B], expected value [B])``.
    """
    B, J = ev.shape
    if J == 0:
        z = torch.zeros(B, dtype=torch.float64, device=ev.device)
        return torch.full((B,), -1, dtype=torch.long, device=ev.device), z, z, z
    u = ev - prices[None]
    best = u.amax(dim=1).clamp_min(0.0)  # null option has utility 0
    optimal = u >= (best - tol)[:, None]
    masked_price = torch.where(optimal, prices[None].expand_as(u), torch.full_like(u, -math.inf))
    top_price, idx = masked_price.max(dim=1)
    null_optimal = best <= tol
    take_null = (~optimal.any(dim=1)) | (null_optimal & (top_price < 0))
    choice = torch.where(take_null, torch.full_like(idx, -1), idx)
    safe = idx.clamp_min(0)
    payment = torch.where(take_null, 0.0, prices[safe])
    utility = torch.where(take_null, 0.0, u.gather(1, safe[:, None])[:, 0])
    value = torch.where(take_null, 0.0, ev.gather(1, safe[:, None])[:, 0])
    return choice, payment, utility, value


@torch.no_grad()
def evaluate_menu(menu: Menu, valuation: Valuation, tie_tol: float = TIE_TOL) -> MenuOutcome:
    """Exact hard evaluation of ``menu`` on every bidder of ``valuation`` (see module doc)."""
    B = len(valuation)
    if B == 0:
        raise InputError("evaluate_menu: the valuation batch is empty")
    dev = valuation.device
    prices = menu.prices.to(dev)
    tol = tie_tol * max(1.0, valuation.max_value())  # expected values never exceed max_value
    parts = []
    for b0 in range(0, B, _BIDDER_CHUNK):
        sub = valuation.subset(torch.arange(b0, min(B, b0 + _BIDDER_CHUNK), device=dev))
        parts.append(choose(expected_values(menu, sub), prices, tol))
    choice, payment, utility, value = (torch.cat(x) for x in zip(*parts))
    sales = torch.bincount(choice[choice >= 0], minlength=menu.n_elements)
    pay = payment.double()
    se = float(pay.std(unbiased=True) / math.sqrt(B)) if B > 1 else 0.0
    return MenuOutcome(
        revenue=float(pay.mean()),
        revenue_se=se,
        welfare=float(value.mean()),
        null_rate=float((choice < 0).double().mean()),
        sales=sales.cpu(),
        choice=choice.cpu(),
        payment=payment.cpu(),
        utility=utility.cpu(),
        expected_value=value.cpu(),
        n_bidders=B,
    )

