"""Failures of gpo-action's own are not verdicts: a response cache that cannot be written or opened
(a real full filesystem, a lock another process holds, a folder that cannot be made) is noted once
and the run goes on uncached, losing no paid answer; an internal error exits 4 with its traceback.

The full disk is a real tmpfs mounted for the test (root may mount; CI runs as root), the lock is
held by another real process, the answers come from the scripted server over HTTP.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.providers import PROVIDERS, register
from tests.support.github_server import GitHubServer
from tests.support.projects import BAD, GOOD, TICKETS as RUN_TICKETS, git, local_run_repo
from tests.test_eval_cli import TICKETS, scripted_answers, write_project

ROOT = Path(__file__).resolve().parents[1]
CANARY_KEY = "sk-canary-ownfail-7f3a9c"
CANARY_TOKEN = "ghs_canaryOwnfail0123456789abcdefABCD"
SHM_BYTES = 32768                   # sqlite's first shared-memory block beside a WAL database
NOTE = re.compile(r"^note: the response cache at (\S+) cannot be (written|opened) \((.+)\): this run continues uncached$")


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def cache_notes(stderr: str) -> list[re.Match]:
    return [m for m in map(NOTE.match, stderr.splitlines()) if m]


# ---- real broken caches ------------------------------------------------------------------------


@contextmanager
def small_disk(folder: Path, size: str = "256k") -> Iterator[Path]:
    """A real filesystem of `size` (tmpfs) mounted on `folder` for the block."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the filesystem of `folder` until it refuses a byte, then free `leave` bytes."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as error:
                assert error.errno == 28  # ENOSPC: the disk is full
        if leave:
            size = os.fstat(fd).st_size
            os.ftruncate(fd, size - size % os.sysconf("SC_PAGE_SIZE") - leave)
    finally:
        os.close(fd)


