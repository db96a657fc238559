"""Machine-readable reports: plain dicts, written atomically as JSON."""

from __future__ import annotations

import json
from typing import Any, Sequence

from gpo_action import __version__
from gpo_action.evaluate import missing_cases
from gpo_action.files import atomic_writer
from gpo_action.results import SuiteResult

# Exit code of a run stopped by Ctrl-C or SIGTERM.
INTERRUPTED = 130


def eval_report(results: Sequence[SuiteResult], usage: dict[str, Any], exit_code: int) -> dict[str, Any]:
    return {
        "tool": "gpo-action",
        "version": __version__,
        "kind": "eval",
        "exit_code": exit_code,
        "usage": usage,
        "suites": [r.to_dict() for r in results],
    }


def interrupted_report(results: Sequence[SuiteResult], usage: dict[str, Any]) -> dict[str, Any]:
    """The report of a stopped run (results from `evaluate_from_cache`): what finished, scored, and
    per suite the ids of the cases still `missing` (they are errors of type NotEvaluated)."""
    report = eval_report(results, usage, INTERRUPTED)
    report["interrupted"] = True
    report["missing"] = missing_cases(results)
    return report


WRITE_CHARS = 1 << 16   # the encoder's chunks are joined up to this size before each (scrubbed) write


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write `data` as indented JSON, atomically, streamed to the file: a report of 10,000 cases is
    never held as one string (json.dumps with indent needs about 5x the text's size at its peak).
    The encoder's chunks (a key, a string, a comma) go out joined into pieces of about WRITE_CHARS:
    each write is scrubbed of secrets, and a million tiny scrubbed writes cost seconds. Joining whole
    chunks never splits one, so nothing a chunk holds escapes the scrubber."""
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False, default=str)
    with atomic_writer(path) as handle:
        pending: list[str] = []
        size = 0
        for chunk in encoder.iterencode(data):
            pending.append(chunk)
            size += len(chunk)
            if size >= WRITE_CHARS:
                handle.write("".join(pending))
                pending, size = [], 0
        pending.append("\n")
        handle.write("".join(pending))
