"""Base vs head over git (the comparison step of `gpo-action run` and the Action): what changed against
the base -> evaluate base and head -> verdicts.

The base project is read from git objects (written to a temp dir by `gitsnapshot.materialize`, never
checked out) and loaded by the same loaders as the head. Both sides are evaluated in one batch
through one client, so they share its cache and concurrency.

Suites are paired by name; a head suite without a namesake is paired with the base suite whose
file git's rename detection moved to it, else with the one on the same prompt file (`pair_jobs`).
A base suite left unpaired gets the verdict "removed". The policy (`policy.py`) sets each head
suite's floor and model before the comparison.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from gpo_action import __version__, gitrepo, gitsnapshot
from gpo_action.compare import Comparison, Gate, compare, compare_removed, run_exit_code
from gpo_action.config import CONFIG_FILE
from gpo_action.errors import InputError
from gpo_action.evaluate import EvalJob, ProgressFn, evaluate_jobs
from gpo_action.github.event import Event, load_event
from gpo_action.partials import Partial, PartialJob, check_partials, merged_results, summed_usage
from gpo_action.policy import Policy, confine_jobs, load_base_config, resolve_policy
from gpo_action.results import SuiteResult
from gpo_action.shards import Shard, shard_job
from gpo_action.workspace import Workspace

NoteFn = Callable[[str], None]
WORKING_TREE = "working tree"
LOCAL_RUN = "a local run, with your own configuration (in a pull request's GitHub Actions run the base's applies)"
Pair = tuple[EvalJob | None, EvalJob | None]


@dataclass(frozen=True)
class SuiteChange:
    """A suite to compare, and why: its prompt, cases, assertions, model or settings changed."""

    name: str
    reasons: tuple[str, ...]
    prompt: str                      # head prompt path (config-root relative), or base's if removed
    base: EvalJob | None = None
    head: EvalJob | None = None
    base_name: str | None = None     # the base suite's name, when it was renamed


@dataclass(frozen=True)
class RunResult:
    """One base-vs-head run; a run with nothing to evaluate has no changes, comparisons or results."""

    base_sha: str
    changes: tuple[SuiteChange, ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    base_results: tuple[SuiteResult | None, ...] = ()
    head_results: tuple[SuiteResult | None, ...] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    exit_code: int = 0
    project_dir: str = "."           # the config root, relative to the repository root
    policy: Policy = field(default_factory=Policy)
    skips_pass: str | None = None    # why suites that could not be evaluated pass (a fork; gate.allow_skipped)
    partial: Partial | None = None   # a shard's run (`shard`): its outcomes, to merge; no verdicts

    @property
    def head(self) -> str:
        """What is compared with the base: always the working tree (as the reports say)."""
        return WORKING_TREE

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": "gpo-action",
            "version": __version__,
            "kind": "run",
            "base": self.base_sha,
            "head": self.head,
            "exit_code": self.exit_code,
            "project_dir": self.project_dir,
            "regressed": [c.suite for c in self.comparisons if c.verdict == "regressed"],
            "improved": [c.suite for c in self.comparisons if c.verdict == "improved"],
            "removed": [c.suite for c in self.comparisons if c.verdict == "removed"],
            "policy": self.policy.to_dict(),
            "skips_pass": self.skips_pass,
            "changes": [{"suite": c.name, "reasons": list(c.reasons), "prompt": c.prompt, "renamed_from": c.base_name}
                        for c in self.changes],
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
        "settings changed": (suite.repeats, suite.threshold, tuple(c.threshold for c in suite.cases)),
    }


def job_identity(job: EvalJob) -> str:
    """A hash of what `job` evaluates (its suite's name and `_identity`): equal on every shard and
    the merge of one run. The repr hashed is `_identity`'s own, but each assertion's is made once:
    a suite's cases share its default assertions, and a pydantic repr per case took most of it."""
    identity = _identity(job)
    shown: dict[int, _Shown] = {}  # by id(): every assertion is alive until this returns

    def once(assertion: Any) -> _Shown:
        text = shown.get(id(assertion))
        if text is None:
            text = shown[id(assertion)] = _Shown(repr(assertion))
        return text

    identity["assertions changed"] = tuple(type(asserts)(map(once, asserts)) for asserts in identity["assertions changed"])
    return hashlib.sha256(repr((job.suite.name, identity)).encode("utf-8")).hexdigest()


class _Shown:
    """Stands for an object in a repr, by that object's repr."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def run_fingerprint(policy: Policy, gate: Gate, max_error_rate: float, seed: int, changes: Sequence[SuiteChange],
                    labelled: Sequence[tuple[str, EvalJob, str]]) -> str:
    """What a shard's partial must share with the merge's run: the policy, the gate, the seed, the
    changes and every job's identity."""
    data = (policy.to_dict(), gate.to_dict(), max_error_rate, seed,
            [(c.name, c.reasons, c.prompt, c.base_name) for c in changes],
            [(side, job.suite.name, identity) for side, job, identity in labelled])
    return hashlib.sha256(repr(data).encode("utf-8")).hexdigest()


def pair_jobs(base_jobs: Sequence[EvalJob], head_jobs: Sequence[EvalJob],
              renamed: Mapping[str, str] | None = None) -> list[Pair]:
    """(base, head) for every suite: by name; else, for a head suite, the unpaired base suite whose
    file `renamed` (old -> new path, config-root relative) moved to the head's file, else the one
    whose prompt (through `renamed`) is the head's prompt. Head order; unpaired base suites last."""
    renamed = renamed or {}
    names = {j.suite.name for j in head_jobs}
    free = [j for j in base_jobs if j.suite.name not in names]
    by_name = {j.suite.name: j for j in base_jobs}
    pairs: list[Pair] = []
    for head in head_jobs:
        base = by_name.get(head.suite.name)
        if base is None:
            base = next((b for b in free if renamed.get(b.suite.path) == head.suite.path), None) or next(
                (b for b in free if renamed.get(b.suite.prompt, b.suite.prompt) == head.suite.prompt), None)
            if base is not None:
                free.remove(base)
        pairs.append((base, head))
    pairs.extend((base, None) for base in free)
    return pairs


def plan_changes(pairs: Sequence[Pair]) -> list[SuiteChange]:
    """The pairs whose evaluation would differ, saying why (a rename alone evaluates the same)."""
    changes = []
    for base, head in pairs:
        if base is None and head is not None:
            changes.append(SuiteChange(head.suite.name, ("added",), head.suite.prompt, None, head))
        elif head is None and base is not None:
            changes.append(SuiteChange(base.suite.name, ("removed",), base.suite.prompt, base, None))
        elif base is not None and head is not None:
            old, new = _identity(base), _identity(head)
            reasons = tuple(reason for reason in new if old[reason] != new[reason])
            renamed = base.suite.name if base.suite.name != head.suite.name else None
            if reasons:
                reasons = ("renamed",) + reasons if renamed else reasons
                changes.append(SuiteChange(head.suite.name, reasons, head.suite.prompt, base, head, renamed))
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
    policy: Policy | None = None,
    skips_pass: str | None = None,
    shard: Shard | None = None,
    partials: Sequence[Partial] = (),
) -> RunResult:
    """Compare the working tree's prompts and suites with the base revision's; see module doc.

    `workspace` is the head project already opened (its client, with any cache-only models, is
    then shared with whatever runs next, e.g. the fixes); else `config_path` is opened. `policy`
    is the one the workspace's config was made under (`pr_pipeline.execute` makes it); None: the
    head's own applies and what it changes from the base is listed (`local_policy`). A suite that could
    not be evaluated (verdict "skipped") makes the run exit 2 unless `skips_pass` says why it may pass
    (`pr_pipeline`: a fork's pull request) or the gate allows it (`gate.allow_skipped`).

    `shard`: evaluate only the cases it holds and return them as `RunResult.partial`, with no
    verdicts. `partials`: evaluate nothing; take every outcome from these shards' partials (the
    merge), after checking they are exactly the shards of this run (`partials.check_partials`)."""
    env = os.environ if env is None else env
    say = notes or (lambda message: None)
    head_ws = workspace or Workspace.open(config_path, notes=say, env=env)
    try:
        return _run(head_ws, base, env, say, on_progress, seed, policy, skips_pass, shard, tuple(partials))
    finally:
        if workspace is None:  # opened here: stop its worker processes and close its cache
            head_ws.close()


