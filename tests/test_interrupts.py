"""SIGTERM (a cancelled CI job) and Ctrl-C stop every command that spends calls the same way as they
stop `eval` (tests/test_faults.py): exit 130, and the optimizer's run directory saved as interrupted,
so `optimize --resume` continues without paying again for what was answered.

Each run is a real `python -m gpo_action` process against the scripted server, which answers the
first requests and holds every later one (a hang, longer than the test waits), so however slowly
the test is scheduled the run is mid-call when the signal is sent (as in test_faults.interrupted_run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.openai_server import ScriptedOpenAIServer
from tests.support.projects import BAD, local_run_repo, pull_request_branch
from tests.test_optimize_cli import project  # noqa: F401  (a fixture: 3 steps of 3 candidates, cached)

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(180)


def state_of(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stopped_mid_run(args: list[str], cwd: Path, server: ScriptedOpenAIServer, answered: int, sig: int,
                    ready) -> subprocess.Popen:
    """`gpo-action ARGS` as a process; the server answers `answered` requests and holds the rest;
    once `ready()` is true and a held request is in flight, `sig` is sent. Returns the ended process
    (its stderr read into `.err`); the server answers normally again afterwards."""
    server.enqueue_faults(*["ok"] * answered)
    server.set_fault_rates(phang=1.0)
    proc = subprocess.Popen([sys.executable, "-m", "gpo_action", *args], cwd=cwd,
                            env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not (server.outcomes["ok"] == answered and server.in_flight > 0 and ready()) \
            and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()[1]}"
    assert server.outcomes["ok"] == answered and server.in_flight > 0 and ready()
    proc.send_signal(sig)
    _, proc.err = proc.communicate(timeout=60)
    server.set_fault_rates()
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_optimize_saves_its_state_and_the_resume_pays_only_for_the_rest(project, openai_server, sig):
    server, run_dir = openai_server, project.root / ".gpo/optimize/triage"
    answers: set[str] = set()                   # every request the server answered, as sent
    reply = server.reply
    server.set_reply(lambda body, index: answers.add(json.dumps(body, sort_keys=True)) or reply(body, index))
    # the original (12 cases) and step 1 (one optimizer request, 3 candidates x 6 dev cases) are
    # answered, and step 2's optimizer request: its candidates' calls are held
    proc = stopped_mid_run(["optimize", "triage"], project.root, server, 32, sig,
                           ready=lambda: (state_of(run_dir) or {}).get("step_done", 0) >= 1)
    assert proc.returncode == 130 and "interrupted" in proc.err, proc.err
    state = state_of(run_dir)
    assert state["status"] == "interrupted" and state["step_done"] == 1
    answered_before = set(answers)

    before = server.total
    resumed = CliRunner().invoke(main, ["optimize", "triage", "--resume"], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.stderr
    assert "nothing to resume" not in resumed.stdout and "3/3 steps" in resumed.stdout
    assert [line.split(":")[0] for line in resumed.stderr.splitlines() if line.startswith("step ")] == \
        ["step 2/3", "step 3/3"]                # it continues after the last finished step
    asked = {json.dumps(b, sort_keys=True) for b in server.requests[before:]}
    assert asked and not asked & answered_before  # nothing answered before the signal is paid for again
    assert state_of(run_dir)["status"] == "finished"


def test_a_stopped_run_optimize_saves_the_fix_stage_state_and_a_partial_report(tmp_path, monkeypatch):
    with ScriptedOpenAIServer(hang_seconds=120) as server:
        repo = local_run_repo(tmp_path / "repo", server, monkeypatch)
        monkeypatch.chdir(repo)
        pull_request_branch(repo, BAD, "a worse prompt")
        run_dir = repo / ".gpo/fix/triage"
        # base and head (30 cases each) are answered, and one call of the fix stage; the rest is held
        proc = stopped_mid_run(["run", "--base", "main", "--optimize", "--json", str(tmp_path / "run.json"),
                                "--html", str(tmp_path / "run.html")], repo,
                               server, 61, signal.SIGTERM, ready=lambda: state_of(run_dir) is not None)
        assert proc.returncode == 130 and "interrupted" in proc.err, proc.err
        assert state_of(run_dir)["status"] == "interrupted"
        report = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))   # the verdicts, no fixes
        assert report["interrupted"] is True and report["exit_code"] == 130 and report["fixes"] is None
        assert report["regressed"] == ["triage"] and len(report["head_results"][0]["cases"]) == 30
        page = (tmp_path / "run.html").read_text(encoding="utf-8")   # the same, as a page: the verdicts, no fix
        assert "Interrupted: a partial report." in page and page.count('<tr id="s0-c') == 30
        assert '<span class="verdict v-regressed">regressed</span>' in page and 'class="fix"' not in page
