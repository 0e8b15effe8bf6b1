"""bundleflow: revenue-optimal auction menus learned with BundleFlow.

Core modules (one concept each):

- :mod:`bundleflow.valuations` -- batched valuation functions v(S) (XOR, additive, unit-demand).
- :mod:`bundleflow.generators` -- seeded samplers for the built-in valuation distributions.
- :mod:`bundleflow.cats_io` -- loaders for CATS reference npz files and CATS bid text files.
- :mod:`bundleflow.menu` -- menus of lotteries and their exact (hard) evaluation.
- :mod:`bundleflow.baselines` -- grand bundling, item pricing, atom menu.
- :mod:`bundleflow.oracles` -- welfare bound and the exact LP optimum for finite type spaces.
"""

from bundleflow.errors import BundleflowError, InputError
from bundleflow.valuations import (
    AdditiveValuation,
    UnitDemandValuation,
    Valuation,
    XORValuation,
)
# menu imported below
from bundleflow.menu import Menu, MenuOutcome, evaluate_menu

__all__ = [
    "BundleflowError",
    "InputError",
    "Valuation",
    "XORValuation",
    "AdditiveValuation",
    "UnitDemandValuation",
    "Menu",
    "MenuOutcome",
    "evaluate_menu",
]

__version__ = "0.1.0"
