"""compare(): verdicts, pairing, notes, flipped cases, round trips, and a real BBH regression."""

from __future__ import annotations

import json
import random
from typing import Sequence

import pytest

from gpo_action.compare import Comparison, FlippedCase, Gate, compare, exit_code
from gpo_action.config import Config
from gpo_action.results import CaseResult, SampleResult, SuiteResult
from gpo_action.stats import mcnemar_exact
from tests.support import bbh

GATE = Gate()


# --- builders ----------------------------------------------------------------------------------

def sample(score: float, *, passed: bool | None = None, output: str | None = None) -> SampleResult:
    return SampleResult(output=output if output is not None else f"out {score}", score=score,
                        passed=score >= 0.5 if passed is None else passed)


def case(case_id: str, *scores: float, passed: bool | None = None, output: str | None = None,
         error: str | None = None) -> CaseResult:
    if error is not None:
        samples: tuple[SampleResult, ...] = (SampleResult(output=None, error=error, error_type="ProviderTimeout"),)
    else:
        samples = tuple(sample(s, passed=passed, output=output) for s in scores)
    return CaseResult(case_id, {"q": f"question {case_id}"}, f"expected {case_id}", samples)


def suite(cases: Sequence[CaseResult], *, name: str = "triage", min_score: float | None = None) -> SuiteResult:
    return SuiteResult(name=name, path=f"evals/{name}.yaml", prompt="prompts/triage.j2", model="replay/x.jsonl",
                       cases=tuple(cases), min_score=min_score)


def binary(outcomes: Sequence[int], *, prefix: str = "c", name: str = "triage",
           min_score: float | None = None) -> SuiteResult:
    return suite([case(f"{prefix}{i}", float(o)) for i, o in enumerate(outcomes)], name=name, min_score=min_score)


# --- verdicts ----------------------------------------------------------------------------------

def test_clear_regression() -> None:
    base = binary([1] * 80 + [0] * 20)
    head = binary([1] * 50 + [0] * 50)                  # 30 cases broke, none fixed
    result = compare(base, head, GATE)
    assert result.verdict == "regressed"
    assert result.test == "mcnemar"
    assert result.p_value == mcnemar_exact(30, 0)
    assert result.base_score == 0.8 and result.head_score == 0.5
    assert result.delta == pytest.approx(-0.3)
    # every discordant pair fell: given them, the change is at least -30/100, so the exact interval ends there
    assert result.ci_low == pytest.approx(result.delta) and result.ci_high < 0
    assert result.n_paired == 100 and result.n_base_only == result.n_head_only == 0
    assert len(result.flipped) == 30
    assert exit_code([result]) == 1


def test_noise_is_unchanged_binary() -> None:
    rng = random.Random(42)
    base_out = [1 if rng.random() < 0.7 else 0 for _ in range(250)]
    head_out = list(base_out)
    passing = [i for i, o in enumerate(base_out) if o]
    failing = [i for i, o in enumerate(base_out) if not o]
    for i in rng.sample(passing, 5):
        head_out[i] = 0
    for i in rng.sample(failing, 3):
        head_out[i] = 1
    result = compare(binary(base_out), binary(head_out), GATE)
    assert result.verdict == "unchanged"
    assert result.test == "mcnemar"
    assert result.p_value == mcnemar_exact(5, 3)
    assert result.delta == pytest.approx(-2 / 250)
    assert result.ci_low < 0 < result.ci_high
    assert exit_code([result]) == 0


def test_noise_is_unchanged_graded() -> None:
    rng = random.Random(3)
    base_scores = [rng.random() for _ in range(250)]
    head_scores = [min(1.0, max(0.0, s + rng.gauss(0, 0.02))) for s in base_scores]
    base = suite([case(f"c{i}", s) for i, s in enumerate(base_scores)])
    head = suite([case(f"c{i}", s) for i, s in enumerate(head_scores)])
    result = compare(base, head, GATE)
    assert result.test == "sign-flip"
    assert result.verdict == "unchanged"
    assert abs(result.delta) < 0.01


