"""Issue 12, point 7: long work reports progress; tables and reports say what they hold and cut nothing."""

from __future__ import annotations

import torch
from rich.table import Table

from bundleflow.baselines.items import item_price_ascent, item_pricing
from bundleflow.baselines.prices import optimise_prices
from bundleflow.cats.generator import generate
from bundleflow.experiments.report import lottery_terms
from bundleflow.flow.stage1 import describe_diagnostics, train_flow
from bundleflow.mechanisms.menu import Menu
from bundleflow.valuations.generators import uniform_atoms


def test_progress_callbacks_count_the_work():
    calls = []
    generate("regions", 20, 7, seed=0, progress=lambda n=1: calls.append(n))
    assert sum(calls) == 7
    steps = []
    train_flow(3, steps=5, batch=8, hidden=8, callback=lambda i, loss: steps.append(i))
    assert steps == [0, 1, 2, 3, 4]
    ev = torch.tensor([[1.0, 0.5, 0.2], [0.3, 0.9, 0.1]], dtype=torch.float64)
    priced = []
    optimise_prices(ev, torch.ones(3, dtype=torch.float64), 1.0, rounds=2, progress=lambda n=1: priced.append(n))
    assert len(priced) in (3, 6)  # one call per re-priced element, one or two rounds
    swept = []
    v = uniform_atoms(50, 4, 2, 0.5, seed=0)
    item_price_ascent(
        v.atoms,
        v.values,
        torch.ones(4, dtype=torch.float64),
        v.max_value(),
        max_rounds=1,
        progress=lambda n=1: swept.append(n),
    )
    assert len(swept) == 4  # one call per item and sweep
    steps_in_pricing = []
    item_pricing(v, restarts=1, progress=lambda n=1: steps_in_pricing.append(n))
    assert len(steps_in_pricing) >= 4 * 3  # at least one sweep from each of >= 3 starts


def test_identical_supports_are_shown_once_with_their_total_probability():
    bundles = torch.tensor([[[1, 0, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0]]], dtype=torch.float32)
    menu = Menu(
        bundles, torch.tensor([[0.2, 0.3, 0.4, 0.1]], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64)
    )
    terms = lottery_terms(menu, 0)
    assert [b for b, _ in terms] == ["{0}", "{1,2}"]
    assert abs(terms[0][1] - 0.6) < 1e-12 and abs(terms[1][1] - 0.4) < 1e-12


def test_bench_names_are_not_cut_at_80_columns():
    from bundleflow.cli import console, print_table

    t = Table(title="exact held-out revenue")
    for c in ("setting", "method", "revenue", "s.e.", "train s", "steps", "steps to 99%"):
        t.add_column(c, no_wrap=c in ("setting", "method"))
    t.add_row("cats_arbitrary_150", "bundle_rochetnet", "334.1234", "4.512", "600.0", "2000", "1500")
    with console.capture() as cap:
        width, console.width = console.width, 80
        try:
            print_table(t)
        finally:
            console.width = width
    text = cap.get()
    assert "cats_arbitrary_150" in text and "bundle_rochetnet" in text and "…" not in text


def test_stage1_diagnostics_in_words():
    text = describe_diagnostics(
        {"item_accuracy": 0.94, "rounding_accuracy": 0.042, "distinct_share": 1.0, "size_hist": [0] * 51}
    )
    assert "item accuracy 0.940" in text and "whole-bundle accuracy 0.042" in text
    assert f"{0.94**50:.3f}" in text  # what independent item errors predict for m=50


def test_report_aligns_revenue_numbers_right(tmp_path):
    from conftest import TINY_TRAIN, cli

    assert cli("train", "--out", tmp_path / "run", *TINY_TRAIN).exit_code == 0
    page = (tmp_path / "run" / "report" / "index.html").read_text()
    style = page[page.index("<style>") : page.index("</style>")]
    assert "text-align:right" in style
    left = style.split("{text-align:left}")[0].rsplit("}", 1)[-1]
    assert left.split(",") == ["#revenue-table td:first-child", "#menu-table td:nth-child(2)"]
    assert '<p id="polish">Start kept: ' in page and "Final price polish (3 rounds" in page