def base_revision(repo, base: str | None, event: Event | None) -> str:
    """The commit the head is compared with: the merge-base of `base` (else the event's base, else
    the default branch) and HEAD."""
    base_ref = base or (event.base_sha if event and event.base_sha else None) or gitrepo.default_branch(repo)
    if base_ref is None:
        raise InputError("cannot tell the base branch", hint="pass --base REF (e.g. --base main)")
    return gitrepo.merge_base(repo, base_ref, gitrepo.head_sha(repo))


def local_policy(head_ws: Workspace, base_sha: str, why: str = LOCAL_RUN) -> Policy:
    """The head's policy, with what it changes from the base's gpo.yaml listed (as warnings)."""
    base_config, _ = load_base_config(head_ws.root, base_sha, head_ws.config.path, env=head_ws.config.environ)
    return resolve_policy(head_ws.config, base_config, enforce=False, why=why)


def _run(head_ws: Workspace, base: str | None, env: Mapping[str, str], say: NoteFn, on_progress: ProgressFn | None,
         seed: int, policy: Policy | None, skips_pass: str | None = None, shard: Shard | None = None,
         partials: tuple[Partial, ...] = ()) -> RunResult:
    event: Event | None = load_event(env)
    with gitrepo.open_repo(head_ws.root) as repo:
        base_sha = base_revision(repo, base, event)
        subdir = gitrepo.to_repo_path(repo, head_ws.root)
        head_sha = gitrepo.head_sha(repo) if shard is not None or partials else ""
        changed = gitrepo.changed_files(repo, base_sha, None)
        if policy is None:
            policy = local_policy(head_ws, base_sha)
        if not _relevant(changed, subdir):
            return _nothing(RunResult(base_sha, project_dir=subdir, policy=policy,
                                      notes=("nothing to evaluate: no prompt, suite or config changed",)),
                            shard, partials, head_sha)
        renamed = _project_renames(gitrepo.renamed_files(repo, base_sha, None), subdir)
        tmp = tempfile.TemporaryDirectory(prefix="gpo-base-")
        snapshot = gitsnapshot.materialize(repo, base_sha, subdir, tmp.name)

    head_jobs = head_ws.jobs(head_ws.suites())
    run_notes: list[str] = list(snapshot.notes) + list(policy.notes)
    name = head_ws.config.path.name if head_ws.config.path is not None else CONFIG_FILE
    with tmp:
        base_jobs = _base_jobs(Path(tmp.name) / name, say, run_notes, env)
        pairs, job_changes = confine_jobs(pair_jobs(base_jobs, head_jobs, renamed), policy, head_ws.task_model)
        policy = policy.adding(job_changes)
        run_notes.extend(f"suite {b.suite.name} was renamed to {h.suite.name}; it evaluates as on the base"
                         for b, h in pairs if b is not None and h is not None and b.suite.name != h.suite.name
                         and _identity(b) == _identity(h))
        changes = plan_changes(pairs)
        if not changes:
            return _nothing(RunResult(base_sha, project_dir=subdir, policy=policy, notes=tuple(run_notes) + (
                "nothing to evaluate: files changed, but no suite would evaluate differently",)),
                shard, partials, head_sha)
        compared = [c for c in changes if c.head is not None]
        labelled = [(side, job, job_identity(job)) for c in compared
                    for side, job in (("base", c.base), ("head", c.head)) if job is not None]
        gate = Gate.from_config(head_ws.config)
        max_error_rate = head_ws.config.max_error_rate
        fingerprint = run_fingerprint(policy, gate, max_error_rate, seed, changes, labelled) if shard or partials else ""
        if partials:
            check_partials(partials, base=base_sha, head=head_sha, fingerprint=fingerprint)
            evaluated = merged_results(partials, labelled)
        else:
            jobs = [shard_job(job, shard) if shard is not None else job for _, job, _ in labelled]
            evaluated = evaluate_jobs(jobs, head_ws.client, judge=head_ws.config.model("judge"), on_progress=on_progress,
                                      embedding=head_ws.config.model("embedding"), embedder=head_ws.client)
        if shard is not None:
            jobs_done = tuple(PartialJob(side, identity, r) for (side, _, identity), r in zip(labelled, evaluated))
            partial = Partial(shard, base_sha, head_sha, fingerprint, jobs_done, head_ws.client.usage.to_dict())
            return RunResult(base_sha, changes=tuple(changes), usage=partial.usage, notes=tuple(run_notes),
                             project_dir=subdir, policy=policy, partial=partial)
        results = iter(evaluated)
        pairs_done = [(next(results) if c.base is not None else None, next(results)) for c in compared]
    run_notes.extend(f"suite {r.name} ({side}): {note}" for pair in pairs_done
                     for side, r in zip(("base", "head"), pair) if r is not None for note in r.notes)
    comparisons = [compare(b, h, gate, max_error_rate=max_error_rate, seed=seed) for b, h in pairs_done]
    removed = [c for c in changes if c.head is None]
    comparisons += [compare_removed(c.name, gate) for c in removed]
    base_results = [b for b, _ in pairs_done] + [None] * len(removed)
    head_results = [h for _, h in pairs_done] + [None] * len(removed)
    changes = compared + removed          # in the order of the comparisons
    if skips_pass is None and gate.allow_skipped:
        skips_pass = "the gate allows it (gate.allow_skipped: true)"
    code = run_exit_code(comparisons, skipped_pass=skips_pass is not None)
    return RunResult(
        base_sha, changes=tuple(changes), comparisons=tuple(comparisons), base_results=tuple(base_results),
        head_results=tuple(head_results), usage=summed_usage(partials) if partials else head_ws.client.usage.to_dict(),
        notes=tuple(run_notes), exit_code=code,
        project_dir=subdir, policy=policy, skips_pass=skips_pass,
    )


