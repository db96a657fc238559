"""Racing (off by default): candidates are scored on growing dev slices, and those a paired test
finds clearly worse than the leader are dropped early. The experiment lives in the optimizer bench
(`python bench/optimizers.py --race`, which prints the figures); here its scripted part must keep
its promise: with racing on, the same best prompt with the same scores, for fewer task calls."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "optimizers.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_optimizers", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


bench = load_bench()


@pytest.mark.parametrize("script", ["harmful", "plausible"])
def test_racing_keeps_the_result_for_fewer_calls(tmp_path, openai_server, script):
    full, raced = bench.scripted_race(tmp_path, openai_server, script)
    assert bench.same_outcome(full.result, raced.result)
    assert (raced.result.best, raced.result.best_dev, raced.result.best_holdout) == \
        (full.result.best, full.result.best_dev, full.result.best_holdout)
    assert raced.result.proposed and raced.task_calls < full.task_calls


def test_racing_a_step_with_no_safe_candidate(tmp_path, openai_server):
    """A weak optimizer (no <START>/<END>, and read whole its replies drop the variable) leaves
    nothing to race: the step ends, the run too."""
    from tests.test_optimize_world import Optimizer, World

    world = World(tmp_path, openai_server, Optimizer(lambda request, index, meta: f"A better prompt {request}-{index}."))
    with world.client(cache=False) as client:
        result = world.run(client, steps=2, candidates=2, race=True)
    assert result.steps_done == 2 and result.rejected == {"no-markers": 4}
    assert not result.proposed and result.best == result.original
