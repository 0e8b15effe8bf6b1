"""Menus of lotteries and their exact (hard) evaluation.

A menu has ``J`` elements. Element ``j`` is a lottery over ``D`` support bundles
``bundles[j, d]`` (0/1 rows over ``m`` items) with probabilities ``probs[j, d]``
(summing to 1) and a price ``prices[j]``. A bidder with valuation ``v`` gets
expected utility ``u_j = sum_d probs[j, d] * v(bundles[j, d]) - prices[j]`` and
takes the element of highest utility, or nothing (utility 0, payment 0). The
menu is therefore strategy-proof and individually rational by construction.

Mixed bundling (optional): a menu may also carry ``item_prices [m]``. The bidder
may then, instead of an element, buy any bundle ``S`` at ``sum_{i in S} item_prices[i]``
(the "a la carte" option, which includes buying nothing). It is one more option in
the same choice, so the mechanism stays strategy-proof and individually rational;
with every element priced out it is exactly item pricing.

Tie-breaking (documented, in favour of the seller): every option whose utility
is within ``tie_tol * scale`` of the best (``scale = max(1, largest value of any
bidder)``) is optimal for the bidder; among those the bidder takes the one with
the highest price, and the null (or a la carte) option only wins if no optimal
element has a price at least its payment. This is the convention under which the LP
optimum's revenue is attained, so evaluating an LP menu gives back the LP value.

:func:`evaluate_menu` is the only revenue this project reports as "revenue".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from bundleflow.errors import InputError
from bundleflow.utils.stats import mean_and_se
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.bundles import unique_rows

TIE_TOL = 1e-9
_BIDDER_CHUNK = 512
# largest value table (supports x bidders) built at once: 2^26 entries, 512 MiB in float64
VALUE_TABLE_ENTRIES = 1 << 26


def bidder_chunks(valuation: Valuation, entries_per_bidder: int):
    """Yield ``valuation`` whole, or in consecutive chunks of bidders, so that a table of
    ``entries_per_bidder`` entries per bidder stays under :data:`VALUE_TABLE_ENTRIES`."""
    B = len(valuation)
    step = max(1, VALUE_TABLE_ENTRIES // max(1, entries_per_bidder))
    if step >= B:
        yield valuation
        return
    for b0 in range(0, B, step):
        yield valuation.subset(torch.arange(b0, min(B, b0 + step), device=valuation.device))


@dataclass
class Menu:
    """A menu of ``J`` lotteries.

    Attributes:
        bundles: ``[J, D, m]`` float 0/1 support bundles.
        probs: ``[J, D]`` probabilities, non-negative, each row summing to 1.
        prices: ``[J]`` prices.
        item_prices: ``[m]`` non-negative a la carte item prices, or ``None`` (pure menu).
    """

    bundles: torch.Tensor
    probs: torch.Tensor
    prices: torch.Tensor
    item_prices: torch.Tensor | None = None

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
        # renormalised in float64: a sure bundle's expected value is then exactly its value
        # (float32 softmax sums are 1 +- 1e-7)
        if J:
            p = p / p.sum(-1, keepdim=True)
        if not torch.isfinite(c).all():
            raise InputError("menu prices must be finite (no NaN or inf)")
        if (c < 0).any():
            raise InputError(
                f"menu prices must be non-negative (a menu never pays the bidder); "
                f"{int((c < 0).sum())} of {J} are negative, the smallest {float(c.min()):.6g}"
            )
        if self.item_prices is not None:
            ip = torch.as_tensor(self.item_prices).detach().to(torch.float64)
            if ip.shape != (m,):
                raise InputError(f"menu item_prices must have shape [m] = ({m},), got {tuple(ip.shape)}")
            if not torch.isfinite(ip).all() or (ip < 0).any():
                raise InputError("menu item_prices must be finite and non-negative")
            self.item_prices = ip
        self.bundles, self.probs, self.prices = bf, p, c

    @property
    def n_elements(self) -> int:
        return int(self.bundles.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.bundles.shape[2])

    @classmethod
    def deterministic(cls, bundles, prices) -> Menu:
        """Menu of ``J`` sure bundles ``[J, m]`` with prices ``[J]``."""
        b = torch.as_tensor(bundles).to(torch.float32)
        if b.dim() != 2:
            raise InputError(f"deterministic menu bundles must have shape [J, m], got {tuple(b.shape)}")
        return cls(b[:, None, :], torch.ones(b.shape[0], 1, dtype=torch.float64), torch.as_tensor(prices))

    def to(self, device) -> Menu:
        ip = None if self.item_prices is None else self.item_prices.to(device)
        return Menu(self.bundles.to(device), self.probs.to(device), self.prices.to(device), ip)

    def to_dict(self) -> dict:
        d = {
            "bundles": self.bundles.cpu().numpy().astype(np.uint8).tolist(),
            "probs": self.probs.cpu().numpy().tolist(),
            "prices": self.prices.cpu().numpy().tolist(),
        }
        if self.item_prices is not None:
            d["item_prices"] = self.item_prices.cpu().numpy().tolist()
        return d

    def to_tensors(self) -> dict:
        """The fields of :meth:`to_dict` as CPU tensors (bundles as bool): compact in checkpoints.

        :meth:`from_dict` reads both forms.
        """
        d = {
            "bundles": self.bundles.detach().cpu() > 0.5,
            "probs": self.probs.detach().cpu().clone(),
            "prices": self.prices.detach().cpu().clone(),
        }
        if self.item_prices is not None:
            d["item_prices"] = self.item_prices.detach().cpu().clone()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Menu:
        try:
            return cls(
                torch.as_tensor(np.asarray(d["bundles"], dtype=np.float32)),
                torch.as_tensor(np.asarray(d["probs"], dtype=np.float64)),
                torch.as_tensor(np.asarray(d["prices"], dtype=np.float64)),
                None
                if d.get("item_prices") is None
                else torch.as_tensor(np.asarray(d["item_prices"], dtype=np.float64)),
            )
        except KeyError as exc:
            raise InputError(f"menu file lacks field {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise InputError(f"menu file is malformed: {exc}") from exc


def read_menu(path) -> Menu:
    """The menu saved in the JSON file ``path`` (``Menu.to_dict``); every problem is one
    :class:`InputError` naming the file (missing, not JSON, nested too deeply, not a menu)."""
    from bundleflow.utils.files import read_json

    d = read_json(path, "menu file")
    if not isinstance(d, dict):
        raise InputError(f"{path}: a menu file holds a JSON object with bundles, probs and prices")
    try:
        return Menu.from_dict(d)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


@dataclass
class MenuOutcome:
    """Result of :func:`evaluate_menu` over ``B`` bidders.

    Attributes:
        revenue: mean payment.
        revenue_se: standard error of the mean payment.
        welfare: mean expected value of the chosen lottery.
        null_rate: share of bidders who buy nothing.
        sales: ``[J]`` number of bidders choosing each element.
        choice: ``[B]`` chosen element, ``-1`` for the null / a la carte option.
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
    a_la_carte_rate: float = 0.0  # share buying a non-empty bundle at item prices

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
            "a_la_carte_rate": self.a_la_carte_rate,
            "n_bidders": self.n_bidders,
        }


