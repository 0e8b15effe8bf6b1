"""Issue 12, point 3: rich markup never eats, hides or chokes on user text."""

from __future__ import annotations

import json

from conftest import TINY_TRAIN, assert_one_line_error, cli

from bundleflow.cats.io import save_cats_npz
from bundleflow.valuations.generators import uniform_atoms


def test_unbalanced_bracket_path_is_printed_verbatim(tmp_path):
    bad = tmp_path / "bad" / "[" / "x].npz"
    assert_one_line_error(cli("baselines", bad), "bad/[/x].npz", "no such file")


def test_markup_tag_in_path_is_shown_not_applied(tmp_path):
    assert_one_line_error(cli("baselines", tmp_path / "[red]data.npz"), "[red]data.npz")


def test_finished_run_into_bracket_folder(tmp_path):
    out = tmp_path / "exp[" / "x]"
    res = cli("train", "--out", out, *TINY_TRAIN)
    assert res.exit_code == 0, res.output
    assert f"wrote {out}/summary.json" in res.stdout
    assert (out / "summary.json").is_file()


def test_error_text_keeps_its_brackets(tmp_path):
    menu = tmp_path / "menu.json"
    menu.write_text(
        json.dumps({"bundles": [[[1, 0]]], "probs": [[1.0]], "prices": [0.5], "item_prices": [0.1, 0.2, 0.3]})
    )
    data = tmp_path / "v.npz"
    save_cats_npz(data, uniform_atoms(10, 2, 2, 0.5, seed=0))
    assert_one_line_error(cli("evaluate", menu, data), "item_prices must have shape [m] = (2,)")


def test_table_cells_with_brackets(tmp_path):
    data = tmp_path / "[bold]v[red].npz"
    save_cats_npz(data, uniform_atoms(40, 3, 2, 0.5, seed=0))
    res = cli("baselines", data, "--atom-menu-size", 4)
    assert res.exit_code == 0, res.output
    assert "[bold]v[red].npz" in res.stdout
