"""The relaxed choice of a bidder and the revenue it implies (Stage 2's objective), with estimators.

A bidder facing ``J`` menu elements (utility ``u [B, J]``, price ``[J]``) and ``K`` outside
options (utility ``u_out [B, K]``, payment ``pay_out [B, K]``; the null option is one with
utility and payment 0) chooses with probabilities

    pi = softmax([u, u_out] / tau),    revenue = mean_b sum_j pi_bj price_j + sum_k pi_bk pay_out_bk,

utilities and prices in units of the value scale, so that ``tau`` is a share of it.
Estimators of the hard choice's gradient:

- ``softmax``: the relaxation itself;
- ``straight_through``: forward the hard choice ``argmax``, backward the softmax's gradient;
- ``gumbel``: the same with Gumbel(0, 1) noise added to the logits (a perturbed choice).
"""

from __future__ import annotations

import torch

ESTIMATORS = ("softmax", "straight_through", "gumbel")


def relaxed_revenue(
    u: torch.Tensor,
    price: torch.Tensor,
    u_out: torch.Tensor,
    pay_out: torch.Tensor,
    tau: float,
    estimator: str = "softmax",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Relaxed revenue (scalar, differentiable).

    Args:
        u: ``[B, J]`` utility of each element; price: ``[J]``.
        u_out, pay_out: ``[B, K]`` utility and payment of each outside option (``K >= 1``).
        tau: softmax temperature, in the units of ``u``.
        estimator: one of :data:`ESTIMATORS`.
        generator: CPU generator for the Gumbel noise.
    """
    J = u.shape[1]
    logits = torch.cat([u, u_out], 1) / tau
    if estimator == "gumbel":  # perturbed choice: logits + Gumbel(0, 1) noise
        uni = torch.rand(logits.shape, generator=generator).to(logits.device).clamp(1e-12, 1 - 1e-12)
        logits = logits - torch.log(-torch.log(uni))
    pi = torch.softmax(logits, 1)
    if estimator in ("straight_through", "gumbel"):  # forward: the hard choice; backward: the softmax's
        hard = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1]).to(pi.dtype)
        pi = hard + pi - pi.detach()
    return ((pi[:, :J] * price[None]).sum(1) + (pi[:, J:] * pay_out).sum(1)).mean()
