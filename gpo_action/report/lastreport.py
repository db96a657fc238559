"""The last report: `eval` and `run` always save their JSON report to the project's
`.gpo/report.json` (`LAST_REPORT`, also the Action's report file), beside any `--json` copy, and
`gpo-action show` reads it back.

    path = last_report_path(ws.root, ws.config.tree)     # contained, before anything is paid for
    save_report(data, path, json_path, notes=say)        # atomic and scrubbed (`write_json`)
    report = load_report(path)                           # -> SavedReport, or an InputError

Reading it back is reading a file anything may have left there: it is parsed into results
(`results.SuiteResult`, `compare.Comparison`) or refused with an `InputError` naming the file and
saying what to run; a report from another gpo-action version is refused too (its shape may differ),
never half-read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

from gpo_action import __version__
from gpo_action.compare import Comparison
from gpo_action.containment import Origin, contain, tree_root
from gpo_action.errors import InputError
from gpo_action.results import SuiteResult

LAST_REPORT = ".gpo/report.json"
WRITERS = "`gpo-action eval` or `gpo-action run` writes it"


def last_report_path(root: str | os.PathLike, tree: str | os.PathLike | None = None) -> Path:
    """`root/.gpo/report.json`, contained in `tree` (default: the repository holding `root`): a
    committed `.gpo` symlink must not lead the write, or the read, out of the tree."""
    tree = tree_root(root) if tree is None else tree
    return contain(LAST_REPORT, root, tree, Origin(None, None, ""), subject=f"the last report {LAST_REPORT!r}")


def save_report(data: Mapping[str, Any], last: str | os.PathLike, also: str | os.PathLike | None = None, *,
                notes: Callable[[str], None] | None = None) -> None:
    """Write `data` to `also` (the `--json` path: asked for, so a failure raises) and to `last`
    unless that is the same file. The last report was not asked for: a failure to write it (a
    read-only checkout, `.gpo` a file) is one note, never the command's end (as for the cache)."""
    from gpo_action.files import copy_atomic
    from gpo_action.report.jsonreport import write_json

    if also is not None:
        write_json(str(also), dict(data))
        if Path(os.path.realpath(also)) == Path(os.path.realpath(last)):
            return
    try:
        if also is not None:  # the same document: copied, not encoded again (seconds for 20,000 cases)
            copy_atomic(also, last)
        else:
            write_json(str(last), dict(data))
    except OSError as exc:
        if notes is not None:
            notes(f"the last report could not be saved at {_shown(last)} ({exc.strerror or exc}): "
                  "`gpo-action show` will not see this run")


@dataclass(frozen=True)
class SavedSuite:
    """One suite of a saved report. An `eval` report has `head` only (the evaluated prompts); a
    `run` report has the verdict and either side (None: the suite is new, or was removed)."""

    name: str
    base: SuiteResult | None
    head: SuiteResult | None
    comparison: Comparison | None = None


@dataclass(frozen=True)
class SavedReport:
    path: str
    kind: Literal["eval", "run"]
    suites: tuple[SavedSuite, ...]
    exit_code: int | None = None
    interrupted: bool = False
    base: str = ""                    # a run's base revision
    notes: tuple[str, ...] = ()


def load_report(path: str | os.PathLike) -> SavedReport:
    """The report at `path`, parsed; InputError when there is none, it is not JSON, not a gpo-action
    report of this version, or not the shape this version writes."""
    shown = _shown(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise InputError(f"no report at {shown}", hint=f"{WRITERS} (or name one with --report PATH)") from None
    except IsADirectoryError:
        raise InputError(f"{shown} is a directory, not a report") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not a JSON report: {exc.msg}", shown, exc.lineno, hint=f"{WRITERS} again") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read the report: {exc}", shown) from None
    if not isinstance(data, dict) or data.get("tool") != "gpo-action" or data.get("kind") not in ("eval", "run"):
        raise InputError("not a gpo-action eval or run report", shown, hint=WRITERS)
    version = data.get("version")
    if version != __version__:
        written = f"gpo-action {version}" if isinstance(version, str) else "another gpo-action version"
        raise InputError(f"the report was written by {written}; this is gpo-action {__version__}", shown,
                         hint=f"{WRITERS} again with this version")
    try:
        return _parse(shown, data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"malformed report ({type(exc).__name__}: {exc})", shown, hint=f"{WRITERS} again") from None


def _shown(path: str | os.PathLike) -> str:
    """`path` as messages give it: relative to the working directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return os.fspath(path)


def _suite(data: Any) -> SuiteResult:
    """`SuiteResult.from_dict`, with the types `show` relies on checked (a ValueError if not)."""
    suite = SuiteResult.from_dict(data)
    if not isinstance(suite.name, str):
        raise ValueError("a suite's name is not a string")
    for case in suite.cases:
        if not isinstance(case.vars, Mapping) or not isinstance(case.case_id, str):
            raise ValueError(f"suite {suite.name!r}: a case's id or vars are not a string and a mapping")
        for sample in case.samples:
            texts = (sample.output, sample.error, sample.error_type)
            if not isinstance(sample.score, (int, float, type(None))) or any(
                    not isinstance(c.score, (int, float)) for c in sample.checks):
                raise ValueError(f"suite {suite.name!r}, case {case.case_id!r}: a score is not a number")
            if any(t is not None and not isinstance(t, str) for t in texts) or any(
                    not isinstance(c.reason, str) or not isinstance(c.type, str) for c in sample.checks):
                raise ValueError(f"suite {suite.name!r}, case {case.case_id!r}: an output, error or reason is not text")
    return suite


def _parse(shown: str, data: dict[str, Any]) -> SavedReport:
    notes = tuple(str(n) for n in data.get("notes", ()))
    if data["kind"] == "eval":
        suites = tuple(SavedSuite(s.name, None, s) for s in (_suite(d) for d in data["suites"]))
        return SavedReport(shown, "eval", suites, data.get("exit_code"), bool(data.get("interrupted")), notes=notes)
    comparisons = [Comparison.from_dict(c) for c in data["comparisons"]]
    bases, heads = data["base_results"], data["head_results"]
    if not len(comparisons) == len(bases) == len(heads):
        raise ValueError("comparisons, base_results and head_results differ in length")
    suites = tuple(
        SavedSuite(str(c.suite), _suite(b) if b is not None else None, _suite(h) if h is not None else None, c)
        for c, b, h in zip(comparisons, bases, heads))
    return SavedReport(shown, "run", suites, data.get("exit_code"), bool(data.get("interrupted")),
                       base=str(data.get("base") or ""), notes=notes)


__all__ = ["LAST_REPORT", "SavedReport", "SavedSuite", "last_report_path", "load_report", "save_report"]
