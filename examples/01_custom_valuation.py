"""Train BundleFlow on your own valuation class and compare it with grand bundling, exactly.

A valuation class says what a batch of bidders is worth for a batch of bundles; the rest
(demand at item prices, the grand-bundle value) has defaults. Run: python examples/01_custom_valuation.py
"""

import torch

from bundleflow import Valuation, evaluate_menu, fit_menu, grand_bundling


class BudgetAdditive(Valuation):
    """``v(S) = min(budget, sum_{i in S} v_i)``: item values ``[B, m]``, budgets ``[B]``."""

    def __init__(self, item_values: torch.Tensor, budget: torch.Tensor):
        self.item_values, self.budget, self.n_items = item_values.double(), budget.double(), item_values.shape[1]

    def value(self, bundles: torch.Tensor) -> torch.Tensor:  # [A, m] -> [B, A]
        return torch.minimum(self.item_values @ bundles.double().T, self.budget[:, None])

    def __len__(self) -> int:
        return len(self.budget)

    def subset(self, index):
        return BudgetAdditive(self.item_values[index], self.budget[index])

    def to(self, device):
        return BudgetAdditive(self.item_values.to(device), self.budget.to(device))

    @property
    def device(self) -> torch.device:
        return self.budget.device


g = torch.Generator().manual_seed(0)
bidders = BudgetAdditive(torch.rand(6000, 4, generator=g), 1 + torch.rand(6000, generator=g))
train, test = bidders.split(4000)  # fitted on 4,000 bidders; revenue measured on 2,000 others

fit = fit_menu(train, config={"n_elements": 32, "steps": 150, "log_every": 50}, flow_config={"steps": 300})
held_out = evaluate_menu(fit.menu, test)
grand = grand_bundling(train)
print(f"BundleFlow     held-out revenue {held_out.revenue:.4f} +- {held_out.revenue_se:.4f}")
print(f"grand bundling held-out revenue {grand.evaluate(test):.4f}")
