"""The event that triggered a GitHub Actions run, read from `$GITHUB_EVENT_PATH`.

A comment event (`COMMENT_EVENTS`: `issue_comment` on a pull request, `pull_request_review_comment`)
carries the comment as `Event.comment`; an `issue_comment` on a plain issue has none. Its head and
base commits are not in the payload (a review comment's copy may be stale): `chatrun.py` reads them
from the API."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from gpo_action.errors import InputError

ZERO_SHA = "0" * 40
COMMENT_EVENTS = ("issue_comment", "pull_request_review_comment")


@dataclass(frozen=True)
class Comment:
    """A comment in a pull request's conversation (`kind` "issue") or on its diff ("review")."""

    id: int
    body: str
    author: str                    # login
    author_type: str               # "User", "Bot", ...
    kind: str                      # "issue" or "review"
    number: int                    # the pull request's
    thread: int | None = None      # review: the first comment of its thread (what a reply answers)


@dataclass(frozen=True)
class PullRequest:
    number: int
    base_ref: str
    base_sha: str
    head_ref: str
    head_sha: str
    base_repo: str                 # owner/name
    head_repo: str | None          # None when the fork was deleted
    default_branch: str | None = None   # the base repository's (the API's `base.repo.default_branch`)

    @property
    def is_fork(self) -> bool:
        return self.head_repo != self.base_repo


@dataclass(frozen=True)
class Event:
    name: str                      # pull_request, push, ...
    repository: str                # owner/name of the repository the workflow runs in
    action: str | None = None
    pull_request: PullRequest | None = None
    before: str | None = None      # push: the previous tip (None for a new branch)
    after: str | None = None
    comment: Comment | None = None  # a comment event on a pull request
    default_branch: str | None = None   # the payload's `repository.default_branch`

    @property
    def base_sha(self) -> str | None:
        if self.pull_request is not None:
            return self.pull_request.base_sha
        return self.before

    @property
    def head_sha(self) -> str | None:
        if self.pull_request is not None:
            return self.pull_request.head_sha
        return self.after


def parse_event(name: str, payload: Mapping[str, Any]) -> Event:
    """Read the fields we use from a webhook payload; unknown event kinds keep only the repository."""
    repository = (payload.get("repository") or {}).get("full_name", "")
    if name in COMMENT_EVENTS:
        default = (payload.get("repository") or {}).get("default_branch")
        return Event(name, repository, payload.get("action"), comment=_comment(name, payload),
                     default_branch=str(default) if default else None)
    pr = payload.get("pull_request")
    if pr is not None:
        head_repo = (pr.get("head") or {}).get("repo")
        pull = PullRequest(
            number=int(pr.get("number") or payload.get("number")),
            base_ref=pr["base"]["ref"],
            base_sha=pr["base"]["sha"],
            head_ref=pr["head"]["ref"],
            head_sha=pr["head"]["sha"],
            base_repo=pr["base"]["repo"]["full_name"],
            head_repo=head_repo["full_name"] if head_repo else None,
        )
        return Event(name, repository, payload.get("action"), pull)
    if name == "push":
        before = payload.get("before")
        after = payload.get("after")
        return Event(
            name, repository, None, None,
            before=None if before in (None, ZERO_SHA) else before,
            after=None if after in (None, ZERO_SHA) else after,
        )
    return Event(name, repository, payload.get("action"))


def _comment(name: str, payload: Mapping[str, Any]) -> Comment | None:
    """The comment of a comment event on a pull request (None: a plain issue's, or no comment)."""
    item = payload.get("comment")
    if not isinstance(item, dict):
        return None
    if name == "issue_comment":
        issue = payload.get("issue") or {}
        if not issue.get("pull_request"):
            return None
        number, kind, thread = issue.get("number"), "issue", None
    else:
        number, kind = (payload.get("pull_request") or {}).get("number"), "review"
        thread = int(item.get("in_reply_to_id") or item["id"])
    user = item.get("user") or {}
    try:
        return Comment(int(item["id"]), str(item.get("body") or ""), str(user.get("login") or ""),
                       str(user.get("type") or ""), kind, int(number), thread)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"the {name} payload lacks the comment's id or the pull request's number ({exc!r})") from None


def load_event(env: Mapping[str, str] | None = None) -> Event | None:
    """The event of this Actions run, or None outside GitHub Actions."""
    env = os.environ if env is None else env
    path = env.get("GITHUB_EVENT_PATH")
    if not env.get("GITHUB_ACTIONS") or not path:
        return None
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the GitHub event payload: {exc}", path=path) from exc
    return parse_event(env.get("GITHUB_EVENT_NAME", ""), payload)
