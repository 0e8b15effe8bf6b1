"""Issue 12, point 5: inputs that used to slip through are refused with a clear one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, assert_one_line_error, cli

from bundleflow.cats.io import load_cats_npz, save_cats_npz
from bundleflow.errors import InputError
from bundleflow.experiments.config import load_config
from bundleflow.mechanisms.menu import Menu
from bundleflow.valuations.base import MAX_VALUE
from bundleflow.valuations.generators import uniform_atoms
from bundleflow.valuations.xor import XORValuation


def _npz(path, **arrays):
    base = {"atoms": np.array([[[1, 0], [0, 1]]], bool), "values": np.array([[1.0, 2.0]]), "n_atoms": np.array([2])}
    base.update(arrays)
    np.savez(path, **base)
    return path


def test_negative_menu_price_is_refused(tmp_path):
    with pytest.raises(InputError, match="non-negative"):
        Menu.deterministic(torch.eye(2), torch.tensor([0.5, -1e6], dtype=torch.float64))
    menu = tmp_path / "menu.json"
    menu.write_text(json.dumps({"bundles": [[[1, 0]], [[0, 1]]], "probs": [[1.0], [1.0]], "prices": [0.3, -1e6]}))
    data = save_cats_npz(tmp_path / "v.npz", uniform_atoms(20, 2, 2, 0.5, seed=0))
    assert_one_line_error(cli("evaluate", menu, data), "non-negative", "-1e+06")


@pytest.mark.parametrize(
    "override", ["menu.lr=.inf", "menu.lr=.nan", "menu.tau_start=.inf", "menu.tau_end=.nan", "menu.time_budget_s=.inf"]
)
def test_non_finite_hyper_parameters_are_refused(override):
    key = override.split("=")[0]
    with pytest.raises(InputError, match=f"{key}: Input should be a finite number"):
        load_config(None, [override])


def test_values_beyond_float32_range_are_refused(tmp_path):
    atoms = torch.tensor([[[1, 0], [1, 1]]], dtype=torch.bool)
    with pytest.raises(InputError, match="rescale"):
        XORValuation(atoms, torch.tensor([[1.0, 1e30]], dtype=torch.float64))
    XORValuation(atoms, torch.tensor([[1.0, MAX_VALUE]], dtype=torch.float64))  # the largest accepted value
    path = _npz(tmp_path / "huge.npz", values=np.array([[1.0, 3e38]]))
    assert_one_line_error(cli("baselines", path), "huge.npz", "rescale")


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_limit_must_be_positive(tmp_path, limit):
    path = _npz(tmp_path / "v.npz")
    assert_one_line_error(cli("baselines", path, "--limit", limit), "--limit must be >= 1")
    assert_one_line_error(cli("data", "stats", path, "--limit", limit), "--limit must be >= 1")


@pytest.mark.parametrize("n_atoms", [np.array(["two"]), np.array([1.5])])
def test_non_numeric_n_atoms_is_an_input_error(tmp_path, n_atoms):
    path = _npz(tmp_path / "v.npz", n_atoms=n_atoms)
    with pytest.raises(InputError, match="n_atoms"):
        load_cats_npz(path)
    assert_one_line_error(cli("baselines", path), "n_atoms")


def test_generator_fields_with_a_data_file_are_refused_and_not_recorded(tmp_path):
    data = save_cats_npz(tmp_path / "v.npz", uniform_atoms(400, 3, 2, 0.5, seed=0))
    run = tmp_path / "run"
    base = [o for o in TINY_TRAIN if not o.startswith(("data.n_items", "data.n_atoms"))]
    res = cli("train", "--out", run, *base, "data.kind=file", f"data.path={data}", "data.n_items=50")
    assert_one_line_error(res, "data.n_items")
    assert not (run / "config.yaml").exists()
    assert cli("train", "--out", run, *base, "data.kind=file", f"data.path={data}").exit_code == 0
    recorded = (run / "config.yaml").read_text()
    assert "n_items" not in recorded and "n_atoms" not in recorded  # the file decides items and values
    assert load_config(run / "config.yaml").data.path == str(data)  # the recorded config loads again
    assert cli("train", "--out", run, *base, "data.kind=file", f"data.path={data}").exit_code == 0  # and resumes


def test_bench_with_a_missing_cats_dir_fails_naming_the_files(tmp_path):
    res = cli("bench", "--settings", "cats_regions_50", "--cats-dir", tmp_path / "nowhere", "--out", tmp_path / "b")
    assert_one_line_error(res, "nowhere/regions_50_single.npz", "--cats-dir")
    assert not (tmp_path / "b" / "results.json").exists()
    assert not (tmp_path / "b" / "revenue_vs_time.png").exists()
