import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bundleflow.errors import InputError
from bundleflow.valuations.bundles import all_bundles, pack_bits
from bundleflow.valuations.items import AdditiveValuation, UnitDemandValuation
from bundleflow.valuations.xor import XORValuation


def brute_xor(atoms, values, bundles):
    out = np.zeros((atoms.shape[0], bundles.shape[0]))
    for b in range(atoms.shape[0]):
        for a, S in enumerate(bundles):
            best = 0.0
            for T, p in zip(atoms[b], values[b]):
                if np.all(S[T.astype(bool)] == 1):
                    best = max(best, p)
            out[b, a] = best
    return out


def test_hand_computed_xor():
    # items {0,1,2}; atoms {0}:3, {0,1}:5, {2}:4
    atoms = torch.tensor([[[1, 0, 0], [1, 1, 0], [0, 0, 1]]], dtype=torch.bool)
    values = torch.tensor([[3.0, 5.0, 4.0]])
    v = XORValuation(atoms, values)
    S = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1]])
    for method in ("matmul", "bitpack", "table"):
        got = v.value(S, method=method)[0].tolist()
        assert got == [0, 3, 0, 5, 4, 4, 5]


@pytest.mark.parametrize("m", [3, 63, 64, 130])
def test_matmul_and_bitpack_agree_with_brute_force(m):
    rng = np.random.default_rng(m)
    atoms = rng.random((5, 4, m)) < 0.3
    atoms[0, 3] = False  # padding atom
    values = rng.random((5, 4))
    values[0, 3] = 0.0
    bundles = (rng.random((40, m)) < 0.7).astype(np.float32)
    bundles[0] = 1
    bundles[1] = 0
    ref = brute_xor(atoms, values, bundles)
    v = XORValuation(atoms, values)
    for method in ("matmul", "bitpack", "table"):
        np.testing.assert_array_equal(v.value(torch.from_numpy(bundles), method=method).numpy(), ref)


@pytest.mark.parametrize("K", [1, 24, 25, 53])
@pytest.mark.parametrize("m", [5, 50, 131])
def test_table_kernel_matches_bitpack(K, m):
    # K <= 24: int32 masks read through float32 exponents; 25..53: int64 through float64
    rng = np.random.default_rng(K * 1000 + m)
    B, A = 9, 700  # A >= 256: "auto" takes the table kernel on CPU
    atoms = rng.random((B, K, m)) < min(0.5, 4 / m)
    values = np.round(rng.random((B, K)) * 10, 1)  # many ties between atoms
    atoms[0, -1], values[0, -1] = False, 0.0  # padding atom: fits everything, worth 0
    atoms[1, 0], values[1, 0] = False, 2.5  # empty atom with a value
    values[2] = 7.0  # all atoms of bidder 2 equally valued
    S = torch.from_numpy(rng.random((A, m)) < 0.8)
    S[0], S[1] = True, False
    S[2 : 2 + K] = torch.from_numpy(atoms[3])  # bundles that are exactly atoms
    v = XORValuation(atoms, values)
    ref = v.value(S, method="bitpack")
    assert torch.equal(v.value(S, method="table"), ref)
    assert torch.equal(v.value(S), ref)
    empty = ~atoms.any(-1)  # v(empty bundle) = best empty atom (2.5 for bidder 1)
    np.testing.assert_array_equal(ref[:, 1].numpy(), np.where(empty, values, 0.0).max(1))
    assert ref[1, 1] >= 2.5
    got = v.bundle_values(S, unit=4.0, dtype=torch.float32)
    assert got.shape == (A, B) and got.dtype == torch.float32
    assert torch.equal(got, (ref / 4.0).float().T)


