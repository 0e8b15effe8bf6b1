"""The revenue-optimal mechanism of a finite type space, solved exactly as a linear program.

Two additive items, each worth 1 or 2 with probability 1/2 (four types, 1/4 each). The LP's
menu (one lottery and price per type), evaluated exactly on those types, earns the LP value.
Run: python examples/03_lp_optimum.py
"""

from bundleflow import bivalued_type_space, evaluate_menu, grand_bundling, lp_optimal_mechanism

types, probs = bivalued_type_space(2, 1.0, 2.0)  # a valuation with 4 rows, probabilities [4]
lp = lp_optimal_mechanism(types, probs)
menu_revenue = float((evaluate_menu(lp.menu, types).payment.double() * probs).sum())
print(f"LP optimum {lp.revenue:.4f}; its menu earns {menu_revenue:.4f} on the same types")
print(f"grand bundling earns {grand_bundling(types).revenue:.4f} (each type weighted 1/4)")
