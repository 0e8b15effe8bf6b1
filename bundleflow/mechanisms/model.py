"""Learnable menus: the interface the Stage 2 trainer optimises.

A :class:`MenuModel` has ``J`` elements; element ``j`` is a lottery over ``D`` support
bundles (``lottery() -> (bundles [J, D, m] 0/1, probs [J, D])``, probabilities
differentiable) with a price ``cap * sigmoid(price_logit[j])`` that never exceeds the
largest value in the data. Every model also carries a la carte item prices
``cap * sigmoid(item_logit)`` used only by mixed-bundling menus. Implementations:
:class:`bundleflow.mechanisms.BundleFlowMenu` (the paper's method) and the RochetNet
family in :mod:`bundleflow.mechanisms.rochetnet`. The trainer, the relaxation and the exact
evaluation are shared, so methods differ only in how an element's lottery is built.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bundleflow.errors import InputError
from bundleflow.mechanisms.menu import Menu


def corner_logit(corner: float) -> float:
    """Logit ``z`` with ``sigmoid(+-z) = 0.5 +- corner / 2``: a sure bundle ``b`` is placed at
    ``0.5 + (2b - 1) * corner / 2`` along each item (``menu.corner`` in the run config)."""
    if not 0 < corner < 1:
        raise InputError(f"corner must be in (0, 1), got {corner}")
    return math.log((0.5 + corner / 2) / (0.5 - corner / 2))


def corner_logits(bundles: torch.Tensor, shape, generator: torch.Generator, corner: float) -> torch.Tensor:
    """Logits of shape ``shape`` placing 0/1 ``bundles`` (broadcast to ``shape``) at the cube's
    corners, ``+-corner_logit(corner)``, with N(0, 0.1^2) jitter drawn from ``generator``."""
    return (bundles * 2 - 1) * corner_logit(corner) + 0.1 * torch.randn(*shape, generator=generator)


class MenuModel(nn.Module):
    """Base class: prices, item prices and the hard :class:`Menu`; subclasses build lotteries."""

    name = "menu"
    supports_reseeding = False  # implements place_at (bundleflow.training.reseeding)
    places_lotteries = False  # implements place_lotteries

    def __init__(self, n_elements: int, n_items: int, cap: float):
        super().__init__()
        if cap <= 0 or not math.isfinite(cap):
            raise InputError(f"price cap must be positive and finite, got {cap}")
        if n_elements < 1 or n_items < 1:
            raise InputError(f"a menu needs n_elements >= 1 and n_items >= 1, got {n_elements}, {n_items}")
        self.cap = float(cap)
        self.n_elements, self.n_items = n_elements, n_items
        self.price_logit = nn.Parameter(torch.zeros(n_elements))
        self.item_logit = nn.Parameter(torch.zeros(n_items))

    def prices(self) -> torch.Tensor:
        """``[J]`` prices in ``(0, cap)``: never above the largest value."""
        return self.cap * torch.sigmoid(self.price_logit)

    def item_prices(self) -> torch.Tensor:
        """``[m]`` a la carte item prices in ``(0, cap)``."""
        return self.cap * torch.sigmoid(self.item_logit)

    def lottery(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bundles [J, D, m] 0/1 float, probs [J, D])``, rows of ``probs`` summing to 1."""
        raise NotImplementedError

    def place(self, bundles: torch.Tensor, generator: torch.Generator, corner: float) -> None:
        """Start element ``j`` (approximately) as the sure bundle ``bundles[j]`` (``[J, m]``), its
        logits at ``+-corner_logit(corner)``."""
        raise NotImplementedError

    def place_lotteries(
        self,
        supports: torch.Tensor,
        probs: torch.Tensor,
        generator: torch.Generator,
        corner: float,
        index: torch.Tensor | None = None,
    ) -> None:
        """Start element ``j`` as the lottery over ``supports[j]`` (``[J, D, m]`` 0/1) with
        probabilities ``probs[j]`` (``[J, D]``), for models that can express it
        (:attr:`places_lotteries`); with ``index`` (``[n]``) only those elements, ``supports``
        and ``probs`` then having ``n`` rows."""
        raise InputError(f"menu.model={self.name} cannot start from lotteries (menu.init_spread > 0 is for bundleflow)")

    def place_at(self, index: torch.Tensor, bundles: torch.Tensor, generator: torch.Generator, corner: float) -> None:
        """:meth:`place` for the elements ``index`` (``[n]``) only, at ``bundles`` (``[n, m]``)."""
        raise InputError(self.reseeding_error())

    def reseeding_error(self) -> str:
        return f"menu.reseed_every > 0 is for bundleflow, not menu.model={self.name}"

    def element_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters with one row per element (``[J, ...]``), by name."""
        return {"price_logit": self.price_logit}

    def scatter(self, mask: torch.Tensor, generator: torch.Generator) -> None:
        """The paper's random start for the elements in ``mask`` (``[J]`` bool)."""
        raise InputError(f"menu.init=random / mixed is for bundleflow, not menu.model={self.name}")

    def on_step(self, step: int) -> None:
        """Hook called after every optimiser step (e.g. to resample supports)."""

    def menu(self, item_prices: torch.Tensor | None = None) -> Menu:
        """The hard menu this model deploys (what :func:`evaluate_menu` scores)."""
        with torch.no_grad():
            b, p = self.lottery()
            ip = None if item_prices is None else item_prices.double().cpu()
            return Menu(b.cpu(), p.double().cpu(), self.prices().double().cpu(), ip)
