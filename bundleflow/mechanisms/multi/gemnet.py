"""GemNet's menus (Wang, Jiang, Parkes, arXiv:2406.07428): one network per bidder maps the
other bidders' bids ``b_-i`` to that bidder's menu of ``K`` elements.

Bidder ``i``'s network is an MLP ``[(n-1) m] -> [K m + K]`` (tanh hidden layers) on the
others' bids in bidder order, divided by the value scale. Its outputs are allocation logits
and price logits:

* additive bidders: ``a_ik = sigmoid(logits_ik)`` in ``[0,1]^m`` (RochetNet's allocation);
* unit-demand bidders: ``a_ik = softmax([logits_ik, 0])[:m]`` (a lottery over single items);
* XOR bidders (``bundles``): deterministic bundles ``a_ik = 1[logits_ik > 0]``; in training
  (``relax > 0``) the same bundles with the gradient of ``sigmoid(logits_ik)`` (straight
  through), valued by the relaxed XOR value of
  :func:`~bundleflow.mechanisms.multi.outcome.xor_bundle_values` (exact on 0/1 bundles, so
  the relaxed revenue and over-allocation are those of the bundles offered);
* prices ``p_ik = cap * sigmoid(price_logit_ik)``, ``cap`` at least the largest value of any
  bundle, so no price is forced below a value.

With ``item_prices``, bidder ``i``'s menu also sells single items at prices

    q_ij(b_-i) = max(r_ij(b_-i), max_{l != i} b_lj),    r_ij = value_scale * sigmoid(.)

(a learned reserve from ``m`` more outputs, floored at the others' highest bid on the item, as
in a second-price auction per item). Unit-demand bidders get ``m`` more elements (item ``j``
at ``q_ij``). Additive bidders may buy any set of items at these prices: one more element,
the best such set ``{j : b_ij > q_ij}`` at its price ``sum q_ij``; it is the bidder's best
choice among the ``2^m`` elements "set ``S`` at ``sum_{j in S} q_ij``", a menu that depends on
``b_-i`` only, so the mechanism stays strategy-proof. The item sales are compatible among
themselves (two bidders above each other's bids cannot both exist); item auctions with a
reserve ``r`` are the special case that prices every other element out. In training
(``relax > 0``) the set is smoothed, ``x_ij = sigmoid((b_ij - q_ij) / relax)``.

*Entry fees on the item sales* (``entry_fee``, with ``item_prices``, item bidders): one more
output ``z_i`` gives bidder ``i`` a fee ``f_i(b_-i) = value_scale * max(z_i, 0) >= 0`` added
to the price of every item-sale element (additive: any set ``S`` costs ``f_i + sum_{j in S}
q_ij``, so she buys her best set only if its surplus is at least the fee). The fee is a
function of ``b_-i``, so the menus stay strategy-proof, and it only removes sales, so the
item sales stay compatible among themselves. With constant reserves and a constant fee these
are second-price item auctions with an entry fee
(:func:`bundleflow.baselines.multi.item_auctions_with_entry_fee`; VCG with entry fees, Yao,
"An n-to-1 bidder reduction for multi-item auctions", SODA 2015). The fee's output starts at
0 (no fee); in training its gradient passes ``max(., 0)`` straight through.

*Serial* menus (``serial``, XOR bidders): bidder ``k``'s network reads the bids of bidders
``0 .. k-1`` only (the later bidders' inputs are zeros, the sizes unchanged), and her menu
loses every element that meets an item an earlier bidder took (its allocation is emptied and
its price set to ``cap + 1``, so it is never chosen); with item sales her best atom is
sought among the atoms that avoid those items, at the learned prices ``r_k(b_<k)`` alone (no
floor: sequential posted prices are the special case of constant prices with every learned
element priced out). The earlier bidders' choices depend on ``b_<k`` only, so bidder ``k``'s menu does too:
strategy-proof, and compatible on every profile by construction (no grid, no transform).
:meth:`GemNet.menus` makes the choices with :func:`bundleflow.mechanisms.menu.choose` and the
evaluation's tie tolerance, so the items taken there are the items the evaluation allocates;
training relaxes the earlier choices (:func:`bundleflow.training.gemnet.relaxed_serial`).

*Conflict prices* (``conflict_prices``, XOR bidders): every element's price is floored at
``floor_i(A) = max{p_lt : l != i, T_lt meets A}``, the highest value of another bidder's atom
that meets the bundle ``A`` offered (plus a margin above the evaluation's tie tolerance), and
a bidder who takes ``A`` receives her best atom inside it (same value to her). With item
sales, any bundle ``S`` costs ``max(q_i . S, floor_i(S))``. Prices are functions of ``b_-i``
(the others' atoms), so the menus are strategy-proof, and compatible by construction: if
bidder ``i`` receives atom ``S`` and bidder ``l`` atom ``T`` meeting it, then
``price_i >= p_l(T) + margin`` and ``price_l >= p_i(S) + margin``, so one of them would
have bought at a loss. Each winner pays at least the best conflicting rival value.

*Affine menus with entry fees* (``affine_reserve = r``, XOR bidders): bidder ``i``'s menu
is every bundle ``S`` at the price of the affine maximiser in which the seller bids ``r`` on
each item she keeps (VCG with a per-item reserve,
:func:`bundleflow.baselines.multi.xor_vcg`, :mod:`.affine`), ``r |S| + W'*_-i(M) - W'*_-i(M \\ S)``, plus a
learned entry fee ``f_i(b_-i) = FEE_UNIT * value_scale * max(z_i, 0) >= 0`` from her
network's one output ``z_i`` (in hundredths of the value scale, so that a step of the
optimiser moves the fee by a small part of a typical surplus). The fee is the same on every bundle, so her best bundle is still the one the
affine maximiser gives her, and she takes it or nothing: the buyers are a subset of the
affine maximiser's winners, so the menus are compatible by construction, and strategy-proof
(prices and fee are functions of ``b_-i``). Her element is that best bundle at its price
plus the fee (prices in float64, exactly those of the affine maximiser). The network starts
at ``z = 0`` (the affine maximiser itself); in training the fee's gradient passes ``max(., 0)``
straight through, so a fee at 0 can rise again. ``r`` is fixed (the runner tunes it on the
training profiles as for the baseline).

With ``n = 1`` the network's input is empty and the menu is a constant (a RochetNet menu).
The mechanism is strategy-proof by construction (:mod:`.outcome`); compatibility is trained
for (:mod:`bundleflow.training.gemnet`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from bundleflow.errors import InputError

if TYPE_CHECKING:
    from bundleflow.mechanisms.multi.affine import XORSalesMemo

# conflict floors are raised by this relative slack: prices are float32, values float64, and
# a floor rounded down must not fall below the rival value it stands for
FLOOR_SLACK = 1e-6
# the item-auction start prices every learned element at this share of the cap
PRICED_OUT = 0.9975
# affine menus: the entry fee is FEE_UNIT * value_scale * max(z, 0) for a network output z
FEE_UNIT = 0.01


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
        item_prices: bool = False,
        reserve: float = 0.5,
        bundles: bool = False,
        serial: bool = False,
        conflict_prices: bool = False,
        affine_reserve: float | None = None,
        entry_fee: bool = False,
    ):
        super().__init__()
        if n_bidders < 1 or n_items < 1 or n_elements < 1:
            raise InputError(
                f"GemNet needs n_bidders, n_items, n_elements >= 1, got {n_bidders}, {n_items}, {n_elements}"
            )
        for name, x in (("cap", cap), ("value_scale", value_scale)):
            if not (x > 0 and math.isfinite(x)):
                raise InputError(f"GemNet: {name} must be positive and finite, got {x}")
        if bundles and unit_demand:
            raise InputError("GemNet: deterministic bundles (XOR bidders) go without unit_demand")
        if (serial or conflict_prices) and not bundles:
            raise InputError(
                "GemNet: serial menus and conflict prices are built for XOR bidders (deterministic bundles)"
            )
        if serial and conflict_prices:
            raise InputError("GemNet: serial menus or conflict prices, not both")
        if affine_reserve is not None:
            if not bundles or serial or conflict_prices or item_prices:
                raise InputError(
                    "GemNet: affine menus are built for XOR bidders, without serial menus, conflict prices or item sales"
                )
            if not (affine_reserve >= 0 and math.isfinite(affine_reserve)):
                raise InputError(f"GemNet: the affine reserve must be finite and >= 0, got {affine_reserve}")
        if entry_fee and (not item_prices or bundles):
            raise InputError("GemNet: entry fees are charged on item sales to item bidders (additive, unit demand)")
        if not 0 < reserve < 1:
            raise InputError(f"GemNet: the starting reserve is a fraction in (0, 1) of the value scale, got {reserve}")
        if any(h < 1 for h in hidden):
            raise InputError(f"GemNet: hidden widths must be >= 1, got {hidden}")
        self.n_bidders, self.n_items, self.n_elements = n_bidders, n_items, n_elements
        self.cap, self.value_scale, self.unit_demand = float(cap), float(value_scale), unit_demand
        self.hidden = tuple(hidden)
        self.item_prices, self.reserve, self.bundles = bool(item_prices), float(reserve), bool(bundles)
        self.serial, self.conflict_prices = bool(serial), bool(conflict_prices)
        self.affine_reserve = None if affine_reserve is None else float(affine_reserve)
        self.entry_fee = bool(entry_fee)
        self._sales: XORSalesMemo | None = None  # affine menus: the affine maximiser's sales, remembered per profile
        d_in = (n_bidders - 1) * n_items
        self.nets = nn.ModuleList(self._mlp(d_in, generator) for _ in range(n_bidders))

    def _mlp(self, d_in: int, generator: torch.Generator | None) -> nn.Sequential:
        K, m = self.n_elements, self.n_items
        layers: list[nn.Module] = []
        width = d_in
        for h in self.hidden if d_in > 0 else ():
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        out = nn.Linear(max(width, 1), self.n_outputs)
        with torch.no_grad():  # diverse starting elements: allocation logits N(0, 2^2), prices mid-range
            for layer in layers + [out]:
                if isinstance(layer, nn.Linear):
                    bound = 1 / math.sqrt(layer.in_features)
                    layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator) * 2 - 1) * bound)
                    layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator) * 2 - 1) * bound)
            if d_in == 0 or self.affine:
                out.weight.zero_()
            if self.affine:  # the fee starts at 0: the affine maximiser itself
                out.bias.zero_()
                return nn.Sequential(*layers, out)
            out.bias[: K * m].copy_(2 * torch.randn(K * m, generator=generator))
            if self.bundles:  # XOR bidders value few small bundles: start from large ones (~90% of items)
                out.bias[: K * m] += 3.0
            out.bias[K * m : K * m + K].copy_(torch.randn(K, generator=generator) - 1.0)
            if self.item_prices:  # every reserve starts at `reserve` of the value scale
                out.bias[K * m + K : K * m + K + m].fill_(math.log(self.reserve / (1 - self.reserve)))
            if self.entry_fee:  # no fee at the start
                out.weight[-1].zero_()
                out.bias[-1] = 0.0
        return nn.Sequential(*layers, out)

    @staticmethod
    def outputs(n_elements: int, n_items: int, item_prices: bool, affine: bool = False, entry_fee: bool = False) -> int:
        """Outputs of each bidder's network: allocation and price logits, the reserves and the
        entry fee on item sales, in that order (affine menus: the entry fee alone)."""
        if affine:
            return 1
        return n_elements * n_items + n_elements + (n_items if item_prices else 0) + int(entry_fee)

    @property
    def n_outputs(self) -> int:
        return self.outputs(self.n_elements, self.n_items, self.item_prices, self.affine, self.entry_fee)

    @property
    def affine(self) -> bool:
        """Affine menus with entry fees (module doc)."""
        return self.affine_reserve is not None

    @property
    def needs_bidders(self) -> bool:
        """Whether :meth:`menus` needs the bidders themselves (XOR bidders with item sales:
        the best atom at the item prices is found from the bidder's atoms; serial menus: the
        earlier bidders' choices need their values; conflict prices: the others' atoms)."""
        return self.bundles and (self.item_prices or self.serial or self.conflict_prices or self.affine)

    @property
    def compatible_by_construction(self) -> bool:
        """Serial menus, conflict prices and affine menus never over-allocate (module doc); the
        exact menus of the first two need the evaluation's tie tolerance (:meth:`menus`' ``tol``)."""
        return self.serial or self.conflict_prices or self.affine

    @torch.no_grad()
    def start_as_item_auctions(self, reserve: float, fee: float = 0.0) -> None:
        """Set the menus to item auctions with the common reserve ``reserve`` (in value units,
        in ``(0, value_scale)``) and, with :attr:`entry_fee`, the entry fee ``fee >= 0`` (value
        units) on the item sales: every reserve output constant at ``reserve``, every learned
        element's price constant at ``PRICED_OUT`` of the cap (no bundle of item values in
        ``[0, high]`` is worth it, unless nearly every item is in it at a value near ``high``),
        its allocation logits as drawn (so that training can bring it back)."""
        if not self.item_prices or self.bundles:
            raise InputError("GemNet: the item-auction start needs item sales to item bidders (additive, unit demand)")
        if not 0 < reserve < self.value_scale:
            raise InputError(f"GemNet: the starting reserve must be in (0, {self.value_scale:g}), got {reserve}")
        if fee and not self.entry_fee:
            raise InputError("GemNet: an entry fee at the start needs a model with entry_fee=True")
        if not (fee >= 0 and math.isfinite(fee)):
            raise InputError(f"GemNet: the starting entry fee must be finite and >= 0, got {fee}")
        K, m = self.n_elements, self.n_items
        x = reserve / self.value_scale
        for mlp in self.nets:
            out = mlp[-1]  # type: ignore[index]
            out.weight[K * m :].zero_()
            out.bias[K * m : K * m + K].fill_(math.log(PRICED_OUT / (1 - PRICED_OUT)))
            out.bias[K * m + K : K * m + K + m].fill_(math.log(x / (1 - x)))
            if self.entry_fee:
                out.bias[-1] = fee / self.value_scale

    def item_price(self, bids: torch.Tensor, z: torch.Tensor, i: int) -> torch.Tensor:
        """``[B, m]`` bidder ``i``'s item prices ``q_i`` (module doc) from her network's reserve
        outputs ``z [B, m]`` and the others' bids."""
        r = self.value_scale * torch.sigmoid(z)
        if bids.shape[1] == 1 or self.serial:  # serial menus: no floor (module doc)
            return r
        others = torch.cat([bids[:, :i], bids[:, i + 1 :]], 1).amax(1)
        return torch.maximum(r, others.to(r.dtype))

    def item_fee(self, z: torch.Tensor, relax: float = 0.0) -> torch.Tensor:
        """The entry fee ``value_scale * max(z, 0)`` on item sales from the fee output ``z``
        (``[B]``, elementwise for any shape: the certificate bounds it at ``[C, 1]``); in
        training (``relax > 0``) with the gradient of ``z`` (straight through)."""
        fee = z.clamp_min(0)
        if relax > 0:
            fee = z + (fee - z).detach()
        return self.value_scale * fee

    def others(self, bids: torch.Tensor, i: int) -> torch.Tensor:
        """``[B, (n-1) m]`` the bids of every bidder but ``i``, scaled, in bidder order (serial
        menus: the later bidders' entries are zeros); ``[B, 1]`` zeros if ``n = 1``."""
        B, n, m = bids.shape
        if n == 1:
            return torch.zeros(B, 1, dtype=bids.dtype, device=bids.device)
        keep = [j for j in range(n) if j != i]
        x = bids[:, keep] / self.value_scale
        if self.serial:
            x = x * (torch.tensor(keep, device=bids.device) < i).to(x.dtype)[None, :, None]
        return x.reshape(B, (n - 1) * m)

    def _check_bids(self, bids: torch.Tensor, bidders) -> None:
        if bids.dim() != 3 or tuple(bids.shape[1:]) != (self.n_bidders, self.n_items):
            raise InputError(
                f"GemNet: bids must have shape [B, {self.n_bidders}, {self.n_items}], got {tuple(bids.shape)}"
            )
        if self.needs_bidders and (bidders is None or len(bidders) != self.n_bidders):
            raise InputError("GemNet for XOR bidders with item sales or serial menus needs the bidders beside the bids")

    def bidder_menu(
        self,
        bids: torch.Tensor,
        i: int,
        relax: float = 0.0,
        bidders=None,
        taken: torch.Tensor | None = None,
        margin: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bidder ``i``'s menu before anything is priced out: ``(allocations [B, K', m], prices
        [B, K'])`` in the model's dtype and device, from ``bids [B, n, m]`` (already there).
        ``bidders``: the valuations (XOR item sales, conflict prices); ``taken [B, m]``: the
        items earlier bidders took (serial item sales seek her best atom among those avoiding
        them); ``margin``: added to conflict floors (above the evaluation's tie tolerance)."""
        bidder = bidders[i] if bidders is not None else None
        rivals = [v for l, v in enumerate(bidders) if l != i] if self.conflict_prices else None
        B, K, m = bids.shape[0], self.n_elements, self.n_items
        z = self.nets[i](self.others(bids, i).to(bids.dtype))
        logits = z[:, : K * m].reshape(B, K, m)
        if self.unit_demand:
            zero = torch.zeros(B, K, 1, dtype=z.dtype, device=z.device)
            alloc = torch.softmax(torch.cat([logits, zero], -1), -1)[..., :m]
        elif self.bundles:  # 0/1; in training the gradient of sigmoid(logits) (straight through)
            alloc = (logits > 0).to(z.dtype)
            if relax > 0:
                soft = torch.sigmoid(logits)
                alloc = alloc + (soft - soft.detach())  # exactly hard in the forward pass
        else:
            alloc = torch.sigmoid(logits)
        price = self.cap * torch.sigmoid(z[:, K * m : K * m + K])
        if rivals is not None:  # floored at the best rival atom meeting the bundle offered
            price = torch.maximum(price, conflict_floor(alloc.detach(), rivals) + margin)
            if relax == 0:  # she receives her best atom inside it (the rest is worth nothing to her)
                alloc = _best_atom_inside(bidder, alloc)
        if not self.item_prices:
            return alloc, price
        q = self.item_price(bids, z[:, K * m + K : K * m + K + m], i)  # [B, m]
        fee = self.item_fee(z[:, -1], relax)[:, None] if self.entry_fee else 0.0
        if self.bundles:  # XOR: the best of her atoms' bundles at prices q_i
            x, cost = _best_atom(bidder, q, taken, rivals, margin)
            return torch.cat([alloc, x[:, None]], 1), torch.cat([price, cost[:, None]], 1)
        if self.unit_demand:  # item j alone at q_ij
            eye = torch.eye(m, dtype=z.dtype, device=z.device).expand(B, m, m)
            return torch.cat([alloc, eye], 1), torch.cat([price, q + fee], 1)
        gap = bids[:, i] - q  # the best set of items at prices q_i
        x = torch.sigmoid(gap / relax) if relax > 0 else (gap > 0).to(z.dtype)
        return torch.cat([alloc, x[:, None]], 1), torch.cat([price, (x * q).sum(-1, keepdim=True) + fee], 1)

    def menus(
        self, bids: torch.Tensor, relax: float = 0.0, bidders=None, tol: float | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``bids [B, n, m]`` -> ``(allocations [B, n, K', m], prices [B, n, K'])`` on the bids'
        device, in the model's dtype (``K' = K``, with item sales ``K + m`` for unit demand and
        ``K + 1`` otherwise); bidder ``i``'s menu reads ``bids[:, j]``
        for ``j != i`` only (the item-sale element's set is her best under prices that do).
        ``relax > 0`` smooths that set for training (module doc). ``bidders`` (one
        :class:`~bundleflow.valuations.XORValuation` per bidder, ``B`` rows) are needed when
        :attr:`needs_bidders`. Serial menus (exact only; ``tol``: the evaluation's absolute tie
        tolerance, by default that of :func:`~bundleflow.mechanisms.multi.outcome.tie_tolerance`)
        price out the elements meeting items the earlier bidders took (module doc)."""
        from bundleflow.mechanisms.multi.outcome import tie_tolerance

        self._check_bids(bids, bidders)
        p0 = next(self.parameters())
        back = bids.device
        bids = bids.to(p0.device, p0.dtype)
        tie = 0.0  # the absolute tie tolerance of the exact menus compatible by construction
        if self.compatible_by_construction and relax == 0:
            tie = tie_tolerance(bidders) if tol is None else tol
        if self.affine:
            alloc, price = self._affine_menus(bids, bidders, relax)
        elif self.serial:
            if relax > 0:
                raise InputError("serial GemNet menus are relaxed by bundleflow.training.gemnet.relaxed_serial")
            alloc, price = self._serial_menus(bids, bidders, tie)
        else:
            margin = 2 * tie if self.conflict_prices else 0.0  # ties at a floor must not sell to both
            pairs = [self.bidder_menu(bids, i, relax, bidders, margin=margin) for i in range(self.n_bidders)]
            alloc, price = torch.stack([a for a, _ in pairs], 1), torch.stack([p for _, p in pairs], 1)
        return alloc.to(back), price.to(back)

    def fee(self, bids: torch.Tensor, i: int, relax: float = 0.0) -> torch.Tensor:
        """``[B]`` bidder ``i``'s entry fee ``FEE_UNIT * value_scale * max(z_i(b_-i), 0)`` (affine menus); in
        training (``relax > 0``) with the gradient of ``z_i`` (straight through)."""
        z = self.nets[i](self.others(bids, i).to(bids.dtype))[:, 0]
        fee = z.clamp_min(0)
        if relax > 0:
            fee = z + (fee - z).detach()
        return FEE_UNIT * self.value_scale * fee

    def _affine_menus(self, bids: torch.Tensor, bidders, relax: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Affine menus (module doc): ``([B, n, 1, m], [B, n, 1])``, each bidder's best bundle at
        the affine maximiser's price plus her fee (float64); nothing (at ``cap + 1``) where
        she wins nothing there."""
        from bundleflow.mechanisms.multi.affine import XORSalesMemo

        if self._sales is None or self._sales.reserve != self.affine_reserve:
            self._sales = XORSalesMemo(self.affine_reserve)  # type: ignore[arg-type]
        bundle, _, price, sold = self._sales(bidders)
        bundle, price, sold = bundle.to(bids.device), price.to(bids.device), sold.to(bids.device)
        fee = torch.stack([self.fee(bids, i, relax) for i in range(self.n_bidders)], 1).double()
        price = torch.where(sold, price + fee, torch.full_like(fee, self.cap + 1.0))
        return bundle[:, :, None].double(), price[:, :, None]

    def _serial_menus(self, bids: torch.Tensor, bidders, tol: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Serial menus (module doc): bidder by bidder, price out what meets the items taken;
        the choices use the absolute tie tolerance ``tol``."""
        from bundleflow.mechanisms.menu import choose
        from bundleflow.mechanisms.multi.outcome import xor_bundle_values

        bidders = [v.to(bids.device) for v in bidders]
        B = bids.shape[0]
        rows = torch.arange(B, device=bids.device)
        taken = torch.zeros(B, self.n_items, dtype=bids.dtype, device=bids.device)
        allocs, prices = [], []
        for i in range(self.n_bidders):
            a, p = self.bidder_menu(bids, i, 0.0, bidders, taken)
            free = torch.einsum("bkm,bm->bk", a, taken) < 0.5
            a = a * free[..., None].to(a.dtype)
            p = torch.where(free, p, torch.full_like(p, self.cap + 1.0))  # nothing at a price: never taken
            c = choose(xor_bundle_values(bidders[i], a.double()), p.double(), tol)[0]
            taken = torch.maximum(taken, a[rows, c.clamp_min(0)] * (c >= 0)[:, None].to(a.dtype))
            allocs.append(a)
            prices.append(p)
        return torch.stack(allocs, 1), torch.stack(prices, 1)

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
            "item_prices": self.item_prices,
            "reserve": self.reserve,
            "bundles": self.bundles,
            "serial": self.serial,
            "conflict_prices": self.conflict_prices,
            "affine_reserve": self.affine_reserve,
            "entry_fee": self.entry_fee,
        }


def conflict_floor(bundles: torch.Tensor, rivals) -> torch.Tensor:
    """``[B, K]`` the highest value of an atom of any of the ``rivals`` (XOR valuations, ``B``
    rows) that meets bundle ``bundles [B, K, m]`` (0/1), 0 if none: the conflict floor."""
    floor = torch.zeros(bundles.shape[:2], dtype=bundles.dtype, device=bundles.device)
    for v in rivals:
        if v.atoms.shape[1] == 0:
            continue
        T = v.atoms.to(bundles.device, bundles.dtype)  # [B, A, m]
        meets = torch.einsum("bkm,bam->bka", bundles, T) > 0.5
        worth = v.values.to(bundles.device, bundles.dtype)[:, None, :]
        floor = torch.maximum(floor, torch.where(meets, worth, torch.zeros_like(worth)).amax(-1))
    return floor * (1 + FLOOR_SLACK)


def _best_atom_inside(bidder, bundles: torch.Tensor) -> torch.Tensor:
    """``[B, K, m]`` bidder's most valuable atom inside each 0/1 bundle (ties: the first; empty
    if none has value): the same value to her, nothing she does not want."""
    T = bidder.atoms.to(bundles.device, bundles.dtype)  # [B, A, m]
    if T.shape[1] == 0:
        return torch.zeros_like(bundles)
    from bundleflow.mechanisms.multi.outcome import atoms_held

    worth = torch.where(atoms_held(T, bundles), bidder.values.to(bundles.device, bundles.dtype)[:, None, :], -1.0)
    best, a = worth.max(-1)  # [B, K]
    got = torch.gather(T, 1, a[..., None].expand(*a.shape, T.shape[-1]))  # [B, K, m]
    return got * (best > 0)[..., None].to(bundles.dtype)


def _best_atom(
    bidder, q: torch.Tensor, taken: torch.Tensor | None = None, rivals=None, margin: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(bundle [B, m], price [B])``: the bundle ``T_t`` of one of ``bidder``'s atoms that
    maximises ``v(T_t) - q . T_t`` if that is >= 0 (an XOR bidder's best set at item prices
    ``q [B, m]``: a best set is always an atom's bundle), else nothing at 0. Atoms meeting
    ``taken [B, m]`` (items gone; above 0.5 counts as taken) are left out. With ``rivals``,
    bundle ``S`` costs ``max(q . S, conflict_floor(S) + margin)`` (still monotone in ``S``, so
    a best set is still an atom's bundle)."""
    from bundleflow.mechanisms.multi.outcome import xor_bundle_values

    T = bidder.atoms.to(q.device, q.dtype)  # [B, A, m]
    if T.shape[1] == 0:
        return torch.zeros_like(q), torch.zeros_like(q[:, 0])
    worth = xor_bundle_values(bidder.to(q.device), T).to(q.dtype)  # [B, A] v(T_t)
    cost = torch.einsum("bam,bm->ba", T, q)
    if rivals is not None:
        cost = torch.maximum(cost, conflict_floor(T, rivals) + margin)
    usable = T.any(-1)
    if taken is not None:
        usable &= torch.einsum("bam,bm->ba", T, (taken > 0.5).to(q.dtype)) < 0.5
    gain = torch.where(usable, worth - cost, -torch.inf)
    best, t = gain.max(-1)
    buy = (best >= 0).to(q.dtype)
    rows = torch.arange(len(q), device=q.device)
    return T[rows, t] * buy[:, None], cost[rows, t] * buy
