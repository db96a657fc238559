"""Sticky comment and suggestion reviews end to end against the GitHub stand-in (real HTTP)."""

from __future__ import annotations

from typing import Iterator

import pytest

from gpo_action.errors import GitHubError
from gpo_action.github.client import GitHubClient
from gpo_action.github.comments import ACTIONS_BOT, MAX_COMMENT_CHARS, comment_author, upsert_sticky_comment
from gpo_action.github.reviews import REVIEW_MARKER, fix_hash, post_suggestions
from gpo_action.github.suggestions import ReviewComment, SuggestionPlan, plan_suggestions, suggestion_body
from gpo_action.report.markdown import MARKER
from tests.support.github_server import GitHubServer

REPO = "octo-org/hello-world"
PATH = "prompts/triage.j2"
BASE = "".join(f"line {i}\n" for i in range(1, 41))
HEAD_SHA = "a" * 40


def edit(text: str, replace: dict[int, list[str]]) -> str:
    lines = text.splitlines()
    return "".join(f"{new}\n" for n, line in enumerate(lines, 1) for new in replace.get(n, [line]))


HEAD = edit(BASE, {10: ["Classify the ticket.", "Reply briefly."]})       # what the PR changed


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer(repository=REPO) as server:
        yield server


@pytest.fixture
def client(github: GitHubServer) -> Iterator[GitHubClient]:
    with GitHubClient(github.token, github.url, REPO, sleep=lambda s: None) as c:
        yield c


def plan_from_github(client: GitHubClient, number: int, improved: str, head: str = HEAD) -> SuggestionPlan:
    patch = {f.filename: f.patch for f in client.list_pull_files(number)}.get(PATH)
    return plan_suggestions(PATH, head, improved, patch)


# ---- sticky comment ------------------------------------------------------------------------
def test_sticky_comment_is_created_once_then_updated_in_place(github, client):
    github.add_pull(5)
    human = github.add_issue_comment(5, f"Why does the bot write {MARKER} into its comments?")
    comment_id, created = upsert_sticky_comment(client, 5, f"{MARKER}\nfirst report")
    assert created
    again_id, created = upsert_sticky_comment(client, 5, f"{MARKER}\nsecond report")
    assert (again_id, created) == (comment_id, False)
    comments = github.issue_comments(5)
    bot = [c for c in comments if c["user"]["type"] == "Bot"]
    assert len(bot) == 1 and bot[0]["id"] == comment_id and bot[0]["body"].endswith("second report")
    assert next(c for c in comments if c["id"] == human["id"])["body"] == human["body"]   # left alone
    assert [r.path for r in github.requests_to("PATCH", "")] == [f"/repos/{REPO}/issues/comments/{comment_id}"]
    assert len(github.requests_to("POST", "")) == 1


def test_sticky_comment_is_found_beyond_the_first_page(github, client):
    github.add_pull(5)
    for i in range(5):
        github.add_issue_comment(5, f"chatter {i}")
    old = github.add_issue_comment(5, f"{MARKER}\nold report", login="github-actions[bot]", user_type="Bot")
    github.set_page_size(2)
    assert upsert_sticky_comment(client, 5, "new report") == (old["id"], False)
    assert github.issue_comments(5)[-1]["body"] == f"{MARKER}\nnew report"    # marker added when missing
    assert len(github.requests_to("GET", "comments")) == 3


def test_identical_body_is_not_patched(github, client):
    github.add_pull(5)
    upsert_sticky_comment(client, 5, "report")
    upsert_sticky_comment(client, 5, "report")
    assert github.requests_to("PATCH", "") == []


def test_comment_by_a_personal_token_user_is_recognised_when_named(github):
    github.login, github.user_type = "release-robot", "User"
    client = GitHubClient(github.token, github.url, REPO, sleep=lambda s: None)
    github.add_pull(5)
    first, _ = upsert_sticky_comment(client, 5, "one", authors=("release-robot",))
    assert upsert_sticky_comment(client, 5, "two", authors=("release-robot",)) == (first, False)
    assert len(github.issue_comments(5)) == 1


def test_the_default_token_has_no_user_so_its_comments_are_github_actions_bots(github, client):
    assert client.viewer_login() is None                              # GitHub's 403 for an installation token
    [lookup] = github.requests_to("GET", r"^/user$")
    assert lookup.status == 403
    assert comment_author(client) == ACTIONS_BOT
    assert comment_author(client, "gpo-app[bot]") == "gpo-app[bot]"  # another app's installation token


def test_a_personal_token_is_its_users_whatever_the_configured_bot(github):
    github.login, github.user_type = "release-robot", "User"
    with GitHubClient(github.token, github.url, REPO, sleep=lambda s: None) as client:
        assert client.viewer_login() == "release-robot"
        assert comment_author(client, "gpo-app[bot]") == "release-robot"


def test_a_failed_identity_lookup_falls_back_to_the_bot_and_claims_nothing_else(github):
    github.login, github.user_type = "release-robot", "User"
    github.enqueue_faults("500", "500")
    with GitHubClient(github.token, github.url, REPO, sleep=lambda s: None, max_retries=1) as client:
        assert comment_author(client) == ACTIONS_BOT


