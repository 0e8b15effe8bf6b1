"""bundleflow: revenue-optimal auction menus learned with BundleFlow, evaluated exactly.

The package is layered; a module imports only from the layers below it::

    cli                       the ``bundleflow`` command
    experiments               configs, run folders, bench, report
    training                  Stage 2: the menu trainer and its data-driven start
    baselines                 grand bundling, item pricing, atom menu (exact prices)
    oracles                   welfare bound, LP / MILP optima
    mechanisms                menus and exact evaluation; BundleFlow, RochetNet; multi/ (multi-bidder)
    flow                      Stage 1: the flow ODE
    cats                      CATS generators and files
    valuations                v(S) for batches of bidders, samplers
    utils, errors             devices, atomic files, progress; exceptions

``from bundleflow import ...`` gives what a script needs (listed in ``__all__``); the
names are imported on first use, so ``import bundleflow`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "BundleflowError": "bundleflow.errors",
    "InputError": "bundleflow.errors",
    "Valuation": "bundleflow.valuations",
    "XORValuation": "bundleflow.valuations",
    "AdditiveValuation": "bundleflow.valuations",
    "UnitDemandValuation": "bundleflow.valuations",
    "additive_uniform": "bundleflow.valuations",
    "unit_demand_uniform": "bundleflow.valuations",
    "uniform_atoms": "bundleflow.valuations",
    "bivalued_type_space": "bundleflow.valuations",
    "product_type_space": "bundleflow.valuations",
    "uniform_grid_type_space": "bundleflow.valuations",
    "load_valuations": "bundleflow.cats",
    "Menu": "bundleflow.mechanisms",
    "MenuOutcome": "bundleflow.mechanisms",
    "evaluate_menu": "bundleflow.mechanisms",
    "BundleFlowMenu": "bundleflow.mechanisms",
    "RochetNetMenu": "bundleflow.mechanisms",
    "BundleRochetNetMenu": "bundleflow.mechanisms",
    "GemNet": "bundleflow.mechanisms.multi",
    "MultiOutcome": "bundleflow.mechanisms.multi",
    "evaluate_multi": "bundleflow.mechanisms.multi",
    "BundleFlow": "bundleflow.flow",
    "train_flow": "bundleflow.flow",
    "load_flow": "bundleflow.flow",
    "save_flow": "bundleflow.flow",
    "welfare_bound": "bundleflow.oracles",
    "lp_optimal_mechanism": "bundleflow.oracles",
    "LPResult": "bundleflow.oracles",
    "lp_optimal_multi": "bundleflow.oracles",
    "MultiLPResult": "bundleflow.oracles",
    "BaselineResult": "bundleflow.baselines",
    "grand_bundling": "bundleflow.baselines",
    "item_pricing": "bundleflow.baselines",
    "atom_menu": "bundleflow.baselines",
    "second_price_items": "bundleflow.baselines.multi",
    "vcg": "bundleflow.baselines.multi",
    "MenuTrainer": "bundleflow.training",
    "GemNetTraining": "bundleflow.training.gemnet",
    "train_gemnet": "bundleflow.training.gemnet",
    "make_compatible": "bundleflow.training.compatibility",
    "certify": "bundleflow.training.certificate",
    "FitResult": "bundleflow.experiments",
    "fit_menu": "bundleflow.experiments",
    "MenuConfig": "bundleflow.experiments",
    "FlowConfig": "bundleflow.experiments",
    "RunConfig": "bundleflow.experiments",
    "load_config": "bundleflow.experiments",
    "run_training": "bundleflow.experiments",
}

__all__ = [
    "__version__",
    "BundleflowError",
    "InputError",
    "Valuation",
    "XORValuation",
    "AdditiveValuation",
    "UnitDemandValuation",
    "additive_uniform",
    "unit_demand_uniform",
    "uniform_atoms",
    "bivalued_type_space",
    "product_type_space",
    "uniform_grid_type_space",
    "load_valuations",
    "Menu",
    "MenuOutcome",
    "evaluate_menu",
    "BundleFlowMenu",
    "RochetNetMenu",
    "BundleRochetNetMenu",
    "GemNet",
    "MultiOutcome",
    "evaluate_multi",
    "BundleFlow",
    "train_flow",
    "load_flow",
    "save_flow",
    "welfare_bound",
    "lp_optimal_mechanism",
    "LPResult",
    "lp_optimal_multi",
    "MultiLPResult",
    "BaselineResult",
    "grand_bundling",
    "item_pricing",
    "atom_menu",
    "second_price_items",
    "vcg",
    "MenuTrainer",
    "GemNetTraining",
    "train_gemnet",
    "make_compatible",
    "certify",
    "FitResult",
    "fit_menu",
    "MenuConfig",
    "FlowConfig",
    "RunConfig",
    "load_config",
    "run_training",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'bundleflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from bundleflow.baselines import BaselineResult, atom_menu, grand_bundling, item_pricing
    from bundleflow.baselines.multi import second_price_items, vcg
    from bundleflow.cats import load_valuations
    from bundleflow.errors import BundleflowError, InputError
    from bundleflow.experiments import (
        FitResult,
        FlowConfig,
        MenuConfig,
        RunConfig,
        fit_menu,
        load_config,
        run_training,
    )
    from bundleflow.flow import BundleFlow, load_flow, save_flow, train_flow
    from bundleflow.mechanisms import (
        BundleFlowMenu,
        BundleRochetNetMenu,
        Menu,
        MenuOutcome,
        RochetNetMenu,
        evaluate_menu,
    )
    from bundleflow.mechanisms.multi import GemNet, MultiOutcome, evaluate_multi
    from bundleflow.oracles import LPResult, MultiLPResult, lp_optimal_mechanism, lp_optimal_multi, welfare_bound
    from bundleflow.training import MenuTrainer
    from bundleflow.training.certificate import certify
    from bundleflow.training.compatibility import make_compatible
    from bundleflow.training.gemnet import GemNetTraining, train_gemnet
    from bundleflow.valuations import (
        AdditiveValuation,
        UnitDemandValuation,
        Valuation,
        XORValuation,
        additive_uniform,
        bivalued_type_space,
        product_type_space,
        uniform_atoms,
        uniform_grid_type_space,
        unit_demand_uniform,
    )
