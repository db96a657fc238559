"""The located-regression scenarios of the optimizer bench (bench/scenarios.json, made by
`python bench/scenarios.py --generate`) are valid pull requests for what they claim, without the
model: each head makes its edits to the repository's example prompt as separate hunks
(`localize.split_hunks`), passes the engine's candidate checks against the base, and the subset
scores recorded at generation single out the stated culprits (the model run is `--check`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from gpo_action.optimize.candidates import check_candidate
from gpo_action.optimize.localize import split_hunks
from gpo_action.suites import load_suite
from gpo_action.templates import load_template

REPO = Path(__file__).resolve().parents[1]


def load_module():
    spec = importlib.util.spec_from_file_location("bench_scenarios", REPO / "bench" / "scenarios.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_module()
DATA, SCENARIOS = bench.load_scenarios()


def test_there_are_at_least_four_scenarios_over_more_than_one_suite():
    assert len(SCENARIOS) >= 4
    assert len({s.suite for s in SCENARIOS}) >= 2
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_head_differs_from_the_base_by_one_hunk_per_edit(scenario):
    suite = load_suite(f"evals/{scenario.suite}.yaml", REPO)
    base = load_template(REPO / suite.prompt)
    head = scenario.head(base.source)
    hunks = split_hunks(base.source, head)
    assert 2 <= len(scenario.edits) <= 4 and 1 <= len(scenario.culprits) <= 2
    assert len(hunks) == len(scenario.edits)
    for hunk, edit in zip(hunks, scenario.edits):   # hunk i is edit i: its words are the edit's
        assert hunk.old.strip() in edit.old and hunk.new.strip() in edit.new
    assert [scenario.edits[i].name for i in scenario.culprit_hunks] == list(scenario.culprits)
    assert check_candidate(head, base, suite.cases)[1] is None
    assert check_candidate(base.source, load_template(REPO / suite.prompt), suite.cases)[1] is None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_edits_come_from_the_recipe_table(scenario):
    table = {e.name: e for e in bench.EDITS[scenario.suite]}
    assert all(table[e.name] == e for e in scenario.edits)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_the_recorded_subset_scores_single_out_the_culprits(scenario):
    scores = {frozenset(kept): score for kept, score in scenario.dev}
    names = {e.name for e in scenario.edits}
    assert len(scores) == 2 ** len(names) and all(kept <= names for kept in scores)
    base = scores[frozenset()]
    assert bench.culprits_hold(scores, base, scenario.culprits, DATA["max_drop"])
    for culprit in scenario.culprits:                # each culprit alone costs at least MIN_HARM
        assert scores[frozenset({culprit})] <= base - bench.MIN_HARM + 1e-9
    assert not bench.culprits_hold(scores, base, names - set(scenario.culprits), DATA["max_drop"])
