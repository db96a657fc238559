"""GitHubClient against the GitHub stand-in over real HTTP: headers, pagination, retries, errors."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Iterator

import pytest

from gpo_action.errors import GitHubError, InputError
from gpo_action.github.client import GitHubClient
from gpo_action.github.event import PullRequest
from tests.support.github_server import GitHubServer

REPO = "octo-org/hello-world"


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    with GitHubServer(repository=REPO) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(github: GitHubServer, sleeps: list[float]) -> Iterator[GitHubClient]:
    with GitHubClient(github.token, github.url, REPO, sleep=sleeps.append) as c:
        yield c


def test_sends_github_headers_and_bearer_token(github, client):
    github.add_pull(1, {"a.txt": ("x\n", "y\n")})
    client.get_pull(1)
    headers = {k.lower(): v for k, v in github.requests[-1].headers.items()}
    assert headers["accept"] == "application/vnd.github+json"
    assert headers["x-github-api-version"] == "2022-11-28"
    assert headers["user-agent"].startswith("gpo-action/")
    assert headers["authorization"] == f"Bearer {github.token}"


def test_pagination_follows_link_across_three_pages(github, client):
    github.add_pull(7)
    for i in range(7):
        github.add_issue_comment(7, f"comment {i}")
    github.set_page_size(3)
    comments = client.list_issue_comments(7)
    assert [c.body for c in comments] == [f"comment {i}" for i in range(7)]
    assert all(c.author == "octocat" and c.author_type == "User" for c in comments)
    gets = github.requests_to("GET", r"/comments$")
    assert len(gets) == 3
    assert gets[0].path == f"/repos/{REPO}/issues/7/comments" and gets[0].query == {"per_page": "100"}
    # later pages are fetched from the Link header exactly as given (GitHub's /repositories/{id} form)
    assert all(g.path.startswith("/repositories/") for g in gets[1:])
    assert [g.query["page"] for g in gets[1:]] == ["2", "3"]


def test_pull_and_its_files(github, client):
    github.add_pull(3, {"prompts/a.j2": ("one\ntwo\n", "one\n2\n"), "new.txt": (None, "hi\n"), "logo.png": None},
                    head_sha="c" * 40, head_repo="someone/fork")
    pull = client.get_pull(3)
    assert pull == PullRequest(3, "main", "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "feature", "c" * 40,
                               REPO, "someone/fork", default_branch="main")
    assert pull.is_fork
    github.set_page_size(1)
    files = client.list_pull_files(3)
    assert [(f.filename, f.status) for f in files] == [("prompts/a.j2", "modified"), ("new.txt", "added"),
                                                       ("logo.png", "modified")]
    assert files[2].patch is None                     # binary or too large: GitHub omits `patch`
    assert files[0].patch == "@@ -1,2 +1,2 @@\n one\n-two\n+2"
    assert files[1].patch == "@@ -0,0 +1 @@\n+hi"


def test_retries_500_and_502_then_succeeds(github, client, sleeps):
    github.add_pull(2)
    github.enqueue_faults("500", "502")
    comment = client.create_issue_comment(2, "hello")
    assert comment.body == "hello" and comment.author_type == "Bot"
    assert sleeps == [1.0, 2.0]                       # exponential backoff
    assert [r.status for r in github.requests] == [500, 502, 201]
    assert len(github.issue_comments(2)) == 1


def test_secondary_rate_limit_honours_retry_after(github, client, sleeps):
    github.add_pull(2)
    github.retry_after = 2
    github.enqueue_faults("secondary-rate-limit")
    client.list_issue_comments(2)
    assert sleeps == [2.0]
    assert [r.status for r in github.requests] == [403, 200]


def test_primary_rate_limit_waits_until_reset(github, client, sleeps):
    github.add_pull(2)
    github.enqueue_faults("rate-limit")
    client.list_issue_comments(2)
    assert len(sleeps) == 1 and 0.0 < sleeps[0] <= 3.0   # x-ratelimit-reset is ~1 s ahead, plus 1 s


def test_rate_limit_longer_than_max_wait_is_not_waited(github, client, sleeps):
    github.add_pull(2)
    github.retry_after = 3600
    github.enqueue_faults("secondary-rate-limit")
    with pytest.raises(GitHubError) as info:
        client.list_issue_comments(2)
    assert sleeps == []
    assert info.value.status == 403
    assert "secondary rate limit" in str(info.value) and "3600" in str(info.value)


def test_gives_up_after_max_retries_with_status_and_message(github, sleeps):
    github.add_pull(2)
    github.enqueue_faults("500", "500", "500")
    client = GitHubClient(github.token, github.url, REPO, sleep=sleeps.append, max_retries=2)
    with pytest.raises(GitHubError) as info:
        client.list_issue_comments(2)
    assert info.value.status == 500
    assert str(info.value) == f"GitHub API GET /repos/{REPO}/issues/2/comments: 500 Server Error"
    assert sleeps == [1.0, 2.0]


def test_html_502_body_gives_the_reason_phrase(github, sleeps):
    github.add_pull(2)
    github.enqueue_faults("502")
    client = GitHubClient(github.token, github.url, REPO, sleep=sleeps.append, max_retries=0)
    with pytest.raises(GitHubError, match="502 Bad Gateway"):
        client.get_pull(2)


def test_not_found_is_not_retried(github, client, sleeps):
    with pytest.raises(GitHubError, match="404 Not Found") as info:
        client.get_pull(999)
    assert info.value.status == 404
    assert sleeps == [] and len(github.requests) == 1


def test_401_never_shows_the_token(github, sleeps):
    secret = "ghp_TopSecretToken1234567890abcdefXYZ"
    client = GitHubClient(secret, github.url, REPO, sleep=sleeps.append)
    github.add_pull(4)
    with pytest.raises(GitHubError) as info:
        client.create_issue_comment(4, f"text quoting {secret}")
    error = info.value
    assert error.status == 401 and "Bad credentials" in str(error)
    assert secret not in str(error) and secret not in repr(error)
    assert secret not in repr(client) and secret not in str(client)
    assert error.__cause__ is None and sleeps == []
    assert client.redact(f"url?t={secret}") == "url?t=***"


def test_link_to_another_host_is_refused(github, sleeps):
    """The stand-in's Link URLs name 127.0.0.1; a client configured with `localhost` must not follow them."""
    github.add_pull(7)
    for i in range(3):
        github.add_issue_comment(7, f"c{i}")
    github.set_page_size(1)
    client = GitHubClient(github.token, f"http://localhost:{github.port}", REPO, sleep=sleeps.append)
    client.get_pull(7)  # same server, reached through another host name
    before = len(github.requests)
    with pytest.raises(GitHubError, match="refusing to send the token"):
        client.list_issue_comments(7)
    assert len(github.requests) == before + 1


