"""GitHub Actions workflow commands: outputs, step summary, masks, annotations, log groups.

Each function writes to the file or stream it is given, so it can be called from anywhere and
tested without an Actions runner. Values are escaped as the runner expects, and scrubbed of
secrets (`secrets`), except the value of `::add-mask::` itself.

A command goes out through the stream's `write_command` when it has one (`streams.GuardedStream`,
whose free text can start no command of its own; see `neutralize`), else through `write`.
The runner reads a line (split at `\n` and at `\r`) as a command when, after leading white space,
it starts with `::`, or when it holds `##[` followed by a command name anywhere (the legacy form).
"""

from __future__ import annotations

import os
import re
import uuid
from contextlib import contextmanager
from typing import IO, Iterator, Mapping

from gpo_action.files import write_atomic
from gpo_action.secrets import scrub

# GitHub shows at most 10 error annotations per step (and 50 per job); more are dropped silently.
MAX_ERROR_ANNOTATIONS = 10
MAX_SUMMARY_BYTES = 1024 * 1024  # $GITHUB_STEP_SUMMARY is refused above 1 MiB


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


# Where free text would start a command: `::` first on a line (after white space), or `##[`.
_COMMAND_START = re.compile(r"(?<=[\r\n])([^\S\r\n]*)::|##\[")
ZERO_WIDTH = "\u200b"  # not white space to the runner (.NET Char.IsWhiteSpace), invisible in the log


def neutralize(text: str, at_line_start: bool = True, mark: str = ZERO_WIDTH) -> str:
    """`text` as free text of the log: `mark` goes before each `::` that would start a line's
    command and into each `##[`, so the runner reads no command in it. `at_line_start`: whether
    `text` begins a line."""
    if "::" not in text and "##[" not in text:
        return text
    work = ("\n" if at_line_start else "x") + text
    return _COMMAND_START.sub(lambda m: f"{m.group(1)}{mark}::" if m.group(0) != "##[" else f"#{mark}#[", work)[1:]


def _issue(stream: IO[str], line: str) -> None:
    writer = getattr(stream, "write_command", None)
    (writer or stream.write)(line)


def add_mask(value: str, stream: IO[str]) -> None:
    """Ask the runner to replace `value` with *** in every later log line."""
    if value:
        _issue(stream, f"::add-mask::{_escape_data(value)}\n")


def annotation(level: str, message: str, stream: IO[str], *, file: str | None = None, line: int | None = None,
               title: str | None = None) -> None:
    props = []
    if file:
        props.append(f"file={_escape_property(scrub(file))}")
    if line:
        props.append(f"line={int(line)}")
    if title:
        props.append(f"title={_escape_property(scrub(title))}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    _issue(stream, f"{head}::{_escape_data(scrub(message))}\n")


@contextmanager
def group(title: str, stream: IO[str]) -> Iterator[None]:
    _issue(stream, f"::group::{_escape_data(scrub(title))}\n")
    try:
        yield
    finally:
        _issue(stream, "::endgroup::\n")


_OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def set_outputs(values: Mapping[str, str], env: Mapping[str, str] | None = None) -> bool:
    """Append `name=value` pairs to $GITHUB_OUTPUT, values scrubbed; a value with a line break (`\n`
    or `\r`) goes in the delimited form, with a delimiter the value does not contain. False outside
    Actions."""
    env = os.environ if env is None else env
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return False
    lines = []
    for name, value in values.items():
        if not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"not an output name: {name!r}")
        value = scrub(str(value))
        if "\n" in value or "\r" in value:
            delimiter = f"gpo_{uuid.uuid4().hex}"
            while delimiter in value:
                delimiter = f"gpo_{uuid.uuid4().hex}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write("".join(lines))
    return True


def write_summary(markdown: str, env: Mapping[str, str] | None = None) -> bool:
    """Append to $GITHUB_STEP_SUMMARY, cut to fit its 1 MiB limit. False outside Actions."""
    env = os.environ if env is None else env
    path = env.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    existing = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            existing = handle.read()
    room = MAX_SUMMARY_BYTES - len(existing.encode("utf-8")) - 200
    data = markdown.encode("utf-8")
    if len(data) > room:
        markdown = data[: max(room, 0)].decode("utf-8", "ignore") + "\n\n*(summary cut to fit GitHub's 1 MiB limit)*\n"
    write_atomic(path, existing + markdown)
    return True
