"""Experiments: configs, run folders, baselines tables, the benchmark and the report.

- :mod:`.config`: pydantic / YAML run config with ``key.sub=value`` overrides.
- :mod:`.data`: a run's training, validation and held-out bidders.
- :mod:`.runner`: one run = one resumable folder.
- :mod:`.fit`: :func:`fit_menu`, a run in memory (no folder).
- :mod:`.baseline_table`: the exact baselines of a run's table.
- :mod:`.bench`: the benchmark settings and their table.
- :mod:`.report`: a run's HTML / Markdown report.
- :mod:`.data_stats`: statistics of a valuation file.
"""

from bundleflow.experiments.baseline_table import baseline_rows
from bundleflow.experiments.config import DataConfig, FlowConfig, MenuConfig, RunConfig, load_config
from bundleflow.experiments.data import make_data
from bundleflow.experiments.fit import FitResult, fit_menu
from bundleflow.experiments.runner import run_training

__all__ = [
    "FitResult",
    "fit_menu",
    "DataConfig",
    "FlowConfig",
    "MenuConfig",
    "RunConfig",
    "load_config",
    "make_data",
    "run_training",
    "baseline_rows",
]
