"""A small sync client for the GitHub REST API endpoints gpo-action uses (httpx, imported lazily).

Every failure becomes one `GitHubError` whose text has the HTTP status and GitHub's own message,
and `.status` (None when no response came back). The token never appears in an error, a repr or
a log line: it is sent only to the origin of `api_url` (pagination links to another host are
refused). Every request body and error text passes the run's scrubber (`secrets`), which
learns the token here: a secret in a comment or review is sent as ***.

Retries (at most `max_retries`, sleeping through the injectable `sleep`):
- 5xx and transport errors: exponential backoff from `retry_base`, or `Retry-After` when given
  (POST is retried after a transport error only when the connection was never made);
- rate limits, as GitHub documents them (docs.github.com/rest/using-the-rest-api/
  rate-limits-for-the-rest-api, "Exceeding the rate limit"): a 403/429 with `retry-after` waits that
  many seconds; with `x-ratelimit-remaining: 0` waits until `x-ratelimit-reset` (epoch seconds); a
  429, or a 403 saying "secondary rate limit" without either header, waits one minute.
A wait longer than `max_wait` is not attempted: the error says when to try again.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence
from urllib.parse import quote, urlsplit

from gpo_action import __version__, secrets
from gpo_action.errors import GitHubError, InputError
from gpo_action.github.event import PullRequest
from gpo_action.llm.ratelimits import parse_retry_after

if TYPE_CHECKING:  # pragma: no cover
    import httpx

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
PER_PAGE = 100            # GitHub's maximum page size
MAX_PAGES = 100
RETRY_STATUSES = frozenset({500, 502, 503, 504})
SECONDARY_WAIT = 60.0     # "Otherwise, wait for at least one minute before retrying" (GitHub docs)
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class IssueComment:
    id: int
    body: str
    author: str                    # login ("" for a deleted account)
    author_type: str               # "Bot", "User", "Organization"
    html_url: str = ""


@dataclass(frozen=True)
class Review:
    id: int
    body: str
    author: str
    author_type: str
    state: str                     # COMMENTED, APPROVED, CHANGES_REQUESTED, DISMISSED, PENDING
    commit_id: str
    html_url: str = ""


@dataclass(frozen=True)
class PullFile:
    filename: str
    status: str                    # added, removed, modified, renamed, copied, changed, unchanged
    patch: str | None = None       # unified diff hunks; None for binary or very large diffs
    previous_filename: str | None = None


def _author(item: Mapping[str, Any]) -> tuple[str, str]:
    user = item.get("user") or {}
    return str(user.get("login") or ""), str(user.get("type") or "")


def _issue_comment(item: Mapping[str, Any]) -> IssueComment:
    login, kind = _author(item)
    return IssueComment(int(item["id"]), str(item.get("body") or ""), login, kind, str(item.get("html_url") or ""))


def _review(item: Mapping[str, Any]) -> Review:
    login, kind = _author(item)
    return Review(int(item["id"]), str(item.get("body") or ""), login, kind, str(item.get("state") or ""),
                  str(item.get("commit_id") or ""), str(item.get("html_url") or ""))


def _message(response: "httpx.Response") -> str:
    """GitHub's message and its `errors` details, or the reason phrase for a non-JSON body."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return response.reason_phrase or "no message"
    text = str(data.get("message") or response.reason_phrase or "no message")
    details = []
    for item in data.get("errors") or []:
        if isinstance(item, dict):
            details.append(str(item.get("message") or " ".join(
                str(item.get(k)) for k in ("resource", "field", "code") if item.get(k))))
        else:
            details.append(str(item))
    return f"{text}: {'; '.join(details)}" if details else text


