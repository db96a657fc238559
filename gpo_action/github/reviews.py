"""Post a plan's suggestions as one pull-request review, at most once per head and per fix.

The review body ends with a hidden marker, `<!-- gpo-action:review head=<sha> fix=<hash> -->`,
where the hash covers the suggestions (path and text, not line numbers). A review of ours (by
the account the token acts as, `comments.comment_author`; another app's review quoting the marker
is not) already carrying the same head, or the same fix for an older head, means nothing new to
say: skipped.
GitHub creates a review all or nothing; when it refuses one (a 422 for a line outside the diff,
a 403 for a read-only token) nothing is posted and every planned comment comes back as a
leftover for the sticky comment to show as a diff. Nothing here raises for an API failure.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Collection, Sequence

from gpo_action.errors import GitHubError
from gpo_action.github.client import GitHubClient, Review
from gpo_action.github.comments import ACTIONS_BOT, MAX_COMMENT_CHARS, is_by
from gpo_action.github.suggestions import Change, Leftover, ReviewComment, SuggestionPlan

REVIEW_MARKER = re.compile(r"<!-- gpo-action:review head=([0-9A-Za-z]+) fix=([0-9a-f]+) -->")


@dataclass(frozen=True)
class ReviewOutcome:
    status: str                              # "posted", "skipped", "failed" or "nothing"
    reason: str = ""
    review_id: int | None = None             # the new review, or the earlier one that made us skip
    html_url: str = ""
    posted: tuple[ReviewComment, ...] = ()
    leftovers: tuple[Leftover, ...] = ()     # to show in the sticky comment as a diff
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def fix_hash(comments: Sequence[ReviewComment]) -> str:
    """A short hash of what the suggestions say (path + text), independent of line numbers."""
    data = json.dumps(sorted([c.path, c.body] for c in comments), separators=(",", ":"), ensure_ascii=False)
    return hashlib.blake2b(data.encode("utf-8"), digest_size=8).hexdigest()


def review_marker(head_sha: str, fix: str) -> str:
    return f"<!-- gpo-action:review head={head_sha} fix={fix} -->"


def previous_review(reviews: Sequence[Review], head_sha: str, fix: str,
                    authors: Collection[str] = (ACTIONS_BOT,)) -> tuple[Review, str] | None:
    """An earlier gpo-action review by one of `authors` that makes a new one redundant, and why."""
    for review in reviews:
        if not is_by(review.author, authors):
            continue
        match = REVIEW_MARKER.search(review.body)
        if match is None:
            continue
        head, earlier_fix = match.groups()
        if head == head_sha:
            return review, f"head {head_sha[:12]} already has a gpo-action review"
        if earlier_fix == fix:
            return review, f"the same suggestions were already posted for head {head[:12]}"
    return None


def _as_leftover(comment: ReviewComment, reason: str) -> Leftover:
    change = comment.change or Change(comment.path, comment.start_line or comment.line, comment.line, (), ())
    return Leftover(change, reason)


def post_suggestions(client: GitHubClient, number: int, head_sha: str, plan: SuggestionPlan, summary: str, *,
                     authors: Collection[str] = (ACTIONS_BOT,)) -> ReviewOutcome:
    """One COMMENT review on `head_sha` with every planned suggestion, unless one was posted already."""
    if not plan.comments:
        reason = "no change lies inside the pull request's diff" if plan.leftovers else "no suggestions"
        return ReviewOutcome("nothing", reason, leftovers=plan.leftovers)
    fix = fix_hash(plan.comments)
    marker = review_marker(head_sha, fix)
    try:
        earlier = previous_review(client.list_reviews(number), head_sha, fix, authors)
        if earlier is not None:
            review, reason = earlier
            return ReviewOutcome("skipped", reason, review.id, review.html_url, leftovers=plan.leftovers, fix=fix)
        room = MAX_COMMENT_CHARS - len(marker) - 2
        body = f"{summary[:room]}\n\n{marker}" if summary else marker
        review = client.create_review(number, head_sha, body, [c.to_api() for c in plan.comments])
    except GitHubError as exc:
        reason = f"GitHub refused the review: {exc}"
        unposted = tuple(_as_leftover(c, reason) for c in plan.comments)
        return ReviewOutcome("failed", reason, leftovers=plan.leftovers + unposted, fix=fix)
    return ReviewOutcome("posted", "", review.id, review.html_url, plan.comments, plan.leftovers, fix)
