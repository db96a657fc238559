"""`gpo-action run`: real git repositories in tmp dirs, litellm over HTTP to the scripted server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.projects import BAD, GOOD, TICKETS, answer_by_prompt, git, local_run_repo, make_repo

PAYLOADS = Path(__file__).resolve().parent / "data" / "github"   # GitHub's example payloads, vendored


@pytest.fixture
def repo(tmp_path, openai_server, monkeypatch):
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(root)
    return root


def invoke(*args: str):
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


def test_nothing_changed_exits_0_quickly(repo, openai_server):
    result = invoke("--base", "HEAD")
    assert result.exit_code == 0
    assert "nothing to evaluate" in result.stderr
    assert openai_server.total == 0


def test_degraded_prompt_is_a_regression(repo, openai_server):
    git(repo, "checkout", "-qb", "pr")
    (repo / "prompts" / "triage.j2").write_text(BAD)
    git(repo, "commit", "-qam", "shorter prompt")
    result = invoke("--base", "main", "--json", "out.json", "--markdown", "out.md")
    assert result.exit_code == 1, result.stderr
    data = json.loads((repo / "out.json").read_text())
    c = data["comparisons"][0]
    assert c["verdict"] == "regressed" and c["test"] == "mcnemar"
    assert c["base_score"] == 1.0 and c["head_score"] == pytest.approx(1 / 3)
    assert c["p_value"] < 0.05 and c["ci_high"] < 0
    assert data["changes"][0]["reasons"] == ["prompt changed"]
    assert openai_server.total == 60  # 30 cases on each side, once
    md = (repo / "out.md").read_text()
    assert "regressed" in md and "flipped" in md
    again = invoke("--base", "main")  # a re-run is served from the shared cache
    assert again.exit_code == 1 and openai_server.total == 60


def test_a_change_that_weakens_its_own_suite_passes_but_the_comment_says_it_changes_how_it_is_judged(repo):
    git(repo, "checkout", "-qb", "pr")
    (repo / "prompts" / "triage.j2").write_text(BAD)
    suite = repo / "evals" / "triage.yaml"
    # passes any category (an empty value, which passed anything before, is refused since promptfoo errors on it)
    suite.write_text(suite.read_text().replace("{type: icontains, value: '{{ expected }}'}",
                                               "{type: icontains-any, value: 'billing, bug, other'}"))
    git(repo, "commit", "-qam", "shorter prompt, looser check")
    result = invoke("--base", "main", "--markdown", "out.md")
    assert result.exit_code == 0, result.stderr  # the head grades itself: both sides score 100
    md = (repo / "out.md").read_text()
    assert "This pull request changes how it is judged" in md
    assert "- triage: assertions changed" in md


def test_a_prompt_only_change_has_no_judging_notice(repo):
    git(repo, "checkout", "-qb", "pr")
    (repo / "prompts" / "triage.j2").write_text(BAD)
    git(repo, "commit", "-qam", "shorter prompt")
    result = invoke("--base", "main", "--markdown", "out.md")
    assert result.exit_code == 1, result.stderr
    assert "changes how it is judged" not in (repo / "out.md").read_text()


def test_working_tree_change_is_compared_with_head(repo):
    (repo / "prompts" / "triage.j2").write_text(BAD)
    result = invoke("--base", "HEAD")
    assert result.exit_code == 1
    assert "regressed" in result.stdout


def test_improvement_exits_0(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    openai_server.set_reply(answer_by_prompt)
    root = make_repo(tmp_path / "r", openai_server.url, prompt=BAD)
    monkeypatch.chdir(root)
    (root / "prompts" / "triage.j2").write_text(GOOD)
    result = invoke("--base", "HEAD", "--json", "out.json")
    assert result.exit_code == 0
    assert json.loads((root / "out.json").read_text())["comparisons"][0]["verdict"] == "improved"


def test_small_noise_is_unchanged(repo, openai_server):
    # The new prompt gets one case wrong that the old one got right: not significant.
    flaky = next(iter(TICKETS))

    def one_off(body, index):
        text = body["messages"][-1]["content"]
        if "Reply with the category only, please." in text and flaky in text:
            return "bug" if TICKETS[flaky] != "bug" else "billing"
        return answer_by_prompt(body, index)

    openai_server.set_reply(one_off)
    (repo / "prompts" / "triage.j2").write_text(GOOD.replace("only.", "only, please."))
    result = invoke("--base", "HEAD", "--json", "out.json")
    assert result.exit_code == 0
    c = json.loads((repo / "out.json").read_text())["comparisons"][0]
    assert c["verdict"] == "unchanged" and c["delta"] == pytest.approx(-1 / 30)


def test_added_prompt_is_one_sided(repo):
    (repo / "prompts" / "faq.j2").write_text(GOOD)
    suite = (repo / "evals" / "triage.yaml").read_text().replace("prompts/triage.j2", "prompts/faq.j2")
    (repo / "evals" / "faq.yaml").write_text(suite)
    result = invoke("--base", "HEAD", "--json", "out.json")
    assert result.exit_code == 0
    data = json.loads((repo / "out.json").read_text())
    assert [c["suite"] for c in data["comparisons"]] == ["faq"]
    assert data["changes"][0]["reasons"] == ["added"]
    assert any("one-sided" in n for n in data["comparisons"][0]["notes"])


def test_changed_cases_compare_on_the_intersection(repo):
    path = repo / "evals" / "triage.yaml"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-4]) + "  - vars: {ticket: 'a brand new ticket'}\n    expected: other\n")
    result = invoke("--base", "HEAD", "--json", "out.json")
    data = json.loads((repo / "out.json").read_text())
    c = data["comparisons"][0]
    assert "cases changed" in data["changes"][0]["reasons"]
    assert c["n_paired"] == 28 and c["n_base_only"] == 2 and c["n_head_only"] == 1
    assert any("present in both" in n for n in c["notes"])
    assert result.exit_code == 0


def test_missing_base_ref_exits_2(repo):
    result = invoke("--base", "no-such-branch")
    assert result.exit_code == 2
    assert "no-such-branch" in result.stderr


def test_outside_a_git_repository_exits_2(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    root = make_repo(tmp_path / "r", openai_server.url)
    shutil.rmtree(root / ".git")
    monkeypatch.chdir(root)
    result = invoke("--base", "main")
    assert result.exit_code == 2
    assert "not a git repository" in result.stderr


def test_shallow_clone_says_how_to_fetch(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    origin = make_repo(tmp_path / "origin", openai_server.url)
    (origin / "README").write_text("x")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "main moves on")
    git(origin, "checkout", "-qb", "pr", "HEAD~1")
    (origin / "prompts" / "triage.j2").write_text(BAD)
    git(origin, "commit", "-qam", "pr change")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{origin}", str(clone)], check=True)
    monkeypatch.chdir(clone)
    git(clone, "checkout", "-q", "pr")
    result = invoke("--base", "origin/main")
    assert result.exit_code == 2
    assert "shallow" in result.stderr and "fetch" in result.stderr


def test_github_actions_event_outputs_summary_and_annotations(repo, tmp_path, monkeypatch):
    base_sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "changes")
    (repo / "prompts" / "triage.j2").write_text(BAD)
    git(repo, "commit", "-qam", "worse prompt")
    payload = json.loads((PAYLOADS / "pull_request.synchronize.payload.json").read_text())
    payload["pull_request"]["base"]["sha"] = base_sha
    payload["pull_request"]["head"]["sha"] = git(repo, "rev-parse", "HEAD")
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = invoke("--json", "report.json")  # no --base: taken from the event
    assert result.exit_code == 1
    outputs = output.read_text()
    assert "regressed=true" in outputs and "report-path=report.json" in outputs
    assert "regressed" in summary.read_text()
    assert "::error file=prompts/triage.j2,line=1,title=gpo-action::suite triage regressed" in result.stdout
