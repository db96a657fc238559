"""The one sticky comment per pull request: found by its hidden marker, updated in place."""

from __future__ import annotations

from typing import Collection

from gpo_action.errors import GitHubError
from gpo_action.github.client import GitHubClient, IssueComment
from gpo_action.report.markdown import MARKER

MAX_COMMENT_CHARS = 65_536  # GitHub: "body is too long (maximum is 65536 characters)", a 422


def find_sticky_comment(comments: Collection[IssueComment], marker: str = MARKER,
                        authors: Collection[str] = ()) -> IssueComment | None:
    """The oldest comment carrying `marker` written by a bot (or by one of `authors`, e.g. the
    login behind a personal token). A human's comment that quotes the marker is never taken."""
    for comment in comments:
        if marker in comment.body and (comment.author_type == "Bot" or comment.author in authors):
            return comment
    return None


def upsert_sticky_comment(client: GitHubClient, number: int, body: str, marker: str = MARKER, *,
                          authors: Collection[str] = ()) -> tuple[int, bool]:
    """Update the sticky comment of pull request `number` to `body`, or create it: (comment id, created).

    The marker is put first when `body` lacks it. A body over GitHub's 65,536 characters raises
    GitHubError before any request: cut it first (`run_markdown(result, max_chars=...)`).
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
