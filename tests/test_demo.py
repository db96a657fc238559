"""`gpo-action demo`: the pull-request pipeline end to end on the bundled model, offline.

This is the issue's end-to-end test: a PR that degrades a prompt of the repository's example
produces a comment with the verdict, the diff, the chart and the cost, within the budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpo_action.demo import DEGRADE, QUICK, build_repository

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "gpo_action" / "example"
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")


def test_the_package_ships_the_repositorys_example_unchanged():
    shipped = sorted(p.relative_to(EXAMPLE).as_posix() for p in EXAMPLE.rglob("*") if p.is_file())
    top = sorted(p.relative_to(ROOT).as_posix() for d in ("prompts", "evals") for p in (ROOT / d).rglob("*")
                 if p.is_file()) + ["gpo.yaml"]
    assert shipped == sorted(top)
    for rel in shipped:
        assert (EXAMPLE / rel).read_bytes() == (ROOT / rel).read_bytes(), rel


def test_the_demo_repository_is_the_example_plus_one_degrading_commit(tmp_path):
    base = build_repository(tmp_path / "repo", quick=True)
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path / "repo", capture_output=True, text=True,  # noqa: E731
                                    check=True).stdout.strip()
    assert git("rev-parse", "main") == base and git("rev-parse", "--abbrev-ref", "HEAD") == "prompt-edit"
    assert git("diff", "--name-only", "main", "HEAD").splitlines() == ["prompts/sentiment.yaml"]
    assert DEGRADE[1] in (tmp_path / "repo" / "prompts" / "sentiment.yaml").read_text()
    assert "local/smollm2" in (tmp_path / "repo" / "gpo.yaml").read_text()
    assert git("status", "--porcelain") == ""


@pytest.mark.local_model
def test_demo_on_the_bundled_model_comments_verdict_diff_chart_and_cost_within_budget(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("GITHUB_")}
    repo = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "gpo_action", "demo", "--quick", "--keep", str(repo)],
                          env=env, capture_output=True, text=True, timeout=270)  # below pytest's 300 s
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    comment = (repo / ".gpo" / "demo" / "comment.md").read_text()
    assert comment in out                                                   # printed in the terminal
    assert "| sentiment | 🔴 regressed |" in comment                           # the verdict
    assert "What changed in `prompts/sentiment.yaml` (base → head):" in comment  # the PR's own diff
    assert "<ins>positive or negative?</ins>" in comment
    assert "```mermaid\nxychart-beta" in comment                              # the trajectory chart
    assert "Spent " in comment and "Fix budget for this pull request: 40 calls" in comment  # calls, tokens, cost
    assert "flipped case(s)" in comment and len(comment) < 65_536
    report = json.loads((repo / ".gpo" / "demo" / "report.json").read_text())
    [comparison] = report["comparisons"]
    assert comparison["verdict"] == "regressed" and comparison["base_score"] > comparison["head_score"]
    [fix] = report["fixes"]["fixes"]
    spent = fix["result"]["spent"]
    assert spent["calls"] <= QUICK.max_calls and spent["seconds"] <= QUICK.max_seconds + 30
    assert fix["result"]["steps_done"] <= QUICK.steps
    assert "demo finished in" in out and "exit code of the check: 1" in out