def test_large_but_not_significant_drop_is_unchanged_with_a_note() -> None:
    base = binary([1, 1, 1, 0, 1, 1, 1, 1, 0, 1])
    head = binary([1, 0, 1, 0, 1, 1, 0, 1, 0, 1])      # 0.8 -> 0.6 on ten cases: p = 0.5
    result = compare(base, head, GATE)
    assert result.verdict == "unchanged"
    assert result.p_value == 0.5
    assert any("not significant" in n for n in result.notes)


def test_significant_but_small_change_is_unchanged_with_a_note() -> None:
    base = binary([1] * 800 + [0] * 200)
    head = binary([1] * 815 + [0] * 185)                # 15 fixes, no breaks: p tiny, delta 0.015
    result = compare(base, head, GATE)
    assert result.p_value < 0.001
    assert result.verdict == "unchanged"
    assert any("margin" in n for n in result.notes)


def test_improvement() -> None:
    base = binary([1] * 50 + [0] * 50)
    head = binary([1] * 75 + [0] * 25)
    result = compare(base, head, GATE)
    assert result.verdict == "improved"
    assert result.delta == pytest.approx(0.25)
    assert 0 < result.ci_low < result.ci_high
    assert exit_code([result]) == 0


def test_below_min_from_the_suite_and_the_stricter_floor() -> None:
    base = binary([1] * 80 + [0] * 20)
    head = binary([1] * 80 + [0] * 20, min_score=0.9)
    result = compare(base, head, GATE)
    assert result.verdict == "below-min"
    assert result.floor == 0.9
    assert exit_code([result]) == 1
    # gate floor 0.7, suite floor 0.85 -> the stricter (0.85) applies
    result = compare(base, binary([1] * 80 + [0] * 20, min_score=0.85), Gate(min_score=0.7))
    assert (result.verdict, result.floor) == ("below-min", 0.85)
    # gate floor 0.75 is met by 0.8
    result = compare(base, binary([1] * 80 + [0] * 20), Gate(min_score=0.75))
    assert (result.verdict, result.floor) == ("unchanged", 0.75)


def test_regression_takes_precedence_over_below_min() -> None:
    result = compare(binary([1] * 90 + [0] * 10), binary([1] * 40 + [0] * 60), Gate(min_score=0.8))
    assert result.verdict == "regressed"


def test_improvement_still_below_min_is_below_min() -> None:
    result = compare(binary([1] * 20 + [0] * 80), binary([1] * 60 + [0] * 40), Gate(min_score=0.8))
    assert result.verdict == "below-min"


def test_error_rate_above_tolerance_is_error() -> None:
    base = binary([1] * 100)
    head_cases = [case(f"c{i}", 1.0) for i in range(94)] + [case(f"c{i}", error="timeout") for i in range(94, 100)]
    result = compare(base, suite(head_cases), GATE)
    assert result.verdict == "error"
    assert result.head_errors == 6 and result.base_errors == 0
    assert result.n_paired == 94
    assert "6 cases errored on head and were left out of the comparison" in result.notes
    assert any("above the allowed 5.0%" in n for n in result.notes)
    assert exit_code([result]) == 0                    # "error" is the caller's decision


def test_errors_within_tolerance_are_left_out() -> None:
    base_cases = [case(f"c{i}", 1.0) for i in range(98)] + [case("c98", error="boom"), case("c99", 1.0)]
    head_cases = [case(f"c{i}", 1.0) for i in range(99)] + [case("c99", error="boom")]
    result = compare(suite(base_cases), suite(head_cases), GATE)
    assert result.verdict == "unchanged"
    assert result.n_paired == 98
    assert "1 case errored on base and was left out of the comparison" in result.notes
    assert "1 case errored on head and was left out of the comparison" in result.notes
    assert compare(suite(base_cases), suite(head_cases), GATE, max_error_rate=0.0).verdict == "error"


def test_nothing_paired_is_error() -> None:
    result = compare(binary([1, 0, 1], prefix="a"), binary([1, 1, 1], prefix="b"), GATE)
    assert result.verdict == "error"
    assert result.n_paired == 0 and result.n_base_only == 3 and result.n_head_only == 3
    assert any("no case could be paired" in n for n in result.notes)