def test_another_apps_or_a_humans_comment_quoting_the_marker_is_never_taken(github, client):
    github.add_pull(5)
    other = github.add_issue_comment(5, f"> {MARKER}\nquoted by another app", login="other-app[bot]", user_type="Bot")
    human = github.add_issue_comment(5, f"{MARKER} why is this here?", login="octocat")
    authors = (comment_author(client),)
    comment_id, created = upsert_sticky_comment(client, 5, "report", authors=authors)
    assert created and comment_id not in (other["id"], human["id"])
    assert upsert_sticky_comment(client, 5, "report 2", authors=authors) == (comment_id, False)   # ours, in place
    by_id = {c["id"]: c for c in github.issue_comments(5)}
    assert by_id[other["id"]]["body"] == other["body"] and by_id[human["id"]]["body"] == human["body"]
    assert by_id[comment_id]["user"]["login"] == ACTIONS_BOT and by_id[comment_id]["body"].endswith("report 2")
    assert [r.path for r in github.requests_to("PATCH", "")] == [f"/repos/{REPO}/issues/comments/{comment_id}"]


def test_a_personal_tokens_own_comment_is_updated_and_the_actions_bots_is_not(github):
    github.login, github.user_type = "release-robot", "User"
    github.add_pull(5)
    bot = github.add_issue_comment(5, f"{MARKER}\nfrom the GITHUB_TOKEN", login=ACTIONS_BOT, user_type="Bot")
    mine = github.add_issue_comment(5, f"{MARKER}\nold", login="Release-Robot")   # logins ignore case
    with GitHubClient(github.token, github.url, REPO, sleep=lambda s: None) as client:
        assert upsert_sticky_comment(client, 5, "new", authors=(comment_author(client),)) == (mine["id"], False)
    by_id = {c["id"]: c for c in github.issue_comments(5)}
    assert by_id[bot["id"]]["body"] == bot["body"] and by_id[mine["id"]]["body"] == f"{MARKER}\nnew"


def test_too_long_body_is_refused_before_any_request(github, client):
    github.add_pull(5)
    with pytest.raises(GitHubError, match="over GitHub's limit of 65,536"):
        upsert_sticky_comment(client, 5, "x" * MAX_COMMENT_CHARS)
    assert github.requests == []


def test_the_stand_in_refuses_long_bodies_as_github_does(github, client):
    github.add_pull(5)
    with pytest.raises(GitHubError, match="422 Validation Failed: body is too long"):
        client.create_issue_comment(5, "x" * (MAX_COMMENT_CHARS + 1))


# ---- suggestions as a review ---------------------------------------------------------------
def test_suggestions_inside_the_diff_are_posted_as_one_review(github, client):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    improved = edit(HEAD, {10: ["Classify the ticket as billing, bug or other."], 11: ["Reply with the category."],
                           12: ["line 11 (kept)"]})
    plan = plan_from_github(client, 9, improved)
    assert [(c.start_line, c.line) for c in plan.comments] == [(10, 12)] and plan.leftovers == ()
    outcome = post_suggestions(client, 9, HEAD_SHA, plan, "gpo-action found a better prompt.")
    assert outcome.status == "posted" and outcome.ok and outcome.review_id
    (review,) = github.reviews(9)
    assert review["state"] == "COMMENTED" and review["commit_id"] == HEAD_SHA
    assert review["body"].startswith("gpo-action found a better prompt.")
    assert REVIEW_MARKER.search(review["body"]).groups() == (HEAD_SHA, fix_hash(plan.comments))
    (posted,) = github.review_comments(9)
    assert (posted["path"], posted["start_line"], posted["line"], posted["side"]) == (PATH, 10, 12, "RIGHT")
    assert posted["body"] == suggestion_body(["Classify the ticket as billing, bug or other.",
                                              "Reply with the category.", "line 11 (kept)"])
    sent = github.requests_to("POST", "/reviews$")[0].body
    assert sent["event"] == "COMMENT" and sent["commit_id"] == HEAD_SHA


def test_out_of_diff_change_is_never_sent(github, client):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    improved = edit(HEAD, {11: ["Reply with the category only."], 35: ["line 34, reworded"]})
    plan = plan_from_github(client, 9, improved)
    assert [c.line for c in plan.comments] == [11]
    assert [x.change.start for x in plan.leftovers] == [35]
    outcome = post_suggestions(client, 9, HEAD_SHA, plan, "summary")
    assert outcome.status == "posted" and outcome.leftovers == plan.leftovers
    assert [c["line"] for c in github.review_comments(9)] == [11]
    assert 422 not in [r.status for r in github.requests]


