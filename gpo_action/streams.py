"""stdout and stderr as gpo-action prints to them: every write scrubbed of secrets (`secrets`) and,
in GitHub Actions, unable to start a workflow command.

    restore = install_streams(actions=bool(os.environ.get("GITHUB_ACTIONS")))

A file name, a suite name, a case id or an error message is text from the pull request; printed
as is, a line of it that starts with `::warning::` (or holds `##[error]`) would be a command to
the runner. `GuardedStream` passes free text through `commands.neutralize`, and our own commands
(masks, annotations, groups) through `write_command`, which writes them as they are, each on a
line of its own. Escaping at the point of writing, rather than `::stop-commands::`, because
stdout and stderr reach the runner through two pipes in no fixed order: a window opened on one
could swallow a mask or an annotation written to the other.

A line is decided by its first characters, which may come in separate writes: white space (and
one `:`) at the start of a line, or one or two `#` at the end of a write, is held back until the
next character shows what it is.
"""

from __future__ import annotations

import io
import sys
from typing import Callable, TextIO

from gpo_action.github.commands import ZERO_WIDTH, neutralize
from gpo_action.secrets import scrub


class GuardedStream(io.TextIOBase):
    """A text stream over `inner` that scrubs each write and, with `actions`, neutralizes commands.

    No `buffer` attribute, on purpose: click writes through a stream's `buffer`, around the text
    layer, when it takes the stream's encoding for a misconfigured one (ASCII)."""

    def __init__(self, inner: TextIO, *, actions: bool = False):
        self.inner = inner
        self.actions = actions
        self._held = ""               # what is held back: the undecided start of a line, or `#`/`##`
        self._mid_line = False        # the current line has printed characters already
        self._mark = ZERO_WIDTH
        try:
            ZERO_WIDTH.encode(self.encoding)
        except (LookupError, UnicodeEncodeError):
            self._mark = "\\"        # an ASCII stream: a visible mark rather than an encoding error

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.inner, "errors", None)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not text:
            return 0
        out = scrub(text)
        if self.actions:
            out = self._guard(out)
        if out:
            self.inner.write(out)
        return len(text)

    def _guard(self, text: str) -> str:
        work = ("x" if self._mid_line else "\n") + neutralize(self._held + text, not self._mid_line, self._mark)
        self._held = ""
        last = max(work.rfind("\n"), work.rfind("\r"))  # the sentinel makes it >= 0 at a line start
        tail = work[last + 1:]
        if last >= 0 and not (tail[:-1] if tail.endswith(":") else tail).strip():
            self._held, self._mid_line = tail, False          # white space and one ':': undecided
        else:
            self._mid_line = True
            hashes = len(tail) - len(tail.rstrip("#"))
            self._held = tail[len(tail) - min(hashes, 2):] if hashes else ""  # maybe the start of `##[`
        return work[1:len(work) - len(self._held)]

    def write_command(self, line: str) -> None:
        """One of our own workflow commands (`line` ends with a newline), written as it is, at the
        start of a line."""
        pending = self._held
        self._held = ""
        if self._mid_line or pending:
            self.inner.write(pending + "\n")
        self._mid_line = False
        self.inner.write(line)
        self.inner.flush()

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        """Write what was held back and flush; the inner stream stays open."""
        if not self.closed:
            if self._held:
                self.inner.write(self._held)
                self._held = ""
            self.inner.flush()
        super().close()


def install_streams(actions: bool) -> Callable[[], None]:
    """Put `GuardedStream`s in place of sys.stdout and sys.stderr (once: already guarded streams are
    left alone). Returns the function that puts the previous streams back."""
    previous = sys.stdout, sys.stderr
    if isinstance(sys.stdout, GuardedStream) and isinstance(sys.stderr, GuardedStream):
        return lambda: None
    sys.stdout = GuardedStream(sys.stdout, actions=actions)
    sys.stderr = GuardedStream(sys.stderr, actions=actions)

    def restore() -> None:
        for stream in (sys.stdout, sys.stderr):
            if isinstance(stream, GuardedStream):
                stream.close()
        sys.stdout, sys.stderr = previous

    return restore