def test_cases_are_intersected_by_id_with_a_note() -> None:
    shared_base = [case(f"s{i}", 1.0 if i % 2 else 0.0) for i in range(40)]
    shared_head = [case(f"s{i}", 1.0 if i % 2 else 0.0) for i in reversed(range(40))]   # order does not matter
    base = suite(shared_base + [case(f"old{i}", 1.0) for i in range(3)])
    head = suite([case(f"new{i}", 0.0) for i in range(5)] + shared_head)
    result = compare(base, head, GATE)
    assert (result.n_paired, result.n_base_only, result.n_head_only) == (40, 3, 5)
    assert ("cases changed between base and head: compared on the 40 cases present in both "
            "(3 only in base, 5 only in head)") in result.notes
    assert result.base_score == result.head_score == 0.5
    assert result.delta == 0.0 and result.p_value == 1.0
    assert result.verdict == "unchanged"
    # each side's full score differs from the paired one: it is kept in a note
    assert any("base scores 0.535 (43 cases) and head 0.444 (45 cases)" in n for n in result.notes)


def test_floor_applies_to_all_of_head() -> None:
    # paired cases meet the floor, but head's new cases pull its suite score under it
    base = binary([1] * 10, prefix="s")
    head = suite([case(f"s{i}", 1.0) for i in range(10)] + [case(f"n{i}", 0.0) for i in range(10)], min_score=0.8)
    result = compare(base, head, GATE)
    assert result.head_score == 1.0
    assert result.verdict == "below-min"
    assert any("head scores 0.500, below the minimum 0.800" in n for n in result.notes)


def test_new_suite_is_one_sided() -> None:
    head = binary([1] * 9 + [0])
    result = compare(None, head, GATE)
    assert (result.verdict, result.test) == ("unchanged", "none")
    assert result.base_score is None and result.head_score == 0.9
    assert result.delta is None and result.p_value is None and result.ci_low is None
    assert any(n.startswith("evaluated one-sided") for n in result.notes)
    assert compare(None, head, Gate(min_score=0.95)).verdict == "below-min"
    errored = suite([case("a", 1.0), case("b", error="boom")])
    assert compare(None, errored, GATE).verdict == "error"


def test_removed_suite_fails_unless_the_gate_allows_it() -> None:
    result = compare(binary([1, 0]), None, Gate(min_score=0.99))
    assert (result.verdict, result.test, result.head_score, result.base_score) == ("removed", "none", None, 0.5)
    assert result.failed and exit_code([result]) == 1
    assert any("gate.allow_removed: true" in n for n in result.notes)
    allowed = compare(binary([1, 0]), None, Gate(allow_removed=True))
    assert allowed.verdict == "removed" and not allowed.failed and exit_code([allowed]) == 0
    assert Comparison.from_dict(json.loads(json.dumps(allowed.to_dict()))) == allowed
    with pytest.raises(ValueError):
        compare(None, None, GATE)


def test_graded_scores_use_sign_flip() -> None:
    base = suite([case(f"c{i}", 0.9) for i in range(30)])
    head = suite([case(f"c{i}", 0.6) for i in range(30)])
    result = compare(base, head, GATE)
    assert result.test == "sign-flip"
    assert result.verdict == "regressed"
    assert result.delta == pytest.approx(-0.3)
    assert result.p_value == pytest.approx(1 / 10_001)


def test_repeats_use_sign_flip_on_case_means() -> None:
    base = suite([case(f"c{i}", 1.0, 1.0) for i in range(20)])
    head = suite([case(f"c{i}", 1.0, 0.0) for i in range(20)])
    result = compare(base, head, GATE)
    assert result.test == "sign-flip"
    assert result.delta == pytest.approx(-0.5)
    assert result.verdict == "regressed"


def test_flipped_cases_order_and_content() -> None:
    base = suite([
        case("keep", 1.0),
        case("small-drop", 0.6, passed=True, output="b1"),
        case("big-drop", 1.0, passed=True, output="b2"),
        case("small-gain", 0.4, passed=False, output="b3"),
        case("big-gain", 0.0, passed=False, output="b4"),
        case("mid-drop", 0.9, passed=True, output="b5"),
    ])
    head = suite([
        case("keep", 1.0),
        case("small-drop", 0.4, passed=False, output="h1"),
        case("big-drop", 0.0, passed=False, output="h2"),
        case("small-gain", 0.6, passed=True, output="h3"),
        case("big-gain", 1.0, passed=True, output="h4"),
        case("mid-drop", 0.3, passed=False, output="h5"),
    ])
    result = compare(base, head, GATE)
    assert [f.case_id for f in result.flipped] == ["big-drop", "mid-drop", "small-drop", "big-gain", "small-gain"]
    first = result.flipped[0]
    assert first == FlippedCase("big-drop", {"q": "question big-drop"}, "expected big-drop", "b2", "h2", 1.0, 0.0)
    assert first.change == -1.0


