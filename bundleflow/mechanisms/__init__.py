"""Mechanisms and their exact evaluation.

Single bidder (a menu: the bidder picks her best element or nothing, so the menu is
strategy-proof and individually rational by construction):

- :mod:`.menu`: :class:`Menu` (``J`` lotteries over bundles with prices) and its exact
  evaluation :func:`evaluate_menu` (ties to the seller).
- :mod:`.model`: :class:`MenuModel`, the learnable-menu interface the Stage 2 trainer optimises.
- :mod:`.bundleflow_menu`: BundleFlow's menu (Dirac supports pushed by the Stage 1 flow).
- :mod:`.rochetnet`: RochetNet and Bundle-RochetNet.

Multi-bidder mechanisms go in :mod:`bundleflow.mechanisms.multi`.
"""

from bundleflow.mechanisms.bundleflow_menu import BundleFlowMenu
from bundleflow.mechanisms.menu import (
    TIE_TOL,
    Menu,
    MenuOutcome,
    allocation_changed,
    choose,
    distinct_bundles,
    evaluate_menu,
    expected_values,
    outside_option,
)
from bundleflow.mechanisms.model import MenuModel
from bundleflow.mechanisms.rochetnet import BundleRochetNetMenu, RochetNetMenu
from bundleflow.mechanisms.tariffs import TariffMenu, TariffOutcome, evaluate_tariffs

__all__ = [
    "Menu",
    "MenuOutcome",
    "evaluate_menu",
    "expected_values",
    "choose",
    "outside_option",
    "allocation_changed",
    "distinct_bundles",
    "TIE_TOL",
    "MenuModel",
    "BundleFlowMenu",
    "RochetNetMenu",
    "BundleRochetNetMenu",
    "TariffMenu",
    "TariffOutcome",
    "evaluate_tariffs",
]
