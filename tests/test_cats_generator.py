"""The Python CATS generator against the original C++ suite's reference files.

Each check is a two-sample test between N_GEN generated valuations and the reference
file's 5000: means by a z-test (|z| < Z_MAX), distributions by Kolmogorov-Smirnov
(p > P_MIN). With about 20 statistics per file over 18 files, Z_MAX = 4.5 and
P_MIN = 1e-4 keep the family-wise false-alarm rate of a correct generator below ~1%,
while real modelling errors seen during development (ignoring CATS's dominance quirk:
+0.08 atoms per bidder, z ~ 5; missing off-grid goods: item-49 frequency 0 vs 0.083,
z > 20) fail clearly. Revenues: the reference's fitted grand-bundling price and item
prices (fitted on 1000 of its rows) are applied to both samples and the mean payments
compared by the same z-test.
"""

import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import ks_2samp

from bundleflow.baselines.bundling import grand_bundling
from bundleflow.baselines.items import item_pricing
from bundleflow.cats.generator import generate
from bundleflow.cats.io import load_cats_npz
from bundleflow.cats.regions_arbitrary import _remove_dominated
from bundleflow.errors import InputError

N_GEN = 1500
Z_MAX = 4.5
P_MIN = 1e-4
FILES = [
    f"{d}_{m}"
    for d in ("regions", "regions-upv", "regions-npv", "arbitrary", "arbitrary-upv", "arbitrary-npv")
    for m in (50, 100, 150)
] + ["matching_148", "scheduling_50", "scheduling_100", "scheduling_150"]
# CATS's matching draws its two cities and start slot with consecutive lrand48() % n calls
# whose low bits are correlated: in the reference the city pairs are far from uniform
# (Chicago-JFK 0.38 where independent draws give 0.21). The generator reproduces this by
# running matching (and scheduling) on CATS's own rand48 stream (stream="auto").
FILES += ["matching_48", "matching_100"]


def _z(a: np.ndarray, b: np.ndarray) -> float:
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return float((a.mean() - b.mean()) / se) if se > 0 else 0.0


def _per_bidder(v):
    """One number per bidder (rows are independent; atoms of one bidder are not: CATS gives
    a bidder's substitutes the size of its first bundle, so pooling atoms would overstate
    the sample size and make the tests anti-conservative)."""
    real = (v.atoms.any(-1) | (v.values > 0)).numpy()
    n = real.sum(1)
    return {
        "atoms_per_bidder": n.astype(float),
        "items_per_atom": (v.atoms.sum(-1).numpy() * real).sum(1) / n,
        "atom_value": (v.values.numpy() * real).sum(1) / n,
        "max_atom_value": v.grand_value().numpy().astype(float),
    }


@pytest.mark.parametrize("name", FILES)
def test_generator_matches_reference(cats_dir, name):
    path = Path(cats_dir) / f"{name}_single.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    ref, _ = load_cats_npz(path)
    dist, m = name.rsplit("_", 1)
    gen, meta = generate(dist, int(m), N_GEN, seed=zlib.crc32(name.encode()))
    a, b = _per_bidder(gen), _per_bidder(ref)
    for key in a:
        z = _z(a[key], b[key])
        assert abs(z) < Z_MAX, f"{name}: mean {key} {a[key].mean():.4g} vs reference {b[key].mean():.4g} (z = {z:.2f})"
        p = ks_2samp(a[key], b[key]).pvalue
        assert p > P_MIN, f"{name}: {key} distribution differs (KS p = {p:.2g})"
    # per-item frequency, including the regions quirk (goods off the floor(sqrt(M))^2 grid are rare)
    fa = gen.atoms.any(1).numpy().astype(float)
    fb = ref.atoms.any(1).numpy().astype(float)
    zs = [_z(fa[:, i], fb[:, i]) for i in range(int(m))]
    worst = int(np.argmax(np.abs(zs)))
    assert abs(zs[worst]) < Z_MAX + 0.5, (
        f"{name}: item {worst} frequency {fa[:, worst].mean():.3f} vs {fb[:, worst].mean():.3f}"
    )
    if dist.startswith("regions"):
        side = int(np.sqrt(int(m)))
        off = list(range(side * side, int(m)))
        if off:
            assert fa[:, off].mean() < 0.5 * fa[:, : side * side].mean()
    # uniform vs normal private values: half each for the mixed distributions
    if dist in ("regions", "arbitrary"):
        assert abs(meta["private_values"].mean() - 0.5) < 4 * 0.5 / np.sqrt(N_GEN)
    # revenue of the reference's simple mechanisms on both samples
    fit = ref.subset(
        torch.arange(min(1000, len(ref)))
    )  # any fixed mechanism will do; fitting on 1000 rows keeps this fast
    gb = grand_bundling(fit)
    ip = item_pricing(fit, restarts=0, max_rounds=2, grid=24)
    for mech in (gb, ip):
        pa, pb = mech.payments(gen).numpy(), mech.payments(ref).numpy()
        z = _z(pa, pb)
        assert abs(z) < Z_MAX, f"{name}: {mech.name} revenue {pa.mean():.1f} vs reference {pb.mean():.1f} (z = {z:.2f})"


