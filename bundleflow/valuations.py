"""Batched valuation functions v(S) for one bidder type per row.

Every valuation holds ``B`` bidders over ``m`` items and evaluates a batch of
``A`` bundles (0/1 rows) in one call::

    valuation.value(bundles)   # bundles [A, m] -> values [B, A]

without Python loops over atoms or bundles. Values are stored in float64 so
that revenue figures are exact up to float64 round-off; containment tests are
exact integer counts.

Valuation classes
-----------------
- :class:`XORValuation`: atoms ``(T_j, p_j)``, ``v(S) = max{p_j : T_j subset of S}``
  (0 if no atom fits). Padding atoms (empty bundle, value 0) are allowed.
- :class:`AdditiveValuation`: ``v(S) = sum_{i in S} v_i``.
- :class:`UnitDemandValuation`: ``v(S) = max_{i in S} v_i``.

All three are monotone with ``v(empty) = 0``, so ``v(all items)`` is each
bidder's largest value (the welfare bound of a single bidder).

Item-pricing demand (:meth:`Valuation.demand`) breaks ties in favour of the
seller: among utility-maximising bundles the bidder pays the most, and a bidder
with zero utility from some bundle buys it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from bundleflow.errors import InputError

# Elements per intermediate [rows, chunk] tensor in the batched kernels (~64 MB of float32).
_CHUNK_ELEMS = 1 << 24
# On CPU, chunks sized to stay in cache are several times faster than large ones.
_CACHE_ELEMS = 1 << 19
# Entries of the table kernel's per-block bitmask tables (~32 MB of int32 or 64 MB of int64).
_TABLE_ELEMS = 1 << 23
# Largest K (atoms per bidder) for the table kernel: ranks must fit a float64 mantissa.
_TABLE_MAX_ATOMS = 53


def _as_tensor(x, dtype, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except Exception as exc:  # pragma: no cover - defensive
            raise InputError(f"{name}: cannot convert to a tensor ({exc})") from exc
    return x.to(dtype)


# Largest value accepted: squares and sums of values must stay finite in float32 (max 3.4e38).
MAX_VALUE = 1e18


def _check_values(x: torch.Tensor, name: str) -> None:
    if x.numel() == 0:
        return
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise InputError(f"{name}: {bad} value(s) are NaN or infinite")
    if (x < 0).any():
        raise InputError(f"{name}: negative values are not allowed (min {float(x.min()):.6g})")
    if (x > MAX_VALUE).any():
        raise InputError(f"{name}: values up to {MAX_VALUE:g} are supported (training computes in float32), "
                         f"the largest is {float(x.max()):.6g}; rescale the values")


def _check_unit(unit) -> float:
    unit = float(unit)
    if not (math.isfinite(unit) and unit > 0):
        raise InputError(f"unit must be a positive finite number, got {unit}")
    return unit


def _as_atoms(atoms) -> torch.Tensor:
    if isinstance(atoms, torch.Tensor) and atoms.dtype == torch.bool:
        return atoms
    a = _as_tensor(atoms, torch.float64, "atoms")
    if a.numel() and not ((a == 0) | (a == 1)).all():
        raise InputError("atoms must contain only 0/1 entries")
    return a.to(torch.bool)


def check_bundles(bundles: torch.Tensor, n_items: int) -> torch.Tensor:
    """Validate a bundle batch ``[A, m]`` of 0/1 entries and return it as float32."""
    if not isinstance(bundles, torch.Tensor):
        bundles = torch.as_tensor(np.asarray(bundles))
    if bundles.dim() != 2:
        raise InputError(f"bundles must have shape [A, m], got {tuple(bundles.shape)}")
    if bundles.shape[1] != n_items:
        raise InputError(
            f"bundles have {bundles.shape[1]} items but the valuation has {n_items} items"
        )
    if bundles.dtype != torch.bool:
        bf = bundles.to(torch.float32)
        if not ((bf == 0) | (bf == 1)).all():
            raise InputError("bundles must contain only 0/1 entries")
        return bf
    return bundles.to(torch.float32)


def all_bundles(n_items: int, device=None) -> torch.Tensor:
    """Every bundle over ``n_items`` items, ``[2^m, m]`` float32, row ``k`` = binary digits of ``k``.

    Row 0 is the empty bundle and the last row the grand bundle.
    """
    if n_items > 20:
        raise InputError(f"all_bundles: 2^{n_items} bundles is too many to enumerate")
    k = torch.arange(2**n_items, device=device)
    bits = (k[:, None] >> torch.arange(n_items, device=device)[None, :]) & 1
    return bits.to(torch.float32)


class Valuation(ABC):
    """A batch of ``B`` monotone valuations over ``m`` items."""

    n_items: int

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def value(self, bundles: torch.Tensor) -> torch.Tensor:
        """Values of every bidder for every bundle: ``[A, m]`` -> ``[B, A]`` float64."""

    def bundle_values(self, bundles: torch.Tensor, unit: float = 1.0, dtype=torch.float64) -> torch.Tensor:
        """Values bundle-major and in units of ``unit``: ``[A, m]`` -> ``[A, B]`` (``value(bundles).T / unit``)."""
        unit = _check_unit(unit)
        return (self.value(bundles) / unit).to(dtype).T.contiguous()

    @abstractmethod
    def grand_value(self) -> torch.Tensor:
        """``v(all items)`` per bidder, ``[B]`` float64 (= the bidder's largest value)."""

    @abstractmethod
    def demand(self, item_prices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Utility-maximising purchase under item prices.

        Args:
            item_prices: ``[m]`` or ``[G, m]`` (``G`` candidate price vectors).

        Returns:
            ``(utility, payment)``, each ``[B]`` (or ``[G, B]``), ties broken in favour of
            the seller (highest payment among optimal bundles; zero utility buys).
        """

    @abstractmethod
    def subset(self, index) -> "Valuation":
        """Rows ``index`` of this batch as a new valuation."""

    @abstractmethod
    def to(self, device) -> "Valuation": ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    def max_value(self) -> float:
        """Largest value any bidder has for any bundle (price cap of every mechanism)."""
        return float(self.grand_value().max()) if len(self) else 0.0

    def split(self, n_first: int) -> tuple["Valuation", "Valuation"]:
        """First ``n_first`` rows and the rest (e.g. train / held-out)."""
        if not 0 < n_first < len(self):
            raise InputError(f"split: n_first={n_first} must be in (0, {len(self)})")
        idx = torch.arange(len(self))
        return self.subset(idx[:n_first]), self.subset(idx[n_first:])

    def _prices(self, item_prices) -> tuple[torch.Tensor, bool]:
        p = _as_tensor(item_prices, torch.float64, "item_prices").to(self.device)
        single = p.dim() == 1
        p = p.reshape(-1, p.shape[-1]) if p.dim() >= 1 else p
        if p.dim() != 2 or p.shape[1] != self.n_items:
            raise InputError(
                f"item_prices must have shape [m] or [G, m] with m={self.n_items}, "
                f"got {tuple(torch.as_tensor(item_prices).shape)}"
            )
        if not torch.isfinite(p).all():
            raise InputError("item_prices contain NaN or infinite entries")
        return p, single


class XORValuation(Valuation):
    """XOR (OR-of-atoms, pick-one) valuations.

    Args:
        atoms: ``[B, K, m]`` 0/1 (bool or numeric) atom bundles; padding rows are all zero.
        values: ``[B, K]`` non-negative atom values (0 for padding).
    """

    def __init__(self, atoms, values):
        atoms = _as_atoms(atoms)
        values = _as_tensor(values, torch.float64, "values")
        if atoms.dim() != 3:
            raise InputError(f"atoms must have shape [B, K, m], got {tuple(atoms.shape)}")
        if values.dim() != 2 or values.shape != atoms.shape[:2]:
            raise InputError(
                f"values must have shape [B, K] = {tuple(atoms.shape[:2])}, got {tuple(values.shape)}"
            )
        if atoms.shape[2] == 0:
            raise InputError("atoms: need at least one item (m >= 1)")
        _check_values(values, "values")
        self.atoms = atoms.to(values.device)
        self.values = values
        self._ranks: tuple[torch.Tensor, torch.Tensor] | None = None
        self.n_items = int(atoms.shape[2])

    # -- basic protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.atoms.shape[0])

    @property
    def n_atoms_max(self) -> int:
        return int(self.atoms.shape[1])

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device) -> "XORValuation":
        return XORValuation(self.atoms.to(device), self.values.to(device))

    def subset(self, index) -> "XORValuation":
        index = torch.as_tensor(index, device=self.device)
        return XORValuation(self.atoms[index], self.values[index])

    def n_atoms(self) -> torch.Tensor:
        """Real (non-padding) atoms per bidder ``[B]``: atoms with a non-empty bundle or positive value."""
        real = self.atoms.any(-1) | (self.values > 0)
        return real.sum(-1)

    def __repr__(self) -> str:
        return f"XORValuation(B={len(self)}, K={self.n_atoms_max}, m={self.n_items})"

    # -- evaluation -----------------------------------------------------------------
    def grand_value(self) -> torch.Tensor:
        if self.values.shape[1] == 0:
            return torch.zeros(len(self), dtype=torch.float64, device=self.device)
        return self.values.amax(dim=1)

    def value(self, bundles: torch.Tensor, method: str = "auto") -> torch.Tensor:
        """``v_b(S_a)`` for all bidders ``b`` and bundles ``a``: ``[A, m]`` -> ``[B, A]`` float64.

        Three exact kernels (``method``):

        - ``"matmul"`` counts the items of each atom missing from ``S`` with a float matmul;
        - ``"bitpack"`` packs bundles into 64-bit words and tests ``T & ~S == 0``;
        - ``"table"`` (:meth:`_value_table`) looks up, per group of items, which atoms fit,
          at a cost independent of the number of atoms ``K`` (needs ``K <= 53``).

        ``"auto"`` picks matmul on CUDA; on CPU the table kernel for ``A >= 256`` bundles and
        ``K <= 53``, else bitpack.
        """
        S = check_bundles(bundles, self.n_items).to(self.device)
        method = self._method(method, S.shape[0])
        if method == "table":
            return self._value_table(S, 1.0, torch.float64).T.contiguous()
        return self._value_atoms(S, method)

    def bundle_values(self, bundles: torch.Tensor, unit: float = 1.0, dtype=torch.float64, method: str = "auto"):
        """``value(bundles).T / unit`` as ``dtype``, ``[A, B]``, without the transpose on the table kernel."""
        unit = _check_unit(unit)
        S = check_bundles(bundles, self.n_items).to(self.device)
        method = self._method(method, S.shape[0])
        if method == "table":
            return self._value_table(S, unit, dtype)
        return (self._value_atoms(S, method) / unit).to(dtype).T.contiguous()

    def _method(self, method: str, A: int) -> str:
        if method not in ("auto", "matmul", "bitpack", "table"):
            raise InputError(f"unknown containment method {method!r} (use matmul, bitpack, table or auto)")
        K = self.atoms.shape[1]
        if method == "table" and K > _TABLE_MAX_ATOMS:
            raise InputError(f"the table kernel handles at most {_TABLE_MAX_ATOMS} atoms per bidder, got {K}")
        if method == "auto":
            if self.device.type == "cuda":
                return "matmul"
            return "table" if A >= 256 and K <= _TABLE_MAX_ATOMS else "bitpack"
        return method

    def _value_atoms(self, S: torch.Tensor, method: str) -> torch.Tensor:
        """Per-atom kernels (matmul, bitpack): ``[A, m]`` -> ``[B, A]`` float64."""
        B, K, m = self.atoms.shape
        A = S.shape[0]
        if B == 0 or A == 0 or K == 0:
            return torch.zeros(B, A, dtype=torch.float64, device=self.device)
        if method == "matmul":
            return self._value_matmul(S)
        return self._value_bitpack(S)

    @torch.no_grad()
    def _value_table(self, S: torch.Tensor, unit: float, dtype) -> torch.Tensor:
        """Subset-table kernel: ``[A, m]`` -> ``[A, B]`` values / ``unit``.

        Items are cut into ``G`` groups of ``g`` bits. Bidder ``b``'s atoms are ranked by
        value (bit ``r-1`` = rank ``r``); for every group ``c`` and every pattern ``x`` of
        ``g`` bits the table ``M[c, x, b]`` holds the atoms whose group-``c`` part is a
        subset of ``x`` (one bitmask, built by a subset-sum "zeta" transform over the
        ``g`` bits). A bundle with group patterns ``x_1..x_G`` contains exactly the atoms
        of ``AND_c M[c, x_c, b]``; its value is that of the highest rank in the mask,
        read off the float exponent (exact: masks have at most 24 bits in float32, 53 in
        float64). Work is ``A * B * G`` lookups, whatever ``K``.
        """
        B, K, m = self.atoms.shape
        A = S.shape[0]
        dev = self.device
        if B == 0 or A == 0 or K == 0:
            return torch.zeros(A, B, dtype=dtype, device=dev)
        g = max(4, min(10, int(math.log2(max(A, 16) / 8))))
        G = math.ceil(m / g)
        # group weights: item i -> group i // g, weight 2^(i % g); codes < 2^10 are exact in float32
        item = torch.arange(m, device=dev)
        Wg = torch.zeros(m, G, dtype=torch.float32, device=dev)
        Wg[item, item // g] = (2.0 ** (item % g)).to(torch.float32)
        codes_s = (Wg.T @ S.T).to(torch.int32)  # [G, A]
        # the float exponent field of a mask with highest set bit r-1 is E0 + r - 1 (0 for mask 0)
        if K <= 24:
            mdt, fdt, shift, E0 = torch.int32, torch.float32, 23, 127
        else:
            mdt, fdt, shift, E0 = torch.int64, torch.float64, 52, 1023
        order = self.values.argsort(dim=1, stable=True)  # rank r <-> bit r-1
        atoms = self.atoms.gather(1, order[:, :, None].expand(B, K, m)).to(torch.float32)
        codes_a = (atoms.reshape(B * K, m) @ Wg).to(torch.int64).view(B, K, G)
        # lookup[e, b]: value of the rank whose exponent field is e (rows 0 and E0 + r - 1)
        lookup = torch.zeros(E0 + K, B, dtype=dtype, device=dev)
        lookup[E0:] = (self.values.gather(1, order) / unit).to(dtype).T
        bits = (torch.ones(K, dtype=torch.int64, device=dev) << torch.arange(K, device=dev)).to(mdt)
        out = torch.empty(A, B, dtype=dtype, device=dev)
        Bc = max(1, min(B, _TABLE_ELEMS // (G << g)))  # bidders per table block
        for b0 in range(0, B, Bc):
            b1 = min(B, b0 + Bc)
            nb = b1 - b0
            M = torch.zeros(G, (1 << g) * nb, dtype=mdt, device=dev)
            idx = codes_a[b0:b1].permute(2, 1, 0) * nb + torch.arange(nb, device=dev)  # [G, K, nb]
            M.scatter_add_(1, idx.reshape(G, -1), bits[None, :, None].expand(G, K, nb).reshape(G, -1))
            M = M.view(G, *([2] * g), nb)  # distinct powers of two: sum == OR
            for i in range(g):  # zeta transform: M[x | 2^i] |= M[x]
                M.select(g - i, 1).bitwise_or_(M.select(g - i, 0))
            M = M.view(G, 1 << g, nb)
            flat = lookup[:, b0:b1].contiguous().view(-1)
            off = torch.arange(nb, device=dev, dtype=mdt)
            rows = max(64, _CACHE_ELEMS // (4 * nb))
            for a0 in range(0, A, rows):
                a1 = min(A, a0 + rows)
                mask = M[0].index_select(0, codes_s[0, a0:a1])
                for c in range(1, G):
                    mask &= M[c].index_select(0, codes_s[c, a0:a1])
                e = (mask.to(fdt).view(mdt) >> shift).mul_(nb).add_(off)
                vals = flat.index_select(0, e.view(-1)).view(a1 - a0, nb)
                out[a0:a1, b0:b1] = vals
        return out

    def _rank_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-bidder atom ranks and the value table they index.

        ``rank[b, k]`` in ``1..K`` orders bidder ``b``'s atoms by value (ascending);
        ``table[b, r]`` is the value of rank ``r`` (``table[b, 0] = 0``: nothing fits).
        ``v_b(S) = table[b, max{rank[b, k] : T_k subset of S}]`` -- an integer max, exact.
        """
        if self._ranks is None:
            B, K = self.values.shape
            order = self.values.argsort(dim=1, stable=True)
            rdtype = torch.uint8 if K < 256 else torch.int32
            rank = torch.empty(B, K, dtype=torch.int64, device=self.device)
            rank.scatter_(1, order, torch.arange(1, K + 1, device=self.device).expand(B, K).contiguous())
            table = torch.cat(
                [torch.zeros(B, 1, dtype=torch.float64, device=self.device), self.values.gather(1, order)], dim=1
            )
            self._ranks = (rank.to(rdtype).reshape(B * K, 1), table)
        return self._ranks

    @torch.no_grad()
    def _value_chunks(self, A: int, fit_fn) -> torch.Tensor:
        """Reduce ``fit_fn(a0, a1) -> [B*K, a1-a0]`` containment masks to values ``[B, A]``."""
        B, K, _ = self.atoms.shape
        rank, table = self._rank_tables()
        best = torch.empty(B, A, dtype=torch.int64, device=self.device)
        chunk = max(1, _CACHE_ELEMS // (B * K)) if self.device.type == "cpu" else max(1, _CHUNK_ELEMS // (B * K))
        for a0 in range(0, A, chunk):
            a1 = min(A, a0 + chunk)
            fit = fit_fn(a0, a1)
            best[:, a0:a1] = (fit * rank).view(B, K, a1 - a0).amax(dim=1)
        return table.gather(1, best)

    def _value_matmul(self, S: torch.Tensor) -> torch.Tensor:
        B, K, m = self.atoms.shape
        atoms_f = self.atoms.reshape(B * K, m).to(torch.float32)
        missing = (1.0 - S).T.contiguous()  # [m, A]
        # items of T_k not in S: zero <=> T_k subset of S (exact small integers in float32)
        return self._value_chunks(S.shape[0], lambda a0, a1: (atoms_f @ missing[:, a0:a1]) < 0.5)

    def _value_bitpack(self, S: torch.Tensor) -> torch.Tensor:
        B, K, m = self.atoms.shape
        atoms_w = pack_bits(self.atoms.reshape(B * K, m))  # [B*K, W]
        not_s_w = pack_bits(S < 0.5).T.contiguous()  # complement of S, [W, A]

        def fit(a0: int, a1: int) -> torch.Tensor:
            ok = (atoms_w[:, 0:1] & not_s_w[0:1, a0:a1]) == 0
            for w in range(1, atoms_w.shape[1]):  # one pass per 63-item word
                ok &= (atoms_w[:, w : w + 1] & not_s_w[w : w + 1, a0:a1]) == 0
            return ok

        return self._value_chunks(S.shape[0], fit)

    def demand(self, item_prices) -> tuple[torch.Tensor, torch.Tensor]:
        p, single = self._prices(item_prices)  # [G, m]
        B, K, m = self.atoms.shape
        if K == 0:
            z = torch.zeros(p.shape[0], B, dtype=torch.float64, device=self.device)
            return (z[0], z[0]) if single else (z, z)
        atoms_f = self.atoms.reshape(B * K, m).to(torch.float64)
        cost = (p @ atoms_f.T).view(-1, B, K)  # [G, B, K]
        util = self.values[None] - cost
        # null option = utility 0, payment 0; ties -> highest payment
        best_u = util.amax(dim=-1).clamp_min(0.0)  # [G, B]
        tol = 1e-9 * (1.0 + best_u.abs())
        is_best = util >= (best_u - tol)[..., None]
        # atoms with non-negative prices cost >= 0; no optimal atom -> null, payment 0
        pay = torch.where(is_best, cost, torch.zeros_like(cost)).amax(dim=-1)
        if single:
            return best_u[0], pay[0]
        return best_u, pay


class _ItemValuation(Valuation):
    """Common storage for valuations given by per-item values ``[B, m]``."""

    def __init__(self, item_values):
        v = _as_tensor(item_values, torch.float64, "item_values")
        if v.dim() != 2:
            raise InputError(f"item_values must have shape [B, m], got {tuple(v.shape)}")
        if v.shape[1] == 0:
            raise InputError("item_values: need at least one item (m >= 1)")
        _check_values(v, "item_values")
        self.item_values = v
        self.n_items = int(v.shape[1])

    def __len__(self) -> int:
        return int(self.item_values.shape[0])

    @property
    def device(self) -> torch.device:
        return self.item_values.device

    def to(self, device):
        return type(self)(self.item_values.to(device))

    def subset(self, index):
        index = torch.as_tensor(index, device=self.device)
        return type(self)(self.item_values[index])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(B={len(self)}, m={self.n_items})"


class AdditiveValuation(_ItemValuation):
    """Additive valuations ``v(S) = sum_{i in S} v_i``; ``item_values`` is ``[B, m]``."""

    def value(self, bundles) -> torch.Tensor:
        S = check_bundles(bundles, self.n_items).to(self.device, torch.float64)
        return self.item_values @ S.T

    def grand_value(self) -> torch.Tensor:
        return self.item_values.sum(dim=1)

    def demand(self, item_prices):
        p, single = self._prices(item_prices)  # [G, m]
        gain = self.item_values[None] - p[:, None, :]  # [G, B, m]
        buy = gain >= 0  # zero-utility items are bought (seller-favourable)
        util = torch.where(buy, gain, 0.0).sum(-1)
        pay = torch.where(buy, p[:, None, :].expand_as(gain), 0.0).sum(-1)
        return (util[0], pay[0]) if single else (util, pay)


class UnitDemandValuation(_ItemValuation):
    """Unit-demand valuations ``v(S) = max_{i in S} v_i``; ``item_values`` is ``[B, m]``."""

    @torch.no_grad()
    def value(self, bundles) -> torch.Tensor:
        S = check_bundles(bundles, self.n_items).to(self.device)
        B, A = len(self), S.shape[0]
        out = torch.empty(B, A, dtype=torch.float64, device=self.device)
        chunk = max(1, _CHUNK_ELEMS // max(1, B * self.n_items))
        mask = S > 0.5
        for a0 in range(0, A, chunk):
            a1 = min(A, a0 + chunk)
            v = torch.where(mask[None, a0:a1, :], self.item_values[:, None, :], 0.0)
            out[:, a0:a1] = v.amax(dim=-1)
        return out

    def grand_value(self) -> torch.Tensor:
        return self.item_values.amax(dim=1)

    def demand(self, item_prices):
        p, single = self._prices(item_prices)
        gain = self.item_values[None] - p[:, None, :]  # [G, B, m]
        best_u = gain.amax(-1)
        tol = 1e-9 * (1.0 + best_u.abs())
        is_best = gain >= (best_u - tol)[..., None]
        pay = torch.where(is_best, p[:, None, :].expand_as(gain), 0.0).amax(-1)
        buys = best_u >= -tol
        util = torch.where(buys, best_u.clamp_min(0.0), 0.0)
        pay = torch.where(buys, pay, 0.0)
        return (util[0], pay[0]) if single else (util, pay)


def pack_bits(bits: torch.Tensor) -> torch.Tensor:
    """Pack ``[N, m]`` 0/1 rows into ``[N, ceil(m/63)]`` int64 words (63 bits per word).

    63 bits per word keeps every word non-negative. Each word is assembled from its low
    32 and high 31 bits, each an exact float64 matmul of the 0/1 rows with powers of two.
    """
    N, m = bits.shape
    W = max(1, math.ceil(m / 63))
    dev = bits.device
    item = torch.arange(m, device=dev)
    bit = item % 63
    col = 2 * (item // 63) + (bit >= 32)  # column (word, half)
    weights = torch.zeros(m, 2 * W, dtype=torch.float64, device=dev)
    weights[item, col] = 2.0 ** (bit - 32 * (bit >= 32)).to(torch.float64)
    halves = (bits.to(torch.float64) @ weights).to(torch.int64).view(N, W, 2)
    return halves[..., 0] + (halves[..., 1] << 32)


def unique_rows(bundles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct 0/1 rows of ``bundles [N, m]``: ``(uniq [U, m], inverse [N])`` with
    ``uniq[inverse] == bundles``.

    Rows are packed into 63-bit words and deduplicated with 1-D ``torch.unique`` per word
    (``torch.unique(dim=0)`` compares rows one by one and dominated Stage 2's step time).
    ``uniq`` is in a fixed but unspecified order.
    """
    N = bundles.shape[0]
    if N == 0:
        return bundles, torch.zeros(0, dtype=torch.long, device=bundles.device)
    words = pack_bits(bundles > 0.5)
    _, inv = torch.unique(words[:, 0], return_inverse=True)
    for w in range(1, words.shape[1]):
        _, col = torch.unique(words[:, w], return_inverse=True)
        _, inv = torch.unique(inv * N + col, return_inverse=True)  # < N^2: exact in int64
    U = int(inv.max()) + 1
    first = torch.full((U,), N, dtype=torch.int64, device=bundles.device)
    first = first.scatter_reduce(0, inv, torch.arange(N, device=bundles.device), reduce="amin")
    return bundles[first], inv
