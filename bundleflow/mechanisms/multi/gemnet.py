"""GemNet's menus (Wang, Jiang, Parkes, arXiv:2406.07428): one network per bidder maps the
other bidders' bids ``b_-i`` to that bidder's menu of ``K`` elements.

Bidder ``i``'s network is an MLP ``[(n-1) m] -> [K m + K]`` (tanh hidden layers) on the
others' bids in bidder order, divided by the value scale. Its outputs are allocation logits
and price logits:

* additive bidders: ``a_ik = sigmoid(logits_ik)`` in ``[0,1]^m`` (RochetNet's allocation);
* unit-demand bidders: ``a_ik = softmax([logits_ik, 0])[:m]`` (a lottery over single items);
* prices ``p_ik = cap * sigmoid(price_logit_ik)``, ``cap`` at least the largest value of any
  bundle, so no price is forced below a value.

With ``n = 1`` the network's input is empty and the menu is a constant (a RochetNet menu).
The mechanism is strategy-proof by construction (:mod:`.outcome`); compatibility is trained
for (:mod:`bundleflow.training.gemnet`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bundleflow.errors import InputError


class GemNet(nn.Module):
    """Menus of ``K`` elements for each of ``n`` bidders over ``m`` items, from ``b_-i``."""

    def __init__(
        self,
        n_bidders: int,
        n_items: int,
        n_elements: int,
        cap: float,
        value_scale: float = 1.0,
        unit_demand: bool = False,
        hidden: tuple[int, ...] = (64, 64),
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_bidders < 1 or n_items < 1 or n_elements < 1:
            raise InputError(
                f"GemNet needs n_bidders, n_items, n_elements >= 1, got {n_bidders}, {n_items}, {n_elements}"
            )
        for name, x in (("cap", cap), ("value_scale", value_scale)):
            if not (x > 0 and math.isfinite(x)):
                raise InputError(f"GemNet: {name} must be positive and finite, got {x}")
        if any(h < 1 for h in hidden):
            raise InputError(f"GemNet: hidden widths must be >= 1, got {hidden}")
        self.n_bidders, self.n_items, self.n_elements = n_bidders, n_items, n_elements
        self.cap, self.value_scale, self.unit_demand = float(cap), float(value_scale), unit_demand
        self.hidden = tuple(hidden)
        d_in = (n_bidders - 1) * n_items
        self.nets = nn.ModuleList(self._mlp(d_in, generator) for _ in range(n_bidders))

    def _mlp(self, d_in: int, generator: torch.Generator | None) -> nn.Sequential:
        K, m = self.n_elements, self.n_items
        layers: list[nn.Module] = []
        width = d_in
        for h in self.hidden if d_in > 0 else ():
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        out = nn.Linear(max(width, 1), K * m + K)
        with torch.no_grad():  # diverse starting elements: allocation logits N(0, 2^2), prices mid-range
            for layer in layers + [out]:
                if isinstance(layer, nn.Linear):
                    bound = 1 / math.sqrt(layer.in_features)
                    layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
                    layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
            if d_in == 0:
                out.weight.zero_()
            out.bias[: K * m].copy_(2 * torch.randn(K * m, generator=generator))
            out.bias[K * m :].copy_(torch.randn(K, generator=generator) - 1.0)
        return nn.Sequential(*layers, out)

    def others(self, bids: torch.Tensor, i: int) -> torch.Tensor:
        """``[B, (n-1) m]`` the bids of every bidder but ``i``, scaled (``[B, 1]`` zeros if ``n = 1``)."""
        B, n, m = bids.shape
        if n == 1:
            return torch.zeros(B, 1, dtype=bids.dtype, device=bids.device)
        keep = [j for j in range(n) if j != i]
        return bids[:, keep].reshape(B, (n - 1) * m) / self.value_scale

    def menus(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``bids [B, n, m]`` -> ``(allocations [B, n, K, m], prices [B, n, K])`` on the bids'
        device, in the model's dtype; bidder ``i``'s menu reads ``bids[:, j]`` for ``j != i`` only."""
        if bids.dim() != 3 or tuple(bids.shape[1:]) != (self.n_bidders, self.n_items):
            raise InputError(
                f"GemNet: bids must have shape [B, {self.n_bidders}, {self.n_items}], got {tuple(bids.shape)}"
            )
        B, K, m = bids.shape[0], self.n_elements, self.n_items
        p0 = next(self.parameters())
        back = bids.device
        bids = bids.to(p0.device)
        allocs, prices = [], []
        for i, net in enumerate(self.nets):
            z = net(self.others(bids, i).to(p0.dtype))
            logits = z[:, : K * m].reshape(B, K, m)
            if self.unit_demand:
                zero = torch.zeros(B, K, 1, dtype=z.dtype, device=z.device)
                allocs.append(torch.softmax(torch.cat([logits, zero], -1), -1)[..., :m])
            else:
                allocs.append(torch.sigmoid(logits))
            prices.append(self.cap * torch.sigmoid(z[:, K * m :]))
        return torch.stack(allocs, 1).to(back), torch.stack(prices, 1).to(back)

    def config(self) -> dict:
        """The constructor's arguments (with the state dict, enough to rebuild the model)."""
        return {
            "n_bidders": self.n_bidders,
            "n_items": self.n_items,
            "n_elements": self.n_elements,
            "cap": self.cap,
            "value_scale": self.value_scale,
            "unit_demand": self.unit_demand,
            "hidden": list(self.hidden),
        }