def test_generator_is_seeded_and_validates_input():
    a, _ = generate("arbitrary", 20, 30, seed=5)
    b, _ = generate("arbitrary", 20, 30, seed=5)
    c, _ = generate("arbitrary", 20, 30, seed=6)
    assert torch.equal(a.atoms, b.atoms) and torch.equal(a.values, b.values)
    assert not torch.equal(a.values, c.values)
    with pytest.raises(InputError, match="unknown CATS distribution"):
        generate("paths-ish", 20, 3)
    with pytest.raises(InputError, match="n_items"):
        generate("regions", 2, 3)
    with pytest.raises(InputError, match=">= 1"):
        generate("regions", 20, 0)


def test_multi_bidder_instances_share_common_values():
    v, meta = generate("regions-upv", 25, 40, seed=1, bidders_per_instance=10)
    assert meta["instance"].tolist() == [i // 10 for i in range(40)]
    assert (v.values > 0).any(1).all()


atom = st.tuples(st.frozensets(st.integers(0, 5), min_size=1), st.floats(0.1, 10))


@given(st.lists(atom, min_size=1, max_size=6))
@settings(max_examples=200, deadline=None)
def test_dominance_removal_never_changes_the_valuation(atoms):
    kept = _remove_dominated(atoms)
    assert set(kept) <= set(atoms) and kept

    def v(S, at):
        return max([w for s, w in at if s <= S], default=0.0)

    for S in [frozenset(range(k)) for k in range(7)] + [s for s, _ in atoms]:
        assert v(S, kept) == v(S, atoms)


def test_matching_city_pairs_match_reference(cats_dir):
    path = Path(cats_dir) / "matching_100_single.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    ref, _ = load_cats_npz(path)
    gen, _ = generate("matching", 100, 3000, seed=1)

    def pair_share(v, pair):  # share of bidders flying between the two cities of ``pair``
        cities = [tuple(sorted(set((torch.nonzero(v.atoms[i, 0]).flatten() % 4).tolist()))) for i in range(len(v))]
        return np.array([c == pair for c in cities], float)

    a, b = pair_share(gen, (0, 2)), pair_share(ref, (0, 2))
    assert abs(_z(a, b)) < Z_MAX, f"Chicago-JFK share {a.mean():.3f} vs reference {b.mean():.3f}"
    # independent (numpy) draws do not have the correlation: the test can tell the two apart
    c = pair_share(generate("matching", 100, 3000, seed=1, stream="numpy")[0], (0, 2))
    assert abs(_z(c, b)) > 2 * Z_MAX


EXACT_FILES = [
    f"{d}_{m}"
    for d in ("regions", "regions-upv", "regions-npv", "arbitrary", "arbitrary-upv", "arbitrary-npv")
    for m in (50, 100, 150)
] + ["matching_48", "matching_100", "matching_148", "scheduling_50", "scheduling_100", "scheduling_150"]


@pytest.mark.parametrize("name", EXACT_FILES)
def test_rand48_stream_regenerates_reference_rows_exactly(cats_dir, name):
    """CATS's own random stream + the file's seeds give back its rows: same atoms, same values
    (to the 6 significant digits CATS prints)."""
    path = Path(cats_dir) / f"{name}_single.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    d = dict(np.load(path))  # each read of an npz member decompresses it again: read each once
    n = 12
    dist, m = str(d["distribution"]), int(d["n_items"])
    gen, _ = generate(dist, m, n, cats_seeds=(d["seeds"][:n], d["seeds2"][:n]))
    for i in range(n):
        ref = sorted(
            (tuple(np.flatnonzero(d["atoms"][i, k])), float(d["values"][i, k])) for k in range(d["n_atoms"][i])
        )
        real = (gen.values[i] > 0) | gen.atoms[i].any(-1)
        got = sorted(
            (tuple(np.flatnonzero(gen.atoms[i, k].numpy())), float(gen.values[i, k]))
            for k in range(len(real))
            if real[k]
        )
        assert [a for a, _ in got] == [a for a, _ in ref], f"{name} row {i}: atoms differ"
        for (_, vg), (_, vr) in zip(got, ref):
            # CATS prints 6 significant digits (relative rounding <= 5e-6), the npz stores float32
            assert vg == pytest.approx(vr, rel=1e-5, abs=1e-6), f"{name} row {i}: value {vg} vs {vr}"


def test_paths_runs_regenerate_reference_instances_exactly(cats_dir):
    """Whole multi-bidder paths runs from the reference's per-run seeds: same bidders, same
    atoms (goods renumbered as CATS compacts them), same values."""
    from bundleflow.cats.paths import paths_instance

    path = Path(cats_dir) / "paths_50_bidders.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    d = dict(np.load(path))  # read each npz member once
    for k in range(5):
        rows = np.flatnonzero(d["instance"] == k)
        ref = sorted(
            (
                tuple(sorted(tuple(np.flatnonzero(d["atoms"][r, a])) for a in range(d["n_atoms"][r]))),
                float(d["values"][r, 0]),
            )
            for r in rows
        )
        bidders, n_goods = paths_instance(int(d["seeds"][k]), 50, 50, int(d["seeds2"][k]))
        assert n_goods == 50
        got = sorted((tuple(sorted(tuple(sorted(s)) for s, _ in b)), b[0][1]) for b in bidders)
        assert [a for a, _ in got] == [a for a, _ in ref], f"paths run {k}: bidders' atoms differ"
        for (_, vg), (_, vr) in zip(got, ref):
            assert vg == pytest.approx(vr, rel=1e-5)


def test_paths_generator_matches_reference_statistics(cats_dir):
    """Fresh runs vs the reference; bidders of one run share a graph, so the tests use
    per-run means (runs are independent)."""
    path = Path(cats_dir) / "paths_50_bidders.npz"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    ref, _ = load_cats_npz(path)
    ref_inst = np.load(path)["instance"]
    gen, meta = generate("paths", 50, 2500, seed=3)

    def per_run(v, inst):
        stats = _per_bidder(v)
        runs = np.unique(inst)
        return {k: np.array([x[inst == r].mean() for r in runs]) for k, x in stats.items()} | {
            "bidders_per_run": np.bincount(inst)[runs].astype(float)
        }

    a, b = per_run(gen, meta["instance"]), per_run(ref, ref_inst)
    for key in a:
        if key == "bidders_per_run":
            a[key] = a[key][:-1]  # the last generated run is cut at n_valuations
        z = _z(a[key], b[key])
        assert abs(z) < Z_MAX, (
            f"paths: per-run mean {key} {a[key].mean():.4g} vs reference {b[key].mean():.4g} (z = {z:.2f})"
        )
