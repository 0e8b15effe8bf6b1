"""Several bidders: GemNet's menus for 2 bidders and 1 item, values U[0,1], against Myerson.

Bidder i's menu is a network of the other bid only, so taking her best element is a dominant
strategy; training penalises choices that sell the item twice, the grid transform (a MILP)
re-prices the menus until no grid profile over-allocates, and the certificate bounds how much
of [0,1]^2 might still over-allocate. Myerson's auction (second price, reserve 1/2) earns the
optimum 5/12. Then the exact multi-bidder LP of a finite type space: 2 additive bidders x 2
items, each value 1 or 2 w.p. 1/2, where the dominant-strategy optimum (25/8) is below the
Bayesian one (51/16).
Run: python examples/04_gemnet.py
"""

import torch

from bundleflow import (
    GemNet,
    GemNetTraining,
    additive_uniform,
    bivalued_type_space,
    certify,
    evaluate_multi,
    lp_optimal_multi,
    make_compatible,
    second_price_items,
    train_gemnet,
)

g = torch.Generator().manual_seed(0)
net = GemNet(n_bidders=2, n_items=1, n_elements=4, cap=1.0, hidden=(32, 32), generator=g)
# fresh item bids [B, n, m] every step
train_gemnet(net, lambda B, gen: torch.rand(B, 2, 1, generator=gen), GemNetTraining(steps=1500, log_every=1500), g)

held_out = [additive_uniform(50_000, 1, seed=10 + i) for i in range(2)]  # one Valuation per bidder
before = evaluate_multi(net, held_out)
print(
    f"GemNet: held-out revenue {before.revenue:.4f} +- {before.revenue_se:.4f}, over-allocated {before.over_rate:.3%}"
)
levels = (torch.arange(10, dtype=torch.float64) + 0.5) / 10  # the centres of 10 equal cells of [0, 1]
shifted, report = make_compatible(net, levels)
after = evaluate_multi(shifted, held_out)
print(f"after the transform: {after.revenue:.4f} +- {after.revenue_se:.4f}, over-allocated {after.over_rate:.3%} "
      f"({report.violating_before} of {report.grid_profiles} grid profiles repaired)")  # fmt: skip
cert = certify(shifted, 0.0, 1.0)
print(f"certified compatible on {cert.certified_share:.4%} of [0,1]^2")
myerson = second_price_items(held_out, reserve=0.5)
print(f"Myerson (second price, reserve 1/2): {myerson.revenue:.4f} on the same profiles; optimum 5/12 = {5 / 12:.4f}")

types = bivalued_type_space(2, 1.0, 2.0)[0]  # 4 types per bidder, 1/4 each
dsic, bic = lp_optimal_multi([types, types]).revenue, lp_optimal_multi([types, types], ic="bic").revenue
print(f"2 bidders x 2 items on {{1, 2}}: DSIC optimum {dsic:.4f} (25/8), Bayesian IC optimum {bic:.4f} (51/16)")
