"""The relaxed choice of a bidder and the revenue it implies (Stage 2's objective), with estimators.

A bidder facing ``J`` menu elements (utility ``u [B, J]``, price ``[J]``) and ``K`` outside
options (utility ``u_out [B, K]``, payment ``pay_out [B, K]``; the null option is one with
utility and payment 0) chooses with probabilities

    pi = softmax([u, u_out] / tau),    revenue = mean_b sum_j pi_bj price_j + sum_k pi_bk pay_out_bk,

utilities and prices in units of the value spread (the trainer's ``scale``), so that ``tau`` is a share of it.

With ``nested``, the bidder first chooses between the menu, represented by its best element,
and each outside option, then among the menu's elements:

    pi_menu = softmax([max_j u_j, u_out] / tau)_0,    pi_j = pi_menu * softmax(u / tau)_j.

The flat softmax lets the number of elements decide whether the bidder buys: with ``J``
elements each of utility ``-c`` the null option keeps only ``1 / (1 + J e^{-c/tau})`` of the
choice, so at ``J = 5000`` a bidder who buys nothing in the hard choice still buys in the
relaxation and the gradient raises prices past the bidders' values (measured at m=500: soft
revenue 0.94 while hard revenue fell from 0.81 to 0.41). Nested, a menu whose best element has
negative utility is left with probability above 1/2, whatever ``J``. Both tend to the hard
choice as ``tau -> 0`` and agree when ``J = 1``.
Estimators of the hard choice's gradient:

- ``softmax``: the relaxation itself;
- ``straight_through``: forward the hard choice ``argmax``, backward the softmax's gradient;
- ``gumbel``: the same with Gumbel(0, 1) noise added to the logits (a perturbed choice).
"""

from __future__ import annotations

import torch

ESTIMATORS = ("softmax", "straight_through", "gumbel")


def annealed(start: float, end: float, step: int, steps: int) -> float:
    """Temperature at ``step`` of ``steps``: geometric from ``start`` (step 0) to ``end`` (the
    last step), held at ``end`` after it."""
    frac = min(1.0, step / max(1, steps - 1))
    return start * (end / start) ** frac


def relaxed_revenue(
    u: torch.Tensor,
    price: torch.Tensor,
    u_out: torch.Tensor,
    pay_out: torch.Tensor,
    tau: float,
    estimator: str = "softmax",
    generator: torch.Generator | None = None,
    nested: bool = False,
) -> torch.Tensor:
    """Relaxed revenue (scalar, differentiable).

    Args:
        u: ``[B, J]`` utility of each element; price: ``[J]``.
        u_out, pay_out: ``[B, K]`` utility and payment of each outside option (``K >= 1``).
        tau: softmax temperature, in the units of ``u``.
        estimator: one of :data:`ESTIMATORS`.
        generator: CPU generator for the Gumbel noise.
        nested: choose between the menu (its best element) and the outside options first.
    """
    J = u.shape[1]
    logits = torch.cat([u, u_out], 1) / tau
    if estimator == "gumbel":  # perturbed choice: logits + Gumbel(0, 1) noise
        uni = torch.rand(logits.shape, generator=generator).to(logits.device).clamp(1e-12, 1 - 1e-12)
        logits = logits - torch.log(-torch.log(uni))
    if nested:
        top = torch.softmax(torch.cat([logits[:, :J].amax(1, keepdim=True), logits[:, J:]], 1), 1)  # [B, 1+K]
        pi = torch.cat([top[:, :1] * torch.softmax(logits[:, :J], 1), top[:, 1:]], 1)
    else:
        pi = torch.softmax(logits, 1)
    if estimator in ("straight_through", "gumbel"):  # forward: the hard choice; backward: the softmax's
        hard = torch.nn.functional.one_hot(logits.argmax(1), logits.shape[1]).to(pi.dtype)
        pi = hard + pi - pi.detach()
    return ((pi[:, :J] * price[None]).sum(1) + (pi[:, J:] * pay_out).sum(1)).mean()
