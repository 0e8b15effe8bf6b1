import os
from pathlib import Path

import pytest

CATS_DIR = Path(__file__).resolve().parents[2] / "shared" / "cats"


# A test slower than this on an idle machine says why in its docstring, on a line starting "Slow:";
# the terminal summary lists those that do not (a printed guard, never a timed assertion).
SLOW_S = 60.0


def pytest_configure(config):
    """Under ``pytest -n N`` (pytest-xdist) each worker uses one torch thread, so N workers
    share N cores instead of oversubscribing them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(items):
    """Tests with a ``Slow:`` reason run first (stable otherwise), so that under ``-n N`` the
    long ones do not start last and leave the other workers idle."""
    items.sort(key=lambda item: slow_reason(item) is None)


def slow_reason(item) -> str | None:
    """The ``Slow: ...`` line of a test function's docstring, if any."""
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    return next((line.strip() for line in doc.splitlines() if line.strip().startswith("Slow:")), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call":
        rep.user_properties.append(("slow_reason", slow_reason(item)))


def pytest_terminal_summary(terminalreporter):
    unexplained = [
        rep
        for key in ("passed", "failed")
        for rep in terminalreporter.stats.get(key, [])
        if rep.when == "call" and rep.duration > SLOW_S and not dict(rep.user_properties).get("slow_reason")
    ]
    if unexplained:
        terminalreporter.section(f"tests over {SLOW_S:.0f} s without a 'Slow:' line in their docstring")
        for rep in sorted(unexplained, key=lambda r: -r.duration):
            terminalreporter.line(f"{rep.duration:7.1f}s {rep.nodeid}")


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
