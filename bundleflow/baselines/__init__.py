"""Revenue baselines optimised exactly (or by exact coordinate search) on a sample.

- :func:`grand_bundling`: one price for the grand bundle, the exact optimum on the sample.
- :func:`item_pricing`: one price per item; the bidder buys her utility-maximising
  bundle (for XOR valuations, one of her atoms). Prices are found by exact
  coordinate search (each step evaluates candidate prices exactly).
- :func:`atom_menu`: deterministic menu of the data's most frequent atom bundles
  (plus the grand bundle); prices by exact coordinate ascent.

Every baseline returns a :class:`BaselineResult` whose revenue is the exact
(hard) revenue on the sample it was fitted on; evaluate it on held-out data with
:meth:`BaselineResult.evaluate`.

Modules: :mod:`.result`, :mod:`.prices` (exact price search shared by all),
:mod:`.bundling` (grand bundling, atom menu), :mod:`.items` (item pricing).
"""

from bundleflow.baselines.bundling import atom_menu, frequent_atoms, grand_bundling
from bundleflow.baselines.items import item_price_ascent, item_pricing
from bundleflow.baselines.prices import best_price_given_outside, optimise_prices, polish_prices
from bundleflow.baselines.result import BaselineResult

__all__ = [
    "BaselineResult",
    "grand_bundling",
    "item_pricing",
    "item_price_ascent",
    "atom_menu",
    "frequent_atoms",
    "best_price_given_outside",
    "optimise_prices",
    "polish_prices",
]