@pytest.mark.parametrize("comment, message", [
    ({"line": 35}, "Line could not be resolved"),                               # outside every hunk
    ({"line": 8, "start_line": 2}, "Line could not be resolved"),               # starts before the hunk
    ({"line": 11, "start_line": 11}, "start_line must precede the end line"),
    ({"line": 11, "path": "elsewhere.txt"}, "Path could not be resolved"),
])
def test_the_stand_in_refuses_lines_outside_the_diff(github, client, comment, message):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    good = {"path": PATH, "body": "```suggestion\nok\n```", "line": 11, "side": "RIGHT"}
    bad = {**good, **comment}
    with pytest.raises(GitHubError, match=message) as info:
        client.create_review(9, HEAD_SHA, "review", [good, bad])
    assert info.value.status == 422
    assert github.reviews(9) == [] and github.review_comments(9) == []          # all or nothing
    client.create_review(9, HEAD_SHA, "review", [good])                         # the good one alone passes
    assert len(github.review_comments(9)) == 1


def test_a_refused_review_returns_its_comments_as_leftovers(github, client):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    good = plan_from_github(client, 9, edit(HEAD, {11: ["Reply with the category only."]}))
    stray = ReviewComment(PATH, None, 35, suggestion_body(["line 35, better"]))   # as a buggy caller might
    plan = SuggestionPlan(good.comments + (stray,))
    outcome = post_suggestions(client, 9, HEAD_SHA, plan, "summary")
    assert outcome.status == "failed" and not outcome.ok
    assert "422" in outcome.reason and "Line could not be resolved" in outcome.reason
    assert [(x.path, x.change.end) for x in outcome.leftovers] == [(PATH, 11), (PATH, 35)]
    assert github.reviews(9) == []


def test_review_is_not_repeated_for_the_same_head(github, client):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    plan = plan_from_github(client, 9, edit(HEAD, {11: ["Reply with the category only."]}))
    first = post_suggestions(client, 9, HEAD_SHA, plan, "summary")
    other = plan_from_github(client, 9, edit(HEAD, {11: ["Reply with one word."]}))
    second = post_suggestions(client, 9, HEAD_SHA, other, "summary")
    assert second.status == "skipped" and second.review_id == first.review_id
    assert "already has a gpo-action review" in second.reason
    assert len(github.reviews(9)) == 1


def test_same_fix_for_a_newer_head_is_not_repeated_but_a_new_fix_is(github, client):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    fix = {11: ["Reply with the category only."]}
    post_suggestions(client, 9, HEAD_SHA, plan_from_github(client, 9, edit(HEAD, fix)), "summary")
    # a new push that adds a line at the top: the same suggestion now sits one line lower
    head2 = "Preamble.\n" + HEAD
    github.push(9, {PATH: (BASE, head2)}, head_sha="b" * 40)
    again = plan_from_github(client, 9, edit(head2, {12: fix[11]}), head=head2)
    assert [c.line for c in again.comments] == [12]
    outcome = post_suggestions(client, 9, "b" * 40, again, "summary")
    assert outcome.status == "skipped" and f"already posted for head {HEAD_SHA[:12]}" in outcome.reason
    better = plan_from_github(client, 9, edit(head2, {12: ["Reply with one word."]}), head=head2)
    assert post_suggestions(client, 9, "b" * 40, better, "summary").status == "posted"
    assert [r["commit_id"] for r in github.reviews(9)] == [HEAD_SHA, "b" * 40]


def test_another_apps_review_with_our_marker_does_not_stop_ours_but_our_own_does(github, client):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    plan = plan_from_github(client, 9, edit(HEAD, {11: ["Reply with the category only."]}))
    marker = f"<!-- gpo-action:review head={HEAD_SHA} fix={fix_hash(plan.comments)} -->"
    github.add_review(9, f"quoting it: {marker}", login="other-app[bot]", user_type="Bot")
    github.add_review(9, f"and me: {marker}", login="octocat")
    outcome = post_suggestions(client, 9, HEAD_SHA, plan, "summary", authors=(comment_author(client),))
    assert outcome.status == "posted"
    again = post_suggestions(client, 9, HEAD_SHA, plan, "summary", authors=(comment_author(client),))
    assert again.status == "skipped" and again.review_id == outcome.review_id
    assert [r["user"]["login"] for r in github.reviews(9)] == ["other-app[bot]", "octocat", ACTIONS_BOT]


def test_nothing_to_post_sends_nothing(github, client):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    plan = plan_from_github(client, 9, edit(HEAD, {35: ["far away"]}))
    before = len(github.requests)
    outcome = post_suggestions(client, 9, HEAD_SHA, plan, "summary")
    assert outcome.status == "nothing" and outcome.leftovers == plan.leftovers
    assert len(github.requests) == before


def test_api_failure_while_checking_reviews_is_an_outcome_not_a_crash(github):
    github.add_pull(9, {PATH: (BASE, HEAD)}, head_sha=HEAD_SHA)
    client = GitHubClient(github.token, github.url, REPO, sleep=lambda s: None, max_retries=1)
    plan = plan_from_github(client, 9, edit(HEAD, {11: ["Reply with the category only."]}))
    github.enqueue_faults("500", "500")
    outcome = post_suggestions(client, 9, HEAD_SHA, plan, "summary")
    assert outcome.status == "failed" and "500" in outcome.reason
    assert len(outcome.leftovers) == 1 and github.reviews(9) == []
