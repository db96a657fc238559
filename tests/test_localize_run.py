"""`gpo-action run --optimize` on a real git repository whose pull request makes three edits to the
prompt, one of which (a comma in "billing, bug, or other") makes the scripted task model answer
"other" to every ticket: the fix stage names that edit and proposes reverting only it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gpo_action.cli import main
from tests.support.projects import GOOD, git, local_run_repo

HEAD = "Please classify the support ticket as billing, bug, or other.\nTicket: {{ ticket }}\nReply with the category name only.\n"


def test_run_optimize_names_the_harmful_edit_and_keeps_the_others(tmp_path, openai_server, monkeypatch):
    repo = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(repo)
    git(repo, "checkout", "-qb", "pr")
    (repo / "prompts" / "triage.j2").write_text(HEAD)
    git(repo, "commit", "-qam", "reword the prompt")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--base", "main", "--optimize", "--deliver", "comment,suggestion",
                                       "--out", str(out), "--json", str(tmp_path / "run.json")], catch_exceptions=False)
    assert result.exit_code == 1, result.output          # the verdict stands: the head regressed
    sentence = "fix triage: the drop comes from this edit: [-bug-]{+bug,+}; your other 2 edits do not change the score"
    assert sentence in " ".join(result.stdout.split())      # rich wraps the line at the terminal's width
    comment = (out / "comment.md").read_text()
    assert ("**Located:** the drop comes from this edit: `[-bug-]{+bug,+}`; your other 2 edits do not change the "
            "score (5 dev evaluations, at most 14 for 3 edits).") in comment
    fix = json.loads((tmp_path / "run.json").read_text())["fixes"]["fixes"][0]["result"]
    assert fix["proposed"] and fix["location"]["culprits"] == [1]
    # the revert is checked against the base too; the base's holdout answers came from the compare stage's cache
    versus = (f"not significantly worse than the base prompt (base {100 * fix['base_holdout']:.1f} vs "
              f"{100 * fix['best_holdout']:.1f} on holdout, p = {fix['base_p']:.3f}, {fix['base_paired']} cases)")
    assert fix["base_p"] >= 0.05 and f"and is {versus}." in comment
    probes = fix["location"]["evaluations"] - 2          # head and base were scored on dev by the compare stage
    assert fix["spent"]["task_calls"] == probes * fix["dev_cases"] + fix["holdout_cases"]   # base on holdout: cached
    review = json.loads((out / "review.json").read_text())
    assert review["body"].startswith("**gpo-action** proposes the revert of the edit behind the drop for `triage`")
    assert versus in review["body"]
    [suggestion] = review["comments"]
    assert suggestion["body"] == "```suggestion\nPlease classify the support ticket as billing, bug or other.\n```"
    assert fix["best"] == "Please classify the support ticket as billing, bug or other.\nTicket: {{ ticket }}\n" \
                          "Reply with the category name only.\n"
    assert fix["best"] != GOOD                             # the author's other edits are kept


def test_optimize_localize_false_turns_the_location_off(tmp_path, openai_server, monkeypatch):
    repo = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(repo)
    with open(repo / "gpo.yaml", "a", encoding="utf-8") as config:
        config.write("optimize: {localize: false, steps: 1, candidates: 1}\n")
    git(repo, "commit", "-qam", "no location")
    git(repo, "checkout", "-qb", "pr")
    (repo / "prompts" / "triage.j2").write_text(HEAD)
    git(repo, "commit", "-qam", "reword the prompt")
    result = CliRunner().invoke(main, ["run", "--base", "main", "--optimize", "--json", str(tmp_path / "run.json")],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output
    fix = json.loads((tmp_path / "run.json").read_text())["fixes"]["fixes"][0]["result"]
    assert fix["location"] is None and "drop comes from" not in result.stdout
