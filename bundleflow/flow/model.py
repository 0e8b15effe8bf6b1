"""BundleFlow's flow (arXiv:2502.15283, Sec. 4): ``ds/dt = eta(t) * Q(s0) * s``.

``Q(s0)`` is diagonal and depends on the start point only, so the ODE is linear
in ``s`` and has the closed form

    s(1) = s0 * exp(Q(s0) * E),        E = integral_0^1 eta(t) dt,

and by the instantaneous change of variables (Liouville), the log-density of the
pushed point is

    log p1(s(1)) = log p0(s0) - trace(Q(s0)) * E.

``E`` is computed with a fixed Gauss-Legendre rule (``n_quad`` nodes) that Stage 1
and Stage 2 share, so both stages use the very same map. ``Q`` is evaluated once
per point.

Stage 1 trains the flow by rectified flow: start points ``s0 ~ U[0,1]^m`` (the
domain :data:`DOMAIN` on which Stage 2 places its Dirac support points) are paired
with the bundle ``x1 = 1[s0 > 1/2]``; with ``s_t = (1-t) s0 + t x1`` the loss is
``|eta(t) Q(s0) s_t - (x1 - s0)|^2``. Rounding ``s(1)`` (threshold 1/2) then
gives the bundle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bundleflow.errors import InputError

DOMAIN = "unit_cube"  # s0 in [0, 1]^m, shared by Stage 1 and Stage 2

# Gradients smaller than this entering the Q-network are set to zero (see _FlushTinyGrad).
TINY_GRAD = 1e-30


class _FlushTinyGrad(torch.autograd.Function):
    """Identity whose backward zeroes gradient entries with ``|g| < TINY_GRAD``.

    At a low softmax temperature most choice probabilities are ``exp(-large)``, and the
    gradients they send back through the support points' log-densities underflow to
    subnormal float32 numbers; CPUs process matmuls on subnormals tens of times more
    slowly (a 40,000-point Stage 2 backward went from 0.03 s to 0.3 s). Entries this
    small change no parameter by a representable amount in a step.
    """

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.masked_fill(g.abs() < TINY_GRAD, 0.0)


class BundleFlow(nn.Module):
    """Flow ``s0 -> s(1)`` over ``m`` items.

    Args:
        n_items: ``m``.
        hidden: width of the ``Q`` network (two hidden layers).
        n_quad: Gauss-Legendre nodes for ``E = int_0^1 eta``.
    """

    quad_t: torch.Tensor  # [n_quad] Gauss-Legendre nodes on [0, 1] (buffer)
    quad_w: torch.Tensor  # [n_quad] their weights (buffer)

    def __init__(self, n_items: int, hidden: int = 128, n_quad: int = 16, q_max: float = 12.0):
        super().__init__()
        if n_items < 1 or hidden < 1 or n_quad < 1:
            raise InputError("BundleFlow needs n_items, hidden and n_quad >= 1")
        self.n_items = n_items
        self.hidden = hidden
        self.n_quad = n_quad
        self.q_max = q_max
        self.domain = DOMAIN
        self.q_net = nn.Sequential(
            nn.Linear(n_items, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_items)
        )
        self.eta_net = nn.Sequential(nn.Linear(1, 32), nn.SiLU(), nn.Linear(32, 1))
        x, w = np.polynomial.legendre.leggauss(n_quad)
        self.register_buffer("quad_t", torch.tensor((x + 1) / 2, dtype=torch.float32))
        self.register_buffer("quad_w", torch.tensor(w / 2, dtype=torch.float32))

    def q(self, s0: torch.Tensor) -> torch.Tensor:
        """Diagonal of ``Q(s0)``: ``[..., m]`` -> ``[..., m]``, bounded by ``q_max`` for stability."""
        return self.q_max * torch.tanh(_FlushTinyGrad.apply(self.q_net(s0)) / self.q_max)

    def eta(self, t: torch.Tensor) -> torch.Tensor:
        """``eta(t)``: ``[N]`` -> ``[N]``, positive."""
        return nn.functional.softplus(self.eta_net(t[:, None]))[:, 0]

    def eta_integral(self) -> torch.Tensor:
        """``E = int_0^1 eta(t) dt`` by the fixed quadrature rule (scalar)."""
        return (self.eta(self.quad_t) * self.quad_w).sum()

    def _q_and_E(self, s0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q(s0) [..., m], E)`` for start points of this flow's dimension."""
        if s0.shape[-1] != self.n_items:
            raise InputError(f"flow is for m={self.n_items} items, got points with {s0.shape[-1]}")
        return self.q(s0), self.eta_integral()

    def push(self, s0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flow start points to their end points.

        Args:
            s0: ``[..., m]`` points in ``[0, 1]^m``.

        Returns:
            ``(s1 [..., m], log_det [...])`` with ``log p1(s1) = log p0(s0) + log_det``,
            ``log_det = -trace(Q(s0)) * E``.
        """
        q, E = self._q_and_E(s0)
        s1 = s0 * torch.exp(q * E)
        return s1, -q.sum(-1) * E

    def bundles_and_log_det(self, s0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`round_end_points` of the pushed points and ``log_det`` from one ``Q(s0)``.

        Only ``log_det [...]`` carries gradients; the end points are computed without
        recording them (the rounded bundles ``[..., m]`` have no gradient anyway).
        """
        q, E = self._q_and_E(s0)
        with torch.no_grad():
            bundles = self.round_end_points(s0 * torch.exp(q * E))
        return bundles, -q.sum(-1) * E

    @staticmethod
    def round_end_points(s1: torch.Tensor) -> torch.Tensor:
        """Bundles ``1[s(1) >= 1/2]`` as float 0/1, ``[..., m]`` (no gradient)."""
        return (s1.detach() >= 0.5).to(torch.float32)

    def bundles(self, s0: torch.Tensor) -> torch.Tensor:
        """Rounded end points of start points ``s0`` (:meth:`round_end_points` of :meth:`push`)."""
        with torch.no_grad():
            return self.round_end_points(self.push(s0)[0])

    def rf_loss(self, s0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Rectified-flow loss on start points ``[N, m]`` and times ``[N]`` (module doc)."""
        x1 = (s0 > 0.5).to(s0.dtype)
        st = (1 - t[:, None]) * s0 + t[:, None] * x1
        pred = self.eta(t)[:, None] * self.q(s0) * st
        return ((pred - (x1 - s0)) ** 2).sum(-1).mean()

    def meta(self) -> dict:
        return {
            "n_items": self.n_items,
            "hidden": self.hidden,
            "n_quad": self.n_quad,
            "q_max": self.q_max,
            "domain": self.domain,
        }
