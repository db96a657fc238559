"""`gpo-action run`: what changed against the base -> evaluate base and head -> verdicts.

The base project is read from git objects (written to a temp dir by `gitrepo.materialize`, never
checked out) and loaded by the same loaders as the head. Both sides are evaluated in one batch
through one client, so they share its cache and concurrency.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from gpo_action import gitrepo
from gpo_action.compare import Comparison, Gate, compare, exit_code as verdict_exit_code
from gpo_action.config import CONFIG_FILE
from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob, ProgressFn, evaluate_jobs
from gpo_action.github.event import Event, load_event
from gpo_action.results import SuiteResult
from gpo_action.workspace import Workspace

NoteFn = Callable[[str], None]
WORKING_TREE = "working tree"


@dataclass(frozen=True)
class SuiteChange:
    """A suite to compare, and why: its prompt, cases, assertions, model or settings changed."""

    name: str
    reasons: tuple[str, ...]
    prompt: str                      # head prompt path (config-root relative), or base's if deleted
    base: EvalJob | None = None
    head: EvalJob | None = None


@dataclass(frozen=True)
class RunResult:
    base_sha: str
    head: str                        # a sha, or "working tree"
    changes: tuple[SuiteChange, ...]
    comparisons: tuple[Comparison, ...]
    base_results: tuple[SuiteResult | None, ...]
    head_results: tuple[SuiteResult | None, ...]
    usage: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    exit_code: int = 0
    project_dir: str = "."           # the config root, relative to the repository root

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": "gpo-action",
            "kind": "run",
            "base": self.base_sha,
            "head": self.head,
            "exit_code": self.exit_code,
            "project_dir": self.project_dir,
            "regressed": [c.suite for c in self.comparisons if c.verdict == "regressed"],
            "improved": [c.suite for c in self.comparisons if c.verdict == "improved"],
            "changes": [{"suite": c.name, "reasons": list(c.reasons), "prompt": c.prompt} for c in self.changes],
            "comparisons": [c.to_dict() for c in self.comparisons],
            "base_results": [r.to_dict() if r else None for r in self.base_results],
            "head_results": [r.to_dict() if r else None for r in self.head_results],
            "usage": dict(self.usage),
            "notes": list(self.notes),
        }


def _identity(job: EvalJob) -> dict[str, Any]:
    suite = job.suite
    return {
        "prompt changed": (job.template.source, dict(job.template.params)),
        "cases changed": tuple((c.id, dict(c.vars), repr(c.expected)) for c in suite.cases),
        "assertions changed": tuple(c.asserts for c in suite.cases),
        "model changed": (job.model.name, tuple(sorted(job.model.public_params().items(), key=str))),
        "settings changed": (suite.repeats, suite.threshold),
    }


def plan_changes(base_jobs: Sequence[EvalJob], head_jobs: Sequence[EvalJob]) -> list[SuiteChange]:
    """Pair suites by name and keep those whose evaluation would differ, saying why."""
    base_by_name = {j.suite.name: j for j in base_jobs}
    head_by_name = {j.suite.name: j for j in head_jobs}
    changes = []
    for name, head in head_by_name.items():
        base = base_by_name.get(name)
        if base is None:
            changes.append(SuiteChange(name, ("added",), head.suite.prompt, None, head))
            continue
        old, new = _identity(base), _identity(head)
        reasons = tuple(reason for reason in new if old[reason] != new[reason])
        if reasons:
            changes.append(SuiteChange(name, reasons, head.suite.prompt, base, head))
    for name, base in base_by_name.items():
        if name not in head_by_name:
            changes.append(SuiteChange(name, ("deleted",), base.suite.prompt, base, None))
    return changes


def _relevant(changes: gitrepo.ChangeSet, subdir: str) -> bool:
    prefix = "" if subdir == "." else subdir.rstrip("/") + "/"
    return any(p.startswith(prefix) and p.lower().endswith(gitrepo.PROJECT_SUFFIXES) for p in changes.changed)


def run(
    config_path: str | os.PathLike | None = None,
    *,
    base: str | None = None,
    env: Mapping[str, str] | None = None,
    notes: NoteFn | None = None,
    on_progress: ProgressFn | None = None,
    seed: int = 0,
    workspace: Workspace | None = None,
) -> RunResult:
    """Compare the working tree's prompts and suites with the base revision's; see module doc.

    `workspace` is the head project already opened (its client, with any cache-only models, is
    then shared with whatever runs next, e.g. the fixes); else `config_path` is opened."""
    env = os.environ if env is None else env
    say = notes or (lambda message: None)
    head_ws = workspace or Workspace.open(config_path, notes=say)
    try:
        return _run(head_ws, base, env, say, on_progress, seed)
    finally:
        if workspace is None:  # opened here: stop its worker processes and close its cache
            head_ws.close()


def _run(head_ws: Workspace, base: str | None, env: Mapping[str, str], say: NoteFn, on_progress: ProgressFn | None,
         seed: int) -> RunResult:
    event: Event | None = load_event(env)
    with gitrepo.open_repo(head_ws.root) as repo:
        base_ref = base or (event.base_sha if event and event.base_sha else None) or gitrepo.default_branch(repo)
        if base_ref is None:
            raise InputError("cannot tell the base branch", hint="pass --base REF (e.g. --base main)")
        base_sha = gitrepo.merge_base(repo, base_ref, gitrepo.head_sha(repo))
        subdir = gitrepo.to_repo_path(repo, head_ws.root)
        changed = gitrepo.changed_files(repo, base_sha, None)
        if not _relevant(changed, subdir):
            return RunResult(base_sha, WORKING_TREE, (), (), (), (), project_dir=subdir,
                             notes=("nothing to evaluate: no prompt, suite or config changed",))
        tmp = tempfile.TemporaryDirectory(prefix="gpo-base-")
        snapshot = gitrepo.materialize(repo, base_sha, subdir, tmp.name)

    head_jobs = head_ws.jobs(head_ws.suites())
    run_notes: list[str] = list(snapshot.notes)
    with tmp:
        base_jobs = _base_jobs(Path(tmp.name), say, run_notes)
        changes = plan_changes(base_jobs, head_jobs)
        if not changes:
            return RunResult(base_sha, WORKING_TREE, (), (), (), (), notes=tuple(run_notes) + (
                "nothing to evaluate: files changed, but no suite would evaluate differently",), project_dir=subdir)
        compared = [c for c in changes if c.head is not None]
        jobs = [job for c in compared for job in (c.base, c.head) if job is not None]
        results = iter(evaluate_jobs(jobs, head_ws.client, judge=head_ws.config.model("judge"), on_progress=on_progress))
        pairs = [(next(results) if c.base is not None else None, next(results)) for c in compared]
    run_notes.extend(f"suite {c.name} was removed in this change; nothing to compare" for c in changes if c.head is None)
    gate = Gate.from_config(head_ws.config)
    comparisons = [compare(b, h, gate, max_error_rate=head_ws.config.max_error_rate, seed=seed) for b, h in pairs]
    base_results = [b for b, _ in pairs]
    head_results = [h for _, h in pairs]
    code = 3 if any(c.verdict == "error" for c in comparisons) else verdict_exit_code(comparisons)
    return RunResult(
        base_sha, WORKING_TREE, tuple(changes), tuple(comparisons), tuple(base_results), tuple(head_results),
        usage=head_ws.client.usage.to_dict(), notes=tuple(run_notes), exit_code=code, project_dir=subdir,
    )


def _base_jobs(root: Path, say: NoteFn, run_notes: list[str]) -> list[EvalJob]:
    """The base project's jobs; a base without gpo.yaml (or one that no longer loads) has none."""
    if not (root / CONFIG_FILE).exists():
        run_notes.append("the base revision has no gpo.yaml: every suite is evaluated one-sided")
        return []
    try:
        ws = Workspace.open(root / CONFIG_FILE, notes=say)
        return ws.jobs(ws.suites())
    except InputError as exc:
        run_notes.append(f"the base revision's project does not load ({exc}); every suite is evaluated one-sided")
        return []
