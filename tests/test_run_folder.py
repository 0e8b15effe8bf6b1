"""Issue 12, point 4: run folders survive failed starts, torn writes, a second writer and resumes."""

from __future__ import annotations

import itertools
import json
import os
import stat
import types

import pytest
from conftest import TINY_TRAIN, assert_one_line_error, cli, interrupt_at

import bundleflow.experiments.runner
import bundleflow.training.trainer
from bundleflow.experiments.runner import run_lock


def _steps(run):
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _strict_json(text: str):
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_failed_start_writes_nothing_and_the_corrected_retry_runs(tmp_path):
    run = tmp_path / "run"
    res = cli("train", "--out", run, *TINY_TRAIN[2:], "data.kind=file", f"data.path={tmp_path / 'missing.npz'}")
    assert_one_line_error(res, "missing.npz")
    assert not (run / "config.yaml").exists()
    res = cli("train", "--out", run, *TINY_TRAIN, "data.n_items=-1")
    assert_one_line_error(res, "data.n_items")
    assert not (run / "config.yaml").exists()
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    assert _steps(run) == [0, 2, 4]


def test_torn_last_metrics_line_is_dropped_on_resume(tmp_path, monkeypatch):
    run = tmp_path / "run"

    def torn_write(_trainer):  # the process dies after the step-2 checkpoint, mid-way through a metrics write
        with open(run / "metrics.jsonl", "a") as fh:
            fh.write('{"step": 3, "soft_rev')

    interrupt_at(monkeypatch, 2, before=torn_write)
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 130
    monkeypatch.undo()
    res = cli("train", "--out", run, *TINY_TRAIN)
    assert res.exit_code == 0, res.output
    assert "resumed at step 2" in res.stdout
    assert _steps(run) == [0, 2, 4]


def test_resume_from_step_zero_does_not_duplicate_its_line(tmp_path, monkeypatch):
    run = tmp_path / "run"

    interrupt_at(monkeypatch, 0)
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 130
    assert _steps(run) == [0]
    monkeypatch.undo()
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    assert _steps(run) == [0, 2, 4]
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0  # a finished run resumed: nothing added
    assert _steps(run) == [0, 2, 4]


def test_second_writer_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with run_lock(run):
        assert_one_line_error(cli("train", "--out", run, *TINY_TRAIN), "another bundleflow process")
    assert not (run / "config.yaml").exists()
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0


def test_stale_temporaries_are_removed(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    stale = [run / ".checkpoint.pt.k2j3h.tmp", run / ".summary.json.x1.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    assert not any(p.exists() for p in stale)
    assert not list(run.glob(".*.tmp*"))


def test_json_outputs_are_strict_and_files_have_normal_permissions(tmp_path):
    run = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    finally:
        os.umask(old)
    records = [_strict_json(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["train_soft_revenue"] is None  # no training step yet: null, not NaN
    summary = _strict_json((run / "summary.json").read_text())
    assert summary["learned"]["test_revenue"] > 0
    for name in ("summary.json", "config.yaml", "menu.json", "checkpoint.pt", "flow.pt", "metrics.jsonl"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o644, name


@pytest.mark.parametrize("junk", ['{"step": 0}\nnot json\n{"step": 2}\n'])
def test_corrupt_middle_metrics_line_is_a_clear_error(tmp_path, junk):
    run = tmp_path / "run"
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    (run / "metrics.jsonl").write_text(junk)
    assert_one_line_error(cli("train", "--out", run, *TINY_TRAIN), "metrics.jsonl", "line 2")
    assert (run / "metrics.jsonl").read_text() == junk


def test_resume_keeps_counting_stage2_seconds(tmp_path, monkeypatch):
    """A resumed run's Stage 2 clock goes on from the checkpoint's seconds. The first sitting runs on
    a fake clock that advances 10^6 s per reading, so nothing here depends on the machine's speed."""
    run = tmp_path / "run"
    ticks = itertools.count(0.0, 1e6)
    fake = types.SimpleNamespace(perf_counter=lambda: next(ticks))
    monkeypatch.setattr(bundleflow.experiments.runner, "time", fake)
    monkeypatch.setattr(bundleflow.training.trainer, "time", fake)
    interrupt_at(monkeypatch, 2)
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 130
    monkeypatch.undo()
    first = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert first["step"] == 2 and first["seconds"] >= 1e6  # at least one tick of the fake clock
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0  # the real clock from here on
    last = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
    summary = json.loads((run / "summary.json").read_text())
    assert last["step"] == 4 and last["seconds"] >= first["seconds"]  # counted on from the checkpoint
    assert summary["stage2_seconds"] >= first["seconds"]
