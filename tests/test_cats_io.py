import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bundleflow.cats.io import load_cats_bids, load_cats_npz, parse_cats_bids, save_cats_npz
from bundleflow.errors import InputError
from bundleflow.valuations.generators import uniform_atoms

BIDS = """%% CATS-style file
goods 4
bids 4
dummy 1

0\t10.5\t0\t1\t4\t#
1\t7\t2\t4\t#
2\t3.25\t3\t#
3\t1\t0\t3\t#
"""


def test_parse_bid_file_groups_dummy_goods():
    v = parse_cats_bids(BIDS)
    # bids 0 and 1 share dummy good 4 -> one XOR bidder; bids 2 and 3 are bidders of their own
    assert len(v) == 3 and v.n_items == 4
    S = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 1, 1], [1, 0, 0, 1]])
    np.testing.assert_allclose(v.value(S).numpy(), [[10.5, 7, 10.5, 0], [0, 0, 3.25, 3.25], [0, 0, 1, 1]])


@pytest.mark.parametrize(
    "text, msg",
    [
        ("bids 1\n0 1.0 0 #\n", "before the 'goods N' header"),
        ("goods 2\n0 1.0 0\n", "must end with '#'"),
        ("goods 2\n0 abc 0 #\n", "non-numeric"),
        ("goods 2\n0 nan 0 #\n", "finite and non-negative"),
        ("goods 2\n0 -1 0 #\n", "finite and non-negative"),
        ("goods 2\n0 1 5 #\n", "out of range"),
        ("goods 2\nbids 3\n0 1 0 #\n", "header says 3 bids"),
        ("goods x\n", "non-negative integer"),
        ("goods 2\n", "no bids"),
        ("goods 2\ndummy 2\n0 1 2 3 1 #\n", "at most one dummy"),
    ],
)
def test_bad_bid_files(text, msg, tmp_path):
    with pytest.raises(InputError, match=msg):
        parse_cats_bids(text)
    f = tmp_path / "bad.txt"
    f.write_text(text)
    with pytest.raises(InputError, match="bad.txt"):
        load_cats_bids(f)


def test_reference_npz_loads(cats_dir):
    v, meta = load_cats_npz(cats_dir / "regions_50_single.npz")
    assert len(v) == 5000 and v.n_items == 50 and meta["distribution"] == "regions"
    # the README: E[max atom value] = 689 on regions_50
    assert float(v.grand_value().mean()) == pytest.approx(689, abs=1)
    assert float(v.n_atoms().double().mean()) == pytest.approx(4.7, abs=0.15)


def test_npz_roundtrip_and_atomic(tmp_path, monkeypatch):
    v = uniform_atoms(30, 6, 4, 0.4, seed=0)
    out = tmp_path / "vals.npz"
    save_cats_npz(out, v, distribution="uniform")
    w, meta = load_cats_npz(out)
    S = (torch.rand(50, 6) < 0.5).float()
    np.testing.assert_allclose(w.value(S).numpy(), v.value(S).numpy(), rtol=1e-6)
    assert meta["distribution"] == "uniform"
    before = out.read_bytes()

    def broken(fh, **arrays):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        save_cats_npz(out, v)  # fails half-way: the old file survives intact
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["vals.npz"]


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_bad_npz(tmp_path):
    atoms = np.zeros((2, 2, 3), bool)
    atoms[:, 0, 0] = True
    good = dict(atoms=atoms, values=np.array([[1.0, 0], [2.0, 0]], np.float32), n_atoms=np.array([1, 1], np.int32))
    with pytest.raises(InputError, match="missing array"):
        load_cats_npz(_write_npz(tmp_path / "a.npz", atoms=atoms))
    with pytest.raises(InputError, match="NaN"):
        load_cats_npz(_write_npz(tmp_path / "b.npz", **{**good, "values": np.array([[np.nan, 0], [1, 0]])}))
    with pytest.raises(InputError, match="negative"):
        load_cats_npz(_write_npz(tmp_path / "c.npz", **{**good, "values": np.array([[-1.0, 0], [1, 0]])}))
    with pytest.raises(InputError, match="does not match"):
        load_cats_npz(_write_npz(tmp_path / "d.npz", **{**good, "values": np.ones((2, 3))}))
    with pytest.raises(InputError, match="padding"):
        load_cats_npz(_write_npz(tmp_path / "e.npz", **{**good, "n_atoms": np.array([0, 1], np.int32)}))
    (tmp_path / "f.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not a readable npz"):
        load_cats_npz(tmp_path / "f.npz")
    with pytest.raises(InputError, match="no such file"):
        load_cats_npz(tmp_path / "missing.npz")
    v, _ = load_cats_npz(_write_npz(tmp_path / "ok.npz", **good))
    assert v.grand_value().tolist() == [1.0, 2.0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e6, allow_nan=False), st.sets(st.integers(0, 7), min_size=1, max_size=8), st.integers(-1, 2)
        ),
        min_size=1,
        max_size=12,
    )
)
def test_bid_file_property(bids):
    """Writing bids in CATS format and parsing them back gives the right XOR valuations."""
    lines = ["goods 8", f"bids {len(bids)}", "dummy 3"]
    for i, (price, goods, bidder) in enumerate(bids):
        dummy = [] if bidder < 0 else [8 + bidder]
        lines.append(
            "\t".join([str(i), repr(price)] + [str(g) for g in sorted(goods)] + [str(d) for d in dummy] + ["#"])
        )
    v = parse_cats_bids("\n".join(lines))
    n_bidders = len({b for _, _, b in bids if b >= 0}) + sum(1 for _, _, b in bids if b < 0)
    assert len(v) == n_bidders
    grand = torch.ones(1, 8)
    assert sorted(v.value(grand)[:, 0].tolist()) == pytest.approx(
        sorted(
            [max(p for p, _, b in bids if b == d) for d in {b for _, _, b in bids if b >= 0}]
            + [p for p, _, b in bids if b < 0]
        )
    )
