"""File writes: atomic (a reader sees the old file or the new one, never half of either), and
scrubbed: every byte written here passes `secrets.scrub` (reports, run directories, trajectories,
the job summary, delivered comments, committed prompts).

A new file gets the mode any program's new file gets (0666 less the umask: 0644 under 022), not
mkstemp's 0600: these are the user's files (a scaffold, a committed prompt, a report a later CI
step uploads), and none holds a secret (scrubbed here). A file that exists keeps its mode."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from gpo_action.secrets import scrub


def write_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to a temp file beside `path`, fsync it, then os.replace it into place."""
    with atomic_writer(path, encoding) as handle:
        handle.write(text)


def copy_atomic(source: str | os.PathLike, path: str | os.PathLike, encoding: str = "utf-8") -> None:
    """Write a copy of the text file `source` to `path`, atomically and scrubbed like every write
    here: for a second copy of a file just written (the last report beside `--json`), which costs
    a read, not a second rendering. Copied in whole lines, so no secret is split between two
    scrubbed pieces (a JSON file's strings never span a line)."""
    with open(source, encoding=encoding, newline="") as src, atomic_writer(path, encoding) as handle:
        while lines := src.readlines(1 << 16):
            handle.write("".join(lines))


class _ScrubbedWriter:
    """A text handle whose every `write` is scrubbed first. Each call is scrubbed on its own, which
    holds for our writers: `json.dump` writes each string whole, in one call."""

    def __init__(self, handle: TextIO):
        self._handle = handle

    def write(self, text: str) -> int:
        return self._handle.write(scrub(text))

    def __getattr__(self, name: str):
        return getattr(self._handle, name)


@contextmanager
def atomic_writer(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[TextIO]:
    """A text handle on a temp file beside `path`; on a clean exit the file is fsynced and
    os.replace'd into place, on an error removed. For writers that stream (`json.dump`)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(target)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as handle:
            yield _ScrubbedWriter(handle)  # type: ignore[misc]
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o7777)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _create_temp(target: Path) -> tuple[int, str]:
    """A new temp file beside `target`, opened for writing, as mkstemp makes it (O_EXCL, a random
    name) but with mode 0666 for the kernel to narrow by the umask (no umask read, no race)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = str(target.parent / f".{target.name}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {target}")


def append_durably(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Append `text` (scrubbed) to `path`, then flush and fsync: for JSONL logs that grow a line at a time."""
    with open(path, "a", encoding=encoding) as handle:
        handle.write(scrub(text))
        handle.flush()
        os.fsync(handle.fileno())
