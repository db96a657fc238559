"""`gpo-action demo`: the pull-request pipeline end to end on the bundled model, offline.

This is the issue's end-to-end test: a PR that makes two edits to a prompt of the repository's
example, one harmless and one that breaks it, produces a comment with the verdict, the located
edit, a proposed fix that reverts only the harmful edit (its holdout gain and p-value), the diff,
the chart and the cost, within the budget, and a review whose one suggestion is that line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpo_action.pr_pipeline import Outcome
from gpo_action.demo import EDITS, HARMFUL, HARMLESS, PROMPT, QUICK, build_repository, demo_exit_code
from gpo_action.fixes import FixReport
from gpo_action.optimize.localize import split_hunks

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


def test_the_demo_repository_is_the_example_plus_a_commit_of_two_edits(tmp_path):
    base = build_repository(tmp_path / "repo", quick=True)
    git = lambda *a: subprocess.run(["git", *a], cwd=tmp_path / "repo", capture_output=True, text=True,  # noqa: E731
                                    check=True).stdout  # not stripped: the files' last newline counts
    assert git("rev-parse", "main").strip() == base and git("rev-parse", "--abbrev-ref", "HEAD").strip() == "prompt-edit"
    assert git("diff", "--name-only", "main", "HEAD").splitlines() == [PROMPT]
    before, after = git("show", f"main:{PROMPT}"), (tmp_path / "repo" / PROMPT).read_text()
    assert all(old in before and new in after for old, new in EDITS)
    hunks = split_hunks(before, after)                   # the search sees exactly the two edits
    assert [h.new.strip() for h in hunks] == ["customer", "word, positive or negative."]
    assert "local/smollm2" in (tmp_path / "repo" / "gpo.yaml").read_text()
    assert git("status", "--porcelain") == ""


def test_the_demo_exits_0_only_when_the_check_failed_and_a_fix_was_proposed():
    nothing = FixReport()
    assert demo_exit_code(Outcome(result=None, fixes=nothing, exit_code=1)) == 1    # regressed, no fix proposed
    assert demo_exit_code(Outcome(result=None, fixes=None, exit_code=0)) == 1       # nothing regressed
    assert demo_exit_code(Outcome(result=None, fixes=nothing, exit_code=3)) == 3    # provider errors stay 3
    # exit 0 (a fix proposed) is the end-to-end test below


@pytest.mark.local_model
def test_demo_on_the_bundled_model_proposes_reverting_only_the_harmful_edit(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in KEYS and not k.startswith("GITHUB_")}
    repo = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "gpo_action", "demo", "--quick", "--keep", str(repo)],
                          env=env, capture_output=True, text=True, timeout=270)  # below pytest's 300 s
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    out = proc.stdout
    comment = (repo / ".gpo" / "demo" / "comment.md").read_text()
    assert comment in out                                                   # printed in the terminal
    assert "| sentiment | 🔴 regressed |" in comment                           # the verdict
    assert "What changed in `prompts/sentiment.yaml` (base → head):" in comment  # the PR's own diff
    assert "<ins>customer </ins>" in comment and "<ins>word, positive or negative.</ins>" in comment
    report = json.loads((repo / ".gpo" / "demo" / "report.json").read_text())
    [comparison] = report["comparisons"]
    assert comparison["verdict"] == "regressed" and comparison["base_score"] > comparison["head_score"]
    [fix] = report["fixes"]["fixes"]
    result = fix["result"]
    # the fix: located, it reverts the harmful edit and keeps the harmless one
    location = result["location"]
    assert location["status"] == "located" and location["hunks"] == 2 and location["culprits"] == [1]
    head = (repo / PROMPT).read_text()
    assert result["proposed"] and result["best"] == head.replace(HARMFUL[1], HARMFUL[0]) != head
    assert HARMLESS[1] in result["best"]
    assert ("**Located:** the drop comes from this edit: `[-word.-]{+word, positive or negative.+}`; your other "
            "1 edit does not change the score") in comment
    # its holdout gain, significant, and not significantly worse than the base
    assert result["best_holdout"] > result["original_holdout"] and result["holdout_p"] < result["alpha"]
    assert result["base_p"] is not None and result["base_p"] >= result["alpha"]
    p = f"{result['holdout_p']:.3f}"
    assert (f"holdout {100 * result['original_holdout']:.1f} → {100 * result['best_holdout']:.1f}, p = {p}, "
            f"{result['holdout_paired']} cases") in comment
    assert "Answer with one <del>word, positive or negative.</del><ins>word.</ins>" in comment   # the word diff
    # the review: one suggestion, on exactly the harmful edit's line
    review = json.loads((repo / ".gpo" / "demo" / "review.json").read_text())
    [suggestion] = review["comments"]
    line = head.splitlines().index("      " + HARMFUL[1]) + 1
    assert suggestion == {"path": PROMPT, "body": "```suggestion\n      " + HARMFUL[0] + "\n```", "line": line,
                          "side": "RIGHT"}
    assert review["body"].startswith("**gpo-action** proposes the revert of the edit behind the drop")
    # then the GPO refinement ran, within the budget, and says what it found
    assert result["steps_done"] == QUICK.steps and "**Refined:** 1 GPO step from the located revert" in comment
    assert "```mermaid\nxychart-beta" in comment                              # the trajectory chart
    assert "Spent " in comment and "Fix budget for this pull request: 40 calls" in comment  # calls, tokens, cost
    spent = result["spent"]
    assert spent["calls"] <= QUICK.max_calls and spent["seconds"] <= QUICK.max_seconds + 30
    assert "flipped case(s)" in comment and len(comment) < 65_536
    # the conclusion, printed last
    found = out[out.index("What the demo found"):]
    assert f"p = {p}" in found and f"suggestion on {PROMPT} line {line}: {HARMFUL[0]}" in found
    assert "a fix was proposed; the check itself fails (exit 1 in CI" in found and "exits 0" in found
