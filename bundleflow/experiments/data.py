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
    """``(train, val, test)`` multi-bidder profiles for ``cfg.data`` (:func:`load_multi_data`)."""
    return load_multi_data(cfg)[:3]


def load_multi_data(cfg: RunConfig):
    """``(train, val, test, independent)``: multi-bidder profiles for ``cfg.data``, each a list
    of ``n_bidders`` valuations of the same length, and whether the bidders of a profile are
    independent draws (so training may combine bidders of different profiles).

    Item bidders (additive, unit demand) and ``uniform_atoms`` XOR bidders are drawn
    independently. From a file (``file``), the rows of one CATS *instance* form a profile when
    every instance has exactly ``n_bidders`` rows (``bundleflow data generate
    --bidders-per-instance N``: bidders sharing the instance's goods and common values, as in
    CATS's multi-bidder mode); otherwise rows are independent bidders, ``n_bidders`` per
    profile. Profiles are shuffled by ``data.seed``; ``n_train + n_val + n_test`` are needed."""
    from bundleflow.valuations import generators as gen

    d = cfg.data
    N, n = d.n_train + d.n_val + d.n_test, d.n_bidders
    cuts = [(0, d.n_train), (d.n_train, d.n_train + d.n_val), (d.n_train + d.n_val, N)]
    if d.kind in ("additive", "unit_demand"):
        draw = gen.additive_uniform if d.kind == "additive" else gen.unit_demand_uniform
        v = draw(N * n, d.n_items, d.low, d.high, seed=d.seed)
        values = v.item_values.reshape(N, n, d.n_items)
        cls = type(v)
        return (*tuple([cls(values[a:b, i].contiguous()) for i in range(n)] for a, b in cuts), True)
    xor: Valuation
    independent = True
    if d.kind == "file":
        assert d.path is not None  # the config requires data.path for kind=file
        g = torch.Generator().manual_seed(d.seed)
        xor, groups = load_xor_instances(d.path, n)
        if groups is not None:  # one CATS instance per profile
            independent = False
            if len(groups) < N:
                raise InputError(f"{d.path}: {len(groups)} instances of {n} bidders, but n_train+n_val+n_test = {N}")
            rows = groups[torch.randperm(len(groups), generator=g)[:N]]
        else:
            if len(xor) < N * n:
                raise InputError(
                    f"{d.path}: {len(xor)} rows, but {n} bidders x (n_train+n_val+n_test = {N}) need {N * n}"
                )
            rows = torch.randperm(len(xor), generator=g)[: N * n].reshape(N, n)
    else:
        xor = gen.uniform_atoms(N * n, d.n_items, d.n_atoms, d.q, d.low, d.high, seed=d.seed)
        rows = torch.arange(N * n).reshape(N, n)
    return (*tuple([xor.subset(rows[a:b, i]) for i in range(n)] for a, b in cuts), independent)


def load_xor_instances(path, n: int):
    """``(bidders, rows)``: the XOR bidders of a CATS ``.npz`` or bid file, and ``[P, n]`` the
    rows of each CATS instance if every instance has exactly ``n > 1`` rows (else ``None``)."""
    from bundleflow.cats.io import load_cats_npz, load_valuations

    if str(path).endswith(".npz"):
        xor, meta = load_cats_npz(path)
        instance = meta.get("instance")
        if instance is not None and n > 1:
            _, counts = torch.unique(torch.as_tensor(instance).flatten(), return_counts=True)
            k = int(counts[0]) if len(counts) else 1
            if k > 1 and (counts == k).all() and k != n:  # instances of k bidders, grouping by n would ignore them
                raise InputError(
                    f"{path}: its CATS instances have {k} bidders each, but data.n_bidders={n}; "
                    f"set data.n_bidders={k} (or draw the file with --bidders-per-instance {n})"
                )
        return xor, (_instances_of(instance, n) if instance is not None and n > 1 else None)
    return load_valuations(path), None


def _instances_of(instance, n: int) -> torch.Tensor | None:
    """``[P, n]`` the rows of each CATS instance if every instance has exactly ``n`` rows."""
    inst = torch.as_tensor(instance).flatten().long()
    ids, counts = torch.unique(inst, return_counts=True)
    if len(inst) == 0 or not (counts == n).all():
        return None
    order = torch.argsort(inst, stable=True)
    return order.reshape(len(ids), n)
