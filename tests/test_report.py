import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bundleflow.cli import app
from bundleflow.errors import InputError
from bundleflow.experiments.config import load_config
from bundleflow.experiments.report import write_report
from bundleflow.experiments.runner import run_training

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "additive"
    cfg = load_config(
        None,
        [
            "data.kind=additive",
            "data.n_items=2",
            "data.n_train=500",
            "data.n_val=300",
            "data.n_test=2000",
            "menu.model=rochetnet",
            "menu.n_elements=6",
            "menu.steps=40",
            "menu.log_every=10",
        ],
    )
    run_training(cfg, out, resume=False, progress=False, log=lambda *_: None)  # writes the report itself
    return out


def test_run_writes_report_with_all_figures(run_dir):
    rep = run_dir / "report"
    for name in (
        "index.html",
        "revenue_curve.png",
        "bundle_sizes.png",
        "price_vs_value.png",
        "revenue_bars.png",
        "regions.png",
    ):
        assert (rep / name).is_file(), name
        if name.endswith(".png"):
            assert (rep / name).read_bytes()[:4] == b"\x89PNG"
    page = (rep / "index.html").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{summary['learned']['test_revenue']:.4f}" in page  # the exact held-out revenue is printed
    for r in summary["baselines"]:
        assert f"<td>{r['method']}</td><td>{r['test_revenue']:.4f}</td>" in page
    assert page.count("<tr><td>") >= len(summary["baselines"]) + 1 + 1  # revenue rows + at least one menu row
    assert page.count("data:image/png;base64,") == 5  # self-contained


def test_report_cli_and_bad_folders(run_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["report", str(run_dir)])
    assert r.exit_code == 0 and "index.html" in r.output
    # incomplete folder: clear message, exit code 2, no traceback
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(run_dir / "config.yaml", partial / "config.yaml")
    r = runner.invoke(app, ["report", str(partial)])
    flat = lambda text: " ".join(text.split())  # noqa: E731  (rich wraps long lines)
    assert r.exit_code == 2 and "incomplete run folder" in flat(r.output) and "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    # malformed JSON
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        write_report(broken)
    r = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "no such run folder" in flat(r.output)
    # the good run's files are untouched by failed reports elsewhere
    assert json.loads((run_dir / "summary.json").read_text())["learned"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    page = Path(run_dir / "report" / "index.html").resolve()
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert 'id="revenue-table"' in dom and 'id="menu-table"' in dom
    summary = json.loads((run_dir / "summary.json").read_text())
    assert f"{summary['learned']['test_revenue']:.4f}" in dom
    assert dom.count("<img") == 5
