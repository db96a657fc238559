"""`gpo-action optimize` end to end: a project on disk, litellm over HTTP to the scripted server."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.openai_server import ScriptedOpenAIServer
from tests.test_optimize_world import TEXT_TEMPLATE, Optimizer, World, add_hint, hint_script, wrap


@pytest.fixture
def project(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", "sk-test")
    monkeypatch.chdir(tmp_path)
    world = World(tmp_path, openai_server, Optimizer(hint_script))
    model = f'{{model: openai/%s, api_base: "{openai_server.url}/v1", api_key_env: GPO_TEST_KEY}}'
    (tmp_path / "gpo.yaml").write_text(textwrap.dedent(f"""\
        models:
          task: {model % "task"}
          optimizer: {model % "optimizer"}
        concurrency: 4
        retries: {{max: 1, base: 0.01, max_wait: 0.05}}
        optimize:
          preset: gpo
          steps: 3
          candidates: 3
          budget: {{max_calls: 400, max_usd: 2.0, max_seconds: 600}}
        """))
    return world


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_optimize_reports_progress_scores_diff_and_trajectory(project, openai_server):
    result = run_cli("optimize", "triage")
    assert result.exit_code == 0, result.stderr
    assert [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("step ")] == \
        ["step 0/3", "step 1/3", "step 2/3", "step 3/3"]
    out = result.stdout
    assert "original" in out and "best" in out and "improved: dev 50.0 -> 100.0" in out
    assert "proposed change:" in out and "words changed" in out and "HINT-BILLING" in out
    assert "trajectory:" in out and (project.root / ".gpo/optimize/triage/trajectory.jsonl").exists()
    assert (project.root / "prompts/triage.j2").read_text() == TEXT_TEMPLATE  # no --write, no change
    optimizer = [b for b in openai_server.requests if b["model"] == "optimizer"]
    assert len(optimizer) == 3 and all(b["n"] == 3 and b["temperature"] == 1.0 for b in optimizer)


def test_write_replaces_the_template_and_eval_agrees(project, openai_server):
    result = run_cli("optimize", "triage", "--write", "--steps", "2")
    assert result.exit_code == 0, result.stderr
    written = (project.root / "prompts/triage.j2").read_text()
    assert written != TEXT_TEMPLATE and "{{ ticket }}" in written and "wrote " in result.stderr
    evaluated = run_cli("eval", "--json", "out.json")
    assert json.loads((project.root / "out.json").read_text())["suites"][0]["score"] == 1.0, evaluated.stderr


def test_write_refuses_a_prompt_that_fails_the_holdout_guard(project):
    project.optimizer.script = lambda request, index, meta: wrap(add_hint(TEXT_TEMPLATE, "Note: OVERFIT."))
    result = run_cli("optimize", "triage", "--write", "--steps", "1", "--candidates", "1")
    assert result.exit_code == 0, result.stderr
    assert "no improvement found" in result.stdout and "best candidate (not proposed)" in result.stdout
    assert (project.root / "prompts/triage.j2").read_text() == TEXT_TEMPLATE and "wrote" not in result.stderr


def test_dry_run_projects_calls_without_calling(project, openai_server):
    result = run_cli("optimize", "triage", "--dry-run", "--max-calls", "50")
    assert result.exit_code == 0, result.stderr
    assert openai_server.total == 0
    out = result.stdout
    assert "dry-run" in out and "total" in out
    # 12 original + 3 optimizer requests + 3 steps x 3 candidates x 6 dev cases + 6 holdout = 75
    assert "│    75 │" in out and "would stop at max_calls" in out
    assert "cost unknown" in out  # the scripted models have no price


def test_a_capped_run_resumes_without_repeating_calls(project, openai_server):
    first = run_cli("optimize", "triage", "--max-calls", "30")
    assert first.exit_code == 0 and "stopped at max_calls" in first.stdout
    assert openai_server.total <= 30
    state = json.loads((project.root / ".gpo/optimize/triage/state.json").read_text())
    assert state["status"] == "stopped" and state["schema_version"] == 1 and len(state["fingerprint"]) == 64
    seen = [json.dumps(b, sort_keys=True) for b in openai_server.requests]
    resumed = run_cli("optimize", "triage", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    everything = [json.dumps(b, sort_keys=True) for b in openai_server.requests]
    assert len(everything) == len(set(everything)) and everything[:len(seen)] == seen
    assert "3/3 steps" in resumed.stdout and "improved" in resumed.stdout


def test_input_errors_exit_2(project):
    unknown = run_cli("optimize", "triage", "--preset", "dspy")
    assert unknown.exit_code == 2 and "known: gpo, opro, ape, apo, pe2" in unknown.stderr
    missing = run_cli("optimize", "nope")
    assert missing.exit_code == 2 and "triage" in missing.stderr


def test_unusable_replies_are_counted_and_a_failing_optimizer_exits_3(project, openai_server):
    project.optimizer = Optimizer(lambda request, index, meta: f"no markers at all {index}")
    result = run_cli("optimize", "triage", "--steps", "1")
    assert result.exit_code == 0 and "rejected: no-markers 3" in result.stdout
    assert "no improvement found" in result.stdout

    with ScriptedOpenAIServer() as broken:
        broken.set_fault_rates(p401=1.0)
        config = project.root / "gpo.yaml"
        config.write_text(config.read_text().replace(f"optimizer: {{model: openai/optimizer, api_base: \"{openai_server.url}",
                                                     f"optimizer: {{model: openai/optimizer, api_base: \"{broken.url}"))
        failed = run_cli("optimize", "triage")
        assert broken.total == 1
    assert failed.exit_code == 3 and "stopped at optimizer-error" in failed.stdout
    assert (project.root / ".gpo/optimize/triage/trajectory.jsonl").read_text().count('"kind": "prompt"') == 1


def test_a_trajectory_torn_inside_a_character_is_skipped_on_resume(project, openai_server):
    prompt = project.root / "prompts/triage.j2"
    prompt.write_text(TEXT_TEMPLATE.replace("support ticket", "support ticket (café, 日本)"), encoding="utf-8")
    first = run_cli("optimize", "triage", "--max-calls", "30")
    assert first.exit_code == 0 and "stopped at max_calls" in first.stdout, first.stderr
    trajectory = project.root / ".gpo/optimize/triage/trajectory.jsonl"
    data = trajectory.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    cut = len(data.rstrip(b"\n")) - len(last) + last.index("日".encode()) + 1   # inside the 3 bytes of 日
    trajectory.write_bytes(data[:cut])                   # a crash mid-write
    seen = [json.dumps(b, sort_keys=True) for b in openai_server.requests]
    resumed = run_cli("optimize", "triage", "--resume")
    assert resumed.exit_code == 0, resumed.stderr
    assert "trajectory.jsonl: skipped a line cut short or unreadable" in resumed.stdout
    assert "Traceback" not in resumed.stderr and "3/3 steps" in resumed.stdout
    everything = [json.dumps(b, sort_keys=True) for b in openai_server.requests]
    assert len(everything) == len(set(everything)) and everything[:len(seen)] == seen  # nothing asked again
    records = [json.loads(line) for line in trajectory.read_text(encoding="utf-8").splitlines()]
    assert records[-1]["kind"] == "final" and "日本" in records[0]["prompt"]


def test_the_holdout_test_is_held_to_the_gates_alpha(project, openai_server):
    config = project.root / "gpo.yaml"
    config.write_text(config.read_text() + "gate: {alpha: 0.2}\n")
    result = run_cli("optimize", "triage", "--steps", "2")
    assert result.exit_code == 0, result.stderr
    assert "improved: dev 50.0 -> 100.0" in result.stdout and "alpha = 0.2)" in result.stdout
    state = json.loads((project.root / ".gpo/optimize/triage/trajectory.jsonl").read_text().splitlines()[-1])
    assert state["kind"] == "final" and state["proposed"] and "one-sided exact McNemar test" in state["message"]
