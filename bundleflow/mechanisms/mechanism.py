"""One bidder's mechanism, whatever family produced it: exact payments, a JSON form, a description.

Every single-bidder family of the library ends in one of two forms, both strategy-proof and
individually rational by construction (the bidder picks her best option or nothing):

- :class:`~bundleflow.mechanisms.menu.Menu`: ``J`` lotteries with prices, optionally with a la
  carte item prices as an outside option (grand bundling, the atom menu, BundleFlow,
  RochetNet, Bundle-RochetNet, the a la carte variant);
- :class:`~bundleflow.mechanisms.tariffs.TariffMenu`: ``K`` two-part tariffs, a monotone price
  schedule (item pricing is one tariff with fee 0).

:func:`mechanism_payments` evaluates either exactly (ties to the seller, as everywhere);
:func:`mechanism_to_json` / :func:`mechanism_from_json` save and load them as plain JSON with a
``kind`` field; :func:`describe_mechanism` gives a few human-readable lines.
"""

from __future__ import annotations

from typing import Any

import torch

from bundleflow.errors import InputError
from bundleflow.mechanisms.menu import Menu, evaluate_menu
from bundleflow.mechanisms.tariffs import TariffMenu, evaluate_tariffs
from bundleflow.valuations.base import Valuation

Mechanism = Menu | TariffMenu
KINDS = ("menu", "tariffs")


def mechanism_payments(mechanism: Mechanism, valuation: Valuation) -> torch.Tensor:
    """``[B]`` exact payment (float64, CPU) of each bidder of ``valuation``."""
    if isinstance(mechanism, Menu):
        return evaluate_menu(mechanism.to(valuation.device), valuation).payment.double().cpu()
    if isinstance(mechanism, TariffMenu):
        return evaluate_tariffs(mechanism, valuation).payment.double().cpu()
    raise InputError(f"not a single-bidder mechanism: {type(mechanism).__name__}")


def mechanism_to_json(mechanism: Mechanism) -> dict[str, Any]:
    """A JSON-ready dict: ``{"kind": "menu", bundles, probs, prices[, item_prices]}`` or
    ``{"kind": "tariffs", "fees": [K], "prices": [K][m]}``."""
    if isinstance(mechanism, Menu):
        return {"kind": "menu", **mechanism.to_dict()}
    if isinstance(mechanism, TariffMenu):
        return {"kind": "tariffs", "fees": mechanism.fees.tolist(), "prices": mechanism.prices.tolist()}
    raise InputError(f"not a single-bidder mechanism: {type(mechanism).__name__}")


def mechanism_from_json(d: Any, source: str = "mechanism file") -> Mechanism:
    """The mechanism saved by :func:`mechanism_to_json`; every malformed input is an
    :class:`InputError` naming ``source``."""
    if not isinstance(d, dict):
        raise InputError(f"{source}: expected a JSON object, got {type(d).__name__}")
    kind = d.get("kind")
    body = {k: v for k, v in d.items() if k != "kind"}
    try:
        if kind == "menu":
            return Menu.from_dict(body)
        if kind == "tariffs":
            return TariffMenu.from_dict(body)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from exc
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{source}: malformed {kind}: {exc}") from exc
    raise InputError(f"{source}: unknown kind {str(kind)[:40]!r}; known: {', '.join(KINDS)}")


def describe_mechanism(mechanism: Mechanism) -> str:
    """A few lines saying what the mechanism offers."""
    if isinstance(mechanism, TariffMenu):
        if mechanism.n_tariffs == 1 and float(mechanism.fees[0]) == 0.0:
            p = mechanism.prices[0]
            return f"item pricing: {mechanism.n_items} item prices {float(p.min()):.4g}-{float(p.max()):.4g}"
        return f"{mechanism.n_tariffs} two-part tariffs\n" + mechanism.describe()
    if isinstance(mechanism, Menu):
        sizes = (mechanism.bundles.sum(-1) * mechanism.probs).sum(-1)
        sure = int((mechanism.probs.amax(-1) > 1 - 1e-9).sum())
        line = (
            f"menu of {mechanism.n_elements} elements ({sure} sure bundles), prices "
            f"{float(mechanism.prices.min()):.4g}-{float(mechanism.prices.max()):.4g}, "
            f"expected bundle size {float(sizes.mean()):.3g} of {mechanism.n_items} items"
        )
        if mechanism.item_prices is not None:
            line += f"; a la carte item prices {float(mechanism.item_prices.min()):.4g}-"
            line += f"{float(mechanism.item_prices.max()):.4g}"
        return line
    raise InputError(f"not a single-bidder mechanism: {type(mechanism).__name__}")
