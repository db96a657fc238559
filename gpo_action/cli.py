"""The command line: parse, call the library, render, exit. No logic lives here.

Exit codes: 0 pass; 1 a gate failed (regression or below a floor); 2 usage or input error, or a
suite not evaluated for want of a model or a key (not on a fork's pull request in the Action, nor
with gate.allow_skipped); 3 provider errors beyond tolerance; 4 internal error: gpo-action failed, not your change (any
exception that is not a `GpoError`: a bug, a disk that fails; printed with its traceback for a
bug report, never reported as a verdict); 130 interrupted (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import os
import sys

import click

from gpo_action import __version__
from gpo_action.errors import InputError
from gpo_action.process import (INTERNAL_ERROR, collect_less, collector_paused, guard_output, handle_errors,
                                notes_printer, report_internal_error, stderr_console, stdout_console,
                                stopped_by_signals)


def run_process() -> None:
    """The process entry (console script, `python -m gpo_action`): `main`, then exit without tearing
    the interpreter down (freeing litellm's modules costs ~1 s); every output is flushed first and
    the cache commits each answer as it arrives, so nothing is lost. The guarded streams stay
    until then (an internal error's traceback is scrubbed too). The cycle collector runs less
    often (`process.collect_less`)."""
    collect_less()
    restore = guard_output()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except Exception:  # noqa: BLE001  (raised outside a command: still ours, still not a verdict)
        report_internal_error()
        code = INTERNAL_ERROR
    restore()  # what the guarded streams held back goes out
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)



@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpo-action")
def main() -> None:
    """Keep LLM prompts from regressing: evaluate, compare with the base branch, propose fixes."""
    click.get_current_context().call_on_close(guard_output())


@main.command("eval")
@click.argument("suites", nargs=-1)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="gpo.yaml to use (default: ./gpo.yaml).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the full results as JSON here.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write JUnit XML here (one testcase per case).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write an HTML report here (one self-contained file: every case, its output and reasons).")
@click.option("--dry-run", is_flag=True, help="Load and validate everything, print the calls it would make; call no model.")
@click.option("--shard", "shard", metavar="K/N",
              help="Evaluate only shard K of N of the cases and write its partial (no result, exit 0); see `merge`.")
@click.option("--partial", "partial_path", type=click.Path(dir_okay=False),
              help="With --shard: write the partial here (default: .gpo/eval-partial-K-of-N.json).")
@handle_errors
def eval_command(suites: tuple[str, ...], config_path: str | None, json_path: str | None, junit_path: str | None,
                 html_path: str | None, dry_run: bool, shard: str | None, partial_path: str | None) -> None:
    """Evaluate the current prompts on their suites (all, or the SUITES named)."""
    if dry_run:
        _dry_run(suites, config_path)
    from gpo_action.eval_pipeline import EvalOptions, execute_eval
    from gpo_action.shards import Shard

    _shard_flags(shard, partial_path, {"--json": json_path, "--junit": junit_path, "--html": html_path})
    options = EvalOptions(suites, config_path, json_path, junit_path, html_path,
                          shard=Shard.parse(shard) if shard else None, partial_path=partial_path)
    outcome = execute_eval(options, os.environ, notes=notes_printer(), watch=_watched("evaluating"))
    if outcome.partial_path is None:  # a shard's result is no result: `merge` gives it
        _finish_eval(outcome)


def _shard_flags(shard: str | None, partial_path: str | None, reports: dict[str, str | None]) -> None:
    if partial_path and not shard:
        raise InputError("--partial names where a shard's partial goes", hint="give --shard K/N with it")
    given = [flag for flag, value in reports.items() if value]
    if shard and given:
        raise InputError(f"a shard writes its partial only, not {', '.join(given)}", hint="give them to `gpo-action merge`")


def _finish_eval(outcome) -> None:
    """Print an eval's table (and what could not be evaluated) and exit with its code."""
    from gpo_action.report.terminal import eval_table

    stdout_console().print(eval_table(outcome.results))
    if outcome.unevaluated:
        click.echo(f"error: {outcome.unevaluated}", err=True)
    sys.exit(outcome.exit_code)


def _watched(description: str):
    """What a command holds around its model calls, given the client: SIGTERM/Ctrl-C handling and a progress bar."""
    import contextlib

    from gpo_action.report.progress import progress_bar

    @contextlib.contextmanager
    def watch(client):
        with stopped_by_signals(client), progress_bar(stderr_console(), description) as on_progress:
            yield on_progress

    return watch


def _dry_run(suites: tuple[str, ...], config_path: str | None) -> None:
    from gpo_action.dryrun import plan_eval
    from gpo_action.report.dryrun import plan_renderable
    from gpo_action.workspace import Workspace

    with Workspace.open(config_path, notes=notes_printer(), env=os.environ) as ws:
        plan = plan_eval(ws, ws.suites(suites))
    stdout_console().print(plan_renderable(plan))
    sys.exit(2 if plan.unavailable else 0)


def _step_printer():
    from gpo_action.report.optimize import step_line

    return lambda suite, report: click.echo(f"fix {suite}: {step_line(report)}", err=True)


def _finish_run(outcome) -> None:
    """Print what a run found (table, fixes, notes) and exit with its code."""
    from gpo_action.report.terminal import outcome_renderable

    if outcome.result.comparisons or outcome.guard:
        stdout_console().print(outcome_renderable(outcome))
    for note in outcome.result.notes:
        click.echo(note, err=True)
    for change in outcome.result.policy.changes:
        click.echo(f"warning: {change.message}", err=True)
    sys.exit(outcome.exit_code)


@main.command("run")
@click.option("--base", "base", help="Base revision to compare with (default: the event's base in GitHub Actions, else the default branch).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="gpo.yaml to use (default: ./gpo.yaml).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the full result as JSON here.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Also write the pull-request comment (Markdown) here.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write JUnit XML here (a testcase per case and side, one per verdict).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Also write an HTML report here (every case, base and head side by side; the fix when one ran).")
@click.option("--optimize/--no-optimize", default=False, help="Try a bounded GPO fix of failing suites (per optimize.when).")
@click.option("--deliver", help="Deliver fixes: comma-separated comment, suggestion, commit (default: optimize.deliver).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write the comment and review it would post here.")
@click.option("--budget-usd", type=click.FloatRange(min=0), help="Dollar cap of all fixes together (default: optimize.budget.max_usd).")
@click.option("--trust-head-config", is_flag=True, help="In GitHub Actions, judge by the head's gpo.yaml, not the base's (locally it always is).")
@click.option("--shard", "shard", metavar="K/N",
              help="Evaluate only shard K of N of the cases and write its partial report (no verdict); see `merge`.")
@click.option("--partial", "partial_path", type=click.Path(dir_okay=False),
              help="With --shard: write the partial here (default: .gpo/partial-K-of-N.json).")
@handle_errors
def run_command(base, config_path, json_path, markdown_path, junit_path, html_path, optimize, deliver, out_dir,
                budget_usd, trust_head_config, shard, partial_path) -> None:
    """Compare prompts and suites with the base revision; exit 1 on a regression."""
    from gpo_action.shards import Shard

    _shard_flags(shard, partial_path, {})
    _run_pipeline(base=base, config=config_path, report_path=json_path, markdown_path=markdown_path,
                  junit_path=junit_path, html_path=html_path, optimize=optimize, deliver=deliver, out_dir=out_dir,
                  budget_usd=budget_usd, trust_head_config=trust_head_config,
                  shard=Shard.parse(shard) if shard else None, partial_path=partial_path)


@main.command("merge")
@click.argument("partials", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--base", "base", help="Base revision the shards compared with (as given to them).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="gpo.yaml to use (default: ./gpo.yaml).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the full result as JSON here.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), help="Also write the pull-request comment (Markdown) here.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Also write JUnit XML here.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report here.")
@click.option("--optimize/--no-optimize", default=False, help="Try a bounded GPO fix of failing suites (per optimize.when), once.")
@click.option("--deliver", help="Deliver fixes: comma-separated comment, suggestion, commit (default: optimize.deliver).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Write the comment and review it would post here.")
@click.option("--budget-usd", type=click.FloatRange(min=0), help="Dollar cap of all fixes together (default: optimize.budget.max_usd).")
@click.option("--trust-head-config", is_flag=True, help="As the shards were run with it.")
@handle_errors
def merge_command(partials, base, config_path, json_path, markdown_path, junit_path, html_path, optimize, deliver,
                  out_dir, budget_usd, trust_head_config) -> None:
    """Merge the partials of `run --shard K/N` or of `eval --shard K/N` (every shard, once) into the
    one run's verdicts, or the one eval's result, as that command on the same checkout would give
    them; exit as it would (run: 1 on a regression)."""
    from gpo_action.evalpartials import are_eval_partials

    if are_eval_partials(partials):
        _merge_eval(partials, config_path, json_path, junit_path, html_path, run_only={
            "--base": base, "--markdown": markdown_path, "--optimize": optimize, "--deliver": deliver,
            "--out": out_dir, "--budget-usd": budget_usd, "--trust-head-config": trust_head_config})
    _run_pipeline(base=base, config=config_path, report_path=json_path, markdown_path=markdown_path,
                  junit_path=junit_path, html_path=html_path, optimize=optimize, deliver=deliver, out_dir=out_dir,
                  budget_usd=budget_usd, trust_head_config=trust_head_config, partials=tuple(partials))


def _merge_eval(partials, config_path, json_path, junit_path, html_path, run_only: dict) -> None:
    """`merge` of eval partials: the eval's table, reports and exit code."""
    from gpo_action.eval_pipeline import EvalOptions, merge_eval

    given = [flag for flag, value in run_only.items() if value not in (None, False)]
    if given:
        raise InputError(f"{', '.join(given)}: only for a run's partials; these are eval partials",
                         hint="an eval's merge takes --config, --json, --junit and --html")
    options = EvalOptions(config=config_path, json_path=json_path, junit_path=junit_path, html_path=html_path)
    with collector_paused():  # an eval's merge makes no model call
        outcome = merge_eval(partials, options, os.environ, notes=notes_printer())
    _finish_eval(outcome)


def _run_pipeline(*, optimize: bool, deliver: str | None, **fields) -> None:
    """`run` and `merge`: the pull-request pipeline with these options, printed, and its exit code."""
    import os

    from gpo_action.action_inputs import Options, parse_deliver
    from gpo_action.pr_pipeline import execute
    from gpo_action.report.progress import progress_bar

    options = Options(mode="fix" if optimize else "check", deliver=parse_deliver(deliver),
                      token=os.environ.get("GITHUB_TOKEN") if deliver else None, **fields)
    with stopped_by_signals(), collector_paused(_calls_no_model(options)), \
            progress_bar(stderr_console(), "evaluating base and head") as on_progress:
        outcome = execute(options, os.environ, sys.stdout, notes=notes_printer(), on_progress=on_progress,
                          on_step=_step_printer())
    _finish_run(outcome)


@main.group("cache")
def cache_group() -> None:
    """The response cache (.gpo/cache.sqlite by default)."""


@cache_group.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--into", "dest", required=True, type=click.Path(dir_okay=False), help="The cache to add them to (made if missing).")
@handle_errors
def cache_merge_command(sources: tuple[str, ...], dest: str) -> None:
    """Add the responses of each SOURCE cache (e.g. every shard's) that DEST lacks; safe while
    another process reads DEST."""
    from pathlib import Path

    from gpo_action.llm.cache import CacheMergeError, ResponseCache

    for source in sources:
        if not Path(source).is_file():
            raise InputError(f"no cache file at {source}", hint="name each shard's .gpo/cache.sqlite")
    with ResponseCache(dest, notes=lambda message: click.echo(f"note: {message}", err=True)) as cache:
        for source in sources:
            try:
                added = cache.merge_from(source)
            except CacheMergeError as exc:
                raise InputError(str(exc)) from None
            click.echo(f"{source}: {added} responses added", err=True)
        click.echo(f"{dest}: {len(cache)} responses")


@main.command("action")
@handle_errors
def action_command() -> None:
    """The GitHub Action's entry point: inputs from INPUT_* variables, the event from GITHUB_EVENT_PATH
    (a pull request's, or a comment's with a `/gpo` command)."""
    import os

    from gpo_action.action_inputs import options_from_inputs
    from gpo_action.github.event import COMMENT_EVENTS
    from gpo_action.pr_pipeline import execute

    options = options_from_inputs(os.environ)
    if os.environ.get("GITHUB_EVENT_NAME") in COMMENT_EVENTS:      # a `/gpo` command in the conversation
        from gpo_action.chatrun import answer_command

        with stopped_by_signals():
            answered = answer_command(options, os.environ, sys.stdout, notes=notes_printer(), on_step=_step_printer())
        if answered.outcome is None:
            click.echo(f"gpo-action: {answered.status}: {answered.reason}", err=True)
            sys.exit(answered.exit_code)
        _finish_run(answered.outcome)
    with stopped_by_signals():
        outcome = execute(options, os.environ, sys.stdout, notes=notes_printer(), on_step=_step_printer())
    _finish_run(outcome)


def _calls_no_model(options) -> bool:
    """A merge that fixes nothing: every outcome comes from the shards' partials."""
    return bool(options.partials) and options.mode != "fix"


@main.command("demo")
@click.option("--quick", is_flag=True, help="A smaller demo (16 cases, one candidate): under a minute.")
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False), help="Build the demo repository here and keep it.")
@handle_errors
def demo_command(quick: bool, keep_dir: str | None) -> None:
    """The whole pull-request pipeline offline on the bundled model: a pull request's edit breaks a prompt,
    the edit is found and a fix proposed, and the comment and review it would post are printed. Exits 0
    when a fix was proposed (the check itself fails: exit 1 in CI), 1 when the demo did not get there."""
    from gpo_action.demo import demo_exit_code, run_demo
    from gpo_action.report.terminal import outcome_renderable

    with stopped_by_signals():
        outcome, shown = run_demo(keep_dir, quick=quick, notes=notes_printer(), say=lambda m: click.echo(m, err=True),
                                  on_step=_step_printer())
    stdout_console().print(outcome_renderable(outcome))
    click.echo(shown)
    sys.exit(demo_exit_code(outcome))


@main.command("optimize")
@click.argument("suite")
@click.option("--preset", help="Optimizer preset: gpo, opro, ape, apo, pe2 (default: optimize.preset, else gpo).")
@click.option("--write", is_flag=True, help="Replace the template with the proposed prompt (only if it improved).")
@click.option("--dry-run", is_flag=True, help="Print the projected calls and cost, and stop.")
@click.option("--resume", is_flag=True, help="Continue the stopped run of this suite (no paid call is repeated).")
@click.option("--steps", type=click.IntRange(min=1), help="Optimisation steps (default: optimize.steps).")
@click.option("--candidates", type=click.IntRange(min=1, max=64), help="Candidates per step (default: optimize.candidates).")
@click.option("--max-calls", type=click.IntRange(min=0), help="Cap on model calls (default: optimize.budget.max_calls).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="gpo.yaml to use (default: ./gpo.yaml).")
@handle_errors
def optimize_command(suite: str, preset: str | None, write: bool, dry_run: bool, resume: bool, steps: int | None,
                     candidates: int | None, max_calls: int | None, config_path: str | None) -> None:
    """Propose a better prompt for SUITE within the budget: GPO, scored on dev, guarded on holdout."""
    from gpo_action.optimize.plan import optimize_exit_code, plan_optimization, project_plan, run_plan, write_proposal
    from gpo_action.report.optimize import projection_table, result_renderable, step_line

    from gpo_action.workspace import Workspace

    with Workspace.open(config_path, notes=notes_printer(), env=os.environ) as ws:
        plan = plan_optimization(ws, suite, preset=preset, steps=steps, candidates=candidates, max_calls=max_calls)
        if dry_run:
            stdout_console().print(projection_table(project_plan(plan, ws.client)))
            return
        with stopped_by_signals(ws.client):  # the engine saves its state, then the interrupt goes on
            result = run_plan(plan, ws.client, resume=resume,
                              on_step=lambda report: click.echo(step_line(report), err=True))
    stdout_console().print(result_renderable(result))
    if write and result.proposed:
        click.echo(f"wrote {write_proposal(result, ws.root)}", err=True)
    sys.exit(optimize_exit_code(result))


@main.command("show")
@click.argument("suite", required=False)
@click.option("--failed", is_flag=True, help="Only cases that failed (on the head, for a run report).")
@click.option("--flipped", is_flag=True, help="Only cases that passed on one side and failed on the other (a run report).")
@click.option("--errors", is_flag=True, help="Only cases that errored (on either side).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Report to read (default: the last one, .gpo/report.json).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="gpo.yaml whose project's last report to read (default: ./gpo.yaml).")
@click.option("--max-chars", type=click.IntRange(min=1), help="Cut each input, expected value and output at this many characters (default: whole).")
@handle_errors
def show_command(suite: str | None, failed: bool, flipped: bool, errors: bool, report_path: str | None,
                 config_path: str | None, max_chars: int | None) -> None:
    """Print each case of the last eval or run report (or of SUITE): input, expected, output(s), reasons.
    The filters may be combined: a case is shown when it matches any."""
    from pathlib import Path

    from gpo_action.report.cases import report_renderable
    from gpo_action.report.lastreport import last_report_path, load_report

    path = report_path or last_report_path(Path(config_path or "gpo.yaml").parent)
    only = [name for name, on in (("failed", failed), ("flipped", flipped), ("errors", errors)) if on]
    stdout_console().print(report_renderable(load_report(path), suite=suite, only=only, max_chars=max_chars))


@main.group("import")
def import_group() -> None:
    """Turn another tool's eval config into a gpo-action project."""


@import_group.command("promptfoo")
@click.argument("config", required=False, type=click.Path())
@click.option("--out", "out_dir", default=".", type=click.Path(file_okay=False), help="Write the project here (default: .).")
@click.option("--force", is_flag=True, help="Overwrite files of an existing project.")
@handle_errors
def import_promptfoo_command(config: str | None, out_dir: str, force: bool) -> None:
    """Write gpo.yaml, prompts/ and evals/ from a promptfooconfig.yaml (default: ./promptfooconfig.yaml).
    Exit 0: all converted; 1: converted, with what was not listed (also in IMPORT-NOTES.md); 2: unreadable."""
    from gpo_action.importers.promptfoo import import_promptfoo

    result = import_promptfoo(config, out_dir, force=force)
    for path in result.written:
        click.echo(f"wrote {path}", err=True)
    for change in result.changes:
        click.echo(f"changed: {change}", err=True)
    for note in result.notes:
        click.echo(f"not converted: {note}")
    click.echo(f"{result.suites} suite(s), {result.cases} case(s); next: gpo-action eval", err=True)
    sys.exit(result.exit_code)


@main.command("init")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@click.option("--matrix", type=int, metavar="N", help="A workflow that evaluates over N shard jobs and merges them in one job.")
@handle_errors
def init_command(force: bool, matrix: int | None) -> None:
    """Write gpo.yaml, one prompt, one suite and a workflow into the current directory."""
    from pathlib import Path

    from gpo_action.scaffold import write_scaffold

    for path in write_scaffold(Path.cwd(), force=force, matrix=matrix):
        rel = path.relative_to(Path.cwd())
        click.echo(f"added .gpo/ to {rel}" if rel.name == ".gitignore" else f"wrote {rel}")
    click.echo("next: gpo-action eval")
