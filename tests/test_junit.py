"""JUnit XML (`--junit`, the Action's .gpo/junit.xml): valid against the Jenkins schema, one testcase
per case (per side on `run`), failures with their reasons and output, errors apart, no secret."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from gpo_action.cli import main
from gpo_action.report.junit import TEXT_CHARS, eval_junit
from gpo_action.results import CaseResult, Check, SampleResult, SuiteResult
from tests.support.junit import validated
from tests.support.projects import BAD, local_run_repo, pull_request_branch, write_triage_eval

KEY = "sk-junit-canary-8c1f2e"
CASES = {"paid twice": "billing", "app crashes": "bug", "dark mode?": "other", "refund please": "billing"}


@pytest.fixture
def project(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    write_triage_eval(tmp_path, openai_server.url, CASES)
    return tmp_path


def test_eval_junit_is_valid_and_reports_each_case(project, openai_server):
    openai_server.add_rule(r"paid twice", "billing")
    openai_server.add_rule(r"app crashes", f"it is <other> & \x00\x1b[31m]]> surely, key {KEY}")
    openai_server.add_rule(r"dark mode", "other")
    openai_server.add_rule(r"refund please", "billing")
    openai_server.enqueue_faults("ok", "ok", "ok", "401")           # the 401 quotes the bearer token
    result = CliRunner().invoke(main, ["eval", "--junit", "out/junit.xml"], catch_exceptions=False)
    assert result.exit_code in (0, 3), result.stderr
    text = (project / "out/junit.xml").read_text(encoding="utf-8")
    doc = validated(text)
    [suite] = doc.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name").split(": ", 1)[1] for c in cases] == list(CASES)   # "<case id>: <vars>"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")
    [failed] = [c for c in cases if c.find("failure") is not None]
    failure = failed.find("failure")
    assert "icontains" in failure.get("message") and "bug" in failure.get("message")
    assert "expected: bug" in failure.text and "it is <other> & [31m]]> surely, key ***" in failure.text
    [errored] = [c for c in cases if c.find("error") is not None]
    assert errored.find("error").get("type")
    assert KEY not in text and "\x00" not in text and "\x1b" not in text
    assert {p.get("name"): p.get("value") for p in suite.find("properties")}["prompt"].endswith("prompts/triage.j2")


def test_a_long_output_is_cut_and_skipped_cases_are_skipped():
    long = "x" * (TEXT_CHARS * 3)
    failed = SampleResult(long, 0.0, False, (Check("equals", False, 0.0, "expected 'y'"),))
    skipped = SampleResult(None, error="no key for openai/x here", error_type="Skipped")
    suite = SuiteResult("s", "evals/s.yaml", "p.j2", "openai/x",
                        (CaseResult("a", {}, "y", (failed,)), CaseResult("b", {}, "y", (skipped,))), seconds=1.5)
    doc = validated(eval_junit([suite]))
    testsuite = doc.find("testsuite")
    assert (testsuite.get("failures"), testsuite.get("skipped"), testsuite.get("time")) == ("1", "1", "1.500")
    failure = doc.find("testsuite/testcase/failure")
    assert failure.get("message") == "equals: expected 'y'"
    assert f"(cut: {len(long)} characters in all)" in failure.text and len(failure.text) < TEXT_CHARS + 200
    assert doc.find("testsuite/testcase[@name='b']/skipped").get("message") == "no key for openai/x here"


def test_repeats_name_each_failing_sample():
    samples = (SampleResult("a", 1.0, True), SampleResult("b", 0.0, False, (Check("equals", False, 0.0, "no"),)),
               SampleResult("c", 0.0, False, (Check("regex", False, 0.0, "no match"),)))
    suite = SuiteResult("s", "evals/s.yaml", "p.j2", "m", (CaseResult("a", {}, None, samples),))
    failure = validated(eval_junit([suite])).find("testsuite/testcase/failure")
    assert failure.get("message") == "sample 2: equals: no; sample 3: regex: no match"
    assert "output: b" in failure.text and "expected" not in failure.text


def test_run_junit_has_each_side_and_the_verdict(tmp_path, openai_server, monkeypatch):
    repo = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(repo)
    pull_request_branch(repo, BAD, "shorter prompt")
    result = CliRunner().invoke(main, ["run", "--base", "main", "--junit", "run.xml"], catch_exceptions=False)
    assert result.exit_code == 1, result.stderr
    doc = validated((repo / "run.xml").read_text(encoding="utf-8"))
    [suite] = doc.findall("testsuite")
    by_class: dict[str, int] = {}
    for case in suite.findall("testcase"):
        by_class[case.get("classname")] = by_class.get(case.get("classname"), 0) + 1
    assert by_class == {"triage.base": 30, "triage.head": 30, "triage": 1}
    assert not suite.findall("testcase[@classname='triage.base']/failure")          # the base was right
    assert len(suite.findall("testcase[@classname='triage.head']/failure")) == 20    # 'other' for 2 of 3
    verdict = suite.find("testcase[@name='verdict']/failure")
    assert verdict.get("type") == "gate" and re.match(r"regressed: head 33\.3 vs base 100\.0", verdict.get("message"))
    assert suite.get("failures") == "21" and doc.get("tests") == "61"
