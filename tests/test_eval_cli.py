"""`gpo-action eval` end to end: a real project on disk, litellm over HTTP to the scripted server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.projects import write_config

KEY = "sk-test-secret-4242"

TICKETS = {
    "I was charged twice this month": "billing",
    "The app crashes when I open settings": "bug",
    "Refund my last invoice please": "billing",
    "Error 500 after clicking save": "bug",
    "How do I change my avatar?": "other",
    "Can you add a dark mode?": "other",
}


def write_project(root: Path, server_url: str, *, suite_extra: str = "", config_extra: str = "") -> Path:
    (root / "prompts").mkdir()
    (root / "evals").mkdir()
    write_config(root, server_url, retries=1, extra=config_extra)
    (root / "prompts" / "triage.j2").write_text(
        "Classify this support ticket as billing, bug or other.\nTicket: {{ ticket }}\nAnswer: Category: <one word>\n",
        encoding="utf-8",
    )
    cases = "\n".join(f"  - vars: {{ticket: {t!r}}}\n    expected: {e}" for t, e in TICKETS.items())
    (root / "evals" / "triage.yaml").write_text(
        "prompt: prompts/triage.j2\n"
        + suite_extra
        + 'assert:\n  - {type: equals, value: "{{ expected }}", extract: "Category: (\\\\w+)", normalize: [strip, lower]}\n'
        + "cases:\n"
        + cases
        + "\n",
        encoding="utf-8",
    )
    return root


def scripted_answers(server, wrong: set[str] = frozenset()) -> None:
    """The server answers each ticket with its category, except the `wrong` ones."""
    for ticket, expected in TICKETS.items():
        answer = expected if ticket not in wrong else ("other" if expected != "other" else "bug")
        server.add_rule(rf"Ticket: {re.escape(ticket)}\n", f"Category: {answer.capitalize()}")


@pytest.fixture
def project(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    return write_project(tmp_path, openai_server.url)


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_eval_scores_table_and_json(project, openai_server):
    scripted_answers(openai_server, wrong={"Error 500 after clicking save"})
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.output + result.stderr
    assert "triage" in result.stdout and "83.3" in result.stdout  # 5 of 6 right
    report = json.loads((project / "out.json").read_text())
    suite = report["suites"][0]
    assert (suite["passed"], suite["failed"], suite["errors"]) == (5, 1, 0)
    assert suite["tokens"] > 0
    assert openai_server.total == 6
    wrong = [c for c in suite["cases"] if not c["passed"]]
    assert wrong[0]["vars"] == {"ticket": "Error 500 after clicking save"}
    assert wrong[0]["samples"][0]["output"] == "Category: Other"


def test_second_run_is_served_from_cache(project, openai_server):
    scripted_answers(openai_server)
    first = run_cli("eval", "--json", "a.json")
    assert first.exit_code == 0
    calls = openai_server.total
    second = run_cli("eval", "--json", "b.json")
    assert second.exit_code == 0
    assert openai_server.total == calls  # nothing new reached the server
    a, b = (json.loads((project / n).read_text()) for n in ("a.json", "b.json"))
    assert a["suites"][0]["score"] == b["suites"][0]["score"] == 1.0
    assert b["usage"]["cache_hits"] == 6 and b["usage"]["calls"] == 0


def test_below_min_score_exits_1(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path, openai_server.url, suite_extra="min_score: 0.9\n")
    scripted_answers(openai_server, wrong={"Error 500 after clicking save"})
    result = run_cli("eval")
    assert result.exit_code == 1


def test_provider_failing_every_request_exits_3_with_per_case_errors(project, openai_server):
    openai_server.set_fault_rates(p500=1.0)
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 3
    suite = json.loads((project / "out.json").read_text())["suites"][0]
    assert suite["errors"] == 6 and suite["score"] is None
    assert all(c["error"] for c in suite["cases"])
    assert openai_server.total == 6 * 2  # one try and one retry each


def test_repeats_are_separate_samples(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path, openai_server.url, suite_extra="repeats: 3\n")
    scripted_answers(openai_server)
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0
    assert openai_server.total == 18
    suite = json.loads((tmp_path / "out.json").read_text())["suites"][0]
    assert all(len(c["samples"]) == 3 for c in suite["cases"])


def test_llm_rubric_uses_the_judge_model(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path, openai_server.url)
    suite = tmp_path / "evals" / "triage.yaml"
    suite.write_text(
        suite.read_text().replace(
            "assert:\n", "assert:\n  - {type: llm-rubric, value: 'names one category', weight: 1}\n"
        )
    )
    scripted_answers(openai_server)
    openai_server.add_rule(r"names one category", '{"score": 0.5, "reason": "terse"}')
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    data = json.loads((tmp_path / "out.json").read_text())["suites"][0]
    assert openai_server.total == 9  # 6 task calls + 3 judge calls (3 distinct outputs, asked once each)
    assert data["score"] == pytest.approx(0.75)  # (1.0 + 0.5) / 2 on every case
    checks = data["cases"][0]["samples"][0]["checks"]
    assert sorted(c["type"] for c in checks) == ["equals", "llm-rubric"]


def test_undefined_variable_names_case_and_variable(project, openai_server):
    (project / "prompts" / "triage.j2").write_text("Ticket: {{ ticket }} from {{ customer }}\n")
    result = run_cli("eval")
    assert result.exit_code == 2
    assert "customer" in result.stderr and "case " in result.stderr
    assert openai_server.total == 0  # nothing was spent


def test_missing_template_is_an_input_error(project):
    (project / "prompts" / "triage.j2").unlink()
    result = run_cli("eval")
    assert result.exit_code == 2
    assert "triage.j2" in result.stderr


def test_malformed_config_names_file_and_line(project):
    (project / "gpo.yaml").write_text("models:\n  task: openai/x\n suites: [\n")
    result = run_cli("eval")
    assert result.exit_code == 2
    assert "gpo.yaml:" in result.stderr


def test_unknown_suite_name_lists_known(project):
    result = run_cli("eval", "nope")
    assert result.exit_code == 2
    assert "triage" in result.stderr


def test_secret_never_reaches_output_or_cache(project, openai_server):
    scripted_answers(openai_server)
    openai_server.set_fault_rates(p500=1.0)  # error messages are where secrets tend to leak
    result = run_cli("eval", "--json", "out.json")
    openai_server.reset()
    scripted_answers(openai_server)
    run_cli("eval", "--json", "out2.json")
    blobs = [result.stdout, result.stderr, (project / "out.json").read_text(), (project / "out2.json").read_text()]
    blobs += [p.read_bytes().decode("latin-1") for p in (project / ".gpo").rglob("*") if p.is_file()]
    assert all(KEY not in blob for blob in blobs)


def test_console_script_runs_as_a_process(project, openai_server):
    scripted_answers(openai_server)
    env = {**os.environ, "GPO_TEST_KEY": KEY}
    proc = subprocess.run(
        [sys.executable, "-m", "gpo_action", "eval", "--json", "out.json"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "triage" in proc.stdout
    assert json.loads((project / "out.json").read_text())["suites"][0]["score"] == 1.0


def test_corrupt_cache_is_reported_rebuilt_and_the_run_continues(project, openai_server):
    scripted_answers(openai_server)
    cache = project / ".gpo" / "cache.sqlite"
    cache.parent.mkdir()
    cache.write_bytes(b"this is not a database" * 100)
    result = run_cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    assert "cache" in result.stderr.lower() and "corrupt" in result.stderr.lower()
    assert json.loads((project / "out.json").read_text())["suites"][0]["score"] == 1.0
    assert list(cache.parent.glob("cache.sqlite.corrupt-*"))  # the bad file is kept aside, not lost
    again = run_cli("eval")
    assert again.exit_code == 0 and openai_server.total == 6  # the rebuilt cache served the re-run