def test_compare_is_deterministic_by_seed() -> None:
    rng = random.Random(8)
    base = suite([case(f"c{i}", rng.random()) for i in range(60)])
    head = suite([case(f"c{i}", rng.random()) for i in range(60)])
    assert compare(base, head, GATE, seed=4) == compare(base, head, GATE, seed=4)


# --- dataclasses -------------------------------------------------------------------------------

def test_comparison_round_trips_through_json() -> None:
    base = suite([case("a", 1.0), case("b", 0.0), case("c", 1.0), case("gone", 1.0)])
    head = suite([case("a", 0.0), case("b", 1.0), case("c", 1.0), case("new", 0.0)])
    result = compare(base, head, GATE)
    assert result.flipped and result.notes
    data = json.loads(json.dumps(result.to_dict()))
    assert Comparison.from_dict(data) == result
    one_sided = compare(None, head, GATE)
    assert Comparison.from_dict(json.loads(json.dumps(one_sided.to_dict()))) == one_sided


def test_comparison_rejects_unknown_verdict() -> None:
    with pytest.raises(ValueError):
        Comparison(suite="s", verdict="worse", base_score=None, head_score=None)


def test_gate_from_config_and_validation() -> None:
    config = Config.model_validate({"gate": {"max_drop": 0.05, "alpha": 0.01, "min_score": 0.7}})
    gate = Gate.from_config(config)
    assert gate == Gate(max_drop=0.05, alpha=0.01, min_score=0.7)
    assert Gate.from_config(config.gate) == gate
    assert Gate.from_config(Config()) == Gate()
    assert Gate.from_dict(gate.to_dict()) == gate
    with pytest.raises(ValueError):
        Gate(alpha=0.0)
    with pytest.raises(ValueError):
        Gate(max_drop=-0.1)


def test_exit_code() -> None:
    def verdict(v: str) -> Comparison:
        return Comparison(suite="s", verdict=v, base_score=None, head_score=None)

    assert exit_code([]) == 0
    assert exit_code([verdict("unchanged"), verdict("improved"), verdict("error")]) == 0
    assert exit_code([verdict("unchanged"), verdict("below-min")]) == 1
    assert exit_code(iter([verdict("regressed")])) == 1


# --- the interval beside the p-value -----------------------------------------------------------

def test_the_interval_agrees_with_the_p_value_where_a_bootstrap_did_not() -> None:
    # 12 cases, 4 fell and none rose: p = 2 / 2**4 = 0.125. A percentile bootstrap of these differences
    # excluded 0 (all 12 draws avoid the 4 falls with probability (2/3)**12 < 0.025), beside p > alpha.
    result = compare(binary([1] * 12), binary([0] * 4 + [1] * 8), GATE)
    assert result.verdict == "unchanged" and result.p_value == 0.125
    assert result.ci_low <= result.delta < 0 <= result.ci_high     # given the 4 falls, -4/12 is the least it can be


def test_the_interval_excludes_0_exactly_when_p_is_below_alpha_over_random_suites() -> None:
    rng = random.Random(7)
    rejected = 0
    for trial in range(80):
        n = rng.randint(3, 60)
        gate = Gate(alpha=rng.choice((0.05, 0.01, 0.1)))
        drift = rng.choice((-0.3, -0.1, 0.0, 0.1, 0.3))
        if trial % 2:                                   # pass/fail cases: McNemar
            base = binary([int(rng.random() < 0.6) for _ in range(n)])
            head = binary([int(rng.random() < 0.6 + drift) for _ in range(n)])
        else:                                           # graded: sign-flip
            base = suite([case(f"c{i}", round(rng.random(), 2)) for i in range(n)])
            head = suite([case(f"c{i}", round(min(1.0, max(0.0, rng.random() + drift)), 2)) for i in range(n)])
        result = compare(base, head, gate, seed=trial)
        assert result.ci_low <= result.delta <= result.ci_high
        assert (result.ci_low > 0 or result.ci_high < 0) == (result.p_value < gate.alpha), (trial, result)
        rejected += result.p_value < gate.alpha
    assert 10 < rejected < 70                           # both sides of the rule were exercised


