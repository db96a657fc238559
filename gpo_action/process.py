"""How a command runs as a process: the consoles it prints on, the one mapping from our errors to
exit codes (anything else is an internal error, exit 4, with its traceback), SIGTERM and Ctrl-C
stopping it the same way, guarded output, notes said once, and the cycle collector's thresholds
(and its pause for a command that makes no model call).
`cli` holds the commands.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
from typing import Callable, Iterator

import click

from gpo_action.errors import GpoError

INTERNAL_ERROR = 4

# The cycle collector's first threshold in a gpo-action process (CPython's default is 700): a
# command builds and drops large acyclic data (a 10,000-case report, a merge's partials), and at
# 700 the collections walking it were ~15% of a merge's CPU. The older generations keep their
# ratios; cyclic garbage waits for at most this many allocations more.
COLLECT_EVERY = 50_000


_entry: list[bool] = []  # [True] once `collect_less` ran: this is the process entry, ended by os._exit


def collect_less() -> None:
    """Set the process's collection thresholds (`COLLECT_EVERY`): for the process entry only, never
    for a library caller's interpreter."""
    import gc

    _, older, oldest = gc.get_threshold()
    gc.set_threshold(COLLECT_EVERY, older, oldest)
    _entry[:] = [True]


@contextlib.contextmanager
def collector_paused(paused: bool = True) -> Iterator[None]:
    """No cycle collection inside, for a command that makes no model call (a merge that fixes
    nothing): what it builds (every shard's cases, the report) is acyclic, so the collector finds
    nothing in it and only walks it (a 10,000-case merge: 26 collections in 0.26-0.30 s became 18
    in 0.15-0.17 s, those left during the imports). Restored after, so a library or test caller's
    interpreter is left as it was. In the process entry, which exits without teardown, what the
    pause built is frozen first (`gc.freeze`): the first collection after it walked it all once
    more for nothing (a 10,000-case merge: one collection of 54-85 ms)."""
    import gc

    if not paused or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        if _entry:
            gc.freeze()
        gc.enable()


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


# The width of stdout when it is no terminal (a pipe, a file, every CI log): wide enough that no
# table column is cut to `ticket-r…`; rich's 80 columns are for the terminal it cannot measure.
PIPE_WIDTH = 4096


def stdout_console():
    """The Console every command prints its result on: the terminal's, on a TTY; else one
    PIPE_WIDTH wide (lines are as long as their content: nothing rendered here pads to the width)
    whose text is never wrapped (`soft_wrap`: a long output `show` prints stays one line). Asked of
    the stream itself, not of rich: FORCE_COLOR (common in CI) makes rich take a pipe for a
    terminal of 80 columns; colours still follow rich's rules."""
    from rich.console import Console

    try:
        tty = sys.stdout.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        tty = False
    return Console() if tty else Console(width=PIPE_WIDTH, soft_wrap=True)


def handle_errors(func):
    """Map our error roots to exit codes in one place; any other exception is an internal error
    (exit 4), shown with its traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GpoError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: finished calls are cached; run again to resume", err=True)
            sys.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: it prints them and picks the code
        except Exception:  # noqa: BLE001  (the one boundary where a bug becomes exit 4)
            report_internal_error()
            sys.exit(INTERNAL_ERROR)

    return wrapper


def report_internal_error() -> None:
    """The current exception as an internal error: a short message, then the traceback (a bug
    report needs it); in GitHub Actions also an annotation and the exit-code output."""
    import traceback

    from gpo_action.github.runner import publish_internal_error

    click.echo(f"internal error: gpo-action failed, not your change (exit {INTERNAL_ERROR}); "
               "please report it with this traceback:", err=True)
    click.echo(traceback.format_exc().rstrip("\n"), err=True)
    publish_internal_error(INTERNAL_ERROR, sys.stdout, os.environ)


@contextlib.contextmanager
def stopped_by_signals(client=None) -> Iterator[None]:
    """Around every command that spends calls (eval, run, optimize, action, demo): SIGTERM (a CI
    runner cancelling the job) and Ctrl-C stop it at once, the same way, as a KeyboardInterrupt:
    the optimizer saves its run directory and re-raises it, eval writes its partial report, and
    `handle_errors` exits 130. `client`, when the command holds it, is closed quietly first
    (`stop_calls`: calls in flight end before anything reads the cache again).

    Our own SIGINT handler also keeps asyncio from installing its cancel-the-task one, under which
    a run could finish its batch before the interrupt surfaced."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    except KeyboardInterrupt:
        if client is not None:
            stop_calls(client)
        raise


def guard_output() -> Callable[[], None]:
    """A run's secrets from the environment, and stdout/stderr that print none of them nor, in
    GitHub Actions, any workflow command but our own (`streams`). Returns what undoes the streams."""
    from gpo_action.secrets import reset
    from gpo_action.streams import install_streams

    reset()
    return install_streams(actions=bool(os.environ.get("GITHUB_ACTIONS")))


def stop_calls(client) -> None:
    """After an interrupt: close the client's loop and workers, quietly. The interrupt may come
    back once more from a task that awaited the interrupted one; the loop is closed either way."""
    import gc
    import logging
    import warnings

    asyncio_log = logging.getLogger("asyncio")
    level = asyncio_log.level
    asyncio_log.setLevel(logging.CRITICAL)  # "Task was destroyed but it is pending": expected here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # coroutines the interrupt left unawaited
        try:
            client.close()
        except KeyboardInterrupt:
            pass
        gc.collect()
    asyncio_log.setLevel(level)


def notes_printer():
    """A `note(message)` that prints each message once, as `note: ...` on stderr."""
    seen: set[str] = set()

    def note(message: str) -> None:
        if message not in seen:
            seen.add(message)
            click.echo(f"note: {message}", err=True)

    return note
