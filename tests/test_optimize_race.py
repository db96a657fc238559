"""Racing (off by default): candidates are scored on growing dev slices, and those a paired test
finds clearly worse than the leader are dropped early. The experiment: the same scripted run with
and without racing on a 48-case suite (24 dev), 3 steps of 4 candidates, in two settings: each
step proposing one useful, one neutral and two harmful candidates; and only plausible ones (no
harmful candidate). Racing must end on the same prompt with the same scores, for fewer calls.
The figures are printed (pytest -s); at the time of writing: 360 -> 240 task calls (33% fewer)
with harmful candidates, 360 -> 300 (17% fewer) with plausible ones, same best prompt and scores."""

from __future__ import annotations

import pytest

from tests.test_optimize_world import Optimizer, World, add_hint, current_prompt, wrap

CASES = {f"{category} issue {i:02d}": category for category in ("billing", "bug", "other") for i in range(16)}
USEFUL = ["Note: HINT-BILLING.", "Note: HINT-BUG.", "Be brief."]


def harmful(request: int, index: int, meta: str) -> str:
    line = [USEFUL[(request - 1) % 3], f"Neutral {request}.", f"SABOTAGE {request}a.", f"SABOTAGE {request}b."][index]
    return wrap(add_hint(current_prompt(meta), line))


def plausible(request: int, index: int, meta: str) -> str:
    line = [USEFUL[(request - 1) % 3], f"Neutral {request}.", USEFUL[request % 3], f"Be clear {request}."][index]
    return wrap(add_hint(current_prompt(meta), line))


def run(root, server, script, race: bool):
    server.reset()
    world = World(root, server, Optimizer(script), cases=CASES)
    with world.client(cache=False) as client:  # no cache: racing must not repeat calls on its own
        result = world.run(client, steps=3, candidates=4, race=race)
    return result, len(world.task_requests())


@pytest.mark.parametrize("script", [harmful, plausible])
def test_racing_keeps_the_result_for_fewer_calls(tmp_path, openai_server, script):
    full, full_calls = run(tmp_path / "full", openai_server, script, race=False)
    raced, raced_calls = run(tmp_path / "raced", openai_server, script, race=True)
    print(f"\nracing, {script.__name__} candidates: without {full_calls} task calls (best dev {full.best_dev:.3f}, "
          f"holdout {full.best_holdout:.3f}); with {raced_calls} (best dev {raced.best_dev:.3f}, holdout "
          f"{raced.best_holdout:.3f}): {100 * (1 - raced_calls / full_calls):.0f}% fewer")
    assert (raced.best, raced.best_dev, raced.best_holdout) == (full.best, full.best_dev, full.best_holdout)
    assert raced.proposed and raced_calls < full_calls