# --- what an unchanged verdict could have detected -------------------------------------------------

def test_an_unchanged_small_suite_says_how_small_a_drop_it_can_detect() -> None:
    result = compare(binary([1] * 12), binary([0] + [1] * 11), GATE)     # 8.3 points lower, p = 1
    assert result.verdict == "unchanged"
    assert result.power_note == ("with 12 cases this suite can only detect drops of 50.0 points or more at "
                                 "alpha 0.05 (gate.max_drop is 2 points)")
    assert Comparison.from_dict(json.loads(json.dumps(result.to_dict()))).power_note == result.power_note
    strict = compare(binary([1] * 12), binary([0] + [1] * 11), Gate(alpha=0.01, max_drop=0.1))
    assert "drops of 66.7 points or more at alpha 0.01 (gate.max_drop is 10 points)" in strict.power_note


def test_a_suite_too_small_for_any_drop_says_so_and_a_big_one_says_nothing() -> None:
    graded = compare(suite([case(f"c{i}", 0.8) for i in range(5)]), suite([case(f"c{i}", 0.7) for i in range(5)]), GATE)
    assert graded.verdict == "unchanged" and graded.test == "sign-flip"
    assert graded.power_note == ("with 5 cases this suite cannot detect any drop at alpha 0.05: the paired test "
                                 "needs at least 6 cases that change")
    assert compare(binary([1] * 300), binary([1] * 300), GATE).power_note is None       # 6/300 = 2 points
    assert compare(binary([1] * 299), binary([1] * 299), GATE).power_note is not None
    graded_big = compare(suite([case(f"c{i}", 0.8) for i in range(6)]), suite([case(f"c{i}", 0.8) for i in range(6)]),
                         GATE)
    assert graded_big.power_note is None          # six graded cases that each fall a little can be significant
    regressed = compare(binary([1] * 12), binary([0] * 12), GATE)
    assert regressed.verdict == "regressed" and regressed.power_note is None


# --- real data: BIG-Bench Hard, chain-of-thought (base) vs direct answers (head) ----------------
# The vendored slice (tests/data/bbh): 30 recorded code-davinci-002 completions per task and prompt.

def _bbh_suite(task: str, mode: str) -> SuiteResult:
    cases = []
    for record, correct in zip(bbh.records(task, mode), bbh.outcomes(task, mode)):
        question = bbh.question(record)   # the case id
        cases.append(CaseResult(question, {"input": question}, record["target"],
                                (SampleResult(record["prediction"], 1.0 if correct else 0.0, correct),)))
    return suite(cases, name=task)


# right answers out of 30, counted by tests/support/bbh.outcomes on the vendored records
@pytest.mark.parametrize(("task", "verdict", "cot", "direct"), [
    ("multistep_arithmetic_two", "regressed", 9, 0),
    ("snarks", "unchanged", 19, 22),
    ("word_sorting", "unchanged", 16, 14),
])
def test_bbh_cot_vs_direct(task: str, verdict: str, cot: int, direct: int) -> None:
    base, head = _bbh_suite(task, bbh.COT), _bbh_suite(task, bbh.DIRECT)
    assert len(base.cases) == len(head.cases) == 30
    assert base.score == pytest.approx(cot / 30) and head.score == pytest.approx(direct / 30)
    result = compare(base, head, Gate(max_drop=0.02, alpha=0.05))
    assert result.verdict == verdict
    assert result.test == "mcnemar"
    assert result.n_paired == len(base.cases) == len(head.cases)
    assert result.n_base_only == result.n_head_only == 0
    broke = sum(1 for f in result.flipped if f.change < 0)
    assert result.p_value == mcnemar_exact(broke, len(result.flipped) - broke)
    assert result.ci_low <= result.delta <= result.ci_high
