"""Multi-bidder mechanisms: menus that depend on the other bidders' bids (GemNet,
arXiv:2406.07428; issue 14).

- :mod:`.outcome`: the menu-mechanism interface, its exact evaluation :func:`evaluate_multi`
  (revenue, allocations, over-allocation) and :class:`MultiOutcome`.
- :mod:`.gemnet`: :class:`GemNet`, one network per bidder from ``b_-i`` to her menu.

They share the valuations (:mod:`bundleflow.valuations`, one
:class:`~bundleflow.valuations.Valuation` per bidder), the choice rule
(:func:`bundleflow.mechanisms.menu.choose`), the oracles (:mod:`bundleflow.oracles.multi_lp`)
and the CLI with the single-bidder menus in :mod:`bundleflow.mechanisms`.
"""

from bundleflow.mechanisms.multi.gemnet import GemNet
from bundleflow.mechanisms.multi.outcome import (
    OVER_TOL,
    MultiMenuMechanism,
    MultiOutcome,
    bids_of,
    evaluate_multi,
    over_allocation,
)

__all__ = [
    "GemNet",
    "MultiMenuMechanism",
    "MultiOutcome",
    "OVER_TOL",
    "bids_of",
    "evaluate_multi",
    "over_allocation",
]
