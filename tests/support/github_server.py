"""A GitHub REST API stand-in on 127.0.0.1, for tests: answers like GitHub and records every request.

In a test:

    with GitHubServer() as github:
        github.add_pull(7, {"prompts/triage.j2": (base_text, head_text)}, head_sha="b" * 40)
        github.add_issue_comment(7, "a human's comment", login="octocat")
        github.enqueue_faults("502", "secondary-rate-limit")   # the next two requests fail
        github.set_page_size(2)                                 # force pagination
        client = GitHubClient(github.token, github.url, "octo-org/hello-world")
        ...
        assert github.requests[-1].method == "POST"

Endpoints (under `/repos/{owner}/{repo}` and, as in GitHub's `Link` headers, `/repositories/{id}`):
GET/POST `/issues/{n}/comments`, PATCH `/issues/comments/{id}`, GET `/pulls/{n}`,
GET `/pulls/{n}/files`, GET/POST `/pulls/{n}/reviews`, GET `/pulls/{n}/comments`,
POST `/pulls/{n}/comments/{id}/replies`, POST `/issues/comments/{id}/reactions` and
`/pulls/comments/{id}/reactions`, GET `/collaborators/{user}/permission`; and GET `/user`.

Permissions (`set_permission`): a user named there answers as GitHub does (`permission` admin,
write, read or none, maintain reading as write and triage as read, beside `role_name`); anyone
else is no collaborator: 404. `push_on_get(n, files, after=k)` pushes a new head once GET
`/pulls/{n}` has answered k times: a branch that moves while a run is going on. The pull request's
`base.repo` carries the repository's `default_branch` (`set_default_branch`, default `main`).

The token acts as `login` (default `github-actions[bot]`, type Bot): whatever it creates is
authored by it. A Bot identity is an installation token (the Actions GITHUB_TOKEN, a GitHub App's):
GET `/user` answers 403 "Resource not accessible by integration", as GitHub does. A User identity
is a personal token: GET `/user` answers that user.

What mirrors GitHub (sources in the docstrings below): `Authorization: Bearer|token` or 401 "Bad
credentials"; lists paginated by `per_page` (default 30, max 100) and `page`, with a `Link` header
(next/last/first/prev) whose URLs use `/repositories/{id}`; a file's `patch` is its unified diff
hunks (3 lines of context, no `---`/`+++` header); a review is all-or-nothing: any comment whose
line range is not inside one hunk of that file's diff, on its side, fails the whole review with
422 and stores nothing. Faults, in FIFO order, for the next authenticated requests: "500", "502"
(an HTML body, as GitHub's front end sends), "503", "secondary-rate-limit" (403, `retry-after`),
"rate-limit" (403, `x-ratelimit-remaining: 0` and `x-ratelimit-reset`), "ok".
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlencode

from aiohttp import web

from tests.support.background import BackgroundServer

FAULTS = ("500", "502", "503", "secondary-rate-limit", "rate-limit", "ok")
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
MAX_BODY_CHARS = 65_536
DOCS = "https://docs.github.com/rest"
SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                     "If you reach out to GitHub Support for help, please include the request ID 0000:STANDIN.")
HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int | None = None


@dataclass
class _Pull:
    number: int
    head_ref: str
    base_ref: str
    base_sha: str
    head_repo: str | None
    heads: list[str] = field(default_factory=list)                        # every head sha, oldest first
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # head sha -> files

    @property
    def head_sha(self) -> str:
        return self.heads[-1]


@dataclass
class _Repo:
    id: int
    full_name: str
    issues: set[int] = field(default_factory=set)
    pulls: dict[int, _Pull] = field(default_factory=dict)
    comments: list[dict[str, Any]] = field(default_factory=list)               # issue comments
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    review_comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    reactions: list[dict[str, Any]] = field(default_factory=list)             # {"on", "id", "content", "user"}
    permissions: dict[str, tuple[str, str]] = field(default_factory=dict)     # login (lower) -> (permission, role)
    pending_pushes: dict[int, list[Any]] = field(default_factory=dict)        # number -> [after, files, sha]
    pull_gets: dict[int, int] = field(default_factory=dict)
    default_branch: str = "main"


def split_lines(text: str) -> list[str]:
    """Lines with their "\\n", split as git does (only on "\\n")."""
    parts = text.split("\n")
    return [p + "\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def unified_patch(old: str | None, new: str | None, context: int = 3) -> str:
    """The `patch` GitHub gives for a file: unified diff hunks without the ---/+++ header."""
    lines = list(difflib.unified_diff(split_lines(old or ""), split_lines(new or ""), n=context))[2:]
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out).rstrip("\n")


def hunk_ranges(patch: str | None) -> list[tuple[int, int, int, int]]:
    """(old_start, old_count, new_start, new_count) of each hunk."""
    ranges = []
    for line in (patch or "").split("\n"):
        match = HUNK_HEADER.match(line)
        if match:
            a, b, c, d = match.groups()
            ranges.append((int(a), 1 if b is None else int(b), int(c), 1 if d is None else int(d)))
    return ranges


def sha_of(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class GitHubServer(BackgroundServer):
    """The stand-in in a background thread with its own event loop; setters are thread-safe."""

    thread_name = "github-server"
    description = "GitHub stand-in"

    def __init__(self, token: str = "ghs_StandInToken0123456789abcdefABCDEF", host: str = "127.0.0.1", port: int = 0,
                 repository: str = "octo-org/hello-world", login: str = "github-actions[bot]", user_type: str = "Bot",
                 retry_after: float = 1, reset_in: float = 1):
        super().__init__(host, port)
        self.token = token
        self.repository = repository
        self.login = login                   # the author of whatever the token creates
        self.user_type = user_type
        self.retry_after = retry_after
        self.reset_in = reset_in
        self.page_size: int | None = None    # caps per_page, to force pagination
        self.read_only = False               # the token of a pull request from a fork: every write is a 403
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._faults: deque[str] = deque()
        self._ids = itertools.count(1001)
        self._repo_ids = itertools.count(1_296_269)
        self._repos: dict[str, _Repo] = {}
        self._remaining = 5000
        self._repo(repository)

    # ---- lifecycle -------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    # ---- scripting -------------------------------------------------------------------------
    def _repo(self, full_name: str) -> _Repo:
        if full_name not in self._repos:
            self._repos[full_name] = _Repo(next(self._repo_ids), full_name)
        return self._repos[full_name]

    def add_pull(self, number: int, files: Mapping[str, Any] | None = None, *, head_sha: str | None = None,
                 base_sha: str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", head_ref: str = "feature",
                 base_ref: str = "main", head_repo: str | None = "", repository: str | None = None) -> None:
        """A pull request whose diff is `files`: path -> (old, new) texts (None = added/removed),
        a raw patch string, or None (a file GitHub shows without a patch: binary or too large).
        `head_repo` "" = the same repository; None = a deleted fork."""
        with self._lock:
            repo = self._repo(repository or self.repository)
            pull = _Pull(number, head_ref, base_ref, base_sha,
                         repo.full_name if head_repo == "" else head_repo)
            repo.pulls[number] = pull
            repo.issues.add(number)
        self.push(number, files or {}, head_sha=head_sha, repository=repository)

    def push(self, number: int, files: Mapping[str, Any], *, head_sha: str | None = None,
             repository: str | None = None) -> str:
        """A new head for the pull request (a `synchronize`): its diff becomes `files`."""
        with self._lock:
            pull = self._repo(repository or self.repository).pulls[number]
            head_sha = head_sha or sha_of(f"{number}:{len(pull.heads)}:{sorted(files)}")
            pull.heads.append(head_sha)
            pull.files[head_sha] = [self._file(path, spec) for path, spec in files.items()]
            return head_sha

    @staticmethod
    def _file(path: str, spec: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"sha": sha_of(path), "filename": path, "status": "modified",
                                 "additions": 0, "deletions": 0, "changes": 0}
        if isinstance(spec, tuple):
            old, new = spec
            entry["status"] = "added" if old is None else "removed" if new is None else "modified"
            entry["sha"] = sha_of(new or "")
            spec = unified_patch(old, new)
        if isinstance(spec, str):
            body = [line for line in spec.split("\n") if not line.startswith("@@")]
            entry["additions"] = sum(1 for line in body if line.startswith("+"))
            entry["deletions"] = sum(1 for line in body if line.startswith("-"))
            entry["changes"] = entry["additions"] + entry["deletions"]
            entry["patch"] = spec
        return entry

    def add_issue_comment(self, number: int, body: str, *, login: str = "octocat", user_type: str = "User",
                          repository: str | None = None) -> dict[str, Any]:
        """A comment already on the conversation (by a human unless told otherwise)."""
        with self._lock:
            repo = self._repo(repository or self.repository)
            repo.issues.add(number)
            comment = self._comment(repo, number, body, login, user_type)
            repo.comments.append(comment)
            return comment

    def add_review(self, number: int, body: str, *, login: str = "octocat", user_type: str = "User",
                   commit_id: str | None = None, repository: str | None = None) -> dict[str, Any]:
        """A submitted COMMENT review already on the pull request (on its head unless told)."""
        with self._lock:
            repo = self._repo(repository or self.repository)
            review = self._review(repo, number, body, commit_id or repo.pulls[number].head_sha, "COMMENT",
                                  self._user(login, user_type))
            repo.reviews.setdefault(number, []).append(review)
            return review

    def add_review_comment(self, number: int, body: str, *, path: str, line: int, login: str = "octocat",
                           user_type: str = "User", repository: str | None = None) -> dict[str, Any]:
        """A comment on the pull request's diff already there (a thread's first comment)."""
        with self._lock:
            repo = self._repo(repository or self.repository)
            entry = self._review_comment(repo, number, body, path, line, self._user(login, user_type))
            repo.review_comments.setdefault(number, []).append(entry)
            return entry

    def edit_issue_comment(self, comment_id: int, body: str, repository: str | None = None) -> None:
        """Change a comment's body (as its author editing it would)."""
        with self._lock:
            comment = self._find_comment(self._repo(repository or self.repository), comment_id)
            comment["body"], comment["updated_at"] = body, _now()

    def set_permission(self, login: str, permission: str, role_name: str | None = None, *,
                       repository: str | None = None) -> None:
        """`login`'s role on the repository: admin, maintain, write, triage or read."""
        legacy = {"maintain": "write", "triage": "read"}.get(permission, permission)
        with self._lock:
            self._repo(repository or self.repository).permissions[login.lower()] = (legacy, role_name or permission)

    def set_default_branch(self, branch: str, *, repository: str | None = None) -> None:
        """The repository's default branch (`default_branch` of a pull request's `base.repo`)."""
        with self._lock:
            self._repo(repository or self.repository).default_branch = branch

    def push_on_get(self, number: int, files: Mapping[str, Any], *, head_sha: str, after: int = 1,
                    repository: str | None = None) -> None:
        """Push `head_sha` once GET /pulls/{number} has answered `after` more times."""
        with self._lock:
            repo = self._repo(repository or self.repository)
            repo.pending_pushes[number] = [repo.pull_gets.get(number, 0) + after, dict(files), head_sha]

    def reactions(self, repository: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._repo(repository or self.repository).reactions]

    def enqueue_faults(self, *outcomes: str) -> None:
        unknown = [o for o in outcomes if o not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            self._faults.extend(outcomes)

    def set_page_size(self, size: int | None) -> None:
        """Cap every list's page size (None: GitHub's per_page rules only)."""
        self.page_size = size

    # ---- inspection ------------------------------------------------------------------------
    def issue_comments(self, number: int, repository: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            repo = self._repo(repository or self.repository)
            return [dict(c) for c in repo.comments if c["_issue"] == number]

    def reviews(self, number: int, repository: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._repo(repository or self.repository).reviews.get(number, []))

    def review_comments(self, number: int, repository: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._repo(repository or self.repository).review_comments.get(number, []))

    def requests_to(self, method: str, path_regex: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == method and re.search(path_regex, r.path)]

    # ---- objects ---------------------------------------------------------------------------
    def _user(self, login: str | None = None, user_type: str | None = None) -> dict[str, Any]:
        login = login or self.login
        return {"login": login, "id": int(sha_of(login)[:6], 16), "type": user_type or self.user_type,
                "site_admin": False}

    def _comment(self, repo: _Repo, number: int, body: str, login: str | None = None,
                 user_type: str | None = None) -> dict[str, Any]:
        cid = next(self._ids)
        now = _now()
        return {
            "id": cid, "node_id": f"IC_{cid}", "url": f"{self.url}/repos/{repo.full_name}/issues/comments/{cid}",
            "html_url": f"https://github.com/{repo.full_name}/pull/{number}#issuecomment-{cid}",
            "issue_url": f"{self.url}/repos/{repo.full_name}/issues/{number}", "body": body,
            "user": self._user(login, user_type), "created_at": now, "updated_at": now,
            "author_association": "NONE", "_issue": number,
        }

    def _review(self, repo: _Repo, number: int, body: str, commit_id: str, event: str | None,
                user: dict[str, Any]) -> dict[str, Any]:
        rid = next(self._ids)
        return {
            "id": rid, "node_id": f"PRR_{rid}", "user": user, "body": body,
            "state": {"COMMENT": "COMMENTED", "APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED",
                      None: "PENDING"}[event],
            "html_url": f"https://github.com/{repo.full_name}/pull/{number}#pullrequestreview-{rid}",
            "pull_request_url": f"{self.url}/repos/{repo.full_name}/pulls/{number}", "commit_id": commit_id,
            "submitted_at": _now(), "author_association": "NONE",
        }

    def _review_comment(self, repo: _Repo, number: int, body: str, path: str, line: int, user: dict[str, Any],
                        in_reply_to: int | None = None) -> dict[str, Any]:
        cid = next(self._ids)
        entry = {"id": cid, "pull_request_review_id": None, "commit_id": repo.pulls[number].head_sha, "path": path,
                 "body": body, "line": line, "side": "RIGHT", "start_line": None, "start_side": None, "user": user,
                 "created_at": _now(), "author_association": "NONE",
                 "html_url": f"https://github.com/{repo.full_name}/pull/{number}#discussion_r{cid}"}
        if in_reply_to is not None:
            entry["in_reply_to_id"] = in_reply_to
        return entry

    def _pull_json(self, repo: _Repo, pull: _Pull) -> dict[str, Any]:
        def side(ref: str, sha: str, full_name: str | None) -> dict[str, Any]:
            repo_json = None if full_name is None else {"full_name": full_name, "name": full_name.split("/")[1],
                                                        "owner": self._user(full_name.split("/")[0], "User")}
            owner = (full_name or repo.full_name).split("/")[0]
            return {"label": f"{owner}:{ref}", "ref": ref, "sha": sha, "repo": repo_json}

        base = side(pull.base_ref, pull.base_sha, repo.full_name)
        base["repo"]["default_branch"] = repo.default_branch
        return {
            "url": f"{self.url}/repos/{repo.full_name}/pulls/{pull.number}", "number": pull.number, "state": "open",
            "html_url": f"https://github.com/{repo.full_name}/pull/{pull.number}", "title": f"PR {pull.number}",
            "user": self._user("octocat", "User"),
            "head": side(pull.head_ref, pull.head_sha, pull.head_repo),
            "base": base,
            "commits": len(pull.heads), "changed_files": len(pull.files[pull.head_sha]),
        }

    # ---- HTTP ------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = {"_invalid": raw.decode("utf-8", "replace")}
        record = RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        with self._lock:
            self.requests.append(record)
            self._remaining = max(self._remaining - 1, 1)
        response = self._respond(request, record)
        record.status = response.status
        for name, value in self._rate_headers().items():
            response.headers.setdefault(name, value)
        return response

    def _rate_headers(self) -> dict[str, str]:
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(self._remaining),
                "x-ratelimit-used": str(5000 - self._remaining), "x-ratelimit-resource": "core",
                "x-ratelimit-reset": str(int(time.time()) + 3600), "x-github-api-version-selected": "2022-11-28",
                "x-github-request-id": f"STANDIN:{len(self.requests)}"}

    def _respond(self, request: web.Request, record: RecordedRequest) -> web.Response:
        auth = request.headers.get("Authorization", "")
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or credential.strip() != self.token:
            return _json(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"})
        with self._lock:
            fault = self._faults.popleft() if self._faults else "ok"
        if fault != "ok":
            return self._fault(fault)
        if isinstance(record.body, dict) and "_invalid" in record.body:
            return _json(400, {"message": "Problems parsing JSON", "documentation_url": DOCS, "status": "400"})
        if request.path == "/user" and request.method == "GET":
            return self._viewer()
        if self.read_only and request.method not in ("GET", "HEAD"):
            return _json(403, {"message": "Resource not accessible by integration", "documentation_url": DOCS,
                               "status": "403"})
        match = re.match(r"^/repos/([^/]+)/([^/]+)(/.*)$", request.path)
        repo = None
        if match:
            repo = self._repos.get(f"{match.group(1)}/{match.group(2)}")
            rest = match.group(3)
        else:
            match = re.match(r"^/repositories/(\d+)(/.*)$", request.path)
            if match:
                repo = next((r for r in self._repos.values() if r.id == int(match.group(1))), None)
                rest = match.group(2)
        if repo is None:
            return _not_found()
        with self._lock:
            return self._route(request.method, rest, repo, record)

    def _viewer(self) -> web.Response:
        """GET /user: an installation token has no user (GitHub's 403); a personal token's is its own."""
        if self.user_type == "Bot":
            return _json(403, {"message": "Resource not accessible by integration", "status": "403",
                               "documentation_url": f"{DOCS}/users/users#get-the-authenticated-user"})
        return _json(200, {**self._user(), "name": self.login, "html_url": f"https://github.com/{self.login}"})

    def _fault(self, fault: str) -> web.Response:
        if fault == "502":
            return web.Response(status=502, content_type="text/html",
                                text="<html><body><h1>502 Bad Gateway</h1>The server returned an invalid or "
                                     "incomplete response.</body></html>")
        if fault in ("500", "503"):
            return _json(int(fault), {"message": "Server Error" if fault == "500" else "Service Unavailable"})
        if fault == "secondary-rate-limit":
            return _json(403, {"message": SECONDARY_MESSAGE, "documentation_url": "https://docs.github.com/"
                               "rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"},
                         headers={"retry-after": f"{self.retry_after:g}"})
        response = _json(403, {"message": "API rate limit exceeded for installation ID 1.", "documentation_url":
                               "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"})
        response.headers["x-ratelimit-remaining"] = "0"
        response.headers["x-ratelimit-reset"] = str(math.ceil(time.time() + self.reset_in))
        return response

    def _route(self, method: str, rest: str, repo: _Repo, record: RecordedRequest) -> web.Response:
        routes = [
            ("GET", r"/issues/(\d+)/comments", self._list_comments),
            ("POST", r"/issues/(\d+)/comments", self._create_comment),
            ("PATCH", r"/issues/comments/(\d+)", self._update_comment),
            ("GET", r"/pulls/(\d+)", self._get_pull),
            ("GET", r"/pulls/(\d+)/files", self._list_files),
            ("GET", r"/pulls/(\d+)/reviews", self._list_reviews),
            ("POST", r"/pulls/(\d+)/reviews", self._create_review),
            ("GET", r"/pulls/(\d+)/comments", self._list_review_comments),
            ("POST", r"/pulls/\d+/comments/(\d+)/replies", self._reply_review_comment),
            ("POST", r"/issues/comments/(\d+)/reactions", self._react),
            ("POST", r"/pulls/comments/(\d+)/reactions", self._react),
        ]
        match = re.fullmatch(r"/collaborators/([^/]+)/permission", rest)
        if method == "GET" and match:
            return self._permission(repo, match.group(1))
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, rest)
            if verb == method and match:
                return handler(repo, int(match.group(1)), record, rest)
        return _not_found()

    def _page(self, record: RecordedRequest, repo: _Repo, rest: str, items: list[dict[str, Any]]) -> web.Response:
        try:
            per_page = min(max(int(record.query.get("per_page", DEFAULT_PER_PAGE)), 1), MAX_PER_PAGE)
        except ValueError:
            per_page = DEFAULT_PER_PAGE
        if self.page_size:
            per_page = min(per_page, self.page_size)
        try:
            page = max(int(record.query.get("page", 1)), 1)
        except ValueError:
            page = 1
        last = max(math.ceil(len(items) / per_page), 1)
        chosen = items[(page - 1) * per_page: page * per_page]
        links = []
        query = {k: v for k, v in record.query.items() if k not in ("page", "per_page")}

        def link(number: int, rel: str) -> str:
            params = urlencode({**query, "per_page": per_page, "page": number})
            return f'<{self.url}/repositories/{repo.id}{rest}?{params}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first")]
        payload = [{k: v for k, v in item.items() if not k.startswith("_")} for item in chosen]
        return _json(200, payload, headers={"Link": ", ".join(links)} if links else None)

    def _pull(self, repo: _Repo, number: int) -> _Pull | None:
        return repo.pulls.get(number)

    def _list_comments(self, repo, number, record, rest):
        if number not in repo.issues:
            return _not_found()
        return self._page(record, repo, rest, [c for c in repo.comments if c["_issue"] == number])

    def _create_comment(self, repo, number, record, rest):
        if number not in repo.issues:
            return _not_found()
        problem = _body_problem(record.body)
        if problem:
            return problem
        comment = self._comment(repo, number, record.body["body"])
        repo.comments.append(comment)
        return _json(201, {k: v for k, v in comment.items() if not k.startswith("_")},
                     headers={"Location": comment["url"]})

    def _find_comment(self, repo: _Repo, comment_id: int) -> dict[str, Any] | None:
        return next((c for c in repo.comments if c["id"] == comment_id), None)

    def _update_comment(self, repo, comment_id, record, rest):
        comment = self._find_comment(repo, comment_id)
        if comment is None:
            return _not_found()
        problem = _body_problem(record.body)
        if problem:
            return problem
        comment["body"] = record.body["body"]
        comment["updated_at"] = _now()
        return _json(200, {k: v for k, v in comment.items() if not k.startswith("_")})

    def _get_pull(self, repo, number, record, rest):
        pull = self._pull(repo, number)
        if pull is None:
            return _not_found()
        answer = _json(200, self._pull_json(repo, pull))
        repo.pull_gets[number] = repo.pull_gets.get(number, 0) + 1
        pending = repo.pending_pushes.get(number)
        if pending is not None and repo.pull_gets[number] >= pending[0]:   # the branch moves after this answer
            del repo.pending_pushes[number]
            pull.heads.append(pending[2])
            pull.files[pending[2]] = [self._file(path, spec) for path, spec in pending[1].items()]
        return answer

    def _permission(self, repo: _Repo, login: str) -> web.Response:
        """GET /collaborators/{user}/permission (docs.github.com/rest/collaborators/collaborators
        #get-repository-permissions-for-a-user): 404 for a user who is no collaborator."""
        found = repo.permissions.get(login.lower())
        if found is None:
            return _json(404, {"message": f"{login} is not a user", "documentation_url": DOCS, "status": "404"})
        permission, role = found
        return _json(200, {"permission": permission, "role_name": role, "user": self._user(login, "User")})

    def _react(self, repo, comment_id, record, rest):
        """POST .../comments/{id}/reactions: 201 for a new reaction, 200 when this user gave it already."""
        on = "review" if rest.startswith("/pulls/") else "issue"
        exists = (self._find_comment(repo, comment_id) if on == "issue" else
                  next((c for cs in repo.review_comments.values() for c in cs if c["id"] == comment_id), None))
        if exists is None:
            return _not_found()
        content = (record.body or {}).get("content") if isinstance(record.body, dict) else None
        if content not in ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes"):
            return _unprocessable([f"content {content!r} is not a valid reaction"])
        user = self._user()
        for reaction in repo.reactions:
            if (reaction["on"], reaction["comment_id"], reaction["content"]) == (on, comment_id, content):
                return _json(200, reaction)
        reaction = {"id": next(self._ids), "on": on, "comment_id": comment_id, "content": content, "user": user,
                    "created_at": _now()}
        repo.reactions.append(reaction)
        return _json(201, reaction)

    def _reply_review_comment(self, repo, comment_id, record, rest):
        number = int(re.match(r"/pulls/(\d+)/", rest).group(1))
        pull = self._pull(repo, number)
        thread = next((c for c in repo.review_comments.get(number, []) if c["id"] == comment_id), None)
        if pull is None or thread is None:
            return _not_found()
        problem = _body_problem(record.body)
        if problem:
            return problem
        entry = self._review_comment(repo, number, record.body["body"], thread["path"], thread["line"], self._user(),
                                     in_reply_to=comment_id)
        repo.review_comments[number].append(entry)
        return _json(201, entry)

    def _list_files(self, repo, number, record, rest):
        pull = self._pull(repo, number)
        return _not_found() if pull is None else self._page(record, repo, rest, pull.files[pull.head_sha])

    def _list_reviews(self, repo, number, record, rest):
        pull = self._pull(repo, number)
        return _not_found() if pull is None else self._page(record, repo, rest, repo.reviews.get(number, []))

    def _list_review_comments(self, repo, number, record, rest):
        pull = self._pull(repo, number)
        return _not_found() if pull is None else self._page(record, repo, rest, repo.review_comments.get(number, []))

    def _create_review(self, repo, number, record, rest):
        pull = self._pull(repo, number)
        if pull is None:
            return _not_found()
        data = record.body if isinstance(record.body, dict) else {}
        event = data.get("event")
        if event not in (None, "APPROVE", "REQUEST_CHANGES", "COMMENT"):
            return _unprocessable([f"Unknown review event: {event}"])
        commit_id = data.get("commit_id") or pull.head_sha
        if commit_id not in pull.files:
            return _unprocessable([f"No commit found for SHA: {commit_id}"])
        files = {f["filename"]: f for f in pull.files[commit_id]}
        comments = data.get("comments") or []
        for comment in comments:
            problem = _comment_problem(comment, files)
            if problem:
                return _unprocessable([problem])  # all or nothing: GitHub stores no part of a failed review
        review = self._review(repo, number, data.get("body") or "", commit_id, event, self._user())
        rid = review["id"]
        repo.reviews.setdefault(number, []).append(review)
        for comment in comments:
            cid = next(self._ids)
            side = comment.get("side") or "RIGHT"
            repo.review_comments.setdefault(number, []).append({
                "id": cid, "pull_request_review_id": rid, "commit_id": commit_id, "path": comment["path"],
                "body": comment["body"], "line": comment["line"], "side": side,
                "start_line": comment.get("start_line"),
                "start_side": (comment.get("start_side") or side) if comment.get("start_line") else None,
                "user": self._user(), "created_at": _now(),
                "html_url": f"https://github.com/{repo.full_name}/pull/{number}#discussion_r{cid}",
            })
        return _json(200, review)


def _comment_problem(comment: Any, files: Mapping[str, dict[str, Any]]) -> str | None:
    """Why GitHub would refuse this review comment (None: it would accept it).

    A line must lie in a hunk of the file's diff on its side (RIGHT: new-file lines, context or
    added; LEFT: old-file lines), and a range's start line in the same hunk, strictly before it.
    """
    if not isinstance(comment, dict) or not isinstance(comment.get("body"), str) or "path" not in comment:
        return "Invalid review comment"
    entry = files.get(comment["path"])
    if entry is None:
        return "Path could not be resolved"
    line = comment.get("line")
    if not isinstance(line, int) or isinstance(line, bool):
        return "Line could not be resolved"
    side = comment.get("side") or "RIGHT"
    start = comment.get("start_line")
    start_side = comment.get("start_side") or side
    if start is not None and (not isinstance(start, int) or start >= line):
        return "pull_request_review_thread.start_line must precede the end line."

    def hunk_of(number: int, which: str) -> int | None:
        for index, (a, b, c, d) in enumerate(hunk_ranges(entry.get("patch"))):
            first, count = (c, d) if which == "RIGHT" else (a, b)
            if first <= number < first + count:
                return index
        return None

    end_hunk = hunk_of(line, side)
    if end_hunk is None:
        return "Line could not be resolved"
    if start is not None and hunk_of(start, start_side) != end_hunk:
        return "Line could not be resolved"
    return None


def _body_problem(body: Any) -> web.Response | None:
    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
        return _json(422, {"message": "Invalid request.\n\n\"body\" wasn't supplied.", "documentation_url": DOCS,
                           "status": "422"})
    if len(body["body"]) > MAX_BODY_CHARS:
        return _json(422, {"message": "Validation Failed", "errors": [
            {"resource": "IssueComment", "code": "custom", "field": "body",
             "message": f"body is too long (maximum is {MAX_BODY_CHARS} characters)"}],
            "documentation_url": DOCS, "status": "422"})
    return None


def _unprocessable(errors: list[str]) -> web.Response:
    return _json(422, {"message": "Unprocessable Entity", "errors": errors, "status": "422",
                       "documentation_url": f"{DOCS}/pulls/reviews#create-a-review-for-a-pull-request"})


def _not_found() -> web.Response:
    return _json(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"})


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json",
                        charset="utf-8", headers=dict(headers or {}))
