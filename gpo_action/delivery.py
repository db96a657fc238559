"""Where a pull request's report and fixes go: the sticky comment, a review of ```suggestion
blocks, a commit on the head branch; to GitHub, or to files (the demo, dry runs).

    target = GitHubTarget(client, number=7, authors=(comment_author(client),))  # or FileTarget(out_dir, ...)
    done = deliver(PullReport(run_result, fix_report), target, pull,
                   DeliverySettings(modes=("suggestion", "comment"), repo_root=root, project_dir="."))
    done.comment                                        # the Markdown that was posted (or written)

Order: the commit first (when chosen and allowed), then the review (skipped when the commit went
out: its lines would sit on an outdated head), then the comment, which says what happened to
each fix. A fix is only delivered when it was proposed (it beat the head prompt on holdout).

Safety: never a push for a fork or a deleted head repository; the commit is made with git's
plumbing on top of the PR's head commit (the working tree and refs are left alone), by a bot
identity (`BOT_NAME`, `BOT_EMAIL`, as author and committer), with "[gpo-action]" in its subject
and the trailer `Gpo-Action: fix`. The loop guard (`is_own_commit`) needs all three: then the
next run still compares (from the cache) and only skips the fix stage; a trailer alone, which
anyone can write, changes nothing. API failures (a read-only token on a fork, a 422) become
notes in the comment or summary; they never fail the run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from gpo_action import gitcommits, gitrepo
from gpo_action.errors import GitError, GitHubError
from gpo_action.files import write_atomic
from gpo_action.github.comments import ACTIONS_BOT, MAX_COMMENT_CHARS
from gpo_action.github.reviews import ReviewOutcome, post_suggestions
from gpo_action.github.suggestions import SuggestionPlan, merge_plans, plan_suggestions, render_diff
from gpo_action.optimize.results import holdout_figures, versus_base
from gpo_action.proposals import PROPOSED_MARKER, proposal_hash, proposal_marker  # noqa: F401  (re-exported)
from gpo_action.report.comment import MAX_CHARS, DeliveryNote, pr_comment
from gpo_action.report.formats import pct
from gpo_action.report.markdown import cell, code

MODES = ("comment", "suggestion", "commit")
BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
COMMIT_MARK = "[gpo-action]"
COMMIT_TRAILER = "Gpo-Action: fix"
_TRAILER = re.compile(r"^Gpo-Action:\s*fix\s*$", re.MULTILINE | re.IGNORECASE)
MAX_FIX_DIFF_CHARS = 8_000                 # a fix's diff shown in the comment; a longer one is pointed to, not cut


def has_fix_trailer(message: str | None) -> bool:
    """True for a commit message that carries the `Gpo-Action: fix` trailer."""
    return bool(message) and bool(_TRAILER.search(message))


def is_own_commit(commit: gitrepo.CommitInfo | None) -> bool:
    """True for a commit `deliver` made: author and committer are the bot identity and the message
    carries the trailer."""
    bot = (BOT_NAME, BOT_EMAIL)
    return commit is not None and commit.author == bot and commit.committer == bot and has_fix_trailer(commit.message)


@dataclass(frozen=True)
class PullContext:
    """What delivery needs to know about the pull request (all None/False outside one)."""

    number: int | None = None
    base_sha: str | None = None
    head_sha: str | None = None          # the PR head commit (not the merge checkout)
    head_ref: str | None = None
    head_repo: str | None = None
    is_fork: bool = False

    @classmethod
    def from_event(cls, event) -> "PullContext":
        pr = getattr(event, "pull_request", None)
        if pr is None:
            return cls()
        return cls(pr.number, pr.base_sha, pr.head_sha, pr.head_ref, pr.head_repo, pr.is_fork)


class Target(Protocol):
    kind: str

    def patch(self, path: str) -> str | None: ...

    def post_review(self, head_sha: str, plan: SuggestionPlan, summary: str) -> ReviewOutcome: ...

    def post_comment(self, body: str, create: bool = True) -> str | None: ...


class GitHubTarget:
    """The real thing: the pull request's files, reviews and sticky comment through the REST client.
    Only comments and reviews by `authors` (the token's identity) are taken for ours."""

    kind = "github"

    def __init__(self, client, number: int, authors: Sequence[str] = (ACTIONS_BOT,)):
        self.client, self.number, self.authors = client, number, tuple(authors)
        self._patches: dict[str, str | None] | None = None

    def patch(self, path: str) -> str | None:
        if self._patches is None:
            self._patches = {f.filename: f.patch for f in self.client.list_pull_files(self.number)}
        return self._patches.get(path)

    def post_review(self, head_sha: str, plan: SuggestionPlan, summary: str) -> ReviewOutcome:
        return post_suggestions(self.client, self.number, head_sha, plan, summary, authors=self.authors)

    def post_comment(self, body: str, create: bool = True) -> str | None:
        """Create or update the sticky comment; with `create` False only update an existing one."""
        from gpo_action.github.comments import find_sticky_comment, upsert_sticky_comment

        if not create:
            existing = find_sticky_comment(self.client.list_issue_comments(self.number), authors=self.authors)
            if existing is None:
                return None
        comment_id, created = upsert_sticky_comment(self.client, self.number, body, authors=self.authors)
        return f"comment {comment_id} ({'created' if created else 'updated'})"


class FileTarget:
    """What would be posted, written to `out_dir`: comment.md and review.json (the review in the
    shape `POST /pulls/{n}/reviews` takes). The PR's diff hunks come from git (base .. head)."""

    kind = "files"
    COMMENT = "comment.md"
    REVIEW = "review.json"

    def __init__(self, out_dir: str | Path, repo_root: str | Path, base_sha: str, head_sha: str | None = None, *,
                 review_commit: str | None = None):
        self.out_dir, self.repo_root = Path(out_dir), Path(repo_root)
        self.base_sha, self.head_sha = base_sha, head_sha          # head None: the working tree
        self.review_commit = review_commit or head_sha               # the commit_id review.json names

    def patch(self, path: str) -> str | None:
        with gitrepo.open_repo(self.repo_root) as repo:
            return gitrepo.diff_patch(repo, self.base_sha, self.head_sha, path)

    def post_review(self, head_sha: str, plan: SuggestionPlan, summary: str) -> ReviewOutcome:
        if not plan.comments:
            reason = "no change lies inside the pull request's diff" if plan.leftovers else "no suggestions"
            return ReviewOutcome("nothing", reason, leftovers=plan.leftovers)
        path = self.out_dir / self.REVIEW
        payload = {"commit_id": head_sha, "event": "COMMENT", "body": summary,
                   "comments": [c.to_api() for c in plan.comments]}
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return ReviewOutcome("posted", "", None, str(path), plan.comments, plan.leftovers)

    def post_comment(self, body: str, create: bool = True) -> str | None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / self.COMMENT
        write_atomic(path, body)
        return str(path)


@dataclass(frozen=True)
class CommitOutcome:
    status: str                          # "pushed", "skipped" or "failed"
    reason: str = ""
    sha: str | None = None
    branch: str | None = None


@dataclass(frozen=True)
class DeliveryResult:
    comment: str                         # the Markdown of the sticky comment
    comment_where: str | None = None     # where it went (None: not posted)
    review: ReviewOutcome | None = None
    commit: CommitOutcome | None = None
    notes: tuple[str, ...] = ()
    suites: Mapping[str, DeliveryNote] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        review = None
        if self.review is not None:
            review = {"status": self.review.status, "reason": self.review.reason, "review_id": self.review.review_id,
                      "url": self.review.html_url, "comments": len(self.review.posted),
                      "leftovers": len(self.review.leftovers)}
        commit = None if self.commit is None else {"status": self.commit.status, "reason": self.commit.reason,
                                                   "sha": self.commit.sha, "branch": self.commit.branch}
        return {"comment_where": self.comment_where, "review": review, "commit": commit, "notes": list(self.notes)}


@dataclass(frozen=True)
class PullReport:
    """What the run found, for the comment and the fixes: the base-vs-head result, the fix stage's
    report (None: no fix stage), the cache-only models and notes for the comment."""

    result: Any                                   # basehead.RunResult
    fixes: Any = None                             # fixes.FixReport | None
    skipped_models: Mapping[str, str] | None = None
    notes: Sequence[str] = ()
    byline: str = ""                              # which `/gpo` command, by whom, made this version


@dataclass(frozen=True)
class DeliverySettings:
    """How to deliver: which of `MODES` (others are ignored), the git repository holding the
    project (`repo_root`), the project's directory inside it, and the remote a commit is pushed to."""

    modes: Sequence[str]
    repo_root: str | Path
    project_dir: str = "."
    remote: str = "origin"


@dataclass
class _Candidate:
    fix: Any
    path: str                            # repo-relative
    head_text: str | None                # the file at the PR head
    problem: str | None = None           # why it cannot be a suggestion or a commit


def deliver(report: PullReport, target: Target | None, pull: PullContext, settings: DeliverySettings) -> DeliveryResult:
    """Commit, review and comment as `settings.modes` say (see the module docstring); never raises
    for an API or push failure."""
    run_result, fixes, repo_root, project_dir = report.result, report.fixes, settings.repo_root, settings.project_dir
    modes = tuple(m for m in settings.modes if m in MODES)
    out_notes: list[str] = []
    candidates = _candidates(fixes, pull, repo_root, project_dir)
    lines: dict[str, list[str]] = {c.fix.suite: [] for c in candidates}
    diffs: dict[str, list[str]] = {c.fix.suite: [] for c in candidates}
    ready = [c for c in candidates if c.problem is None]
    for c in candidates:
        if c.problem is not None:
            lines[c.fix.suite].append(f"Not delivered as a suggestion or commit: {cell(c.problem)}.")

    commit = None
    if "commit" in modes and ready:
        commit = _commit(ready, pull, repo_root, settings.remote)
        for c in ready:
            lines[c.fix.suite].append(_commit_line(commit))
    review = None
    pushed = commit is not None and commit.status == "pushed"
    review_commit = pull.head_sha or getattr(target, "review_commit", None)
    if "suggestion" in modes and ready and not pushed and target is not None and review_commit:
        review = _review(ready, target, review_commit)
        placed = {c.path for c in review.posted}
        for c in ready:
            lines[c.fix.suite].append(_review_line(review, c.path in placed))
    placed = {x.path for x in review.posted} if review is not None and review.status == "posted" else set()
    left = {x.path for x in review.leftovers} if review is not None else set()
    for c in candidates:
        if not (pushed or (c.path in placed and c.path not in left)):
            diff = render_diff(c.head_text if c.head_text is not None else c.fix.result.original, c.fix.result.best,
                               c.path)
            diffs[c.fix.suite].append(diff if len(diff) <= MAX_FIX_DIFF_CHARS else
                                      f"*(the diff of {code(c.path)} is {len(diff):,} characters: see the JSON report)*")
            if not lines[c.fix.suite]:
                lines[c.fix.suite].append("The improved prompt, as a diff against the pull request's head:")
    suites = {name: DeliveryNote(tuple(lines[name]), tuple(diffs[name])) for name in lines}
    # hidden, last: what `/gpo apply` may commit for this head (none once it is committed)
    marker = None if pushed else proposal_marker(fixes, pull.head_sha, getattr(run_result, "base_sha", None))
    room = MAX_COMMENT_CHARS - (len(marker) + 1 if marker else 0)
    body = pr_comment(run_result, fixes, suites, report.skipped_models, list(report.notes) + out_notes,
                      byline=report.byline, max_chars=min(MAX_CHARS, room))
    if marker:
        body += "\n" + marker
    where = None
    if "comment" in modes and target is not None:
        try:
            # nothing to evaluate: refresh an earlier comment (it may be stale), never start one, unless
            # the pull request changes the policy (that is said in a comment, even with no verdict)
            policy = getattr(run_result, "policy", None)
            refused = policy is not None and policy.enforced and bool(policy.changes)
            where = target.post_comment(body, create=bool(run_result.comparisons) or refused)
        except GitHubError as exc:
            out_notes.append(f"could not post the pull request comment: {exc} (a pull request from a fork gets a "
                             "read-only token; the report is in the job summary)")
    return DeliveryResult(body, where, review, commit, tuple(out_notes), suites)


def _candidates(fixes, pull: PullContext, repo_root, project_dir: str) -> list[_Candidate]:
    if fixes is None:
        return []
    out = []
    prefix = "" if project_dir in ("", ".") else project_dir.rstrip("/") + "/"
    with gitrepo.open_repo(repo_root) as repo:
        for fix in fixes.proposed:
            path = prefix + fix.prompt
            head_text = None
            if pull.head_sha:
                try:
                    head_text = gitrepo.read_file(repo, pull.head_sha, path)
                except GitError:
                    head_text = None
            else:
                file = gitrepo.from_repo_path(repo, path)
                head_text = file.read_text(encoding="utf-8") if file.exists() else None
            candidate = _Candidate(fix, path, head_text)
            if head_text is None:
                candidate.problem = f"{path} is not at the pull request's head commit in this clone"
            elif head_text != fix.result.original:
                candidate.problem = (f"{path} at the pull request's head differs from the prompt that was optimized "
                                     "(the checkout is a merge with a base that changed it too)")
            out.append(candidate)
    return out


def _review(ready: list[_Candidate], target: Target, head_sha: str) -> ReviewOutcome:
    try:
        plan = merge_plans(plan_suggestions(c.path, c.head_text, c.fix.result.best, target.patch(c.path))
                           for c in ready)
    except GitHubError as exc:
        return ReviewOutcome("failed", f"could not read the pull request's diff: {exc}")
    names = ", ".join(code(c.fix.suite) for c in ready)
    summary = (f"**gpo-action** proposes {_what(ready)} for " + names + ": "
               + "; ".join(f"{cell(c.fix.suite)} {_figures(c.fix.result, '→')}, {c.fix.result.edit_words} words changed"
                           for c in ready)
               + ". Each suggestion replaces exactly the changed lines; details in the gpo-action comment.")
    return target.post_review(head_sha, plan, summary)


def _figures(result, arrow: str) -> str:
    held = holdout_figures(result.original_holdout, result.best_holdout, result.holdout_p, result.holdout_paired, arrow)
    versus = versus_base(result)
    return f"{held}, {versus}" if versus else held


def _what(ready: Sequence[Any]) -> str:
    """What is proposed: the revert of the located edits, a GPO-refined prompt, or fixes of both kinds."""
    kinds = set()
    for c in ready:
        culprits = len((c.fix.result.location or {}).get("culprits") or ())
        kinds.add(("the revert of the edit behind the drop" if culprits == 1 else
                   f"the revert of the {culprits} edits behind the drop") if c.fix.result.located_fix
                  else "a GPO-refined prompt")
    return kinds.pop() if len(kinds) == 1 else "fixes"


def _review_line(review: ReviewOutcome, placed: bool) -> str:
    if review.status == "posted" and placed:
        where = f"[a review]({review.html_url})" if review.html_url.startswith("http") else "a review"
        extra = " (changes outside the pull request's diff are shown below)" if review.leftovers else ""
        return f"Suggested in {where}: accept it with one click{extra}."
    if review.status == "skipped":
        return f"Already suggested: {cell(review.reason)}."
    if review.status == "failed":
        return f"Could not post the suggestion: {cell(review.reason)}; the diff is below."
    return "Not a suggestion: its lines lie outside the pull request's diff; the diff is below."


def _commit_line(commit: CommitOutcome) -> str:
    if commit.status == "pushed":
        return f"Committed as {code((commit.sha or '')[:12])} to {code(commit.branch)}."
    return f"Not committed: {cell(commit.reason)}."


def commit_message(ready: Sequence[Any], number: int | None) -> str:
    paths = ", ".join(c.path for c in ready)
    lines = [f"{COMMIT_MARK} Improve {paths}", ""]
    for c in ready:
        r = c.fix.result
        lines.append(f"Suite {c.fix.suite}: {_figures(r, '->')}, "
                     f"dev {pct(r.original_dev)} -> {pct(r.best_dev)}, {r.edit_words} words changed.")
    where = f" for pull request #{number}" if number else ""
    what = _what(ready)
    lines += ["", f"{what[0].upper()}{what[1:]}, proposed by gpo-action{where}.", "", COMMIT_TRAILER]
    return "\n".join(lines) + "\n"


def _commit(ready: list[_Candidate], pull: PullContext, repo_root, remote: str) -> CommitOutcome:
    if pull.number is None or not pull.head_sha:
        return CommitOutcome("skipped", "not a pull request")
    if pull.head_repo is None:
        return CommitOutcome("skipped", "the pull request's head repository was deleted")
    if pull.is_fork:
        return CommitOutcome("skipped", "the head branch is in a fork; gpo-action never pushes to forks")
    if not pull.head_ref:
        return CommitOutcome("skipped", "the head branch is unknown")
    try:
        with gitrepo.open_repo(repo_root) as repo:
            sha = gitcommits.commit_files(repo, pull.head_sha, {c.path: c.fix.result.best for c in ready},
                                          commit_message(ready, pull.number), BOT_NAME, BOT_EMAIL)
            gitcommits.push(repo, remote, pull.head_ref, rev=sha)
    except GitError as exc:
        return CommitOutcome("failed", str(exc), branch=pull.head_ref)
    return CommitOutcome("pushed", "", sha, pull.head_ref)
