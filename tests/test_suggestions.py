"""suggestions.py (pure): hunks of real unified diffs, placing changes as suggestions, the diff fallback."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from gpo_action.github.suggestions import (
    Hunk,
    ReviewComment,
    SuggestionPlan,
    diff_changes,
    fence_for,
    merge_plans,
    parse_patch,
    plan_suggestions,
    render_diff,
    suggestion_body,
    text_lines,
)
from tests.support.github_server import unified_patch

BASE = "".join(f"line {i}\n" for i in range(1, 41))           # the file on the base branch


def edit(text: str, replace: dict[int, list[str]]) -> str:
    """`text` with 1-based line n replaced by the given lines ([] deletes it)."""
    lines = text_lines(text)
    out = []
    for number, line in enumerate(lines, start=1):
        out.extend(replace.get(number, [line]))
    return "".join(f"{line}\n" for line in out)


def apply_suggestions(head: str, comments: tuple[ReviewComment, ...]) -> str:
    """What clicking "Commit suggestion" on every comment does to the head file."""
    lines = text_lines(head)
    for comment in sorted(comments, key=lambda c: c.line, reverse=True):
        match = re.fullmatch(r"(`{3,})suggestion\n(.*)\1", comment.body, re.S)
        assert match, comment.body
        first = comment.start_line or comment.line
        lines[first - 1: comment.line] = text_lines(match.group(2))
    return "".join(f"{line}\n" for line in lines)


def body_counts(patch: str) -> list[tuple[int, int]]:
    """(old, new) line counts of each hunk, counted from its body lines, independent of parse_patch."""
    counts: list[list[int]] = []
    for line in patch.split("\n"):
        if line.startswith("@@"):
            counts.append([0, 0])
        elif counts and line[:1] in (" ", "-", "+"):
            counts[-1][0] += line[:1] in (" ", "-")
            counts[-1][1] += line[:1] in (" ", "+")
    return [tuple(c) for c in counts]


def test_parse_patch_of_a_real_git_diff_with_several_hunks(tmp_path: Path):
    old = tmp_path / "old.txt"
    new = tmp_path / "new.txt"
    old.write_text(BASE)
    new.write_text(edit(BASE, {3: ["three"], 20: ["twenty", "twenty bis"], 21: [], 38: ["x"]}).rstrip("\n"))
    out = subprocess.run(["git", "diff", "--no-index", "--no-color", str(old), str(new)],
                         capture_output=True, text=True).stdout
    patch = out[out.index("\n@@") + 1:]             # what GitHub's `patch` field holds: the hunks only
    hunks = parse_patch(patch)
    assert len(hunks) == 3
    assert [(h.old_count, h.new_count) for h in hunks] == body_counts(patch)
    assert hunks[0] == Hunk(1, 6, 1, 6)
    assert hunks[1].new_start == 17 and hunks[1].covers(17, hunks[1].new_end)
    assert not hunks[1].covers(16, 17)
    assert "\\ No newline at end of file" in patch and hunks[2].new_end == 40


def test_parse_patch_github_forms():
    patch = "@@ -1 +1,2 @@ def f():\n-a\n+b\n+c\n@@ -10,0 +12 @@\n+d"
    assert parse_patch(patch) == (Hunk(1, 1, 1, 2), Hunk(10, 0, 12, 1))
    assert parse_patch(None) == () and parse_patch("") == ()
    assert not Hunk(5, 2, 0, 0).covers(0, 0)          # a deleted file has no new-side lines


def test_single_line_change_inside_a_hunk():
    head = edit(BASE, {10: ["line ten"]})             # the PR changed line 10
    improved = edit(head, {11: ["line eleven, better"]})
    plan = plan_suggestions("p.j2", head, improved, unified_patch(BASE, head))
    assert plan.leftovers == ()
    (comment,) = plan.comments
    assert (comment.path, comment.start_line, comment.line) == ("p.j2", None, 11)
    assert comment.body == "```suggestion\nline eleven, better\n```"
    assert comment.to_api() == {"path": "p.j2", "body": comment.body, "line": 11, "side": "RIGHT"}


def test_multi_line_range_within_one_hunk():
    head = edit(BASE, {10: ["a", "b", "c"]})
    improved = edit(head, {10: ["A"], 11: ["B"], 12: []})
    plan = plan_suggestions("p.j2", head, improved, unified_patch(BASE, head))
    (comment,) = plan.comments
    assert (comment.start_line, comment.line) == (10, 12)
    assert comment.body == "```suggestion\nA\nB\n```"
    assert comment.to_api()["start_line"] == 10 and comment.to_api()["start_side"] == "RIGHT"
    assert apply_suggestions(head, plan.comments) == improved


def test_change_outside_the_diff_is_a_leftover():
    head = edit(BASE, {5: ["five"]})
    improved = edit(head, {5: ["FIVE"], 30: ["thirty"]})
    plan = plan_suggestions("p.j2", head, improved, unified_patch(BASE, head))
    assert [c.line for c in plan.comments] == [5]
    (leftover,) = plan.leftovers
    assert (leftover.path, leftover.change.start, leftover.change.end) == ("p.j2", 30, 30)
    assert leftover.change.old_lines == ("line 30",) and leftover.change.new_lines == ("thirty",)
    assert "line 30 not inside one hunk" in leftover.reason


def test_range_across_two_hunks_is_a_leftover():
    head = edit(BASE, {5: ["five"], 15: ["fifteen"]})  # two hunks: new lines 2-8 and 12-18
    hunks = parse_patch(unified_patch(BASE, head))
    assert [(h.new_start, h.new_end) for h in hunks] == [(2, 8), (12, 18)]
    improved = edit(head, {n: [f"new {n}"] for n in range(7, 14)})
    plan = plan_suggestions("p.j2", head, improved, unified_patch(BASE, head))
    assert plan.comments == ()
    assert "lines 7-13" in plan.leftovers[0].reason


def test_pure_insertion_anchors_on_the_previous_line_and_repeats_it():
    head = edit(BASE, {10: ["ten"]})
    improved = edit(head, {10: ["ten", "inserted"]})
    (comment,) = plan_suggestions("p", head, improved, unified_patch(BASE, head)).comments
    assert (comment.start_line, comment.line) == (None, 10)
    assert comment.body == "```suggestion\nten\ninserted\n```"


def test_insertion_at_the_top_anchors_on_the_next_line():
    head = edit(BASE, {1: ["first"]})
    improved = "new top\n" + head
    (comment,) = plan_suggestions("p", head, improved, unified_patch(BASE, head)).comments
    assert comment.line == 1 and comment.body == "```suggestion\nnew top\nfirst\n```"


def test_insertion_uses_the_next_line_when_the_previous_is_outside():
    head = edit(BASE, {14: ["fourteen"]})             # hunk covers new lines 11-17
    improved = edit(head, {10: ["line 10", "between 10 and 11"]})
    (comment,) = plan_suggestions("p", head, improved, unified_patch(BASE, head)).comments
    assert comment.line == 11 and comment.body == "```suggestion\nbetween 10 and 11\nline 11\n```"


def test_deletion_is_an_empty_suggestion():
    head = edit(BASE, {10: ["ten", "extra"]})
    improved = edit(head, {11: []})
    (comment,) = plan_suggestions("p", head, improved, unified_patch(BASE, head)).comments
    assert comment.line == 11 and comment.body == "```suggestion\n```"


def test_text_with_backticks_gets_a_longer_fence():
    head = edit(BASE, {10: ["ten"]})
    improved = edit(head, {10: ["Answer in a block:", "```json", "{}", "```"]})
    (comment,) = plan_suggestions("p", head, improved, unified_patch(BASE, head)).comments
    assert comment.body.startswith("````suggestion\nAnswer in a block:\n```json\n")
    assert comment.body.endswith("\n```\n````")
    assert apply_suggestions(head, (comment,)) == improved
    assert fence_for("a ````` b") == "``````" and fence_for("plain") == "```"
    assert suggestion_body(["x"]) == "```suggestion\nx\n```"


def test_no_patch_means_every_change_is_a_leftover():
    head = edit(BASE, {10: ["ten"]})
    improved = edit(head, {10: ["TEN"]})
    plan = plan_suggestions("p", head, improved, None)
    assert plan.comments == () and "has no patch for this file" in plan.leftovers[0].reason
    assert plan_suggestions("p", head, improved, "").leftovers[0].reason.startswith("GitHub shows no diff hunks")
    assert "empty at the head" in plan_suggestions("p", "", "new\n", "@@ -1 +0,0 @@\n-old").leftovers[0].reason


def test_new_file_in_the_pr_takes_every_change():
    head = "".join(f"row {i}\n" for i in range(1, 31))
    improved = edit(head, {1: ["ROW 1"], 15: [], 30: ["row 30", "row 31"]})
    plan = plan_suggestions("p", head, improved, unified_patch(None, head))
    assert plan.leftovers == () and len(plan.comments) == 3
    assert apply_suggestions(head, plan.comments) == improved


@pytest.mark.parametrize("seed", range(25))
def test_placed_suggestions_reproduce_the_improved_file(seed):
    """On a file added by the PR (one hunk), applying every suggestion yields exactly the improved text."""
    rng = random.Random(seed)
    head = "".join(f"w{rng.randrange(6)}\n" for _ in range(rng.randrange(1, 25)))
    lines = text_lines(head)
    for _ in range(rng.randrange(1, 5)):
        at = rng.randrange(len(lines) + 1)
        kind = rng.choice(["insert", "delete", "replace"])
        if kind == "insert" or not lines[at:]:
            lines[at:at] = [f"n{rng.randrange(99)}"]
        elif kind == "delete" and len(lines) > 1:
            del lines[at]
        else:
            lines[at] = f"r{rng.randrange(99)}"
    improved = "".join(f"{line}\n" for line in lines)
    plan = plan_suggestions("p", head, improved, unified_patch(None, head))
    placed = apply_suggestions(head, plan.comments)
    if plan.leftovers:                                 # only overlapping insertion anchors may be left over
        assert all("already carries" in x.reason for x in plan.leftovers)
    else:
        assert placed == improved


def test_line_endings_and_unchanged_texts():
    assert diff_changes("p", "a\r\nb\r\n", "a\nb") == []
    assert plan_suggestions("p", "a\n", "a\n", "@@ -0,0 +1 @@\n+a") == SuggestionPlan()
    assert text_lines("a\n\nb") == ["a", "", "b"] and text_lines("") == []


def test_merge_plans_keeps_order():
    one = plan_suggestions("a", "x\n", "y\n", "@@ -1 +1 @@\n-w\n+x")
    two = plan_suggestions("b", "x\n", "y\n", None)
    merged = merge_plans([one, two])
    assert [c.path for c in merged.comments] == ["a"] and [x.path for x in merged.leftovers] == ["b"]
    assert not merged.empty and SuggestionPlan().empty


def test_render_diff_is_a_safely_fenced_diff_block():
    text = render_diff("a\nb\n", "a\nB\n", "prompts/t.j2")
    assert text == "```diff\n--- a/prompts/t.j2\n+++ b/prompts/t.j2\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n```"
    fenced = render_diff("x\n", "```\ncode\n```\n", "p.md")
    assert fenced.startswith("````diff\n") and fenced.endswith("\n````")
    assert render_diff("same\n", "same\n", "p") == ""
    assert "--- /dev/null" in render_diff(None, "new\n", "p")
    assert "\\ No newline at end of file" in render_diff("a\n", "a", "p")
