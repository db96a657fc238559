"""Nothing passes silently (issue 15, point 5): an "unchanged" verdict of a suite too small to detect
the gate's drop says so. Real CLI, real git repositories under tmp, litellm over HTTP to the
scripted server."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.projects import git, local_run_repo, pull_request_branch

# The same prompt in other words: it still names the labels, so every case still passes.
HARMLESS = "Classify this support ticket as billing, bug or other.\nTicket: {{ ticket }}\nReply with the category only.\n"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def repo(tmp_path, openai_server, monkeypatch):
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(root)
    return root


# ---- an unchanged verdict that says little ------------------------------------------------------------

def test_an_unchanged_verdict_of_a_small_suite_says_what_it_could_detect(repo, openai_server):
    pull_request_branch(repo, HARMLESS, "reworded")
    result = invoke("run", "--base", "main", "--markdown", "out.md", "--json", "out.json")
    assert result.exit_code == 0, result.output
    note = "with 30 cases this suite can only detect drops of 20.0 points or more at alpha 0.05 (gate.max_drop is 2 points)"
    assert f"triage: unchanged, but {note}" in " ".join(result.stdout.split())
    md = (repo / "out.md").read_text()
    assert "Too few cases to tell" in md and "can only detect drops of 20.0 points or more" in md
    assert json.loads((repo / "out.json").read_text())["comparisons"][0]["power_note"] == note


def test_a_big_enough_suite_gets_no_such_note(repo, openai_server):
    (repo / "gpo.yaml").write_text((repo / "gpo.yaml").read_text() + "gate: {max_drop: 0.25}\n")
    git(repo, "commit", "-qam", "a looser gate")
    pull_request_branch(repo, HARMLESS, "reworded")
    result = invoke("run", "--base", "main", "--markdown", "out.md")
    assert result.exit_code == 0, result.output
    assert "can only detect" not in result.stdout and "Too few cases" not in (repo / "out.md").read_text()
