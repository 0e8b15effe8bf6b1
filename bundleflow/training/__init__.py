"""Stage 2: learning a menu model's supports, weights and prices.

- :mod:`.trainer`: :class:`MenuTrainer` (softmax relaxation with the null or a la carte option,
  estimators, logging, checkpoint state).
- :mod:`.initialisation`: the data-driven start (start bundles, exact starting prices).
"""

from bundleflow.training.initialisation import init_bundles
from bundleflow.training.trainer import MenuTrainer, StepMetrics

__all__ = [
    "MenuTrainer",
    "StepMetrics",
    "init_bundles",
]