def allocation_changed(menu: Menu, start: Menu, prob_tol: float = 0.01) -> torch.Tensor:
    """``[J]`` bool: whether element ``j``'s lottery differs from ``start``'s.

    A support ``d`` differs if its (rounded) bundle differs or its probability moved by more than
    ``prob_tol``; prices are not compared. Both menus have the same shape ``[J, D, m]``.
    """
    if menu.bundles.shape != start.bundles.shape:
        raise InputError(
            f"menus of shapes {tuple(menu.bundles.shape)} and {tuple(start.bundles.shape)} cannot be compared"
        )
    bundle_moved = (menu.bundles.cpu() != start.bundles.cpu()).any(-1)  # [J, D]
    prob_moved = (menu.probs.cpu() - start.probs.cpu()).abs() > prob_tol  # [J, D]
    return (bundle_moved | prob_moved).any(-1)


def distinct_bundles(menu: Menu, min_prob: float = 1e-3) -> int:
    """Number of distinct bundles the menu offers with probability above ``min_prob`` in some element."""
    offered = menu.bundles[menu.probs > min_prob]  # [N, m]
    return int(unique_rows(offered)[0].shape[0]) if offered.shape[0] else 0


def expected_values(menu: Menu, valuation: Valuation) -> torch.Tensor:
    """Expected value of every element for every bidder, ``[B, J]`` float64.

    Distinct support bundles are valued once per chunk of bidders; the chunks keep the value
    tables (``[U, b]`` per distinct bundle, ``[J*D, b]`` per support) under
    :data:`VALUE_TABLE_ENTRIES` entries (a RochetNet menu of J=5000 elements on
    50 items has about 222,000 distinct supports: 26 GB for 15,000 bidders at once).
    """
    if menu.n_items != valuation.n_items:
        raise InputError(f"menu has {menu.n_items} items but the valuation has {valuation.n_items}")
    J, D, m = menu.bundles.shape
    dev = valuation.device
    flat = menu.bundles.reshape(J * D, m).to(dev)
    uniq, inverse = unique_rows(flat)
    probs = menu.probs.to(dev, torch.float64)[:, None, :]
    parts = []
    for sub in bidder_chunks(valuation, J * D):
        vals = sub.bundle_values(uniq)  # [U, b] float64
        per_support = vals.index_select(0, inverse).view(J, D, len(sub))
        parts.append(torch.bmm(probs, per_support)[:, 0].T)  # [b, J]
    return torch.cat(parts) if parts else torch.zeros(0, J, dtype=torch.float64, device=dev)


