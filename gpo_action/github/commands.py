"""GitHub Actions workflow commands: outputs, step summary, masks, annotations, log groups.

Each function writes to the file or stream it is given, so it can be called from anywhere and
tested without an Actions runner. Values are escaped as the runner expects.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from typing import IO, Iterator, Mapping

from gpo_action.files import write_atomic

# GitHub shows at most 10 error annotations per step (and 50 per job); more are dropped silently.
MAX_ERROR_ANNOTATIONS = 10
MAX_SUMMARY_BYTES = 1024 * 1024  # $GITHUB_STEP_SUMMARY is refused above 1 MiB


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def add_mask(value: str, stream: IO[str]) -> None:
    """Ask the runner to replace `value` with *** in every later log line."""
    if value:
        stream.write(f"::add-mask::{_escape_data(value)}\n")


def annotation(level: str, message: str, stream: IO[str], *, file: str | None = None, line: int | None = None,
               title: str | None = None) -> None:
    props = []
    if file:
        props.append(f"file={_escape_property(file)}")
    if line:
        props.append(f"line={line}")
    if title:
        props.append(f"title={_escape_property(title)}")
    head = f"::{level} {','.join(props)}" if props else f"::{level}"
    stream.write(f"{head}::{_escape_data(message)}\n")


@contextmanager
def group(title: str, stream: IO[str]) -> Iterator[None]:
    stream.write(f"::group::{_escape_data(title)}\n")
    try:
        yield
    finally:
        stream.write("::endgroup::\n")


def set_outputs(values: Mapping[str, str], env: Mapping[str, str] | None = None) -> bool:
    """Append `name=value` pairs to $GITHUB_OUTPUT (multi-line values with a delimiter). False outside Actions."""
    env = os.environ if env is None else env
    path = env.get("GITHUB_OUTPUT")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as handle:
        for name, value in values.items():
            value = str(value)
            if "\n" in value:
                delimiter = f"gpo_{uuid.uuid4().hex}"
                handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
            else:
                handle.write(f"{name}={value}\n")
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
