"""Upper bounds and exact optima.

- :mod:`.welfare`: the welfare bound ``E[v(all items)]``.
- :mod:`.lp`: the revenue-optimal mechanism of a finite type space (LP), or the best deterministic one (MILP).
- :mod:`.multi_lp`: the revenue-optimal multi-bidder mechanism of a finite type space, DSIC or BIC (LP).
- :mod:`.optimal_prices`: exact optimal item prices and exact optimal prices of a fixed menu (MILPs).
- :mod:`.milp`: the MILP row builder they share.
"""

from bundleflow.oracles.lp import MAX_LP_ITEMS, MAX_LP_TYPES, LPResult, lp_optimal_mechanism
from bundleflow.oracles.multi_lp import MultiLPResult, lp_optimal_multi
from bundleflow.oracles.optimal_prices import (
    MAX_MILP_CHOICES,
    MAX_PRICE_MILP_CHOICES,
    optimal_item_prices,
    optimal_menu_prices,
)
from bundleflow.oracles.welfare import welfare_bound

__all__ = [
    "welfare_bound",
    "LPResult",
    "lp_optimal_mechanism",
    "MultiLPResult",
    "lp_optimal_multi",
    "optimal_item_prices",
    "optimal_menu_prices",
    "MAX_LP_ITEMS",
    "MAX_LP_TYPES",
    "MAX_MILP_CHOICES",
    "MAX_PRICE_MILP_CHOICES",
]