def test_table_kernel_limits_and_units():
    v = XORValuation(np.ones((2, 54, 3), bool), np.ones((2, 54)))
    with pytest.raises(InputError, match="at most 53 atoms"):
        v.value(torch.ones(1, 3), method="table")
    assert v.value(torch.ones(300, 3)).eq(1).all()  # auto falls back to bitpack
    with pytest.raises(InputError, match="unknown containment method"):
        v.value(torch.ones(1, 3), method="fast")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="unit must be a positive finite"):
            v.bundle_values(torch.ones(1, 3), unit=bad)
    add = AdditiveValuation(np.array([[1.0, 2.0, 4.0]]))
    assert add.bundle_values(torch.tensor([[1, 0, 1], [0, 1, 0]]), unit=2.0).tolist() == [[2.5], [1.0]]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.integers(1, 6),
    st.integers(0, 2**31 - 1),
)
def test_xor_monotone_and_grand_is_max(B, K, m, seed):
    rng = np.random.default_rng(seed)
    atoms = rng.random((B, K, m)) < 0.5
    values = rng.random((B, K)) * 10
    v = XORValuation(atoms, values)
    S = all_bundles(m)
    V = v.value(S).numpy()
    # v(all items) = max atom value; v(empty) = max value of empty atoms (or 0)
    np.testing.assert_allclose(V[:, -1], values.max(1))
    np.testing.assert_allclose(v.grand_value().numpy(), values.max(1))
    # monotone: adding an item never lowers the value
    for i in range(m):
        without = np.nonzero((S[:, i] == 0).numpy())[0]
        with_i = without + 2**i
        assert np.all(V[:, with_i] >= V[:, without] - 1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_additive_and_unit_demand(B, m, seed):
    rng = np.random.default_rng(seed)
    iv = rng.random((B, m))
    S = all_bundles(m).numpy()
    add = AdditiveValuation(iv).value(torch.from_numpy(S)).numpy()
    ud = UnitDemandValuation(iv).value(torch.from_numpy(S)).numpy()
    np.testing.assert_allclose(add, iv @ S.T)
    np.testing.assert_allclose(ud, (iv[:, None, :] * S[None]).max(-1))
    assert np.all(ud <= add + 1e-12)


@pytest.mark.parametrize("m", [1, 32, 33, 63, 64, 126, 127, 500])
def test_pack_bits_matches_shifts(m):
    bits = torch.rand(50, m, generator=torch.Generator().manual_seed(m)) < 0.5
    bits[0] = True
    ref = torch.zeros(50, -(-m // 63), dtype=torch.int64)
    for i in range(m):
        ref[:, i // 63] |= bits[:, i].long() << (i % 63)
    assert torch.equal(pack_bits(bits), ref)
    assert (pack_bits(bits) >= 0).all()


def test_pack_bits_distinct_words():
    bits = torch.zeros(2, 70, dtype=torch.bool)
    bits[0, 0] = True
    bits[1, 63] = True
    w = pack_bits(bits)
    assert w.shape == (2, 2)
    assert w.tolist() == [[1, 0], [0, 1]]


def test_xor_demand_seller_favourable_ties():
    # atoms {0}:2 and {0,1}:3; prices (1, 1): utilities 1 and 1 -> buys the pricier {0,1}
    v = XORValuation(torch.tensor([[[1, 0], [1, 1]]], dtype=torch.bool), torch.tensor([[2.0, 3.0]]))
    u, pay = v.demand(torch.tensor([1.0, 1.0]))
    assert float(u[0]) == pytest.approx(1.0) and float(pay[0]) == pytest.approx(2.0)
    u, pay = v.demand(torch.tensor([3.0, 5.0]))
    assert float(u[0]) == 0.0 and float(pay[0]) == 0.0
    # zero utility buys
    u, pay = v.demand(torch.tensor([2.0, 5.0]))
    assert float(pay[0]) == pytest.approx(2.0)


def test_demand_batched_matches_single():
    rng = np.random.default_rng(0)
    v = XORValuation(rng.random((20, 3, 4)) < 0.5, rng.random((20, 3)))
    P = torch.from_numpy(rng.random((5, 4)) * 0.5)
    u, pay = v.demand(P)
    for g in range(5):
        u1, p1 = v.demand(P[g])
        torch.testing.assert_close(u[g], u1)
        torch.testing.assert_close(pay[g], p1)


@pytest.mark.parametrize(
    "atoms, values, msg",
    [
        (np.zeros((2, 3)), np.zeros((2, 3)), "atoms must have shape"),
        (np.zeros((2, 3, 4), bool), np.zeros((2, 2)), "values must have shape"),
        (np.zeros((2, 3, 4), bool), np.full((2, 3), np.nan), "NaN"),
        (np.zeros((2, 3, 4), bool), -np.ones((2, 3)), "negative"),
        (np.full((2, 3, 4), 2.0), np.ones((2, 3)), "0/1"),
    ],
)
def test_xor_bad_input(atoms, values, msg):
    with pytest.raises(InputError, match=msg):
        XORValuation(atoms, values)


def test_bundle_dimension_mismatch():
    v = XORValuation(np.ones((1, 1, 3), bool), np.ones((1, 1)))
    with pytest.raises(InputError, match="bundles have 4 items but the valuation has 3"):
        v.value(torch.ones(2, 4))
    with pytest.raises(InputError, match="0/1"):
        v.value(torch.full((2, 3), 0.5))
    with pytest.raises(InputError, match="item_prices"):
        v.demand(torch.ones(4))


@given(st.integers(1, 140), st.integers(0, 60), st.integers(0, 2**31 - 1))
@settings(max_examples=60, deadline=None)
def test_unique_rows_matches_torch_unique(m, n, seed):
    from bundleflow.valuations.bundles import unique_rows

    g = torch.Generator().manual_seed(seed)
    base = (torch.rand(max(1, n // 3), m, generator=g) < 0.5).float()
    rows = base[torch.randint(len(base), (n,), generator=g)]  # many repeats
    uniq, inv = unique_rows(rows)
    assert torch.equal(uniq[inv], rows)
    assert len(uniq) == len(torch.unique(rows, dim=0)) if n else len(uniq) == 0


def test_first_occurrences_keeps_distinct_rows_in_first_seen_order():
    from bundleflow.valuations.bundles import first_occurrences

    rows = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=torch.float32)
    assert first_occurrences(rows).tolist() == [0, 1, 3]
    assert first_occurrences(rows[:0]).tolist() == []
    wide = (torch.rand(200, 130, generator=torch.Generator().manual_seed(0)) < 0.5).float()  # 3 packed words
    wide = torch.cat([wide, wide[[5, 0, 199]]])
    assert first_occurrences(wide).tolist() == list(range(200))
