"""`gpo-action init`: writes a working project, never overwrites by accident."""

from __future__ import annotations

import json

import yaml
from click.testing import CliRunner

from gpo_action.cli import main

FILES = ["gpo.yaml", "prompts/triage.j2", "evals/triage.yaml", ".github/workflows/gpo.yml"]


def test_init_writes_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    for rel in FILES:
        assert (tmp_path / rel).is_file(), rel
    workflow = yaml.safe_load((tmp_path / ".github/workflows/gpo.yml").read_text())
    assert workflow["permissions"] == {"contents": "read", "pull-requests": "write"}
    assert list(workflow[True]) == ["pull_request"]           # YAML 1.1 reads the key `on` as True
    steps = workflow["jobs"]["prompts"]["steps"]
    assert any(str(s.get("uses", "")).endswith("gpo-action@v0.1.0") for s in steps)


def test_init_refuses_to_overwrite_without_force(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpo.yaml").write_text("# mine\n")
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 2
    assert "gpo.yaml" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "gpo.yaml").read_text() == "# mine\n"
    assert not (tmp_path / "prompts").exists()  # nothing half-written
    forced = CliRunner().invoke(main, ["init", "--force"])
    assert forced.exit_code == 0
    assert (tmp_path / "gpo.yaml").read_text() != "# mine\n"


def test_scaffold_evaluates_at_once(tmp_path, monkeypatch, openai_server):
    monkeypatch.chdir(tmp_path)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    # Point the scaffold at the scripted server, which answers "billing" to everything.
    with open(tmp_path / "gpo.yaml", "a") as f:
        f.write(f'models:\n  task: {{model: openai/scripted, api_base: "{openai_server.url}/v1"}}\n')
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    openai_server.set_reply("billing")
    result = CliRunner().invoke(main, ["eval", "--json", "out.json"])
    assert result.exit_code == 0, result.stderr
    suite = json.loads((tmp_path / "out.json").read_text())["suites"][0]
    assert (suite["passed"], suite["failed"], suite["errors"]) == (2, 4, 0)