def test_connection_errors_are_retried_then_reported(sleeps):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GitHubClient("tok", f"http://127.0.0.1:{port}", REPO, sleep=sleeps.append, max_retries=2)
    with pytest.raises(GitHubError, match="ConnectError") as info:
        client.list_reviews(1)
    assert info.value.status is None
    assert sleeps == [1.0, 2.0]


def test_settings_from_the_environment_and_their_checks(github):
    client = GitHubClient(github.token, env={"GITHUB_API_URL": github.url + "/", "GITHUB_REPOSITORY": REPO})
    assert (client.api_url, client.repository) == (github.url, REPO)
    assert GitHubClient("t", env={"GITHUB_REPOSITORY": REPO}).api_url == "https://api.github.com"
    with pytest.raises(InputError, match="owner/name"):
        GitHubClient("t", "http://x", "not-a-repo", env={})
    with pytest.raises(InputError, match="no GitHub token"):
        GitHubClient("", "http://x", REPO, env={})


def test_importing_the_github_modules_does_not_import_httpx():
    code = ("import sys, json\nimport gpo_action.github.client, gpo_action.github.comments, "
            "gpo_action.github.reviews, gpo_action.github.suggestions\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('httpx', 'litellm'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []


# ---- what a /gpo command needs -----------------------------------------------------------------
@pytest.mark.parametrize("role, expected", [("admin", ("admin", "admin")), ("maintain", ("write", "maintain")),
                                            ("write", ("write", "write")), ("triage", ("read", "triage")),
                                            ("read", ("read", "read"))])
def test_permission_reads_the_collaborator_permission_endpoint(github, client, role, expected):
    github.set_permission("Mona", role)
    assert client.permission("mona") == expected
    [request] = github.requests
    assert request.method == "GET" and request.path == f"/repos/{REPO}/collaborators/mona/permission"


def test_someone_who_is_no_collaborator_has_no_permission(github, client):
    assert client.permission("stranger") == ("none", "")
    assert github.requests[0].status == 404


def test_reactions_go_to_the_issue_or_the_review_comment(github, client):
    github.add_pull(2, {"a.txt": ("x\n", "y\n")})
    issue = github.add_issue_comment(2, "/gpo check")
    review = github.add_review_comment(2, "/gpo explain", path="a.txt", line=1)
    client.add_reaction(issue["id"], "eyes")
    client.add_reaction(review["id"], "eyes", review=True)
    client.add_reaction(issue["id"], "eyes")                          # given already: GitHub answers 200
    assert [(r["on"], r["comment_id"]) for r in github.reactions()] == [("issue", issue["id"]), ("review", review["id"])]
    assert [r.status for r in github.requests] == [201, 201, 200]
    with pytest.raises(GitHubError, match="404"):
        client.add_reaction(review["id"], "eyes")                     # a review comment is not an issue comment


def test_a_reply_goes_into_the_review_comments_thread(github, client):
    github.add_pull(2, {"a.txt": ("x\n", "y\n")})
    first = github.add_review_comment(2, "why?", path="a.txt", line=1)
    reply_id = client.reply_to_review_comment(2, first["id"], "because")
    [_, answer] = github.review_comments(2)
    assert answer["id"] == reply_id and answer["in_reply_to_id"] == first["id"] and answer["body"] == "because"
    assert github.requests[-1].path == f"/repos/{REPO}/pulls/2/comments/{first['id']}/replies"