def _nothing(result: RunResult, shard: Shard | None, partials: tuple[Partial, ...], head_sha: str) -> RunResult:
    """A run with nothing to evaluate: a shard's partial holds nothing; a merge still checks its partials."""
    if partials:
        check_partials(partials, base=result.base_sha, head=head_sha, fingerprint="")
    if shard is not None:
        return replace(result, partial=Partial(shard, result.base_sha, head_sha, ""))
    return result


def _project_renames(renames: Mapping[str, str], subdir: str) -> dict[str, str]:
    """Repo-relative renames as config-root-relative ones (those inside the project only)."""
    if subdir == ".":
        return dict(renames)
    prefix = subdir.rstrip("/") + "/"
    return {old[len(prefix):]: new[len(prefix):] for old, new in renames.items()
            if old.startswith(prefix) and new.startswith(prefix)}


def _base_jobs(config_file: Path, say: NoteFn, run_notes: list[str], env: Mapping[str, str]) -> list[EvalJob]:
    """The base project's jobs; a base without gpo.yaml (or one that no longer loads) has none."""
    if not config_file.exists():
        run_notes.append(f"the base revision has no {config_file.name}: every suite is evaluated one-sided")
        return []
    try:
        ws = Workspace.open(config_file, notes=say, tree=config_file.parent, env=env)  # the snapshot is the base's whole tree
        return ws.jobs(ws.suites())
    except InputError as exc:
        run_notes.append(f"the base revision's project does not load ({exc}); every suite is evaluated one-sided")
        return []
