"""Issue 12, point 1: no file the tool reads can run code; refusals are one line without unpickling hints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_TRAIN, assert_one_line_error, cli

from bundleflow.errors import InputError
from bundleflow.flow.model import BundleFlow
from bundleflow.flow.stage1 import load_flow, save_flow
from bundleflow.utils.files import load_tensors


class _Payload:
    """Unpickling this object creates the file ``marker``: the side effect a hostile file would have."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _no_hint(text: str) -> None:
    assert "weights_only" not in text and "allow_pickle" not in text, text


def test_crafted_checkpoint_is_refused_on_resume(tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    marker = tmp_path / "pwned"
    state = load_tensors(run / "checkpoint.pt")
    state["best"] = _Payload(marker)
    torch.save(state, run / "checkpoint.pt")
    res = cli("train", "--out", run, *TINY_TRAIN)
    line = assert_one_line_error(res, "checkpoint.pt", "refused")
    _no_hint(line)
    assert not marker.exists()


def test_crafted_flow_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    flow_file = tmp_path / "flow.pt"
    torch.save({"meta": _Payload(marker), "state": {}}, flow_file)
    with pytest.raises(InputError, match="refused"):
        load_flow(flow_file)
    res = cli("train", "--out", tmp_path / "run", *TINY_TRAIN, f"flow.checkpoint={flow_file}")
    _no_hint(assert_one_line_error(res, "flow.pt", "refused"))
    assert not marker.exists()
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_checkpoints_written_by_the_trainer_load_with_weights_only(tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and isinstance(state["gen"], torch.Tensor)
    flow = BundleFlow(3, hidden=8)
    save_flow(tmp_path / "f.pt", flow)
    assert load_flow(tmp_path / "f.pt").n_items == 3


def test_object_array_npz_is_refused_without_pickle_hint(tmp_path):
    bad = tmp_path / "objects.npz"
    np.savez(bad, atoms=np.array([{"x": 1}], dtype=object), values=np.zeros((1, 1)), n_atoms=np.ones(1, int))
    _no_hint(assert_one_line_error(cli("baselines", bad), "objects.npz", "refused"))


def test_garbage_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, *TINY_TRAIN).exit_code == 0
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_line_error(cli("train", "--out", run, *TINY_TRAIN), "checkpoint.pt", "not a bundleflow checkpoint")