@contextmanager
def lock_held(path: Path) -> Iterator[None]:
    """Another process holds the write lock of the sqlite file at `path` for the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys\n"
         "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "db.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\nsys.stdin.read()\n", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


@contextmanager
def broken_cache(kind: str, root: Path) -> Iterator[tuple[str, str]]:
    """The project at `root` gets a cache that cannot be used the way `kind` says; yields the
    verb and reason its note must give."""
    config = root / "gpo.yaml"
    cache = root / ".gpo" / "cache.sqlite"
    if kind == "folder is a file":
        (root / "blocker").write_text("a file where the cache's folder should be\n")
        _set_cache(config, "{path: blocker/cache.sqlite}")
        yield "opened", "File exists"
        return
    if kind == "lock held":
        _set_cache(config, "{path: .gpo/cache.sqlite, lock_timeout: 0.5}")
        ResponseCache(cache).close()
        with lock_held(cache):
            yield "written", "database is locked"
        return
    with small_disk(cache.parent):
        ResponseCache(cache).close()                       # a cache from an earlier run
        if kind == "disk full":
            fill(cache.parent, leave=SHM_BYTES)            # room to open it, none to add a row
            yield "written", "database or disk is full"
        else:
            fill(cache.parent)                             # no room even to open it
            yield "opened", ""


def _set_cache(config: Path, value: str) -> None:
    text = config.read_text()
    lines = [line for line in text.splitlines() if not line.startswith("cache:")]
    config.write_text("\n".join(lines + [f"cache: {value}"]) + "\n")


@pytest.fixture
def eval_project(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", CANARY_KEY)
    monkeypatch.chdir(tmp_path)
    scripted_answers(openai_server)
    return write_project(tmp_path, openai_server.url)


@pytest.mark.parametrize("kind", ["disk full", "disk full when opening", "lock held", "folder is a file"])
def test_eval_with_an_unusable_cache_notes_it_once_and_keeps_every_answer(eval_project, openai_server, kind):
    with broken_cache(kind, eval_project) as (verb, reason):
        result = run_cli("eval", "--json", "out.json")
        assert result.exit_code == 0, result.stderr            # the verdict's code: every case passes
        [note] = cache_notes(result.stderr)
        assert note[2] == verb and reason in note[3], note[0]
        assert "Traceback" not in result.stderr
        [suite] = json.loads((eval_project / "out.json").read_text())["suites"]
        answers = {c["vars"]["ticket"]: c["samples"][0]["output"] for c in suite["cases"]}
        assert answers == {t: f"Category: {e.capitalize()}" for t, e in TICKETS.items()}
        assert suite["passed"] == len(TICKETS) and suite["errors"] == 0
        assert openai_server.total == len(TICKETS)            # each case asked once, none lost
    for stream in (result.stdout, result.stderr, (eval_project / "out.json").read_text()):
        assert CANARY_KEY not in stream


@pytest.mark.parametrize("kind", ["disk full", "lock held"])
def test_run_with_an_unusable_cache_keeps_its_verdict_and_every_answer(tmp_path, openai_server, monkeypatch, kind):
    repo = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    monkeypatch.chdir(repo)
    (repo / "prompts" / "triage.j2").write_text(BAD)          # main holds the weak prompt
    with broken_cache(kind, repo) as (verb, reason):
        git(repo, "commit", "-qam", "base with the weak prompt")
        git(repo, "checkout", "-qb", "pr")
        (repo / "prompts" / "triage.j2").write_text(GOOD)
        git(repo, "commit", "-qam", "a better prompt")
        result = CliRunner().invoke(main, ["run", "--base", "main", "--json", "out.json"], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr            # an improvement passes, as it would cached
        [note] = cache_notes(result.stderr)
        assert note[2] == verb and reason in note[3], note[0]
        report = json.loads((repo / "out.json").read_text())
        assert [c["verdict"] for c in report["comparisons"]] == ["improved"]
        for side, right in (("base_results", lambda c: "other"), ("head_results", lambda c: c)):
            [suite] = report[side]
            answers = {c["vars"]["ticket"]: c["samples"][0]["output"] for c in suite["cases"]}
            assert answers == {t: right(c) for t, c in RUN_TICKETS.items()}
        assert openai_server.total == 2 * len(RUN_TICKETS)     # base and head, each case once
    for stream in (result.stdout, result.stderr, (repo / "out.json").read_text()):
        assert CANARY_KEY not in stream


# ---- internal errors ---------------------------------------------------------------------------

BROKEN = "broken/"
BUG = "a bug in a provider plugin"


class BrokenProvider:
    """A third party's provider with a bug: building it raises, as a plugin's mistake would."""

    cacheable = True
    supports_n = False

    def __init__(self, model, base_dir):
        raise RuntimeError(BUG)


@pytest.fixture
def broken_provider():
    register(BROKEN)(BrokenProvider)              # the public registry, as a plugin registers
    try:
        yield f"{BROKEN}model"
    finally:
        PROVIDERS.unregister(BROKEN)


def use_model(config: Path, model: str) -> None:
    text = config.read_text()
    config.write_text(re.sub(r"(?m)^  task: .*$", f"  task: {{model: {model}, api_key_env: GPO_TEST_KEY}}", text))


def test_an_internal_error_exits_4_with_its_traceback_not_1(eval_project, broken_provider, openai_server):
    use_model(eval_project / "gpo.yaml", broken_provider)
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 4, result.stderr
    assert "internal error: gpo-action failed, not your change" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr and f"RuntimeError: {BUG}" in result.stderr
    assert "regress" not in result.stdout + result.stderr and openai_server.total == 0
    assert CANARY_KEY not in result.stdout + result.stderr


ENTRY = """
import sys
from gpo_action.llm.providers import register
from tests.test_own_failures import BROKEN, BrokenProvider
register(BROKEN)(BrokenProvider)
sys.argv = ["gpo-action", *sys.argv[1:]]
from gpo_action.cli import run_process
run_process()
"""


def test_the_process_entry_exits_4_on_an_internal_error(eval_project, broken_provider):
    use_model(eval_project / "gpo.yaml", broken_provider)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPO_TEST_KEY": CANARY_KEY}
    proc = subprocess.run([sys.executable, "-c", ENTRY, "eval"], cwd=eval_project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stderr
    assert "internal error: gpo-action failed, not your change" in proc.stderr and BUG in proc.stderr
    assert CANARY_KEY not in proc.stdout + proc.stderr


def test_the_action_reports_an_internal_error_as_such_not_as_a_verdict(tmp_path, openai_server, monkeypatch,
                                                                     broken_provider):
    repo = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    use_model(repo / "gpo.yaml", broken_provider)
    git(repo, "commit", "-qam", "a plugin's model")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "feature")
    (repo / "prompts" / "triage.j2").write_text(BAD)
    git(repo, "commit", "-qam", "shorter prompt")
    head = git(repo, "rev-parse", "HEAD")
    repository = "octo-org/hello-world"
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": 2, "repository": {"full_name": repository},
                                 "pull_request": {"number": 2,
                                                  "base": {"ref": "main", "sha": base, "repo": {"full_name": repository}},
                                                  "head": {"ref": "feature", "sha": head,
                                                           "repo": {"full_name": repository}}}}))
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    with GitHubServer(token=CANARY_TOKEN, repository=repository) as github:
        github.add_pull(2, {"prompts/triage.j2": (GOOD, BAD)}, head_sha=head, base_sha=base, head_ref="feature")
        for name, value in {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request",
                            "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": repository,
                            "GITHUB_API_URL": github.url, "GITHUB_OUTPUT": str(output),
                            "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_TOKEN": CANARY_TOKEN,
                            "INPUT_GITHUB-TOKEN": CANARY_TOKEN, "INPUT_MODE": "fix",
                            "GPO_TEST_KEY": CANARY_KEY, "OPENAI_API_KEY": CANARY_KEY}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(repo)
        result = CliRunner().invoke(main, ["action"], catch_exceptions=False)
        requests = list(github.requests)
    assert result.exit_code == 4, result.stderr
    assert "::error title=gpo-action internal error::gpo-action failed with an internal error (exit 4), " \
           "not a verdict on this change" in result.stdout
    assert f"RuntimeError: {BUG}" in result.stderr
    outputs = output.read_text() if output.exists() else ""
    assert "exit-code=4" in outputs and "regressed=true" not in outputs
    assert [r for r in requests if r.method != "GET"] == []     # no comment, review or commit claims a verdict
    shown = [line for line in result.stdout.splitlines() if not line.startswith("::add-mask::")]  # masked first
    streams = ["\n".join(shown), result.stderr, outputs, summary.read_text() if summary.exists() else ""]
    streams += [json.dumps(r.__dict__, default=str) for r in requests]
    for stream in streams:
        assert CANARY_KEY not in stream and CANARY_TOKEN not in stream
