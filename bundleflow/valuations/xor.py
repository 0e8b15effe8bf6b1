"""XOR valuations: atoms ``(T_j, p_j)``, ``v(S) = max{p_j : T_j subset of S}``, with batched containment kernels."""

from __future__ import annotations

import math

import torch

from bundleflow.errors import InputError
from bundleflow.valuations.base import (
    _CACHE_ELEMS,
    _CHUNK_ELEMS,
    Valuation,
    _as_atoms,
    _as_tensor,
    _check_unit,
    _check_values,
)
from bundleflow.valuations.bundles import check_bundles, pack_bits

# Entries of the table kernel's per-block bitmask tables (~32 MB of int32 or 64 MB of int64).
_TABLE_ELEMS = 1 << 23
# Largest K (atoms per bidder) for the table kernel: ranks must fit a float64 mantissa.
_TABLE_MAX_ATOMS = 53


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
            raise InputError(f"values must have shape [B, K] = {tuple(atoms.shape[:2])}, got {tuple(values.shape)}")
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

    def to(self, device) -> XORValuation:
        return XORValuation(self.atoms.to(device), self.values.to(device))

    def subset(self, index) -> XORValuation:
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
