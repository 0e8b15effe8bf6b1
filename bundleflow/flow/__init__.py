"""BundleFlow's Stage 1 flow (arXiv:2502.15283, Sec. 4).

- :mod:`.model`: the ODE ``ds/dt = eta(t) Q(s0) s``, its closed-form push and exact log-density change.
- :mod:`.stage1`: rectified-flow training, rounding diagnostics, save and load.
"""

from bundleflow.flow.model import DOMAIN, BundleFlow
from bundleflow.flow.stage1 import describe_diagnostics, flow_diagnostics, load_flow, save_flow, train_flow

__all__ = [
    "DOMAIN",
    "BundleFlow",
    "train_flow",
    "flow_diagnostics",
    "describe_diagnostics",
    "save_flow",
    "load_flow",
]
