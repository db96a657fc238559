"""`gpo-action eval` as one call: open the project, evaluate its suites (all, or those named), the
exit code, and the reports (the last report `.gpo/report.json`, `--json`, `--junit`, `--html`).

    outcome = execute_eval(EvalOptions(suites=("triage",)), os.environ, notes=say)
    outcome.results, outcome.exit_code

With `EvalOptions.shard` (`eval --shard K/N`) it evaluates only the cases that shard holds and
writes its partial (`evalpartials.py`) in place of any report: no verdict, exit 0.
`merge_eval(paths, ...)` (`gpo-action merge` given eval partials) evaluates nothing: it checks the
partials against the same eval planned on this checkout and ends as the unsharded eval does
(`finish_eval`: the same exit code and reports).

Stopped (a KeyboardInterrupt: the CLI's SIGTERM/Ctrl-C), it writes the interrupted report (what
finished, scored from the cache, and the cases missing) to the same places, then re-raises. The
CLI renders the table and exits; nothing here prints.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Mapping, Sequence

from gpo_action.evaluate import EvalJob, ProgressFn
from gpo_action.results import SuiteResult
from gpo_action.shards import Shard

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
    shard: Shard | None = None         # evaluate only this shard's cases and write its partial
    partial_path: str | None = None    # where (None: `evalpartials.default_eval_partial_path`)


@dataclass(frozen=True)
class EvalOutcome:
    results: tuple[SuiteResult, ...]
    exit_code: int
    unevaluated: str = ""              # what could not be evaluated here, in words ("" when all was)
    partial_path: str | None = None    # a shard's: where its partial was written


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
        if options.shard is not None:
            return _evaluate_shard(ws, chosen, options, notes or (lambda message: None), watch)
        last = last_report_path(ws.root, ws.config.tree)  # `gpo-action show` reads it; refused before any call
        try:
            with watch(ws.client) as on_progress:
                results = ws.evaluate(chosen, on_progress=on_progress)
        except KeyboardInterrupt:  # the calls in flight have ended: the cache does not change under the report
            _write_interrupted(ws.evaluate_cached(chosen), ws.client.usage.to_dict(), last, options, notes)
            raise
    return finish_eval(results, ws.client.usage.to_dict(), ws.client.skipped_models, ws.config.max_error_rate,
                       last, options, notes)


def merge_eval(paths: Sequence[str], options: EvalOptions, env: Mapping[str, str], *,
               notes: NoteFn | None = None) -> EvalOutcome:
    """The eval the partials at `paths` together make, as one unsharded `eval` on this checkout
    gives it; InputError naming the file for a partial of another eval, a shard missing or twice."""
    from gpo_action.evalpartials import check_eval_partials, load_eval_partial, merged_eval_results, skipped_union
    from gpo_action.partials import summed_usage
    from gpo_action.report.lastreport import last_report_path
    from gpo_action.workspace import Workspace

    partials = [load_eval_partial(path) for path in paths]  # bad input before anything else
    with Workspace.open(options.config, notes=notes, env=env) as ws:
        labelled = _labelled(ws.jobs(ws.suites(partials[0].suites if partials else ())))
        check_eval_partials(partials, _fingerprint(ws, labelled))
        results = merged_eval_results(partials, labelled)
        last = last_report_path(ws.root, ws.config.tree)
    for result in results:  # as `Workspace.evaluate` says them
        for note in result.notes:
            (notes or (lambda message: None))(f"suite {result.name}: {note}")
    return finish_eval(results, summed_usage(partials), skipped_union(partials), ws.config.max_error_rate, last,
                       options, notes)


def _evaluate_shard(ws, chosen, options: EvalOptions, say: NoteFn, watch: Watch) -> EvalOutcome:
    """A shard's eval: its cases of every chosen suite, its partial written (atomic, scrubbed), a
    line saying what it holds. Stopped, it writes nothing: the job is re-run."""
    from gpo_action.evalpartials import EvalPartial, EvalPartialJob, default_eval_partial_path
    from gpo_action.report.jsonreport import write_json
    from gpo_action.shards import shard_job

    shard = options.shard
    path = _partial_path(ws, options.partial_path, default_eval_partial_path(shard))  # refused before any call
    labelled = _labelled(ws.jobs(chosen))
    with watch(ws.client) as on_progress:
        results = ws.evaluate_jobs([shard_job(job, shard) for job, _ in labelled], on_progress)
    partial = EvalPartial(shard, _fingerprint(ws, labelled), tuple(s.name for s in chosen),
                          tuple(EvalPartialJob(identity, r) for (_, identity), r in zip(labelled, results)),
                          ws.client.usage.to_dict(), ws.client.skipped_models)
    write_json(path, partial.to_dict())
    say(f"shard {shard}: {partial.cases()} case results of {len(chosen)} suite(s) written to {path}; "
        "`gpo-action merge` of every shard's partial gives the eval's result")
    return EvalOutcome(tuple(results), 0, partial_path=path)


def _labelled(jobs: Sequence[EvalJob]) -> list[tuple[EvalJob, str]]:
    from gpo_action.basehead import job_identity

    return [(job, job_identity(job)) for job in jobs]


def _fingerprint(ws, labelled: Sequence[tuple[EvalJob, str]]) -> str:
    from gpo_action.evalpartials import eval_fingerprint

    return eval_fingerprint(labelled, judge=ws.config.model("judge"), embedding=ws.config.model("embedding"),
                            max_error_rate=ws.config.max_error_rate)


def _partial_path(ws, given: str | None, default: str) -> str:
    """The path given (the user's, as given), else the default under the project, contained like
    every path the project names (a committed `.gpo` symlink must not move it out of the tree)."""
    from gpo_action.containment import Origin, contain

    if given is not None:
        return given
    path = contain(default, ws.root, ws.config.tree, Origin(None, None, ""), subject=f"the partial report {default!r}")
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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


__all__ = ["EvalOptions", "EvalOutcome", "execute_eval", "finish_eval", "merge_eval"]
