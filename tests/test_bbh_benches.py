"""The BBH benches on the vendored slice of real recorded completions (tests/data/bbh): the figures
they print through gpo-action's formats and `run` are the ones read directly from the records."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from tests.support.bbh import COT, DIRECT, SLICE, TASKS, outcomes

REPO = Path(__file__).resolve().parents[1]
# The slice's verdicts (cot = base, direct = head; figures from `outcomes`, 30 examples each):
# multistep_arithmetic_two 9 -> 0 right (9 broke, 0 fixed, p = 0.0039), snarks 19 -> 22 (4 broke,
# 7 fixed, p = 0.55), word_sorting 16 -> 14 (3 broke, 1 fixed, p = 0.63); alpha 0.05, max drop 2 points.
VERDICTS = {"multistep_arithmetic_two": "regressed", "snarks": "unchanged", "word_sorting": "unchanged"}


def bench(script: str, *args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), "--bbh-dir", str(SLICE), *args],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def percent(right: list[bool]) -> str:
    return f"{100 * sum(right) / len(right):.1f}"


def two_sided_binomial(broke: int, fixed: int) -> float:
    """The exact McNemar p-value, computed here from its definition (not gpo_action.stats)."""
    n, k = broke + fixed, min(broke, fixed)
    return 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def test_replay_scores_equal_the_recorded_accuracy_of_the_slice():
    lines = bench("bbh_replay.py")
    expected = [f"{task} {mode} ours={percent(outcomes(task, mode))}" for task in TASKS for mode in (COT, DIRECT)]
    # no note (the examples file agrees with every recorded prompt), no published figure in a slice
    assert [line for line in lines if not line.startswith("#")] == [*expected, "matched 0/0"]


def test_regression_verdicts_on_real_prompt_versions():
    lines = bench("bbh_regression.py")
    rows = {line.split()[0]: line for line in lines if not line.startswith(("#", "verdicts"))}
    assert sorted(rows) == sorted(TASKS)
    for task in TASKS:
        base, head = outcomes(task, COT), outcomes(task, DIRECT)
        broke = sum(b and not h for b, h in zip(base, head))
        fixed = sum(h and not b for b, h in zip(base, head))
        p = two_sided_binomial(broke, fixed)
        assert rows[task] == f"{task} {VERDICTS[task]} base={percent(base)} head={percent(head)} p={p:.3g}"
    assert lines[-1] == "verdicts: 1 regressed, 0 improved, 2 unchanged"
