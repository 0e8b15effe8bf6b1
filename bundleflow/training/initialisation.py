"""The data-driven start of Stage 2: start bundles and exact starting prices."""

from __future__ import annotations

import torch

from bundleflow.baselines.bundling import frequent_atoms
from bundleflow.mechanisms.menu import Menu
from bundleflow.valuations.base import Valuation
from bundleflow.valuations.xor import XORValuation


def init_bundles(train: Valuation, n_elements: int, seed: int) -> torch.Tensor:
    """Grand bundle, then frequent atoms, then unions of a random bidder's atoms: ``[J, m]``."""
    m = train.n_items
    out = [torch.ones(1, m)]
    if isinstance(train, XORValuation):
        # at least the atom-menu baseline's atoms: the min(64, J) most frequent, the grand bundle first
        out.append(frequent_atoms(train, max(n_elements // 2, min(64, n_elements))))
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(len(train), (4 * n_elements,), generator=g)
        pick = torch.rand(4 * n_elements, train.n_atoms_max, generator=g) < 0.5
        unions = (train.atoms[idx.to(train.device)].cpu() & pick[:, :, None]).any(1).float()
        out.append(unions[unions.any(-1)])
    else:  # item valuations: single items, pairs, random bundles
        out.append(torch.eye(m))
        g = torch.Generator().manual_seed(seed)
        out.append((torch.rand(4 * n_elements, m, generator=g) < 0.5).float())
    cand = torch.cat(out)
    # keep first occurrences, in order
    uniq, inv = torch.unique(cand, dim=0, return_inverse=True)
    first = torch.full((uniq.shape[0],), cand.shape[0], dtype=torch.long).scatter_reduce(
        0, inv, torch.arange(cand.shape[0]), "amin"
    )
    cand = cand[torch.sort(first).values]
    if cand.shape[0] < n_elements:
        g = torch.Generator().manual_seed(seed + 1)
        extra = (torch.rand(n_elements - cand.shape[0], m, generator=g) < 0.5).float()
        cand = torch.cat([cand, extra])
    return cand[:n_elements]


# Prices are cap * sigmoid(logit) in float32 (relative error ~1e-7). An exact price sits at
# some bidder's indifference point; rounded up she stops buying. Set prices this much lower.
PRICE_SHADE = 1e-6


@torch.no_grad()
def _set_price_logits(logit: torch.Tensor, prices: torch.Tensor, cap: float, margin: float) -> None:
    """``logit`` such that ``cap * sigmoid(logit)`` is ``prices`` shaded down by :data:`PRICE_SHADE`."""
    frac = (prices.double() * (1 - PRICE_SHADE) / cap).clamp(margin, 1 - margin)
    logit.copy_(torch.log(frac / (1 - frac)).to(device=logit.device, dtype=logit.dtype))


def _seed_from_menu(menu: Menu, baseline: Menu, cap: float) -> torch.Tensor | None:
    """``[J]`` prices for ``menu``: the ``baseline`` (deterministic) menu's price on the first
    element of ``menu`` that is the same sure bundle, ``cap`` (unsold) elsewhere; ``None`` if
    no element matches."""
    sure = (menu.bundles == menu.bundles[:, :1]).all(-1).all(-1)  # all supports one bundle
    where: dict[tuple[bool, ...], int] = {}
    for j in torch.nonzero(sure).flatten().tolist():
        where.setdefault(tuple(menu.bundles[j, 0].bool().tolist()), j)
    prices = torch.full((menu.n_elements,), cap, dtype=torch.float64)
    hit = False
    for e in range(baseline.n_elements):
        j = where.get(tuple(baseline.bundles[e, 0].bool().tolist()))
        if j is not None:
            prices[j] = min(float(baseline.prices[e]), cap)
            hit = True
    return prices if hit else None
