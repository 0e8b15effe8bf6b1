from pathlib import Path

import pytest

CATS_DIR = Path(__file__).resolve().parents[2] / "shared" / "cats"


@pytest.fixture
def cats_dir():
    if not CATS_DIR.is_dir():
        pytest.skip("shared/cats reference data not present")
    return CATS_DIR


# A train run of a few seconds: m=3 uniform atoms, a 20-step flow, a 4-element menu, 4 steps.
TINY_TRAIN = [
    "data.n_items=3",
    "data.n_atoms=2",
    "data.n_train=200",
    "data.n_val=60",
    "data.n_test=60",
    "flow.steps=20",
    "flow.hidden=16",
    "menu.n_elements=4",
    "menu.n_support=2",
    "menu.steps=4",
    "menu.log_every=2",
    "menu.batch=64",
    "device=cpu",
]


def cli(*args):
    """Run ``bundleflow ARGS`` in-process; returns click's Result (``exit_code``, ``stdout``, ``stderr``)."""
    from typer.testing import CliRunner

    from bundleflow.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    """The command failed with exit code 2 and exactly one line on stderr, no traceback, holding ``fragments``."""
    err = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(err) == 1, result.stderr
    assert err[0].startswith("error: "), err
    assert "Traceback" not in result.output
    for f in fragments:
        assert f in err[0], (f, err[0])
    return err[0]


def interrupt_at(monkeypatch, step: int, before=None):
    """Make ``MenuTrainer.train_step`` raise ``KeyboardInterrupt`` (Ctrl-C) once the trainer is at
    ``step`` (after that step's checkpoint); ``before(trainer)`` runs first if given. Returns the
    real ``train_step`` (``monkeypatch.undo()`` or setting it back resumes normal training)."""
    from bundleflow.training import MenuTrainer

    real = MenuTrainer.train_step

    def interrupted(self):
        if self.step == step:
            if before is not None:
                before(self)
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(MenuTrainer, "train_step", interrupted)
    return real
