"""Batched valuation functions v(S) for one bidder type per row.

Every valuation holds ``B`` bidders over ``m`` items and evaluates a batch of
``A`` bundles (0/1 rows) in one call::

    valuation.value(bundles)   # bundles [A, m] -> values [B, A]

without Python loops over atoms or bundles. Values are stored in float64 so
that revenue figures are exact up to float64 round-off; containment tests are
exact integer counts.

Valuation classes
-----------------
- :class:`XORValuation`: atoms ``(T_j, p_j)``, ``v(S) = max{p_j : T_j subset of S}``
  (0 if no atom fits). Padding atoms (empty bundle, value 0) are allowed.
- :class:`AdditiveValuation`: ``v(S) = sum_{i in S} v_i``.
- :class:`UnitDemandValuation`: ``v(S) = max_{i in S} v_i``.

All three are monotone with ``v(empty) = 0``, so ``v(all items)`` is each
bidder's largest value (the welfare bound of a single bidder).

Item-pricing demand (:meth:`Valuation.demand`) breaks ties in favour of the
seller: among utility-maximising bundles the bidder pays the most, and a bidder
with zero utility from some bundle buys it.

Modules: :mod:`.base` (the interface), :mod:`.bundles` (0/1 bundle rows), :mod:`.xor`,
:mod:`.items` (additive, unit demand), :mod:`.generators` (seeded samplers, finite type spaces).
A new valuation class subclasses :class:`Valuation` (see ``examples/01_custom_valuation.py``).
"""

from bundleflow.valuations.base import MAX_VALUE, Valuation
from bundleflow.valuations.bundles import all_bundles, check_bundles, pack_bits, unique_rows
from bundleflow.valuations.generators import (
    additive_uniform,
    bivalued,
    bivalued_type_space,
    product_type_space,
    uniform_atoms,
    uniform_grid_type_space,
    unit_demand_uniform,
)
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation
from bundleflow.valuations.xor import XORValuation

__all__ = [
    "MAX_VALUE",
    "Valuation",
    "XORValuation",
    "AdditiveValuation",
    "UnitDemandValuation",
    "all_bundles",
    "check_bundles",
    "pack_bits",
    "unique_rows",
    "additive_uniform",
    "unit_demand_uniform",
    "uniform_atoms",
    "bivalued",
    "bivalued_type_space",
    "product_type_space",
    "uniform_grid_type_space",
]
