"""Stage 2: learning a menu model's supports, weights and prices.

- :mod:`.trainer`: :class:`MenuTrainer` (softmax relaxation with the null or a la carte option,
  estimators, logging, checkpoint state).
- :mod:`.initialisation`: the data-driven start (start bundles, exact starting prices).
- :mod:`.relaxation`: the relaxed choice and revenue, and the gradient estimators.
- :mod:`.reseeding`: moving unused elements to bundles the data asks for, priced exactly.
- :mod:`.learning`: whether Stage 2 moved the menu, and what it gained over the start.
"""

from bundleflow.training.initialisation import data_driven_start, init_bundles
from bundleflow.training.learning import learning_summary, paired_gain
from bundleflow.training.relaxation import ESTIMATORS, relaxed_revenue
from bundleflow.training.reseeding import reseed_unused
from bundleflow.training.trainer import MenuTrainer, StepMetrics

__all__ = [
    "data_driven_start",
    "learning_summary",
    "paired_gain",
    "ESTIMATORS",
    "relaxed_revenue",
    "reseed_unused",
    "MenuTrainer",
    "StepMetrics",
    "init_bundles",
]
