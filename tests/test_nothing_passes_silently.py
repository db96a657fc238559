"""Nothing passes silently (issue 15, point 5): a run, eval or pre-commit hook that could not evaluate
for want of a model or a key exits 2 and says the fix; `--optimize` says why no fix ran; an
"unchanged" verdict of a suite too small to detect the gate's drop says so. Real CLI, real git repositories under tmp, litellm over HTTP to
the scripted server."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.projects import BAD, answer_by_prompt, git, local_run_repo, make_repo, pull_request_branch

ROOT = Path(__file__).resolve().parents[1]
PROVIDER_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
# The same prompt in other words: it still names the labels, so every case still passes.
HARMLESS = "Classify this support ticket as billing, bug or other.\nTicket: {{ ticket }}\nReply with the category only.\n"
# A machine where llama-cpp-python is not installed (as after `pip install gpo-action`, which the
# pre-commit hook does): the interpreter is told the module does not exist, nothing of ours is touched.
WITHOUT_LLAMA_CPP = ("import sys; sys.modules['llama_cpp'] = None; sys.argv = ['gpo-action'] + sys.argv[1:]; "
                     "from gpo_action.cli import run_process; run_process()")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def flat(text: str) -> str:
    """Output with the terminal's line wrapping undone."""
    return " ".join(text.split())


def two_suite_repo(root: Path, url: str, *, gate: str = "") -> Path:
    """`make_repo`'s project with a second suite on the same prompt: `triage` on the task model (key
    in GPO_TEST_KEY), `other` on a model whose key is OTHER_KEY."""
    make_repo(root, url)
    (root / "gpo.yaml").write_text(
        f'models:\n  task: {{model: openai/scripted, api_base: "{url}/v1", api_key_env: GPO_TEST_KEY}}\n'
        "suites:\n  - eval: evals/triage.yaml\n  - eval: evals/other.yaml\n"
        f'    model: {{model: openai/other, api_base: "{url}/v1", api_key_env: OTHER_KEY}}\n'
        "concurrency: 8\ntimeout: 5\nretries: {max: 1, base: 0.01}\n" + gate)
    (root / "evals" / "other.yaml").write_text((root / "evals" / "triage.yaml").read_text())
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two suites")
    return root


@pytest.fixture
def keyless(tmp_path, openai_server, monkeypatch):
    """The run project of tests/support (its model is openai/...) on a machine with no provider key."""
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    for name in PROVIDER_KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    return root


# ---- exit 2 when nothing could be evaluated ---------------------------------------------------------

def test_the_pre_commit_hook_on_the_init_scaffold_with_no_model_fails_with_exit_2_and_the_fix(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "-c", "init.defaultBranch=main", "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_KEYS and k != "GITHUB_ACTIONS"}
    subprocess.run([sys.executable, "-m", "gpo_action", "init"], cwd=repo, env=env, check=True, capture_output=True)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "scaffold")
    prompt = repo / "prompts" / "triage.j2"
    prompt.write_text(prompt.read_text() + "Be brief.\n")          # the change the hook is run for
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    command = hook["entry"].split()
    assert command[0] == "gpo-action"
    done = subprocess.run([sys.executable, "-c", WITHOUT_LLAMA_CPP, *command[1:]], cwd=repo, env=env,
                          capture_output=True, text=True)
    out = flat(done.stdout + done.stderr)
    assert done.returncode == 2, out
    assert "skipped" in done.stdout                                 # the verdict table still shows what ran
    assert "error: nothing was evaluated: local/smollm2 cannot run here (llama-cpp-python is not installed" in out
    assert "pip install 'gpo-action[local]'" in out and "models.task" in out


def test_a_run_without_its_key_exits_2_naming_the_key_and_calls_nothing(keyless, openai_server):
    pull_request_branch(keyless, HARMLESS, "reworded")
    result = invoke("run", "--base", "main", "--json", "out.json", "--markdown", "out.md")
    assert result.exit_code == 2, result.output
    assert openai_server.total == 0
    assert "error: nothing was evaluated: openai/scripted cannot run here (OPENAI_API_KEY is not set)" in flat(result.stdout)
    assert "Fix: set OPENAI_API_KEY" in flat(result.stdout)
    data = json.loads((keyless / "out.json").read_text())
    assert data["exit_code"] == 2 and data["skips_pass"] is None
    assert [c["verdict"] for c in data["comparisons"]] == ["skipped"]
    md = html.unescape((keyless / "out.md").read_text())
    assert "[!CAUTION]" in md and "Nothing was evaluated, so the check fails (exit 2)" in md
    assert "`openai/scripted`: OPENAI_API_KEY is not set" in md and "Fix: set OPENAI_API_KEY" in md


def test_eval_without_its_key_exits_2_with_the_fix_and_calls_nothing(keyless, openai_server):
    result = invoke("eval", "--json", "eval.json")
    assert result.exit_code == 2, result.output
    assert openai_server.total == 0
    assert ("error: nothing was evaluated: openai/scripted cannot run here (OPENAI_API_KEY is not set), and the "
            "cache does not hold its answers. Fix: set OPENAI_API_KEY") in result.stderr
    assert json.loads((keyless / "eval.json").read_text())["exit_code"] == 2


def test_eval_with_its_key_after_a_keyless_eval_is_not_held_back(keyless, openai_server, monkeypatch):
    assert invoke("eval").exit_code == 2
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    result = invoke("eval")
    assert result.exit_code == 0, result.output                     # nothing skipped was cached
    assert openai_server.total == 30 and "error:" not in result.stderr