def choose(ev: torch.Tensor, prices: torch.Tensor, tol: float, outside_util=None, outside_pay=None):
    """Seller-favourable choice given expected values ``[B, J]``, prices ``[J]`` (one menu) or
    ``[B, J]`` (a menu per bidder, as in multi-bidder mechanisms), absolute tie tolerance.

    The outside option (``outside_util [B]``, ``outside_pay [B]``) is the null option
    (0, 0) by default, or the a la carte purchase of a mixed-bundling menu.

    Returns ``(choice [B] with -1 for the outside option, payment [B], utility [B], expected value [B])``.
    """
    B, J = ev.shape
    z = torch.zeros(B, dtype=torch.float64, device=ev.device)
    u0 = z if outside_util is None else outside_util.to(torch.float64)
    pay0 = z if outside_pay is None else outside_pay.to(torch.float64)
    if J == 0:
        return torch.full((B,), -1, dtype=torch.long, device=ev.device), pay0, u0, u0 + pay0
    price = prices.expand(B, J)
    u = ev - price
    best = torch.maximum(u.amax(dim=1), u0)
    optimal = u >= (best - tol)[:, None]
    masked_price = torch.where(optimal, price, torch.full_like(u, -math.inf))
    top_price, idx = masked_price.max(dim=1)
    outside_optimal = u0 >= best - tol
    take_out = (~optimal.any(dim=1)) | (outside_optimal & (top_price < pay0))
    choice = torch.where(take_out, torch.full_like(idx, -1), idx)
    safe = idx.clamp_min(0)
    payment = torch.where(take_out, pay0, price.gather(1, safe[:, None])[:, 0])
    utility = torch.where(take_out, u0, u.gather(1, safe[:, None])[:, 0])
    value = torch.where(take_out, u0 + pay0, ev.gather(1, safe[:, None])[:, 0])
    return choice, payment, utility, value


def outside_option(menu: Menu, valuation: Valuation):
    """``(utility [B], payment [B])`` of the menu's outside option: null, or a la carte."""
    if menu.item_prices is None:
        return None, None
    return valuation.demand(menu.item_prices.to(valuation.device))


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
        parts.append(choose(expected_values(menu, sub), prices, tol, *outside_option(menu, sub)))
    choice, payment, utility, value = (torch.cat(x) for x in zip(*parts))
    carte = float(((choice < 0) & (payment > 0)).double().mean())
    sales = torch.bincount(choice[choice >= 0], minlength=menu.n_elements)
    revenue, se = mean_and_se(payment)
    return MenuOutcome(
        revenue=revenue,
        revenue_se=se,
        welfare=float(value.mean()),
        null_rate=float((choice < 0).double().mean()) - carte,
        sales=sales.cpu(),
        choice=choice.cpu(),
        payment=payment.cpu(),
        utility=utility.cpu(),
        expected_value=value.cpu(),
        n_bidders=B,
        a_la_carte_rate=carte,
    )
