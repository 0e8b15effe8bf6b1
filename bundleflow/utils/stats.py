"""The mean of a sample and its standard error, the form every revenue figure is reported in."""

from __future__ import annotations

import math

import torch


def mean_and_se(x: torch.Tensor) -> tuple[float, float]:
    """``(mean, standard error)`` of the ``[N]`` sample ``x`` in float64 (s.e. 0 for ``N <= 1``)."""
    x = x.double()
    n = len(x)
    return float(x.mean()), float(x.std(unbiased=True) / math.sqrt(n)) if n > 1 else 0.0