class GitHubClient:
    """Sync GitHub REST client for one repository. A context manager; `close()` frees the connection pool."""

    def __init__(self, token: str, api_url: str | None = None, repository: str | None = None, *,
                 max_retries: int = 4, sleep: Callable[[float], None] = time.sleep, timeout: float = 30.0,
                 retry_base: float = 1.0, max_wait: float = 60.0, clock: Callable[[], float] = time.time,
                 env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        if not token:
            raise InputError("no GitHub token", hint="pass `github-token` (GITHUB_TOKEN) to the action")
        repository = repository or env.get("GITHUB_REPOSITORY") or ""
        if not REPOSITORY.fullmatch(repository):
            raise InputError(f"GitHub repository must be 'owner/name', got {repository!r}")
        self._token = token
        secrets.remember(token)
        self.api_url = (api_url or env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")
        self.repository = repository
        self.max_retries = max_retries
        self.timeout = timeout
        self.retry_base = retry_base
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._origin = self._origin_of(self.api_url)
        self._http: "httpx.Client | None" = None

    def __repr__(self) -> str:
        return f"GitHubClient(api_url={self.api_url!r}, repository={self.repository!r})"

    def __enter__(self) -> "GitHubClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    # ---- the endpoints ---------------------------------------------------------------------
    def viewer_login(self) -> str | None:
        """The login the token acts as (`GET /user`), or None for an installation token (the Actions
        GITHUB_TOKEN or another GitHub App's), which GitHub answers with 403 "Resource not
        accessible by integration"."""
        url = f"{self.api_url}/user"
        try:
            data = self._json("GET", url)
        except GitHubError as exc:
            if exc.status == 403:
                return None
            raise
        login = data.get("login") if isinstance(data, dict) else None
        if not isinstance(login, str) or not login:
            raise self._failure("GET", url, 200, "unexpected response shape (no login)")
        return login

    def list_issue_comments(self, number: int) -> list[IssueComment]:
        return [_issue_comment(c) for c in self._paginate(self._repo(f"/issues/{int(number)}/comments"))]

    def create_issue_comment(self, number: int, body: str) -> IssueComment:
        return _issue_comment(self._json("POST", self._repo(f"/issues/{int(number)}/comments"), {"body": body}))

    def update_issue_comment(self, comment_id: int, body: str) -> IssueComment:
        return _issue_comment(self._json("PATCH", self._repo(f"/issues/comments/{int(comment_id)}"), {"body": body}))

    def get_pull(self, number: int) -> PullRequest:
        data = self._json("GET", self._repo(f"/pulls/{int(number)}"))
        try:
            head_repo = data["head"].get("repo")
            return PullRequest(
                number=int(data["number"]), base_ref=data["base"]["ref"], base_sha=data["base"]["sha"],
                head_ref=data["head"]["ref"], head_sha=data["head"]["sha"],
                base_repo=data["base"]["repo"]["full_name"], head_repo=head_repo["full_name"] if head_repo else None,
                default_branch=data["base"]["repo"].get("default_branch") or None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise GitHubError(f"GitHub API GET pull {number}: unexpected response shape ({exc!r})") from None

    def permission(self, login: str) -> tuple[str, str]:
        """(permission, role_name) of `login` on the repository (`GET /collaborators/{user}/permission`):
        permission is admin, write, read or none (maintain reads as write, triage as read); role_name
        names the role itself. A user who is no collaborator: ("none", "")."""
        url = self._repo(f"/collaborators/{quote(login, safe='')}/permission")
        try:
            data = self._json("GET", url)
        except GitHubError as exc:
            if exc.status == 404:
                return "none", ""
            raise
        if not isinstance(data, dict):
            raise self._failure("GET", url, 200, "unexpected response shape")
        return str(data.get("permission") or "none"), str(data.get("role_name") or "")

    def add_reaction(self, comment_id: int, content: str, *, review: bool = False) -> None:
        """React to an issue comment (or, `review`, a review comment): +1, eyes, rocket, confused..."""
        where = "pulls" if review else "issues"
        self._json("POST", self._repo(f"/{where}/comments/{int(comment_id)}/reactions"), {"content": content})

    def reply_to_review_comment(self, number: int, comment_id: int, body: str) -> int:
        """A reply in the thread of review comment `comment_id` (the thread's first comment); its id."""
        data = self._json("POST", self._repo(f"/pulls/{int(number)}/comments/{int(comment_id)}/replies"),
                          {"body": body})
        return int(data["id"]) if isinstance(data, dict) and "id" in data else 0

    def list_pull_files(self, number: int) -> list[PullFile]:
        return [PullFile(str(f["filename"]), str(f.get("status") or ""), f.get("patch"), f.get("previous_filename"))
                for f in self._paginate(self._repo(f"/pulls/{int(number)}/files"))]

    def list_reviews(self, number: int) -> list[Review]:
        return [_review(r) for r in self._paginate(self._repo(f"/pulls/{int(number)}/reviews"))]

    def create_review(self, number: int, commit_id: str, body: str, comments: Sequence[Mapping[str, Any]],
                      event: str = "COMMENT") -> Review:
        """One submitted review; `comments` in the API's shape ({path, body, line, side, start_line, start_side})."""
        payload = {"commit_id": commit_id, "body": body, "event": event, "comments": [dict(c) for c in comments]}
        return _review(self._json("POST", self._repo(f"/pulls/{int(number)}/reviews"), payload))

    # ---- transport -------------------------------------------------------------------------
    def _repo(self, suffix: str) -> str:
        return f"{self.api_url}/repos/{self.repository}{suffix}"

    @staticmethod
    def _origin_of(url: str) -> tuple[str, str]:
        parts = urlsplit(url)
        return parts.scheme.lower(), parts.netloc.lower()

    def redact(self, text: str) -> str:
        """`text` through the run's scrubber, which knows the token (in each of its encodings)."""
        return secrets.scrub(text)

    def _client(self) -> "httpx.Client":
        if self._http is None:
            import httpx

            self._http = httpx.Client(timeout=self.timeout, follow_redirects=True, headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": f"gpo-action/{__version__}",
            })
        return self._http

    def _json(self, method: str, url: str, payload: Any = None) -> Any:
        response = self._request(method, url, payload)
        try:
            return response.json()
        except ValueError:
            raise self._failure(method, url, response.status_code, "unexpected non-JSON response") from None

    def _paginate(self, url: str) -> list[Any]:
        """All pages of a list endpoint, following `Link: <...>; rel="next"` as given."""
        items: list[Any] = []
        seen = {url}
        params: dict[str, Any] | None = {"per_page": PER_PAGE}
        for _ in range(MAX_PAGES):
            response = self._request("GET", url, params=params)
            try:
                data = response.json()
            except ValueError:
                data = None
            if not isinstance(data, list):
                raise self._failure("GET", url, response.status_code, "expected a JSON list")
            items.extend(data)
            next_url = response.links.get("next", {}).get("url")
            if not next_url or next_url in seen:
                return items
            seen.add(next_url)
            url, params = next_url, None
        raise self._failure("GET", url, None, f"more than {MAX_PAGES} pages")

    def _failure(self, method: str, url: str, status: int | None, message: str) -> GitHubError:
        path = urlsplit(url).path or url
        code = f"{status} " if status is not None else ""
        return GitHubError(self.redact(f"GitHub API {method} {path}: {code}{message}"), status)

    def _request(self, method: str, url: str, payload: Any = None, params: Mapping[str, Any] | None = None
                 ) -> "httpx.Response":
        import httpx

        if self._origin_of(url) != self._origin:
            raise self._failure(method, url, None, "refusing to send the token to another host than the API's")
        headers = {"Authorization": f"Bearer {self._token}"}
        content = None
        if payload is not None:  # the body passes the scrubber (it knows JSON-escaped forms too)
            headers["Content-Type"] = "application/json"
            content = secrets.scrub(json.dumps(payload, ensure_ascii=False, separators=(",", ":"))).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            try:
                response = self._client().request(method, url, content=content, params=params, headers=headers)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if attempt >= self.max_retries or (method == "POST" and not unsent):
                    raise self._failure(method, url, None, f"{type(exc).__name__}: {exc}") from None
                self._sleep(self._backoff(attempt))
                continue
            if response.status_code < 400:
                return response
            message = _message(response)
            delay = self._retry_delay(response, message, attempt)
            if delay is None or attempt >= self.max_retries:
                raise self._failure(method, url, response.status_code, message)
            if delay > self.max_wait:
                raise self._failure(method, url, response.status_code,
                                    f"{message} (GitHub asks to wait {delay:.0f} s; try again later)")
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        return min(self.retry_base * 2 ** attempt, self.max_wait)

    def _retry_delay(self, response: "httpx.Response", message: str, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the failure is final."""
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status in (403, 429):
            if retry_after is not None:
                return retry_after
            reset = response.headers.get("x-ratelimit-reset")
            if response.headers.get("x-ratelimit-remaining") == "0" and reset:
                try:
                    return max(float(reset) - self._clock(), 0.0) + 1.0
                except ValueError:
                    pass
            if status == 429 or "secondary rate limit" in message.lower():
                return max(SECONDARY_WAIT, self._backoff(attempt))
            return None
        if status in RETRY_STATUSES:
            return retry_after if retry_after is not None else self._backoff(attempt)
        return None
