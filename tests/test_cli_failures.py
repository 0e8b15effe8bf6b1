"""Issue 12, point 2: every CLI failure is one line on stderr, exit code 2, no traceback, before any work.

Read-only folders and a full disk are simulated (the tests run as root, for whom permission
bits do not apply, and must never fill a real disk): the OS calls that create files raise
the errors the kernel would raise.
"""

from __future__ import annotations

import builtins
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_TRAIN, assert_one_line_error, cli

from bundleflow.utils.files import atomic_write_text


@pytest.fixture
def read_only(monkeypatch):
    """``read_only(folder)``: creating or opening for writing anything under ``folder`` fails with EROFS."""
    frozen: list[Path] = []

    def blocked(path) -> bool:
        p = Path(os.fsdecode(path)).absolute()
        return any(p == f or f in p.parents for f in frozen)

    def deny(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file, mode="r", *a, **k):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+") and blocked(file):
            deny(file)
        return real_open(file, mode, *a, **k)

    def fake_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and blocked(path):
            deny(path)
        return real_os_open(path, flags, *a, **k)

    def fake_mkdir(path, *a, **k):
        if blocked(path):
            deny(path)
        return real_mkdir(path, *a, **k)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    return lambda folder: frozen.append(Path(folder).absolute())


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the command starts computing (baselines, flow training) before it fails."""

    def boom(*a, **k):
        raise AssertionError("work started before the output location was checked")

    monkeypatch.setattr("bundleflow.experiments.baseline_table.item_pricing", boom)
    monkeypatch.setattr("bundleflow.flow.stage1.train_flow", boom)
    monkeypatch.setattr("bundleflow.cats.generator.generate", boom)


def test_train_out_is_a_file(tmp_path):
    f = tmp_path / "taken"
    f.write_text("keep me")
    assert_one_line_error(cli("train", "--out", f, *TINY_TRAIN), "taken", "is a file")
    assert f.read_text() == "keep me"


def test_train_flow_out_is_a_folder(tmp_path, no_work):
    assert_one_line_error(cli("train-flow", "--items", 3, "--out", tmp_path), "is a folder")


def test_demo_out_is_a_file(tmp_path):
    f = tmp_path / "demo"
    f.write_text("x")
    assert_one_line_error(cli("demo", "--out", f), "is a file")


def test_output_under_a_file(tmp_path, no_work, cats_dir):
    (tmp_path / "f").write_text("x")
    assert_one_line_error(
        cli("baselines", cats_dir / "regions_50_single.npz", "--limit", 50, "--out", tmp_path / "f" / "x.json"), "f"
    )


@pytest.mark.parametrize(
    "command",
    [
        lambda ro: ["train", "--out", ro / "run", *TINY_TRAIN],
        lambda ro: ["train", "--out", ro, *TINY_TRAIN],
        lambda ro: ["train-flow", "--items", 3, "--out", ro / "flow.pt"],
        lambda ro: ["data", "generate", "regions", "--items", 20, "--n", 5, "--out", ro / "r.npz"],
        lambda ro: ["demo", "--out", ro / "demo"],
        lambda ro: ["bench", "--quick", "--settings", "uniform_50", "--out", ro / "bench"],
    ],
)
def test_read_only_output_fails_before_work(tmp_path, read_only, no_work, command):
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    line = assert_one_line_error(cli(*command(ro)), str(ro))
    assert "Read-only file system" in line
    assert list(ro.iterdir()) == []


def test_baselines_read_only_out_fails_before_work(tmp_path, read_only, no_work, cats_dir):
    ro = tmp_path / "ro"
    ro.mkdir()
    read_only(ro)
    assert_one_line_error(cli("baselines", cats_dir / "regions_50_single.npz", "--out", ro / "x.json"), "Read-only")


def test_full_disk_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "flow.pt"
    out.write_bytes(b"old flow")

    def full(*a, **k):  # what torch.save raises when the disk fills mid-write
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4416 vs 4304")

    monkeypatch.setattr(torch, "save", full)
    assert_one_line_error(cli("train-flow", "--items", 3, "--steps", 2, "--out", out), "disk full")
    assert out.read_bytes() == b"old flow"
    assert [p.name for p in tmp_path.iterdir()] == ["flow.pt"]  # no temporary left


def test_no_space_left_is_one_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    out = tmp_path / "r.npz"
    assert cli("data", "generate", "regions", "--items", 20, "--n", 5, "--out", out).exit_code == 0
    before = out.read_bytes()
    real_open = builtins.open

    def full_open(file, mode="r", *a, **k):  # the disk fills while a temporary file is written
        if isinstance(file, (str, os.PathLike)) and ".tmp" in os.fspath(file) and "w" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_open)
    res = cli("data", "generate", "regions", "--items", 20, "--n", 7, "--seed", 3, "--force", "--out", out)
    monkeypatch.undo()
    assert_one_line_error(res, "No space left on device")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]
    with pytest.raises(OSError):
        monkeypatch.setattr(builtins, "open", full_open)
        atomic_write_text(tmp_path / "x.json", "new")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta"])
def test_bad_device(tmp_path, device):
    assert_one_line_error(cli("train", "--out", tmp_path / "r", *TINY_TRAIN, f"device={device}"), "device")
    assert_one_line_error(cli("train-flow", "--items", 3, "--out", tmp_path / "f.pt", "--device", device), "device")
    assert not (tmp_path / "r" / "config.yaml").exists()


def test_unexpected_exception_is_one_line_and_debug_shows_it(tmp_path, monkeypatch):
    def bug(*a, **k):
        raise ZeroDivisionError("simulated bug")

    monkeypatch.setattr("bundleflow.experiments.runner.make_data", bug)
    assert_one_line_error(cli("train", "--out", tmp_path / "r", *TINY_TRAIN), "unexpected ZeroDivisionError", "--debug")
    res = cli("--debug", "train", "--out", tmp_path / "r", *TINY_TRAIN)
    assert isinstance(res.exception, ZeroDivisionError)


def test_real_process_exit_code_and_stderr(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    p = subprocess.run(
        [sys.executable, "-m", "bundleflow.cli", "train", "--out", str(f)], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and p.stderr.startswith("error: ") and "is a file" in p.stderr