def test_a_keyless_run_served_wholly_from_the_cache_passes(keyless, openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    pull_request_branch(keyless, HARMLESS, "reworded")
    assert invoke("run", "--base", "main").exit_code == 0           # both sides evaluated, cached
    monkeypatch.delenv("OPENAI_API_KEY")
    result = invoke("run", "--base", "main")
    assert result.exit_code == 0, result.output                     # a cache-only model, but nothing was skipped
    assert "error:" not in result.output and "unchanged" in result.stdout


# ---- some suites evaluated, some not ------------------------------------------------------------------

def test_a_suite_without_its_key_beside_one_that_ran_still_fails_with_exit_2(tmp_path, openai_server, monkeypatch):
    openai_server.set_reply(answer_by_prompt)
    monkeypatch.setenv("GPO_TEST_KEY", "test-key")
    monkeypatch.delenv("OTHER_KEY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    repo = two_suite_repo(tmp_path / "repo", openai_server.url)
    monkeypatch.chdir(repo)
    pull_request_branch(repo, BAD, "shorter prompt")
    result = invoke("run", "--base", "main")
    assert result.exit_code == 2, result.output                     # not 1: the run did not check all it was asked to
    assert "regressed" in result.stdout                              # the suite that ran has its verdict
    assert ("error: 1 of 2 suites were not fully evaluated (other: 60 of 60 cases skipped): openai/other cannot "
            "run here (OTHER_KEY is not set)") in flat(result.stdout)
    assert openai_server.total == 60                                 # triage's two sides; nothing for `other`


def test_gate_allow_skipped_lets_such_suites_pass_and_says_so(tmp_path, openai_server, monkeypatch):
    openai_server.set_reply(answer_by_prompt)
    monkeypatch.setenv("GPO_TEST_KEY", "test-key")
    monkeypatch.delenv("OTHER_KEY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    repo = two_suite_repo(tmp_path / "repo", openai_server.url, gate="gate: {allow_skipped: true}\n")
    monkeypatch.chdir(repo)
    pull_request_branch(repo, HARMLESS, "reworded")
    result = invoke("run", "--base", "main", "--markdown", "out.md")
    assert result.exit_code == 0, result.output
    assert "skipped: 1 of 2 suites were not fully evaluated" in flat(result.stdout)
    assert "This does not fail the run: the gate allows it (gate.allow_skipped: true)" in flat(result.stdout)
    md = (repo / "out.md").read_text()
    assert "[!NOTE]" in md and "this does not fail the check" in md and "[!CAUTION]" not in md


# ---- --optimize says why no fix ran, and an unchanged verdict that says little ------------------------

@pytest.fixture
def repo(tmp_path, openai_server, monkeypatch):
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(root)
    return root


def test_optimize_on_an_unchanged_verdict_says_why_no_fix_ran(repo, openai_server):
    pull_request_branch(repo, HARMLESS, "reworded")
    result = invoke("run", "--base", "main", "--optimize", "--json", "out.json")
    assert result.exit_code == 0, result.output
    assert ("fix triage: no fix: its verdict unchanged is not one that optimize.when: regression fixes "
            "(regressed)") in flat(result.stdout)
    data = json.loads((repo / "out.json").read_text())
    assert data["fixes"]["fixes"] == [] and "optimize.when: regression" in data["fixes"]["unfixed"]["triage"]
    assert openai_server.total == 60                                 # the comparison only: no optimizer call


def test_optimize_with_a_zero_budget_says_so_and_calls_no_optimizer(repo, openai_server):
    pull_request_branch(repo, BAD, "shorter prompt")
    result = invoke("run", "--base", "main", "--optimize", "--budget-usd", "0", "--markdown", "out.md")
    assert result.exit_code == 1, result.output
    assert "fix triage: not optimized: the budget is zero (optimize.budget.max_usd: 0)" in flat(result.stdout)
    assert openai_server.total == 60
    assert "**Fix:** not optimized: the budget is zero" in html.unescape((repo / "out.md").read_text())


def test_a_failing_suite_that_optimize_when_leaves_out_says_so_in_the_comment(repo, openai_server):
    git(repo, "checkout", "-qb", "pr")
    (repo / "prompts" / "floor.j2").write_text(BAD)                  # scores 1/3 of the cases
    suite = (repo / "evals" / "triage.yaml").read_text().replace("prompts/triage.j2", "prompts/floor.j2")
    (repo / "evals" / "floor.yaml").write_text("min_score: 0.9\n" + suite)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a new suite under its floor")
    result = invoke("run", "--base", "main", "--optimize", "--markdown", "out.md")
    assert result.exit_code == 1, result.output
    why = "no fix: its verdict below-min is not one that optimize.when: regression fixes (regressed)"
    assert f"fix floor: {why}" in flat(result.stdout)
    assert f"**Fix:** {why}" in html.unescape((repo / "out.md").read_text())


def test_an_unchanged_verdict_of_a_small_suite_says_what_it_could_detect(repo, openai_server):
    pull_request_branch(repo, HARMLESS, "reworded")
    result = invoke("run", "--base", "main", "--markdown", "out.md", "--json", "out.json")
    assert result.exit_code == 0, result.output
    note = "with 30 cases this suite can only detect drops of 20.0 points or more at alpha 0.05 (gate.max_drop is 2 points)"
    assert f"triage: unchanged, but {note}" in flat(result.stdout)
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
