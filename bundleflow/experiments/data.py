"""The data of a run: training, validation and held-out bidders from a config."""

from __future__ import annotations

import torch

from bundleflow.errors import InputError
from bundleflow.experiments.config import RunConfig
from bundleflow.valuations.base import Valuation


def make_data(cfg: RunConfig):
    """``(train, val, test)`` valuations for ``cfg.data``."""
    from bundleflow.cats.io import load_valuations
    from bundleflow.valuations import generators as gen

    d = cfg.data
    n = d.n_train + d.n_val + d.n_test
    v: Valuation
    if d.kind == "file":
        assert d.path is not None  # the config requires data.path for kind=file
        v = load_valuations(d.path)
        if len(v) < n:
            raise InputError(f"{d.path}: {len(v)} rows, but n_train+n_val+n_test = {n}")
        g = torch.Generator().manual_seed(d.seed)
        v = v.subset(torch.randperm(len(v), generator=g)[:n])
    elif d.kind == "uniform_atoms":
        v = gen.uniform_atoms(n, d.n_items, d.n_atoms, d.q, d.low, d.high, seed=d.seed)
    elif d.kind == "additive":
        v = gen.additive_uniform(n, d.n_items, d.low, d.high, seed=d.seed)
    else:
        v = gen.unit_demand_uniform(n, d.n_items, d.low, d.high, seed=d.seed)
    idx = torch.arange(n)
    return (
        v.subset(idx[: d.n_train]),
        v.subset(idx[d.n_train : d.n_train + d.n_val]),
        v.subset(idx[d.n_train + d.n_val :]),
    )


def make_multi_data(cfg: RunConfig):
    """``(train, val, test)`` multi-bidder profiles for ``cfg.data``: each a list of
    ``n_bidders`` valuations of the same length, bidders independent. Item bidders (additive,
    unit demand) are drawn; XOR bidders are drawn (``uniform_atoms``) or taken from a file
    (``file``: ``n_bidders * (n_train + n_val + n_test)`` rows, shuffled by ``data.seed``), row
    ``profile * n_bidders + i`` being bidder ``i`` of a profile."""
    from bundleflow.cats.io import load_valuations
    from bundleflow.valuations import generators as gen

    d = cfg.data
    N, n = d.n_train + d.n_val + d.n_test, d.n_bidders
    cuts = [(0, d.n_train), (d.n_train, d.n_train + d.n_val), (d.n_train + d.n_val, N)]
    if d.kind in ("additive", "unit_demand"):
        draw = gen.additive_uniform if d.kind == "additive" else gen.unit_demand_uniform
        v = draw(N * n, d.n_items, d.low, d.high, seed=d.seed)
        values = v.item_values.reshape(N, n, d.n_items)
        cls = type(v)
        return tuple([cls(values[a:b, i].contiguous()) for i in range(n)] for a, b in cuts)
    xor: Valuation
    if d.kind == "file":
        assert d.path is not None  # the config requires data.path for kind=file
        xor = load_valuations(d.path)
        if len(xor) < N * n:
            raise InputError(f"{d.path}: {len(xor)} rows, but {n} bidders x (n_train+n_val+n_test = {N}) need {N * n}")
        g = torch.Generator().manual_seed(d.seed)
        xor = xor.subset(torch.randperm(len(xor), generator=g)[: N * n])
    else:
        xor = gen.uniform_atoms(N * n, d.n_items, d.n_atoms, d.q, d.low, d.high, seed=d.seed)
    rows = torch.arange(N * n).reshape(N, n)
    return tuple([xor.subset(rows[a:b, i]) for i in range(n)] for a, b in cuts)
