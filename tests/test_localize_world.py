"""Locating the regression through the engine, in the scripted ticket world (tests/test_optimize_world.py):
the task model answers right when the prompt carries HINT-BILLING / HINT-BUG, and wrong on every ticket
when it says SABOTAGE, so the harmful edits of a change are known."""

from __future__ import annotations

import json

import pytest

from gpo_action.optimize import BudgetLimits
from gpo_action.optimize.localize import evaluation_bound, split_hunks
from gpo_action.templates import parse_template
from tests.test_optimize_world import Optimizer, World, hint_script

BASE = ("Classify this support ticket as billing, bug or other.\nNote: HINT-BILLING.\nNote: HINT-BUG.\n"
        "Ticket: {{ ticket }}\nAnswer: Category: <one word>\n")
# five edits; the third (SABOTAGE) makes every answer wrong
HEAD = ("Sort this support ticket as billing, bug or other, please.\nNote: HINT-BILLING.\nNote: HINT-BUG.\n"
        "Be brief and SABOTAGE everything.\nTicket: {{ ticket }}\nReply with the answer as follows: Category: <one word>\n")
# two edits that each drop a hint (both must go back), one harmless edit between them
BASE2 = ("Note: HINT-BILLING.\nClassify this support ticket as billing, bug or other.\nTicket: {{ ticket }}\n"
         "Note: HINT-BUG.\nAnswer: Category: <one word>\n")
TWO = ("Note: billing.\nClassify this support ticket as billing, bug or other. Read it twice.\nTicket: {{ ticket }}\n"
       "Note: bug.\nAnswer: Category: <one word>\n")


@pytest.fixture
def world(tmp_path, openai_server) -> World:
    return World(tmp_path, openai_server, Optimizer(hint_script))


def _run(world, head, budget=None, cache=True, base=BASE):
    world.template = parse_template(head, world.template.path, "text")
    with world.client(cache=cache) as client:
        return world.run(client, budget, base=base, steps=1, candidates=2)


def _probes(result):
    lines = open(result.trajectory, encoding="utf-8").read().splitlines()
    return [r for r in map(json.loads, lines) if r.get("reverted") is not None]


def test_one_harmful_edit_among_several_is_located_and_the_rest_kept(world):
    hunks = split_hunks(BASE, HEAD)
    culprit = next(h.index for h in hunks if "SABOTAGE" in h.new)
    result = _run(world, HEAD)
    found = result.location
    assert found["status"] == "located" and found["culprits"] == [culprit]
    assert found["evaluations"] <= evaluation_bound(len(hunks)) and found["hunks"] == len(hunks) >= 4
    assert found["sentence"].startswith("the drop comes from this edit: `")
    assert "SABOTAGE" in found["sentence"] and f"your other {len(hunks) - 1} edits do not change" in found["sentence"]
    assert "SABOTAGE" not in result.best and "Sort this support ticket" in result.best and "please" in result.best
    assert result.proposed and result.best_dev == 1.0 and result.original_dev == 0.0
    probes = _probes(result)
    assert len(probes) == found["evaluations"] - 1    # the head was scored before (step 0), the rest are written
    assert all(p["step"] == 0 and p["parent"] == probes[0]["parent"] for p in probes)


def test_two_edits_that_each_harm_are_both_located(world):
    hunks = split_hunks(BASE2, TWO)
    assert len(hunks) == 3
    result = _run(world, TWO, base=BASE2)
    assert result.location["status"] == "located" and result.location["culprits"] == [0, 2]
    assert "Read it twice." in result.best and "HINT-BILLING" in result.best and "HINT-BUG" in result.best
    assert "these 2 edits" in result.location["sentence"] and "your other 1 edit does not change" in result.location["sentence"]


def test_without_a_base_nothing_is_located(world):
    world.template = parse_template(HEAD, world.template.path, "text")
    with world.client() as client:
        result = world.run(client, steps=1, candidates=2)
    assert result.location is None


def test_a_cap_of_k_calls_is_never_exceeded_while_locating(tmp_path, openai_server):
    statuses = set()
    for cap in [0, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52]:
        openai_server.requests.clear()
        world = World(tmp_path / str(cap), openai_server, Optimizer(hint_script))
        result = _run(world, HEAD, BudgetLimits(max_calls=cap), cache=False)
        sent = len(openai_server.requests)
        assert sent <= cap and result.spent["calls"] == sent
        location = result.location or {"status": "not run"}
        statuses.add(location["status"])
        if location["status"] == "stopped":
            assert location["reason"] == "max_calls" and not result.proposed
        elif location["status"] == "located":
            assert "SABOTAGE" in location["sentence"]
    assert {"not run", "stopped", "located"} <= statuses   # the caps cut the location at several points
