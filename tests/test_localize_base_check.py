"""A located revert is proposed only when it beats the head on holdout AND is not significantly
worse than the base prompt there (the same one-sided paired test, base against the revert).

The scripted ticket world (tests/test_optimize_world.py): HINT-BILLING / HINT-BUG make the task
model right on those tickets, DEVONLY makes it right on every dev ticket (and changes nothing on
the others), SABOTAGE makes every answer wrong. The base carries both hints; the pull request
swaps them for DEVONLY (harmless on dev, harmful on holdout) and adds SABOTAGE (harmful
everywhere). Locating on dev finds SABOTAGE alone: reverting it restores the dev score, but on
holdout the revert gets only the "other" tickets right, where the base gets every ticket.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpo_action.delivery import commit_message
from gpo_action.fixes import Fix
from gpo_action.optimize.localize import split_hunks
from gpo_action.report.comment import fix_section
from gpo_action.stats import mcnemar_exact
from gpo_action.suites import split_cases
from gpo_action.templates import parse_template
from tests.test_localize_world import BASE as PLAIN_BASE, HEAD as PLAIN_HEAD
from tests.test_optimize_world import Optimizer, World, add_hint, current_prompt, wrap

CATEGORIES = ("other", "billing", "other", "bug")
TICKETS = {f"Ticket number {i} about {CATEGORIES[i % 4]}": CATEGORIES[i % 4] for i in range(30)}
BASE = ("Classify this support ticket as billing, bug or other.\nNote: HINT-BILLING.\nNote: HINT-BUG.\n"
        "Ticket: {{ ticket }}\nAnswer: Category: <one word>\n")
HEAD = ("Classify this support ticket as billing, bug or other.\nNote: DEVONLY.\n"
        "Ticket: {{ ticket }}\nAnswer: Category: <one word>\nBe brief and SABOTAGE everything.\n")


def no_candidate(request: int, index: int, meta: str) -> str:
    return "I would not change anything."      # no markers, no template variable: never a candidate


def run(world: World, head: str, base: str):
    world.template = parse_template(head, world.template.path, "text")
    with world.client() as client:
        return world.run(client, base=base, steps=1, candidates=1)


def test_a_revert_that_beats_the_head_but_is_significantly_worse_than_the_base_is_not_proposed(tmp_path, openai_server):
    world = World(tmp_path, openai_server, Optimizer(no_candidate), cases=TICKETS)
    _, holdout = split_cases(world.suite)
    others = sum(1 for c in holdout if TICKETS[c.vars["ticket"]] == "other")
    hinted = len(holdout) - others
    assert others >= 5 and hinted >= 5          # the world gives both tests enough discordant cases

    result = run(world, HEAD, BASE)

    sabotage = next(h.index for h in split_hunks(BASE, HEAD) if "SABOTAGE" in h.new)
    assert result.location["status"] == "located" and result.location["culprits"] == [sabotage]
    assert result.located_fix and "SABOTAGE" not in result.best and "DEVONLY" in result.best
    assert result.best_dev == 1.0 == result.location["base_score"]   # on dev the revert restores the base's score
    # it beats the head on holdout, significantly ...
    assert result.original_holdout == 0.0 and result.best_holdout == pytest.approx(others / len(holdout))
    assert result.holdout_p == pytest.approx(mcnemar_exact(0, others) / 2) and result.holdout_p < result.alpha
    # ... but the base is significantly better there: not proposed
    assert result.base_holdout == 1.0
    assert result.base_p == pytest.approx(mcnemar_exact(0, hinted) / 2) and result.base_p < result.alpha
    assert result.base_paired == len(holdout)
    assert not result.proposed
    versus = (f"base 100.0 vs {100 * others / len(holdout):.1f} on holdout, p = {result.base_p:.3f}, "
              f"{len(holdout)} cases")
    assert result.message.startswith("not proposed:")
    assert f"but it is significantly worse than the base prompt: {versus} (a located revert must not be)" \
        in result.message

    section, summary = fix_section(Fix("triage", "regressed", "prompts/triage.j2", result=result), None)
    assert "Located revert, not proposed" in section and "✅" not in summary
    assert (f"Not proposed: it beats the head prompt on the {len(holdout)} holdout cases by the one-sided exact "
            f"McNemar test at α = 0.05 (p = {result.holdout_p:.3f}), but it is significantly worse than the base "
            f"prompt ({versus}): reverting the located edits does not bring back what the base prompt did") in section


def test_a_revert_no_worse_than_the_base_is_proposed_and_every_wording_gives_the_base_check(tmp_path, openai_server):
    world = World(tmp_path, openai_server, Optimizer(no_candidate), cases=TICKETS)
    result = run(world, PLAIN_HEAD, PLAIN_BASE)      # SABOTAGE is the only harmful edit of five
    assert result.located_fix and result.proposed
    assert result.base_holdout == result.best_holdout == 1.0
    assert result.base_p == pytest.approx(0.5)       # a tie with the base: no evidence that it is better
    versus = "not significantly worse than the base prompt (base 100.0 vs 100.0 on holdout, p = 0.500, 15 cases)"
    assert "; not significantly worse than the base prompt: base 100.0 vs 100.0 on holdout, p = 0.500, 15 cases" \
        in result.message

    fix = Fix("triage", "regressed", "prompts/triage.j2", result=result)
    section, summary = fix_section(fix, None)
    assert f"and is {versus}." in section
    assert f"fix proposed: it reverts 1 of your {result.location['hunks']} edits" in summary
    assert "**Refined:** 1 GPO step from the located revert: 0 candidates scored, 1 rejected" in section
    assert "| proposed | 100.0 | 100.0 |\n| base prompt | 100.0 | 100.0 |" in section
    message = commit_message([SimpleNamespace(path="prompts/triage.j2", fix=fix)], 7)
    assert versus in message and "The revert of the edit behind the drop, proposed by gpo-action" in message


def test_a_refined_candidate_is_judged_against_the_head_only(tmp_path, openai_server):
    """The base rule is for located reverts: here the base lacks HINT-BUG, so the refinement's
    candidate (the revert plus HINT-BUG) beats the revert on dev and is proposed on the head test."""
    base = BASE.replace("Note: HINT-BUG.\n", "")
    head = base.replace("Classify this", "Sort this") + "Be brief and SABOTAGE everything.\n"
    world = World(tmp_path, openai_server, Optimizer(lambda r, i, meta: wrap(add_hint(current_prompt(meta),
                                                                                      "Note: HINT-BUG."))),
                  cases=TICKETS)
    result = run(world, head, base)
    assert result.location["status"] == "located" and result.location["fixed_score"] < 1.0
    assert not result.located_fix and "HINT-BUG" in result.best and result.best_dev == 1.0
    assert result.proposed and result.base_p is None and result.base_holdout is None
    assert "base prompt" not in result.message
