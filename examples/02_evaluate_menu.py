"""Evaluate a hand-written menu exactly: two additive items with values U[0,1].

Manelli and Vincent's optimal mechanism for this case sells each item at 2/3 and both at
(4 - sqrt 2) / 3, earning 0.5491. Run: python examples/02_evaluate_menu.py
"""

import math

import torch

from bundleflow import Menu, additive_uniform, evaluate_menu

bundles = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # item 1, item 2, both
menu = Menu(bundles[:, None, :], torch.ones(3, 1), torch.tensor([2 / 3, 2 / 3, (4 - math.sqrt(2)) / 3]))
out = evaluate_menu(menu, additive_uniform(200_000, 2, seed=1))  # the bidder picks her best element or nothing
print(f"revenue {out.revenue:.4f} +- {out.revenue_se:.4f} (optimum 0.5491); nobody buys: {out.null_rate:.3f}")
