"""The holdout guard is the verdicts' paired test, one-sided, at the gate's alpha: a tie and a gain
within noise are not proposed, a large gain is, and the comment names the rule with its figures.

A 30-ticket world (15 holdout cases): the original prompt gets only the "other" tickets right.
Candidates carry markers the scripted task model reads: DEVONLY is right on every dev ticket and
unchanged on holdout; ONEMORE also gets one chosen holdout ticket right; both hints fix every ticket.
"""

from __future__ import annotations

import pytest

from gpo_action.fixes import ChartPoint, Fix
from gpo_action.optimize.results import p_text
from gpo_action.report.comment import fix_section
from gpo_action.stats import mcnemar_exact
from gpo_action.suites import split_cases
from tests.test_optimize_engine import scripted
from tests.test_optimize_world import TEXT_TEMPLATE, Optimizer, World, add_hint, wrap

CATEGORIES = ("billing", "bug", "other")
TICKETS = {f"Ticket number {i} about {CATEGORIES[i % 3]}": CATEGORIES[i % 3] for i in range(30)}


class NoisyWorld(World):
    """The optimizer world, plus ONEMORE: right on one holdout ticket that the original gets wrong."""

    def __init__(self, root, server, optimizer, **kwargs):
        super().__init__(root, server, optimizer, cases=TICKETS, **kwargs)
        _, holdout = split_cases(self.suite)
        self.holdout_tickets = [c.vars["ticket"] for c in holdout]
        self.chosen = next(t for t in self.holdout_tickets if TICKETS[t] != "other")

    def answer(self, prompt: str) -> str:
        if "ONEMORE" in prompt and f"Ticket: {self.chosen}" in prompt:
            return f"Category: {TICKETS[self.chosen]}"
        if "ONEMORE" in prompt:
            prompt = prompt.replace("ONEMORE", "DEVONLY")
        return super().answer(prompt)


def run_with(tmp_path, openai_server, line: str, **spec):
    world = NoisyWorld(tmp_path, openai_server, Optimizer(scripted({1: [wrap(add_hint(TEXT_TEMPLATE, line))]})))
    with world.client() as client:
        result = world.run(client, steps=1, candidates=1, **spec)
    assert result.holdout_cases == 15 and result.dev_cases == 15
    assert result.best != result.original and result.best_dev == 1.0 > result.original_dev
    return world, result


def wrong_on_holdout(world: NoisyWorld) -> int:
    """Holdout tickets the original gets wrong (every ticket that is not "other")."""
    return sum(1 for t in world.holdout_tickets if TICKETS[t] != "other")


def test_a_tie_on_holdout_is_never_proposed(tmp_path, openai_server):
    _, result = run_with(tmp_path, openai_server, "Note: DEVONLY.")
    assert result.best_holdout == result.original_holdout
    assert not result.proposed and result.holdout_p == pytest.approx(0.5)  # no discordant pair: two-sided p 1
    assert result.message.startswith("not proposed:") and "a tie on holdout" in result.message


def test_one_more_case_right_out_of_15_is_not_significant_and_the_message_gives_the_numbers(tmp_path, openai_server):
    world, result = run_with(tmp_path, openai_server, "Note: ONEMORE.")
    assert result.best_holdout - result.original_holdout == pytest.approx(1 / 15)
    assert result.holdout_test == "mcnemar" and result.holdout_paired == 15
    assert result.holdout_p == pytest.approx(mcnemar_exact(0, 1) / 2) == pytest.approx(0.5)
    assert not result.proposed
    before, after = 100 * result.original_holdout, 100 * result.best_holdout
    assert f"holdout {before:.1f} -> {after:.1f}, p = 0.500, 15 cases" in result.message
    assert "not significant" in result.message and "one-sided exact McNemar test, alpha = 0.05" in result.message

    section, summary = fix_section(Fix("triage", "regressed", "prompts/triage.j2", result=result), None)
    assert f"holdout {before:.1f} → {after:.1f}, p = 0.500, 15 cases" in summary
    assert "Not proposed: the gain on the 15 holdout cases is not significant" in section
    assert "Best candidate, not proposed" in section


def test_a_large_gain_is_proposed_and_the_comment_names_the_rule(tmp_path, openai_server):
    world, result = run_with(tmp_path, openai_server, "Note: HINT-BILLING and HINT-BUG.")
    fixed = wrong_on_holdout(world)
    assert result.best_holdout == 1.0 and result.original_holdout == pytest.approx(1 - fixed / 15)
    assert result.holdout_p == pytest.approx(0.5 ** fixed) and result.holdout_p < 0.05  # one-sided exact McNemar
    assert result.proposed and result.message.startswith("improved:")
    figures = f"holdout {100 * result.original_holdout:.1f} → 100.0, {p_text(result.holdout_p)}, 15 cases"
    fix = Fix("triage", "regressed", "prompts/triage.j2", result=result, points=(ChartPoint(0, 0.3), ChartPoint(1, 1.0)))
    section, summary = fix_section(fix, None)
    assert figures in summary and "✅" in summary
    assert ("Proposed because it beats the head prompt on the 15 holdout cases by the one-sided exact McNemar "
            f"test at α = 0.05 ({p_text(result.holdout_p)})") in section


def test_the_level_is_the_specs_alpha(tmp_path, openai_server):
    _, loose = run_with(tmp_path / "a", openai_server, "Note: HINT-BILLING and HINT-BUG.")
    openai_server.reset()
    _, strict = run_with(tmp_path / "b", openai_server, "Note: HINT-BILLING and HINT-BUG.", alpha=loose.holdout_p)
    assert loose.proposed and strict.holdout_p == loose.holdout_p and strict.alpha == loose.holdout_p
    assert not strict.proposed and "not significant" in strict.message  # p equal to alpha is not below it
