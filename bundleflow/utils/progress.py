"""Progress bars for long work (data generation, Stage 1, menu initialisation, statistics).

:func:`progress_bar` yields an ``advance(n)`` callback so library code reports progress
without importing rich; the bar is drawn on stderr and only on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _noop(n: int = 1) -> None:
    return None


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A rich bar ``description  ━━━━  k/total  elapsed  remaining``; yields ``advance(n=1)``.

    Disabled (``advance`` does nothing) when ``enabled`` is false or stderr is not a terminal.
    """
    console = Console(stderr=True, markup=False, highlight=False)
    if not enabled or not console.is_terminal:
        yield _noop
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance
