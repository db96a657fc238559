"""A progress bar fed by the library's `on_progress(done, total)` callbacks."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from gpo_action.evaluate import ProgressFn


@contextmanager
def progress_bar(console, description: str) -> Iterator[ProgressFn]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        task = progress.add_task(description, total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield on_progress
