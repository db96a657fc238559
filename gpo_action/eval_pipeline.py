"""`gpo-action eval` as one call: open the project, evaluate its suites (all, or those named), the
exit code, and the reports (the last report `.gpo/report.json`, `--json`, `--junit`, `--html`).

    outcome = execute_eval(EvalOptions(suites=("triage",)), os.environ, notes=say)
    outcome.results, outcome.exit_code

Stopped (a KeyboardInterrupt: the CLI's SIGTERM/Ctrl-C), it writes the interrupted report (what
finished, scored from the cache, and the cases missing) to the same places, then re-raises. The
CLI renders the table and exits; nothing here prints.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Mapping, Sequence

from gpo_action.evaluate import ProgressFn
from gpo_action.results import SuiteResult

NoteFn = Callable[[str], None]
# What the caller holds around the evaluation, given the client: its signal handling and progress bar.
Watch = Callable[[Any], ContextManager[ProgressFn | None]]


@dataclass(frozen=True)
class EvalOptions:
    suites: tuple[str, ...] = ()       # suite names or files; () = every suite
    config: str | None = None          # gpo.yaml (None: ./gpo.yaml)
    json_path: str | None = None
    junit_path: str | None = None
    html_path: str | None = None


@dataclass(frozen=True)
class EvalOutcome:
    results: tuple[SuiteResult, ...]
    exit_code: int
    unevaluated: str = ""              # what could not be evaluated here, in words ("" when all was)


def execute_eval(options: EvalOptions, env: Mapping[str, str], *, notes: NoteFn | None = None,
                 watch: Watch | None = None) -> EvalOutcome:
    """Evaluate and report as the module docstring says. `watch(client)` is entered around the
    evaluation and yields its progress callback (None: no progress)."""
    from gpo_action.report.lastreport import last_report_path
    from gpo_action.workspace import Workspace

    watch = watch or (lambda client: contextlib.nullcontext())
    with Workspace.open(options.config, notes=notes, env=env) as ws:
        ws.skip_unavailable()
        chosen = ws.suites(options.suites)
        last = last_report_path(ws.root, ws.config.tree)  # `gpo-action show` reads it; refused before any call
        try:
            with watch(ws.client) as on_progress:
                results = ws.evaluate(chosen, on_progress=on_progress)
        except KeyboardInterrupt:  # the calls in flight have ended: the cache does not change under the report
            _write_interrupted(ws.evaluate_cached(chosen), ws.client.usage.to_dict(), last, options, notes)
            raise
    return finish_eval(results, ws.client.usage.to_dict(), ws.client.skipped_models, ws.config.max_error_rate,
                       last, options, notes)


def finish_eval(results: Sequence[SuiteResult], usage: dict[str, Any], skipped_models: Mapping[str, str],
                max_error_rate: float, last, options: EvalOptions, notes: NoteFn | None) -> EvalOutcome:
    """The exit code and every report of evaluated `results`."""
    from gpo_action.report.formats import eval_counts, unevaluated_text
    from gpo_action.report.jsonreport import eval_report
    from gpo_action.workspace import eval_exit_code

    code = eval_exit_code(results, max_error_rate)
    _write_reports(results, eval_report(results, usage, code), last, options, notes)
    return EvalOutcome(tuple(results), code, unevaluated_text(eval_counts(results), skipped_models))


def _write_interrupted(partial: Sequence[SuiteResult], usage: dict[str, Any], last, options: EvalOptions,
                       notes: NoteFn | None) -> None:
    """The partial report: what finished, and which cases are missing (in JUnit, errors of type NotEvaluated)."""
    from gpo_action.report.jsonreport import interrupted_report

    _write_reports(partial, interrupted_report(partial, usage), last, options, notes)


def _write_reports(results: Sequence[SuiteResult], report: dict[str, Any], last, options: EvalOptions,
                   notes: NoteFn | None) -> None:
    from gpo_action.files import write_atomic
    from gpo_action.report.htmlreport import html_report
    from gpo_action.report.junit import eval_junit
    from gpo_action.report.lastreport import save_report

    save_report(report, last, options.json_path, notes=notes)
    if options.junit_path:
        write_atomic(options.junit_path, eval_junit(results))
    if options.html_path:
        write_atomic(options.html_path, html_report(report))


__all__ = ["EvalOptions", "EvalOutcome", "execute_eval", "finish_eval"]
