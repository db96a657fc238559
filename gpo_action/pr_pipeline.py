"""The pull-request pipeline as one call: the GitHub Action's entry, also behind `gpo-action run`
and `gpo-action demo`.

    outcome = execute(Options(mode="fix", deliver=("comment", "suggestion")), os.environ, sys.stdout)
    outcome.exit_code, outcome.comment

Steps: reset the run's secrets (`secrets`: every credential-looking variable, the token, each
`api_key_env` value as gpo.yaml, the base's and the suites are read) and, in Actions,
`::add-mask::` each; open the project; decide the policy
(`policy.py`: in GitHub Actions the base revision's gpo.yaml sets the gate, the fix budget and
delivery, the cache and every model endpoint and key, unless `trust-head-config`; locally the
head's applies, with a warning for each difference); serve models that cannot run here (no key:
a fork, a missing secret) from the cache only; `basehead.run` (changed suites, base vs head,
verdicts); `fixes.fix_failures` (mode "fix"), skipped when the head commit is gpo-action's own
fix commit (the loop guard: the verdict still stands); `delivery.deliver` to GitHub (a pull
request event and a token), to files (`out_dir`), or nowhere (the comment is still rendered for
the summary); then the Actions outputs, job summary and annotations, and the JSON report. A `/gpo` command
(`chatrun.py`) passes the pull request's event from the API and a `Request`: its budget and steps,
clamped to the policy's, a line for the comment, a last look at the head before delivering, and
for `/gpo apply` the proposal it delivers in place of a fix stage.

The Action's inputs (`Options`, `options_from_inputs`, from `INPUT_<NAME>` variables: the Docker runner
sets them, the composite action.yml's last step passes each one under the same name) are `action_inputs.py`.
Every run saves its JSON report to the project's `.gpo/report.json` (`report.lastreport`: the last
report, which `gpo-action show` reads), and to `Options.report_path` too when that is another file.
The Action always writes JUnit XML to `.gpo/junit.xml` and the HTML report (`report/htmlreport.py`)
to `.gpo/report.html` (outputs report-path, junit-path, html-path).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Mapping

from gpo_action import gitrepo, secrets
from gpo_action.action_inputs import HTML_FILE, JUNIT_FILE, REPORT_FILE, Options, mask_secrets
from gpo_action.basehead import LOCAL_RUN, RunResult, base_revision, run
from gpo_action.containment import Origin, contain
from gpo_action.delivery import (DeliveryResult, DeliverySettings, FileTarget, GitHubTarget, PullContext, PullReport,
                                 deliver, is_own_commit)
from gpo_action.github.event import load_event
from gpo_action.github.runner import publish_run
from gpo_action.policy import Policy, load_base_config, resolve_policy
from gpo_action.report.comment import pr_comment
from gpo_action.report.jsonreport import INTERRUPTED
from gpo_action.partials import Partial, default_partial_path, load_partial
from gpo_action.report.lastreport import last_report_path, save_report

if TYPE_CHECKING:  # the fix stage (the optimizer's spec and parts) is imported when it runs
    from gpo_action.fixes import FixReport

NoteFn = Callable[[str], None]
# Why a fork's pull request passes with suites that could not be evaluated: the neutral answer is the
# right one there (a maintainer's push, with the secrets, gives the verdict); anywhere else it is exit 2.
FORK_SKIPS = ("this is a pull request from a fork, and GitHub gives a fork's workflow no secrets: "
              "what needs a key was not evaluated, which is expected here and does not fail the check")


@dataclass(frozen=True)
class Outcome:
    result: RunResult
    fixes: FixReport | None = None
    delivery: DeliveryResult | None = None
    comment: str = ""
    exit_code: int = 0
    skipped_models: Mapping[str, str] = field(default_factory=dict)
    guard: str | None = None                        # set when the loop guard skipped the fix stage
    report_path: str | None = None
    refused: str | None = None                      # a `Request` whose delivery was refused, and why


@dataclass(frozen=True)
class Request:
    """A run asked for by a `/gpo` command (`chatrun.py`): its line for the sticky comment, the
    budget and steps asked for (clamped to the policy's: `chatops.clamp`), and `moved()`, asked
    before anything is delivered: why delivering now would be wrong (the head moved), or None;
    for `/gpo apply`, `proposal`: the fixes the sticky comment carries, delivered as the run's own
    (with mode "check": no fix stage, so nothing is searched again)."""

    byline: str
    budget_usd: float | None = None
    steps: int | None = None
    moved: Callable[[], str | None] = field(default=lambda: None)
    proposal: FixReport | None = None               # apply: the fixes the comment carries (`proposals`), not searched again


_FROM_ENV: Any = object()


def execute(options: Options, env: Mapping[str, str], stream: IO[str], *, notes: NoteFn | None = None,
            on_progress=None, on_step=None, event=_FROM_ENV, request: Request | None = None) -> Outcome:
    """Run the pipeline as the module docstring says; the Outcome carries the exit code. `event`
    replaces the one at `$GITHUB_EVENT_PATH` (a comment's run passes its pull request's, read from the
    API); a `request` clamps its budget to the policy's and is delivered only if `moved()` says None."""
    from gpo_action.workspace import Workspace

    secrets.reset(env)
    secrets.remember(options.token)
    masked: set[str] = set()
    mask = (lambda: mask_secrets(stream, masked)) if env.get("GITHUB_ACTIONS") else (lambda: None)
    mask()
    say = notes or (lambda message: None)
    partials = tuple(load_partial(path) for path in options.partials)  # bad input before anything is paid for
    event = load_event(env) if event is _FROM_ENV else event
    pull = PullContext.from_event(event)
    head_ws = Workspace.open(options.config, notes=say, env=env)
    policy = _policy(head_ws, options, env, event)
    clamped: tuple[str, ...] = ()
    if request is not None:
        options, clamped = _clamped(options, request, policy.config.optimize)
    ws = Workspace(policy.config, say)              # no client yet: it is made with the policy's cache
    mask()                                          # the values the head's and the base's api_key_env name
    report_path = _output_path(options.report_path, REPORT_FILE, ws.root, ws.config.tree, "the JSON report")
    junit_path = _output_path(options.junit_path, JUNIT_FILE, ws.root, ws.config.tree, "the JUnit report")
    html_path = _output_path(options.html_path, HTML_FILE, ws.root, ws.config.tree, "the HTML report")
    if options.shard is not None:
        given = options.partial_path or default_partial_path(options.shard)
        partial_path = _output_path(given, default_partial_path(options.shard), ws.root, ws.config.tree, "the partial report")
    last = last_report_path(ws.root, ws.config.tree)
    guard = _loop_guard(ws.root, event)
    ws.skip_unavailable(env)
    _merge_caches(ws, options.merge_caches, say)
    result = run(workspace=ws, base=options.base, env=env, notes=say, on_progress=on_progress, policy=policy,
                 skips_pass=FORK_SKIPS if env.get("GITHUB_ACTIONS") and pull.is_fork else None,
                 shard=options.shard, partials=partials)
    mask()                                          # and those the suites name
    if result.partial is not None:                  # a shard: its partial is all it leaves; the merge judges
        ws.close()
        return _write_partial(result, partial_path, env, say)
    fixes = None
    if options.mode == "fix" and result.comparisons and guard is None:
        try:
            from gpo_action.fixes import fix_failures

            fixes = fix_failures(ws, result, budget_usd=options.budget_usd, steps=options.steps,
                                 candidates=options.candidates, limits=options.limits, on_step=on_step)
        except KeyboardInterrupt:   # SIGTERM or Ctrl-C (the CLI's): the verdicts are known, the fixes are not
            _write_interrupted(Outcome(result, exit_code=INTERRUPTED, skipped_models=ws.client.skipped_models,
                                       report_path=report_path), html_path, last, say)
            raise
    if request is not None and request.proposal is not None:
        fixes = request.proposal                    # apply: exactly what was proposed, checked by chatrun
    skipped = ws.client.skipped_models
    ws.close()  # no model call after this point: stop the worker processes now
    target = _target(options, env, event, pull, ws.root, result)
    modes = options.deliver if options.deliver is not None else tuple(ws.config.optimize.deliver)
    delivery = None
    refused = request.moved() if request is not None else None
    notes = ((guard,) if guard else ()) + clamped + ((refused,) if refused else ())
    byline = request.byline if request is not None else ""
    if target is not None and refused is None:
        delivery = deliver(PullReport(result, fixes, skipped, notes, byline), target, pull,
                           DeliverySettings(modes, repo_root=ws.root, project_dir=result.project_dir))
        comment = delivery.comment
    else:
        comment = pr_comment(result, fixes, skipped_models=skipped, notes=notes, byline=byline)
    outcome = Outcome(result, fixes=fixes, delivery=delivery, comment=comment, exit_code=result.exit_code,
                      skipped_models=skipped, guard=guard, report_path=report_path, refused=refused)
    _write_reports(outcome, options, junit_path, html_path, last, say)
    if junit_path and env.get("GITHUB_ACTIONS"):
        say(f"JUnit XML report: {junit_path} (output junit-path)")
    if html_path and env.get("GITHUB_ACTIONS"):
        say(f"HTML report: {html_path} (output html-path; every case's outputs, for an upload-artifact step)")
    summary = comment + "".join(f"\n> {n}\n" for n in (delivery.notes if delivery else ()))
    outputs = {"proposed": "true" if fixes is not None and fixes.proposed else "false", "junit-path": junit_path or "",
               "html-path": html_path or "", "partial-path": ""}
    publish_run(result, report_path, stream, env, markdown=summary, outputs=outputs)
    return outcome


def _clamped(options: Options, request: Request, section) -> tuple[Options, tuple[str, ...]]:
    """The options with a command's budget and steps, never above the policy's (`section`, the
    base's `optimize` when enforced; the workflow's budget-usd input, when given, is the cap)."""
    from gpo_action.github.chatops import clamp

    cap_usd = options.budget_usd if options.budget_usd is not None else section.budget.max_usd
    usd, steps, notes = clamp(request.budget_usd, request.steps, cap_usd, options.steps or section.steps)
    return replace(options, budget_usd=usd, steps=steps), notes


def _policy(ws, options: Options, env: Mapping[str, str], event) -> Policy:
    """In GitHub Actions the base's gpo.yaml decides, unless the workflow trusts the head's."""
    with gitrepo.open_repo(ws.root) as repo:
        base_sha = base_revision(repo, options.base, event)
    base_config, note = load_base_config(ws.root, base_sha, ws.config.path, env=env)
    if not env.get("GITHUB_ACTIONS"):
        why = LOCAL_RUN
    elif options.trust_head_config:
        why = "the workflow sets trust-head-config: true"
    else:
        why = "GitHub Actions: a pull request is judged by its base's gpo.yaml"
    enforce = bool(env.get("GITHUB_ACTIONS")) and not options.trust_head_config
    policy = resolve_policy(ws.config, base_config, enforce=enforce, why=why, notes=(note,) if note and enforce else ())
    return _without_committed_cache(policy, base_sha) if enforce else policy


def _without_committed_cache(policy: Policy, base_sha: str) -> Policy:
    """The policy with the cache off when the head commits its file (or a sqlite file beside it, or
    a symlink on the way): those are removed from the checkout (`plantedcache`), so neither this run
    nor the workflow's cache save after the job takes them, and this run writes no cache back."""
    from gpo_action.plantedcache import remove_planted_cache

    config = policy.config
    committed = remove_planted_cache(config.cache_path, base_sha)
    if not committed:
        return policy
    note = (f"this pull request commits the response cache ({', '.join(committed)}): it was not read, it was "
            "removed from the checkout (no cache save keeps it), and this run is uncached (a pull request does "
            "not supply the answers it is judged by)")
    cache = config.cache.model_copy(update={"enabled": False})
    return replace(policy, notes=policy.notes + (note,), config=config.model_copy(update={"cache": cache}))


def _loop_guard(root: Path, event) -> str | None:
    """A message when the event's head commit is gpo-action's own fix commit (`is_own_commit`):
    the comparison still runs (from the cache) and its verdict stands; only the fix stage is skipped."""
    head = event.head_sha if event is not None else None
    if not head:
        return None
    with gitrepo.open_repo(root) as repo:
        commit = gitrepo.commit_info(repo, head)
    if is_own_commit(commit):
        return (f"the head commit {head[:12]} is gpo-action's own fix commit (its author and committer are "
                "gpo-action's identity and it carries the `Gpo-Action: fix` trailer): compared, not optimized "
                "again (loop guard)")
    return None


def _target(options: Options, env: Mapping[str, str], event, pull: PullContext, root: Path, result: RunResult):
    if options.out_dir:
        with gitrepo.open_repo(root) as repo:
            commit = pull.head_sha or gitrepo.head_sha(repo)
        return FileTarget(options.out_dir, root, result.base_sha or "HEAD", pull.head_sha, review_commit=commit)
    if options.token and pull.number is not None:
        from gpo_action.github.client import GitHubClient
        from gpo_action.github.comments import comment_author

        repository = env.get("GITHUB_REPOSITORY") or (event.repository if event else None)
        client = GitHubClient(options.token, repository=repository, env=env)
        return GitHubTarget(client, pull.number, authors=(comment_author(client, options.comment_author),))
    return None


def _output_path(given: str | None, default: str, root: Path, tree: Path, what: str) -> str | None:
    """A report's path (refused before anything is paid for). The Action's default (`default`, under
    the project) is contained like every path the project names: a committed `.gpo` symlink must
    not move it out of the tree. A path given on the command line is the user's, used as given."""
    if given is None:
        return None
    path = Path(given)
    if not path.is_absolute() and given == default:
        contain(default, root, tree, Origin(None, None, ""), subject=f"{what}: {default!r}")
        path = root / default
    try:
        return str(path.relative_to(Path.cwd())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


def _merge_caches(ws, sources, say: NoteFn) -> None:
    """Mode merge: the shards' caches into this run's, so the fix stage and the next run are warm. A
    cache that cannot be merged is a note: it only saves calls."""
    from gpo_action.llm.cache import CacheMergeError

    cache = ws.client.cache if sources else None
    for source in sources if cache is not None else ():
        try:
            say(f"cache {source}: {cache.merge_from(source)} responses added to {cache.path}")
        except CacheMergeError as exc:
            say(f"cache {source} not merged: {exc}")


def _write_partial(result: RunResult, path: str, env: Mapping[str, str], say: NoteFn) -> Outcome:
    """A shard's end: its partial (atomic, scrubbed), a line saying what it holds, the Actions output."""
    from gpo_action.github.commands import set_outputs
    from gpo_action.report.jsonreport import write_json

    partial: Partial = result.partial
    write_json(path, partial.to_dict())
    suites = len({j.result.name for j in partial.jobs})
    say(f"shard {partial.shard}: {partial.cases()} case results of {suites} suite(s) written to {path}; "
        "`gpo-action merge` of every shard's partial gives the verdicts")
    if env.get("GITHUB_ACTIONS"):
        set_outputs({"partial-path": path}, env)
    return Outcome(result, exit_code=0, report_path=path)


def report_data(outcome: Outcome) -> dict[str, Any]:
    data = outcome.result.to_dict()
    data["exit_code"] = outcome.exit_code
    data["fixes"] = outcome.fixes.to_dict() if outcome.fixes is not None else None
    data["delivery"] = outcome.delivery.to_dict() if outcome.delivery is not None else None
    data["skipped_models"] = dict(outcome.skipped_models)
    return data


def _write_interrupted(outcome: Outcome, html_path: str | None, last: Path, say: NoteFn) -> None:
    """The partial JSON (and HTML) report of a run stopped in the fix stage (as eval's
    `interrupted_report`): the comparison and its verdicts, no fixes, `"interrupted": true`, exit
    code 130. The stopped fix's run directory (`.gpo/fix/<suite>`) is saved by the optimizer itself."""
    from gpo_action.files import write_atomic
    from gpo_action.report.htmlreport import html_report

    data = {**report_data(outcome), "interrupted": True}
    save_report(data, last, outcome.report_path, notes=say)
    if html_path:
        write_atomic(html_path, html_report(data))


def _write_reports(outcome: Outcome, options: Options, junit_path: str | None, html_path: str | None,
                   last: Path, say: NoteFn) -> None:
    from gpo_action.files import write_atomic

    data = report_data(outcome)
    save_report(data, last, outcome.report_path, notes=say)
    if junit_path:  # each report's module only when it is asked for (an HTML report's is jinja's)
        from gpo_action.report.junit import run_junit

        write_atomic(junit_path, run_junit(outcome.result))
    if html_path:
        from gpo_action.report.htmlreport import html_report

        write_atomic(html_path, html_report(data))
    if options.markdown_path:
        write_atomic(options.markdown_path, outcome.comment)


__all__ = ["Outcome", "execute", "report_data", "FORK_SKIPS"]
