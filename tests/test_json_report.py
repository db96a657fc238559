"""`report.jsonreport.write_json`: what json.dumps would write, outer levels indented, deep values on
one line, streamed, and scrubbed of the run's secrets."""

from __future__ import annotations

import json

from gpo_action import secrets
from gpo_action.report.jsonreport import FLAT_DEPTH, write_json

CANARY = "sk-canary-jsonreport-9f8e7d6c5b4a"


def test_write_json_reads_back_as_json_dumps_would_write_it(tmp_path):
    data = {"tool": "gpo-action", "suites": [{"name": "s", "cases": [
        {"case_id": "c1", "vars": {"t": "line\nbreak \u2028 é \"quoted\""}, "score": 0.5, "samples": [{"checks": []}]},
        {"case_id": "c2", "vars": {}, "score": None, "samples": []}]}],
        "empty": {}, "none": [], "keys": {1: "int", 2.5: "float", True: "bool", None: "null"}, "tuple": (1, 2)}
    path = tmp_path / "r.json"
    write_json(str(path), data)
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == json.loads(json.dumps(data))
    assert text.endswith("}\n")
    case_lines = [line for line in text.splitlines() if '"case_id"' in line]
    assert len(case_lines) == 2  # a case (FLAT_DEPTH deep) is one line; the levels above are indented
    assert FLAT_DEPTH == 4 and case_lines[0].startswith("        {")


def test_a_secret_anywhere_in_the_report_is_scrubbed(tmp_path):
    secrets.reset({"OPENAI_API_KEY": CANARY})
    try:
        data = {"suites": [{"cases": [{"output": f"the key is {CANARY}", "deep": {"x": [CANARY] * 3}}
                                      for _ in range(3000)]}], "note": CANARY}
        path = tmp_path / "r.json"
        write_json(str(path), data)
        text = path.read_text(encoding="utf-8")
    finally:
        secrets.reset({})
    assert CANARY not in text
    assert len(json.loads(text)["suites"][0]["cases"]) == 3000


def test_a_cases_metrics_are_computed_once_yet_each_caller_gets_its_own_dict():
    """`CaseResult.metrics` (cached on the frozen result) is a new dict each time: what one caller
    does to it reaches neither the next caller nor the suite's mean nor the report."""
    from gpo_action.results import CaseResult, Check, SampleResult, SuiteResult

    def sample(score: float) -> SampleResult:
        return SampleResult("out", score, score >= 0.5, (Check("contains", score >= 0.5, score, metric="m"),
                                                         Check("equals", True, 1.0)))

    case = CaseResult("c", {}, None, (sample(1.0), sample(0.5)))
    plain = CaseResult("p", {}, None, (SampleResult("out", 1.0, True, (Check("equals", True, 1.0),)),))
    first = case.metrics
    first["m"] = 0.0
    first["other"] = 1.0
    assert case.metrics == {"m": 0.75} and case.to_dict()["metrics"] == {"m": 0.75}
    assert plain.metrics == {} and "metrics" not in plain.to_dict()
    assert SuiteResult("s", "s.yaml", "p.j2", "m", (case, plain)).metrics == {"m": 0.75}
