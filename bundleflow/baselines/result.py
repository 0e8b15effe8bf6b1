"""A fitted baseline and its exact evaluation on held-out bidders."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.menu import Menu, evaluate_menu
from bundleflow.utils.stats import mean_and_se
from bundleflow.valuations.base import Valuation


@dataclass
class BaselineResult:
    """A fitted baseline: either a menu or a vector of item prices."""

    name: str
    revenue: float  # exact revenue on the fitting sample
    menu: Menu | None = None
    item_prices: torch.Tensor | None = None
    fit_seconds: float | None = None  # the fit's own time (a memoised fit: the first fit's), if recorded

    def payments(self, valuation: Valuation) -> torch.Tensor:
        """``[B]`` exact payment of every bidder of ``valuation`` (float64, CPU)."""
        if self.menu is not None:
            return evaluate_menu(self.menu, valuation).payment.double()
        if self.item_prices is None:
            raise InputError(f"{self.name}: a baseline needs a menu or item prices")
        _, pay = valuation.demand(self.item_prices.to(valuation.device))
        return pay.double().cpu()

    def evaluate(self, valuation: Valuation) -> float:
        """Exact revenue of this mechanism on ``valuation``."""
        return float(self.payments(valuation).mean())

    def evaluate_se(self, valuation: Valuation) -> tuple[float, float]:
        """``(revenue, standard error)`` on ``valuation``."""
        return mean_and_se(self.payments(valuation))
