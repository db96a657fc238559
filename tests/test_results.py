"""Results read back from a report or a partial are the results written: the same values, still
frozen, with defaults for a field the file lacks and a refusal for one it should not have."""

from __future__ import annotations

import dataclasses
import json

import pytest

from gpo_action.results import CaseResult, Check, SampleResult, SuiteResult


def suite() -> SuiteResult:
    checks = (Check("equals", True, 1.0, "output equals 'a'"), Check("contains", False, 0.0, "no 'b'", 2.0, "recall"))
    cases = (
        CaseResult("c1", {"word": "a"}, "a", (SampleResult("a", 1.0, True, checks, prompt_tokens=3, completion_tokens=1,
                                                           cost=0.002),
                                              SampleResult("b", 0.0, False, (), cached=True)), "evals/c.jsonl:1"),
        CaseResult("c2", {"word": "é"}, None, (SampleResult(None, error="timed out", error_type="ProviderTimeout"),)),
    )
    return SuiteResult("s", "evals/s.yaml", "prompts/p.j2", "openai/m", cases, 1.5, 0.5, ("a note",))


def test_a_suite_read_back_from_its_json_equals_the_suite_written_and_writes_the_same_json():
    written = suite()
    text = json.dumps(written.to_dict())
    read = SuiteResult.from_dict(json.loads(text))
    assert read == written
    assert json.dumps(read.to_dict()) == text
    sample = read.cases[0].samples[0]
    assert isinstance(sample.checks, tuple) and isinstance(sample.checks[1], Check)
    assert (read.cases[0].score, read.cases[0].metrics, read.cases[1].error) == (0.5, {"recall": 0.0}, "timed out")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.score = 0.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.checks[0].passed = False  # type: ignore[misc]


def test_a_sample_lacking_a_field_takes_its_default_and_one_with_a_field_too_many_is_refused():
    data = suite().cases[0].to_dict()
    del data["samples"][0]["cached"], data["samples"][0]["checks"][0]["metric"]
    read = CaseResult.from_dict(data)
    assert read.samples[0].cached is False and read.samples[0].checks[0].metric is None
    data["samples"][1]["verdict"] = "pass"
    with pytest.raises(TypeError):
        CaseResult.from_dict(data)
    data["samples"][1].pop("verdict")
    data["samples"][0]["checks"][1]["why"] = "x"
    with pytest.raises(TypeError):
        CaseResult.from_dict(data)
