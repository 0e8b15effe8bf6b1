import numpy as np
import pytest
import torch

from bundleflow.errors import InputError
from bundleflow.valuations.generators import (
    additive_uniform,
    bivalued,
    bivalued_type_space,
    uniform_atoms,
    unit_demand_uniform,
)


def test_seeded_reproducible():
    a = uniform_atoms(50, 10, 5, 0.3, seed=7)
    b = uniform_atoms(50, 10, 5, 0.3, seed=7)
    c = uniform_atoms(50, 10, 5, 0.3, seed=8)
    assert torch.equal(a.atoms, b.atoms) and torch.equal(a.values, b.values)
    assert not torch.equal(a.values, c.values)


def test_uniform_atoms_statistics_and_empty_drop():
    v = uniform_atoms(4000, 2, 5, 0.5, seed=0)
    # an atom is empty w.p. 1/4 and then dropped (value 0)
    empty = ~v.atoms.any(-1)
    assert torch.all(v.values[empty] == 0)
    assert float(empty.double().mean()) == pytest.approx(0.25, abs=0.02)
    assert float(v.atoms.double().mean()) == pytest.approx(0.5, abs=0.02)
    w = uniform_atoms(2000, 20, 3, 0.2, low=1.0, high=3.0, seed=0)
    real = w.values[w.atoms.any(-1)]
    assert float(real.min()) >= 1.0 and float(real.max()) <= 3.0
    assert float(real.mean()) == pytest.approx(2.0, abs=0.05)


def test_item_value_generators():
    a = additive_uniform(1000, 3, 0.5, 1.5, seed=0)
    assert float(a.item_values.mean()) == pytest.approx(1.0, abs=0.03)
    u = unit_demand_uniform(1000, 3, seed=0)
    assert float(u.grand_value().mean()) == pytest.approx(0.75, abs=0.02)  # E[max of 3 U] = 3/4
    b = bivalued(2000, 4, 1.0, 3.0, 0.25, seed=0)
    assert set(b.item_values.unique().tolist()) == {1.0, 3.0}
    assert float((b.item_values == 3.0).double().mean()) == pytest.approx(0.25, abs=0.02)


def test_type_space_probabilities():
    v, p = bivalued_type_space(3, 1.0, 2.0, 0.3)
    assert len(v) == 8 and float(p.sum()) == pytest.approx(1.0)
    assert float(p.max()) == pytest.approx(0.7**3)


@pytest.mark.parametrize(
    "call, msg",
    [
        (lambda: uniform_atoms(0, 5, 2, 0.5), "n must be a positive integer"),
        (lambda: uniform_atoms(5, 5, 2, 1.5), "q must lie"),
        (lambda: additive_uniform(5, 2, 1.0, 0.5), "low <= high"),
        (lambda: additive_uniform(5, 2, -1.0, 0.5), "low <= high"),
        (lambda: additive_uniform(5, 2, 0.0, np.nan), "finite"),
        (lambda: bivalued(5, 2, 1, 2, kind="xor"), "kind must be"),
    ],
)
def test_bad_arguments(call, msg):
    with pytest.raises(InputError, match=msg):
        call()
