"""The one sticky comment per pull request: found by its hidden marker, updated in place.

Only a comment written by the account the token acts as is ours (`comment_author`): another
app's or a person's comment that quotes the marker is never touched.
"""

from __future__ import annotations

from typing import Collection

from gpo_action.errors import GitHubError
from gpo_action.github.client import GitHubClient, IssueComment
from gpo_action.report.markdown import MARKER

MAX_COMMENT_CHARS = 65_536  # GitHub: "body is too long (maximum is 65536 characters)", a 422
ACTIONS_BOT = "github-actions[bot]"  # who writes what the Actions GITHUB_TOKEN posts


def comment_author(client: GitHubClient, app_login: str | None = None) -> str:
    """The login whose comments and reviews are ours: the token's user (`GET /user`); for an
    installation token, which has none, `app_login` (another GitHub App's bot) or the GITHUB_TOKEN's
    github-actions[bot]. When the lookup fails, the same fallback: a duplicate comment at worst,
    never someone else's overwritten."""
    try:
        login = client.viewer_login()
    except GitHubError:
        login = None
    return login or app_login or ACTIONS_BOT


def is_by(login: str, authors: Collection[str]) -> bool:
    """Whether `login` is one of `authors` (GitHub logins are case-insensitive)."""
    return bool(login) and login.casefold() in {a.casefold() for a in authors}


def find_sticky_comment(comments: Collection[IssueComment], marker: str = MARKER,
                        authors: Collection[str] = (ACTIONS_BOT,)) -> IssueComment | None:
    """The oldest comment written by one of `authors` that starts or ends with `marker` (where the
    tool puts its markers: one quoted inside another comment of ours does not make it the sticky one)."""
    for comment in comments:
        body = comment.body.strip()
        if (body.startswith(marker) or body.endswith(marker)) and is_by(comment.author, authors):
            return comment
    return None


def upsert_sticky_comment(client: GitHubClient, number: int, body: str, marker: str = MARKER, *,
                          authors: Collection[str] = (ACTIONS_BOT,)) -> tuple[int, bool]:
    """Update the sticky comment of pull request `number` to `body`, or create it: (comment id, created).

    The marker is put first when `body` lacks it. A body over GitHub's 65,536 characters raises
    GitHubError before any request: cut it first (`report.comment.pr_comment(..., max_chars=...)`).
    """
    if marker not in body:
        body = f"{marker}\n{body}"
    if len(body) > MAX_COMMENT_CHARS:
        raise GitHubError(f"comment body is {len(body):,} characters, over GitHub's limit of "
                          f"{MAX_COMMENT_CHARS:,}; cut it before posting")
    existing = find_sticky_comment(client.list_issue_comments(number), marker, authors)
    if existing is None:
        return client.create_issue_comment(number, body).id, True
    if existing.body != body:
        client.update_issue_comment(existing.id, body)
    return existing.id, False
