"""RochetNet-family baselines (Dütting et al. 2019; Bundle-RochetNet as in BundleFlow's
experiments), as :class:`~bundleflow.mechanisms.MenuModel` s trained by the same Stage 2
trainer and scored by the same exact evaluation.

Element ``j`` has per-item allocation probabilities ``x[j] = sigmoid(a[j])`` in ``[0,1]^m``.
The deployed lottery must be a concrete distribution over bundles, so each model fixes one:

* :class:`RochetNetMenu`, item valuations (additive, XOR): the *nested* lottery with
  marginals ``x[j]``: draw ``U ~ U[0,1]`` and give ``{i : x[j, i] > U}``. Its ``m + 1``
  supports are the top-``k`` items of ``x[j]`` with probabilities ``x_(k) - x_(k+1)``, so an
  additive bidder's expected value is exactly ``x[j] . v`` (RochetNet's allocation).
* :class:`RochetNetMenu`, unit-demand valuations: a lottery over single items with
  ``x[j] = softmax([a[j], 0])[:m]`` (sum at most 1), exactly RochetNet's unit-demand menu.
* :class:`BundleRochetNetMenu`: the *product* lottery (items independent) estimated by
  ``D`` bundles sampled from it; the deployed lottery is the one over those ``D`` bundles
  with self-normalised likelihood-ratio weights ``prod_i x^S (1-x)^(1-S) / (same at x_s)``
  (``x_s`` = the allocation when last sampled), which carry the gradient to ``x``. The
  supports are resampled from the current ``x`` every ``resample_every`` steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bundleflow.mechanisms.model import MenuModel, corner_logits


class RochetNetMenu(MenuModel):
    """Item-wise lotteries: nested (item valuations) or single-item (unit demand) supports."""

    name = "rochetnet"

    def __init__(self, n_elements: int, n_items: int, cap: float, unit_demand: bool = False):
        super().__init__(n_elements, n_items, cap)
        self.unit_demand = unit_demand
        self.places_lotteries = unit_demand  # lotteries over single items
        self.a = nn.Parameter(torch.zeros(n_elements, n_items))

    def allocation(self) -> torch.Tensor:
        """``[J, m]`` marginal probability of receiving each item."""
        if self.unit_demand:
            zero = torch.zeros(self.a.shape[0], 1, device=self.a.device)
            return torch.softmax(torch.cat([self.a, zero], 1), 1)[:, :-1]
        return torch.sigmoid(self.a)

    def lottery(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bundles [J, m+1, m], probs [J, m+1])``."""
        x = self.allocation()
        J, m = x.shape
        if self.unit_demand:  # supports: item 0..m-1, then nothing
            eye = torch.cat([torch.eye(m, device=x.device), torch.zeros(1, m, device=x.device)])
            probs = torch.cat([x, (1 - x.sum(1, keepdim=True)).clamp_min(0)], 1)
            return eye.expand(J, m + 1, m), probs / probs.sum(1, keepdim=True)
        xs, order = torch.sort(x, dim=1, descending=True)
        # support k = top-k items (k = 0..m); P(k) = xs[k-1] - xs[k] with xs[-1] = 1, xs[m] = 0
        upper = torch.cat([torch.ones(J, 1, device=x.device), xs], 1)
        lower = torch.cat([xs, torch.zeros(J, 1, device=x.device)], 1)
        probs = (upper - lower).clamp_min(0)
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(m, device=x.device).expand(J, m))
        k = torch.arange(m + 1, device=x.device)
        bundles = (rank[:, None, :] < k[None, :, None]).float()  # [J, m+1, m]
        return bundles, probs / probs.sum(1, keepdim=True)

    def place_lotteries(
        self,
        supports: torch.Tensor,
        probs: torch.Tensor,
        generator: torch.Generator,
        corner: float,
        index: torch.Tensor | None = None,
    ) -> None:
        """Unit demand: element ``j`` gives item ``i`` with the probability ``probs[j]`` puts on the
        single-item supports ``{i}`` (``supports [n, D, m]``; other supports count as nothing),
        nothing with ``e^-4`` times the least of those: ``a = log(x / x_nothing)``."""
        if not self.unit_demand:
            super().place_lotteries(supports, probs, generator, corner, index)
            return
        single = (supports.sum(-1) == 1).to(probs.dtype)  # [n, D]
        x = torch.einsum("nd,ndm->nm", probs * single, supports.to(probs.dtype))  # [n, m]
        nothing = math.exp(-4.0) * x.clamp_min(1e-12).amin(1, keepdim=True)
        a = torch.log(x.clamp_min(1e-12) / nothing)
        rows = torch.arange(self.a.shape[0]) if index is None else index.cpu()
        with torch.no_grad():
            self.a[rows.to(self.a.device)] = a.to(self.a)

    def place(self, bundles: torch.Tensor, generator: torch.Generator, corner: float) -> None:
        J, m = self.a.shape
        a = corner_logits(bundles, (J, m), generator, corner)
        if self.unit_demand:  # mass on the first item of each bundle (nothing for the empty one)
            a = torch.full((J, m), -4.0) + 0.1 * torch.randn(J, m, generator=generator)
            first = bundles.argmax(1)
            a[torch.arange(J), first] = torch.where(bundles.any(1), 4.0, -4.0)
        with torch.no_grad():
            self.a.copy_(a.to(self.a.device))


class BundleRochetNetMenu(MenuModel):
    """Product lotteries over bundles, estimated and deployed with ``D`` sampled supports."""

    support: torch.Tensor  # [J, D, m] sampled 0/1 supports (buffer)
    x_sampled: torch.Tensor  # [J, m] product lottery the supports were drawn from (buffer)
    name = "bundle_rochetnet"

    def __init__(
        self, n_elements: int, n_items: int, n_support: int, cap: float, resample_every: int = 50, seed: int = 0
    ):
        super().__init__(n_elements, n_items, cap)
        self.a = nn.Parameter(torch.zeros(n_elements, n_items))
        self.resample_every = max(1, int(resample_every))
        self.register_buffer("support", torch.zeros(n_elements, n_support, n_items))
        self.register_buffer("x_sampled", torch.full((n_elements, n_items), 0.5))
        self.gen = torch.Generator().manual_seed(seed)

    def allocation(self) -> torch.Tensor:
        return torch.sigmoid(self.a)

    def _log_p(self, x: torch.Tensor) -> torch.Tensor:
        """``[J, D]`` log-probability of each support under the product lottery ``x``."""
        x = x.clamp(1e-6, 1 - 1e-6)[:, None, :]
        s = self.support
        return (s * torch.log(x) + (1 - s) * torch.log1p(-x)).sum(-1)

    def lottery(self) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(self._log_p(self.allocation()) - self._log_p(self.x_sampled), 1)
        return self.support, probs

    @torch.no_grad()
    def resample(self) -> None:
        x = self.allocation().detach()
        u = torch.rand(self.support.shape, generator=self.gen).to(x.device)
        self.support.copy_((u < x[:, None, :]).float())
        self.x_sampled.copy_(x)

    def place(self, bundles: torch.Tensor, generator: torch.Generator, corner: float) -> None:
        a = corner_logits(bundles, self.a.shape, generator, corner)
        with torch.no_grad():
            self.a.copy_(a.to(self.a.device))
        self.resample()

    def on_step(self, step: int) -> None:
        if step % self.resample_every == 0:
            self.resample()

    def get_extra_state(self):
        return {"gen": self.gen.get_state()}

    def set_extra_state(self, state) -> None:
        self.gen.set_state(state["gen"])
