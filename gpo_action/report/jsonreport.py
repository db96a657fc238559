"""Machine-readable reports: plain dicts, written atomically as JSON."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator, Sequence

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


WRITE_CHARS = 1 << 16   # chunks are joined up to this size before each (scrubbed) write
FLAT_DEPTH = 4          # containers this deep (a case, in a report) are written on one line


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write `data` as JSON, atomically, streamed to the file. The outer levels are indented (a
    report's sections, suites, the list of cases); each value FLAT_DEPTH deep (a case) is written on
    one line by the C encoder, which Python's indenting encoder is not: a 20,000-case report took
    seconds to indent. It is never held as one string. Chunks go out joined into pieces of about
    WRITE_CHARS, each scrubbed of secrets whole, so nothing a chunk holds escapes the scrubber."""
    with atomic_writer(path) as handle:
        pending: list[str] = []
        size = 0
        for chunk in _chunks(data, 0):
            pending.append(chunk)
            size += len(chunk)
            if size >= WRITE_CHARS:
                handle.write("".join(pending))
                pending, size = [], 0
        pending.append("\n")
        handle.write("".join(pending))


def _one_encoder() -> Callable[[Any], str]:
    """json.dumps(value, ensure_ascii=False, default=str), with one C encoder made for every call:
    JSONEncoder.encode makes a new one per value, and a report's every case is one (a 20,000-case
    report spent 40% of its encoding there). Reports are trees, so no cycle check."""
    from json.encoder import c_make_encoder, encode_basestring

    if c_make_encoder is None:  # a Python without the C accelerator
        return json.JSONEncoder(ensure_ascii=False, default=str).encode
    encode = c_make_encoder(None, str, encode_basestring, None, ": ", ", ", False, False, True)
    return lambda value: "".join(encode(value, 0))


_flat = _one_encoder()


def _key(key: Any) -> str:
    """A mapping key as json writes it (True as "true", 1.5 as "1.5")."""
    return key if isinstance(key, str) else next(iter(json.loads(json.dumps({key: 0}))))


def _chunks(value: Any, depth: int) -> Iterator[str]:
    if depth >= FLAT_DEPTH or not isinstance(value, (dict, list, tuple)) or not value:
        yield _flat(value)
        return
    inner, outer = "\n" + "  " * (depth + 1), "\n" + "  " * depth
    if isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield f"{',' if i else ''}{inner}{_flat(_key(key))}: "
            yield from _chunks(item, depth + 1)
        yield outer + "}"
    elif depth + 1 >= FLAT_DEPTH:  # items written flat (a suite's cases): one chunk each, no generator
        yield "["
        yield from (f"{',' if i else ''}{inner}{_flat(item)}" for i, item in enumerate(value))
        yield outer + "]"
    else:
        yield "["
        for i, item in enumerate(value):
            yield f"{',' if i else ''}{inner}"
            yield from _chunks(item, depth + 1)
        yield outer + "]"
