"""Projects the CLI tests write under tmp, against the scripted server.

- `write_config(root, url, ...)`: the gpo.yaml of an eval project: the task model is the scripted
  server at `url` (its key in GPO_TEST_KEY), the suites are evals/*.yaml, the cache is
  .gpo/cache.sqlite. Each test file writes its own prompts and suites beside it, or
  `write_triage_eval(root, url, cases)` writes both with one triage suite.
- `make_repo(root, url, prompt=GOOD)`: a git repository on `main` with one committed triage suite
  of 30 `TICKETS` (a `gpo-action run` project, key in OPENAI_API_KEY); `answer_by_prompt` is the
  server's reply for it, `local_run_repo` sets up all three for a local run; `pull_request_branch`
  makes its pull request (branch `pr`, a new prompt committed).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

CATEGORIES = ["billing", "bug", "other"]
TICKETS = {f"ticket number {i} about {c}": c for i, c in enumerate(CATEGORIES * 10)}  # 30 cases
GOOD = "Classify the support ticket as billing, bug or other.\nTicket: {{ ticket }}\nReply with the category only.\n"
BAD = "Classify the support ticket.\nTicket: {{ ticket }}\nReply briefly.\n"


def write_config(root: Path, url: str, *, concurrency: int = 4, timeout: float = 5, retries: int = 1,
                 max_wait: float = 0.05, max_error_rate: float | None = None, extra: str = "") -> None:
    """root/gpo.yaml; `extra` is appended as it is."""
    lines = [
        "models:",
        f'  task: {{model: openai/scripted, api_base: "{url}/v1", api_key_env: GPO_TEST_KEY}}',
        "suites:",
        "  - eval: evals/*.yaml",
        f"concurrency: {concurrency}",
        f"timeout: {timeout}",
        f"retries: {{max: {retries}, base: 0.01, max_wait: {max_wait}}}",
    ]
    if max_error_rate is not None:
        lines.append(f"max_error_rate: {max_error_rate}")
    lines.append("cache: {path: .gpo/cache.sqlite}")
    (root / "gpo.yaml").write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")


def write_triage_eval(root: Path, url: str, cases: dict[str, str]) -> None:
    """An `eval` project at `root`: `write_config` (one request at a time, no retry) and one triage
    suite, a case per `cases` item (ticket -> expected category, checked by icontains)."""
    (root / "prompts").mkdir()
    (root / "evals").mkdir()
    write_config(root, url, concurrency=1, retries=0)
    (root / "prompts" / "triage.j2").write_text("Classify: billing, bug or other.\nTicket: {{ ticket }}\n")
    listed = "".join(f"  - vars: {{ticket: {t!r}}}\n    expected: {e}\n" for t, e in cases.items())
    (root / "evals" / "triage.yaml").write_text(
        "prompt: prompts/triage.j2\nassert:\n  - {type: icontains, value: '{{ expected }}'}\ncases:\n" + listed)


# ---- the `gpo-action run` project -----------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def answer_by_prompt(body, index):
    """Good prompts (naming the categories) get the right answer; others get 'other'."""
    text = body["messages"][-1]["content"]
    ticket = text.split("Ticket: ", 1)[1].split("\n", 1)[0]
    return TICKETS.get(ticket, "other") if "billing, bug or other" in text else "other"


def make_repo(root: Path, server_url: str, prompt: str = GOOD) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "-c", "init.defaultBranch=main", "init", "-q")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    (root / "prompts").mkdir()
    (root / "evals").mkdir()
    (root / ".gitignore").write_text(".gpo/\n")
    (root / "gpo.yaml").write_text(
        f'models:\n  task: {{model: openai/scripted, api_base: "{server_url}/v1"}}\n'
        "suites:\n  - eval: evals/*.yaml\nconcurrency: 8\ntimeout: 5\nretries: {max: 1, base: 0.01}\n"
    )
    (root / "prompts" / "triage.j2").write_text(prompt)
    cases = "".join(f"  - vars: {{ticket: '{t}'}}\n    expected: {c}\n" for t, c in TICKETS.items())
    (root / "evals" / "triage.yaml").write_text(
        "prompt: prompts/triage.j2\nassert:\n  - {type: icontains, value: '{{ expected }}'}\ncases:\n" + cases
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    return root


def local_run_repo(root: Path, server, monkeypatch) -> Path:
    """`make_repo(root)` for a local run: a key in OPENAI_API_KEY, outside GitHub Actions, the server
    answering by prompt."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    server.set_reply(answer_by_prompt)
    return make_repo(root, server.url)


def pull_request_branch(repo: Path, prompt: str, message: str) -> None:
    """Branch `pr` off the current commit, with prompts/triage.j2 set to `prompt` and committed."""
    git(repo, "checkout", "-qb", "pr")
    (repo / "prompts" / "triage.j2").write_text(prompt)
    git(repo, "commit", "-qam", message)
