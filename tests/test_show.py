"""`gpo-action show`: the last report (`.gpo/report.json`, saved by every `eval` and `run`) read back
case by case. Real projects on disk, litellm over HTTP to the scripted server, real git repositories."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action import __version__
from gpo_action.cli import main
from tests.support.projects import BAD, TICKETS as RUN_TICKETS, local_run_repo, pull_request_branch
from tests.test_eval_cli import KEY, TICKETS, scripted_answers, write_project

WRONG = "Error 500 after clicking save"


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def last_report(root: Path) -> dict:
    return json.loads((root / ".gpo" / "report.json").read_text(encoding="utf-8"))


def case_blocks(text: str) -> list[str]:
    """The case ids `show` printed, in order (each case starts with a line `case ID ...`)."""
    return re.findall(r"^case (\S+)", text, flags=re.M)


@pytest.fixture
def project(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    return write_project(tmp_path, openai_server.url)


# ---- the last report ---------------------------------------------------------------------------


def test_eval_always_saves_its_report_as_the_last_one_and_json_gets_the_same(project, openai_server):
    scripted_answers(openai_server, wrong={WRONG})
    first = cli("eval")
    assert first.exit_code == 0, first.stderr
    saved = last_report(project)
    assert saved["kind"] == "eval" and saved["version"] == __version__ and saved["exit_code"] == 0
    assert saved["suites"][0]["failed"] == 1
    second = cli("eval", "--json", "out.json")
    assert second.exit_code == 0
    assert json.loads((project / "out.json").read_text()) == last_report(project)
    assert not [p.name for p in (project / ".gpo").iterdir() if p.name.endswith(".tmp")]  # atomic: no temp left


def test_show_prints_each_case_with_input_expected_output_and_reasons(project, openai_server):
    scripted_answers(openai_server, wrong={WRONG})
    assert cli("eval").exit_code == 0
    result = cli("show")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    cases = last_report(project)["suites"][0]["cases"]
    assert case_blocks(out) == [c["case_id"] for c in cases]          # every case, in the report's order
    for ticket in TICKETS:
        assert f"ticket: {ticket}" in out
    wrong = next(c for c in cases if c["vars"]["ticket"] == WRONG)
    reason = wrong["samples"][0]["checks"][0]["reason"]
    assert reason and reason in out and "Category: Other" in out
    block = out.split(f"case {wrong['case_id']}", 1)[1].split("\ncase ", 1)[0]
    assert ": fail" in block.splitlines()[0]
    assert block.index("input") < block.index("expected") < block.index("bug") < block.index("output") \
        < block.index("Category: Other") < block.index("reasons") < block.index(reason)


def test_show_failed_and_errors_filter_the_cases(project, openai_server):
    scripted_answers(openai_server, wrong={WRONG})
    assert cli("eval").exit_code == 0
    failed = cli("show", "--failed")
    assert failed.exit_code == 0
    wrong_id = next(c["case_id"] for c in last_report(project)["suites"][0]["cases"] if not c["passed"])
    assert case_blocks(failed.stdout) == [wrong_id]
    assert "1 of 6 cases shown (failed)" in failed.stdout
    errors = cli("show", "--errors")
    assert errors.exit_code == 0 and case_blocks(errors.stdout) == []
    assert "0 of 6 cases shown (errors)" in errors.stdout


def test_show_errors_lists_the_provider_errors_with_their_messages(project, openai_server):
    openai_server.set_fault_rates(p500=1.0)
    assert cli("eval").exit_code == 3
    result = cli("show", "--errors")
    assert result.exit_code == 0
    cases = last_report(project)["suites"][0]["cases"]
    assert case_blocks(result.stdout) == [c["case_id"] for c in cases]
    assert cases[0]["error"] and cases[0]["error"].splitlines()[0] in result.stdout
    assert "error (" in result.stdout


def test_show_suite_filters_by_name_and_an_unknown_one_exits_2_naming_the_suites(project, openai_server):
    (project / "evals" / "second.yaml").write_text(
        (project / "evals" / "triage.yaml").read_text().replace("prompt:", "name: second\nprompt:"))
    scripted_answers(openai_server)
    assert cli("eval").exit_code == 0
    one = cli("show", "second")
    assert one.exit_code == 0
    assert "suite second" in one.stdout and "suite triage" not in one.stdout
    assert len(case_blocks(one.stdout)) == len(TICKETS)
    unknown = cli("show", "nope")
    assert unknown.exit_code == 2
    assert "no suite named 'nope'" in unknown.stderr and "second, triage" in unknown.stderr


def test_flipped_on_an_eval_report_exits_2(project, openai_server):
    scripted_answers(openai_server)
    assert cli("eval").exit_code == 0
    result = cli("show", "--flipped")
    assert result.exit_code == 2 and "`gpo-action run`" in result.stderr


def test_no_report_says_which_command_writes_one(project):
    result = cli("show")
    assert result.exit_code == 2
    assert "no report at .gpo/report.json" in result.stderr
    assert "`gpo-action eval` or `gpo-action run` writes it" in result.stderr
    missing = cli("show", "--report", "elsewhere.json")
    assert missing.exit_code == 2 and "no report at elsewhere.json" in missing.stderr


def report_of(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.json"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("{not json", "r.json:1: not a JSON report"),
    ('{"tool": "promptfoo", "kind": "eval"}', "not a gpo-action eval or run report"),
    ('[1, 2]', "not a gpo-action eval or run report"),
    ('{"tool": "gpo-action", "kind": "eval", "version": "0.0.1", "suites": []}',
     f"written by gpo-action 0.0.1; this is gpo-action {__version__}"),
    ('{"tool": "gpo-action", "kind": "run", "suites": []}', "written by another gpo-action version"),
    (json.dumps({"tool": "gpo-action", "kind": "eval", "version": __version__, "suites": [{"name": "x"}]}),
     "malformed report (KeyError"),
    (json.dumps({"tool": "gpo-action", "kind": "eval", "version": __version__, "suites": [
        {"name": "x", "path": "p", "prompt": "p", "model": "m",
         "cases": [{"case_id": "c", "vars": ["not", "a", "mapping"], "samples": []}]}]}), "malformed report"),
    (json.dumps({"tool": "gpo-action", "kind": "eval", "version": __version__, "suites": [
        {"name": "x", "path": "p", "prompt": "p", "model": "m",
         "cases": [{"case_id": "c", "vars": {}, "samples": [{"output": 5}]}]}]}), "an output, error or reason is not text"),
    (json.dumps({"tool": "gpo-action", "kind": "run", "version": __version__, "comparisons": [],
                 "base_results": [None], "head_results": []}), "differ in length"),
], ids=["not-json", "other-tool", "not-an-object", "other-version", "no-version", "missing-key", "vars-list",
        "output-number", "run-lengths"])
def test_a_malformed_or_foreign_report_exits_2_without_a_traceback(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    result = cli("show", "--report", str(report_of(tmp_path, text)))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output + result.stderr


# ---- hostile text ------------------------------------------------------------------------------

HOSTILE = "[bold red]markup[/bold red] [/] \x1b[31mred\x1b[0m\rOVER\x08\x07 \u202eevil\u2066 \x9bq end"


def test_markup_and_control_sequences_in_outputs_and_inputs_print_literally(project, openai_server):
    suite = project / "evals" / "triage.yaml"
    suite.write_text(suite.read_text() + "  - id: '[red]id[/red]'\n    vars: {ticket: \"[i]x[/i] \\e[2J\"}\n"
                     "    expected: '[/b]'\n", encoding="utf-8")
    scripted_answers(openai_server)
    openai_server.add_rule(r"\[i\]x", HOSTILE)
    assert cli("eval").exit_code == 0
    out = cli("show").stdout
    assert "case [red]id[/red]" in out                               # markup in an id: literal
    assert "ticket: [i]x[/i] \\x1b[2J" in out                        # in a variable: literal, ESC spelt out
    assert "[/b]" in out
    assert "[bold red]markup[/bold red] [/] \\x1b[31mred\\x1b[0m\\rOVER\\b\\a \\u202eevil\\u2066 \\x9bq end" in out
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e\u2066]", out)  # nothing a terminal would act on


def test_a_forced_colour_console_styles_only_its_own_words(project, openai_server, monkeypatch):
    openai_server.add_rule(r"crashes", HOSTILE)                      # the first rule that matches answers
    scripted_answers(openai_server)
    assert cli("eval").exit_code == 0
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich writes ANSI styles into the pipe
    out = cli("show", "--failed").stdout
    assert "\x1b[" in out                                            # styles are on
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)                       # our own SGR codes, taken out
    assert "\\x1b[31mred\\x1b[0m\\rOVER" in plain
    assert "\x1b" not in plain and "\r" not in plain                 # none came from the output


def test_a_canary_secret_in_an_output_is_in_neither_the_report_nor_show(project, openai_server):
    openai_server.add_rule(r"crashes", f"Category: Bug, and the key is {KEY}")
    scripted_answers(openai_server)
    assert cli("eval").exit_code == 0
    assert KEY not in (project / ".gpo" / "report.json").read_text(encoding="utf-8")
    out = cli("show")
    assert "the key is ***" in out.stdout and KEY not in out.stdout + out.stderr


def test_show_scrubs_a_secret_from_a_report_it_did_not_write(project, openai_server):
    scripted_answers(openai_server)
    assert cli("eval").exit_code == 0
    data = last_report(project)
    data["suites"][0]["cases"][0]["samples"][0]["output"] = f"leaked {KEY}"
    (project / "hand.json").write_text(json.dumps(data), encoding="utf-8")  # written outside gpo-action
    out = cli("show", "--report", "hand.json")
    assert out.exit_code == 0 and "leaked ***" in out.stdout and KEY not in out.stdout


# ---- long outputs ------------------------------------------------------------------------------


def test_a_long_output_is_shown_whole_and_max_chars_cuts_it(project, openai_server):
    long = "".join(f"w{i:05d}" for i in range(1500))                  # 9,000 characters, no space
    openai_server.add_rule(r"crashes", long)
    scripted_answers(openai_server)
    assert cli("eval").exit_code == 0
    whole = cli("show", "--failed").stdout
    assert long in whole                                             # one line, not folded
    cut = cli("show", "--failed", "--max-chars", "100").stdout
    assert long[:100] in cut and long[:101] not in cut
    assert f"[{len(long) - 100:,} more characters: --max-chars]" in cut


def test_an_interrupted_report_says_so(project, openai_server):
    scripted_answers(openai_server)
    assert cli("eval").exit_code == 0
    data = last_report(project)
    data["interrupted"] = True
    (project / ".gpo" / "report.json").write_text(json.dumps(data), encoding="utf-8")
    assert "this run was interrupted" in cli("show").stdout


# ---- a run report ------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path, openai_server, monkeypatch):
    root = local_run_repo(tmp_path / "repo", openai_server, monkeypatch)
    monkeypatch.chdir(root)
    return root


def test_run_saves_its_report_and_show_flipped_gives_both_sides(repo, openai_server):
    pull_request_branch(repo, BAD, "shorter prompt")
    run = cli("run", "--base", "main", "--json", "out.json")
    assert run.exit_code == 1, run.stderr
    saved = last_report(repo)
    assert saved == json.loads((repo / "out.json").read_text()) and saved["version"] == __version__
    assert saved["kind"] == "run" and saved["comparisons"][0]["verdict"] == "regressed"
    result = cli("show", "--flipped")
    assert result.exit_code == 0, result.stderr
    base = {c["case_id"]: c for c in saved["base_results"][0]["cases"]}
    head = {c["case_id"]: c for c in saved["head_results"][0]["cases"]}
    flipped = [i for i in head if base[i]["passed"] != head[i]["passed"]]
    assert len(flipped) == 20                                        # the bad prompt says "other" to all 30
    assert case_blocks(result.stdout) == flipped
    assert "suite triage: regressed (base 100.0, head 33.3)" in result.stdout
    first = result.stdout.split(f"case {flipped[0]}", 1)[1].split("\ncase ", 1)[0]
    ticket = head[flipped[0]]["vars"]["ticket"]
    assert first.splitlines()[0].endswith("base pass, head fail (flipped)")
    assert f"ticket: {ticket}" in first
    base_side, head_side = first.split("base output pass", 1)[1].split("head output fail", 1)
    assert f"\n    {RUN_TICKETS[ticket]}\n" in base_side and "\n    other\n" in head_side  # each side's output
    assert first.count("reasons") == 2
    failed = cli("show", "--failed")
    assert case_blocks(failed.stdout) == [i for i in head if not head[i]["passed"]] == flipped


def test_show_a_run_report_with_nothing_compared(repo, openai_server):
    assert cli("run", "--base", "HEAD").exit_code == 0
    assert last_report(repo)["comparisons"] == []
    result = cli("show")
    assert result.exit_code == 0
    assert "nothing to evaluate" in result.stdout


def test_a_committed_gpo_symlink_out_of_the_repository_is_refused(repo, tmp_path, openai_server):
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / ".gpo").symlink_to(outside, target_is_directory=True)
    with (repo / "gpo.yaml").open("a") as config:
        config.write("cache: {path: cache/responses.sqlite}\n")   # the cache elsewhere: only the report is at stake
    for args in (("run", "--base", "HEAD"), ("eval",)):
        refused = cli(*args)
        assert refused.exit_code == 2, refused.output
        assert "the last report '.gpo/report.json' is a symlink that leads outside the repository" in refused.stderr
    shown = cli("show")
    assert shown.exit_code == 2 and "outside" in shown.stderr
    assert list(outside.iterdir()) == [] and openai_server.total == 0  # refused before any call


def test_a_last_report_that_cannot_be_written_is_a_note_not_a_failure(tmp_path, openai_server, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    write_project(tmp_path, openai_server.url)
    config = tmp_path / "gpo.yaml"
    config.write_text(config.read_text().replace(".gpo/cache.sqlite", "cache/responses.sqlite"))
    (tmp_path / ".gpo").write_text("a file where the directory would be\n")
    scripted_answers(openai_server)
    result = cli("eval", "--json", "out.json")
    assert result.exit_code == 0, result.stderr
    assert "the last report could not be saved at .gpo/report.json" in result.stderr
    assert json.loads((tmp_path / "out.json").read_text())["exit_code"] == 0  # the copy asked for is written


def test_the_last_report_copied_beside_json_is_scrubbed_like_every_write(tmp_path):
    """save_report writes `--json` once and copies it to the last report: the copy goes through
    the scrubber too, so a secret a hand-edited or older file holds is not carried over."""
    from gpo_action import secrets
    from gpo_action.files import copy_atomic

    canary = "sk-canary-copy-5c1e9a7d3b"
    secrets.reset({})
    try:
        secrets.remember(canary)
        source = tmp_path / "out.json"
        # one long line and many short ones: the secret falls on every offset of a 64K piece
        source.write_text(json.dumps({"note": f"key {canary}", "n": 1}) * 3000 + "\n"
                          + "".join(f'{{"i": {i}, "k": "{canary}"}}\n' for i in range(5000)), encoding="utf-8")
        copy_atomic(source, tmp_path / ".gpo" / "report.json")
        copied = (tmp_path / ".gpo" / "report.json").read_text(encoding="utf-8")
    finally:
        secrets.reset()
    assert canary not in copied
    assert copied == source.read_text(encoding="utf-8").replace(canary, "***")
