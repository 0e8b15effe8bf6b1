"""BundleFlow's menu model (arXiv:2502.15283, Sec. 5): each element is ``D`` Dirac support points pushed
through the frozen Stage 1 flow; see :mod:`bundleflow.training.trainer` for how Stage 2 learns it."""

from __future__ import annotations

import torch
from torch import nn

from bundleflow.errors import InputError
from bundleflow.flow.model import DOMAIN, BundleFlow
from bundleflow.mechanisms.model import MenuModel, corner_logits

# the paper's random start: support points uniform in [RANDOM_LOW, 1 - RANDOM_LOW]^m
RANDOM_LOW = 0.05


class BundleFlowMenu(MenuModel):
    """BundleFlow's menu: ``z [J, D, m]`` (support points ``s0 = sigmoid(z)``), weight logits ``[J, D]``.

    The Stage 1 ``flow`` is frozen; it is a submodule so the model moves with it.
    """

    name = "bundleflow"
    supports_reseeding = True
    places_lotteries = True

    def __init__(self, flow: BundleFlow, n_elements: int, n_support: int, cap: float):
        if flow.domain != DOMAIN:
            raise InputError(f"flow domain {flow.domain!r} differs from Stage 2's {DOMAIN!r}")
        super().__init__(n_elements, flow.n_items, cap)
        self.flow = flow.eval()
        for p in self.flow.parameters():
            p.requires_grad_(False)
        self.z = nn.Parameter(torch.zeros(n_elements, n_support, flow.n_items))
        self.w_logit = nn.Parameter(torch.zeros(n_elements, n_support))

    def s0(self) -> torch.Tensor:
        return torch.sigmoid(self.z)

    def lottery(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bundles [J, D, m] 0/1, probs [J, D])``; probs carry gradients to ``z`` and weights."""
        bundles, log_det = self.flow.bundles_and_log_det(self.s0())  # Q(s0) evaluated once for both
        probs = torch.softmax(torch.log_softmax(self.w_logit, -1) + log_det, -1)
        return bundles, probs

    def place(self, bundles: torch.Tensor, generator: torch.Generator, corner: float) -> None:
        """All ``D`` support points of element ``j`` at the corner of ``bundles[j]`` (small jitter),
        so the element is that bundle whatever the flow's densities (if the flow rounds it there)."""
        z = corner_logits(bundles[:, None, :], self.z.shape, generator, corner)
        with torch.no_grad():
            self.z.copy_(z.to(self.z.device))
            self.w_logit.zero_()

    def place_at(self, index: torch.Tensor, bundles: torch.Tensor, generator: torch.Generator, corner: float) -> None:
        """:meth:`place` for the elements ``index`` (``[n]``) only, at ``bundles`` (``[n, m]``)."""
        z = corner_logits(bundles[:, None, :], (len(index), *self.z.shape[1:]), generator, corner)
        index = index.to(self.z.device)
        with torch.no_grad():
            self.z[index] = z.to(self.z)
            self.w_logit[index] = 0.0

    def element_parameters(self) -> dict[str, nn.Parameter]:
        return {"z": self.z, "w_logit": self.w_logit, "price_logit": self.price_logit}

    def place_lotteries(
        self,
        supports: torch.Tensor,
        probs: torch.Tensor,
        generator: torch.Generator,
        corner: float,
        index: torch.Tensor | None = None,
    ) -> None:
        """Support ``d`` of element ``j`` at the corner of ``supports[j, d]`` (small jitter), weights set so
        that the pushed mixture gives it probability ``probs[j, d]``: ``log w = log probs - log_det``;
        with ``index`` (``[n]``) only the elements ``index`` (``supports [n, D, m]``, ``probs [n, D]``)."""
        rows = torch.arange(self.z.shape[0]) if index is None else index.cpu()
        z = corner_logits(supports, (len(rows), *self.z.shape[1:]), generator, corner)
        with torch.no_grad():
            rows = rows.to(self.z.device)
            self.z[rows] = z.to(self.z)
            _, log_det = self.flow.bundles_and_log_det(self.s0()[rows])
            target = torch.log(probs.to(device=log_det.device, dtype=log_det.dtype).clamp_min(1e-30))
            self.w_logit[rows] = (target - log_det).to(self.w_logit)

    def scatter(self, mask: torch.Tensor, generator: torch.Generator, low: float = RANDOM_LOW) -> None:
        """The paper's start for the elements in ``mask`` (``[J]`` bool): support points uniform in
        ``[low, 1 - low]^m``, equal weights."""
        u = low + (1 - 2 * low) * torch.rand(self.z.shape, generator=generator)
        mask = mask.to(self.z.device)
        with torch.no_grad():
            self.z[mask] = torch.logit(u).to(self.z)[mask]
            self.w_logit[mask] = 0.0
