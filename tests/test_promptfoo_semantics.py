"""Same-named assertions mean what they mean in promptfoo (issue 16, point 3): contains-any/-all
value parsing, equals, JavaScript regex syntax, `file://` references, case threshold, metric and
weight; and the agreement test, per case, against promptfoo's recorded (and, where installed, live)
verdicts on tests/data/promptfoo_agreement/cases.json."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action.assertions import Assertion, check, score_case, validate_assertion
from gpo_action.errors import SuiteError
from gpo_action.evaluate import score_sample
from gpo_action.jsregex import JsRegexError, translate
from gpo_action.jsvalues import js_json, js_number, js_string, split_commas
from gpo_action.llm.types import LLMResponse
from gpo_action.results import metric_scores
from gpo_action.suites import Case, CaseSpec, load_suite

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "promptfoo_agreement"
CANARY = "sk-canary-semantics16-0123456789abcdef"


def load_agreement():
    spec = importlib.util.spec_from_file_location("promptfoo_agreement", REPO / "bench" / "promptfoo_agreement.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def holds(assertion: Assertion, output: str) -> bool:
    validate_assertion(assertion)
    return check(assertion, output).passed


# -- 1. contains-any / contains-all --------------------------------------------------------------

@pytest.mark.parametrize("value, items", [
    ('a, "b, c", d', ["a", "b, c", "d"]),
    ("  foo  ,bar ", ["foo", "bar"]),
    ("a,,, b,", ["a", "b"]),
    ('"", x', ["", "x"]),
    (r'"say \"hi\"", x', ['say "hi"', "x"]),
    ('"a""b"', ['a"b']),
    ('" keep "', [" keep "]),
    ('foo "bar", baz', ['foo "bar"', "baz"]),
    ("\u00a0x\u3000,y", ["x", "y"]),       # JavaScript's whitespace, not only ASCII
])
def test_comma_values_split_as_promptfoo_splits_them(value, items):
    assert split_commas(value) == items


@pytest.mark.parametrize("value, problem", [('"abc', "unterminated"), ('"a" b, c', "expected a comma")])
def test_malformed_quoted_values_are_refused(value, problem):
    with pytest.raises(ValueError, match=problem):
        split_commas(value)
    with pytest.raises(ValueError, match=problem):
        validate_assertion(Assertion(type="contains-any", value=value))


def test_a_quoted_comma_stays_inside_one_item():
    assert holds(Assertion(type="contains-all", value='hello, "a, b"'), "hello a, b")
    assert not holds(Assertion(type="contains-all", value='hello, "a, b"'), "hello a b")
    assert holds(Assertion(type="icontains-any", value='"PARIS, FR", x'), "paris, fr")


def test_a_list_is_used_as_is_and_numbers_read_as_javascript_writes_them():
    assert not holds(Assertion(type="contains-any", value=[" foo"]), "foo")
    assert holds(Assertion(type="contains-any", value=[1.0]), "1 item")   # String(1.0) == "1"
    with pytest.raises(ValueError, match="strings or numbers"):
        validate_assertion(Assertion(type="contains-any", value=[{"a": 1}]))


# -- 2. equals ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, output, passes", [
    (42, "42", True), (42, "42.0", False), (42.0, "42", True), ("42", "42.0", False), (1e21, "1e+21", True),
    (True, "true", True), (True, "True", False), ("hello", "hello\n", False),
    ({"a": 1, "b": 2}, '{ "b": 2, "a" : 1.0 }', True), ({"n": 1}, '{"n": true}', False), ([1, 2], "[1, 2]", True),
    ({"a": 1}, "NaN", False),
])
def test_equals_compares_text_or_parsed_json(value, output, passes):
    assert holds(Assertion(type="equals", value=value), output) is passes


def test_expected_numbers_now_compare_as_text():
    # gpo-action before issue 16 parsed the output as JSON for a number: 42 equalled "42.0"
    case = Case("c", {}, expected=42, asserts=(Assertion(type="equals"),))
    assert not score_sample(case, LLMResponse(text="42.0"), {}, 0, None).passed
    assert score_sample(case, LLMResponse(text="42"), {}, 0, None).passed


@pytest.mark.parametrize("x", [1.0, 0.1, 1e21, 1e-7, 1.5e-7, 123456789012345680000.0, 2 ** 60, -0.0, 1e300, 0.000001])
def test_numbers_are_written_as_javascript_writes_them(x):
    node = shutil.which("node")
    expected = {1.0: "1", 0.1: "0.1", 1e21: "1e+21", 1e-7: "1e-7", 1.5e-7: "1.5e-7", 123456789012345680000.0:
                "123456789012345680000", 2 ** 60: "1152921504606847000", 0.0: "0", 1e300: "1e+300", 0.000001: "0.000001"}
    assert js_number(x) == expected[x]
    if node is not None:  # and as node itself writes it, where node is installed
        assert js_number(x) == subprocess.run([node, "-e", f"process.stdout.write(String({x!r}))"],
                                              capture_output=True, text=True, check=True).stdout
    assert js_json({"a": [x, True, None]}) == '{"a":[' + expected[x] + ',true,null]}'
    assert js_string([1.0, "x"]) == "1,x"


# -- 3. regex: JavaScript syntax -----------------------------------------------------------------

@pytest.mark.parametrize("pattern, output, passes", [
    (r"^done$", "done\n", False),              # JS $ is the end of the text
    (r"^a.c$", "a\rc", False),                 # . excludes \r, \u2028, \u2029 too
    (r"\d", "\u0663", False),                  # \d is ASCII
    (r"^\w+$", "café", False),
    (r"a\sb", "a\u00a0b", True), (r"a\sb", "a\u001cb", False),
    (r"(?<y>\d{4})-\k<y>", "2024-2024", True),
    (r"^.$", "😀", False), (r"^..$", "😀", True),   # UTF-16 units
    (r"[^]", "\n", True), (r"[]", "x", False),
    (r"^a{,2}$", "a{,2}", True), (r"^a{,2}$", "aa", False),
    (r"\bcat\b", "concatenate", False), (r"\ba", "éa", True),
    (r"^[\d-x]$", "-", True), (r"\u00e9", "é", True), (r"(?<=\$)\d+", "$42", True),
    (r"(?i)hello", "HELLO", True),            # gpo-action's extension: leading flags
    (r"(?s)^a.c$", "a\nc", True), (r"(?m)^b$", "a\r\nb\u2028c", True),
])
def test_regex_matches_as_javascript_does(pattern, output, passes):
    assert holds(Assertion(type="regex", value=pattern), output) is passes


@pytest.mark.parametrize("pattern, problem", [
    ("/hello/i", "/pattern/flags"), (r"\u{41}", "u flag"), (r"\A", "not an escape"), (r"end\Z", "not an escape"),
    (r"(?P<x>a)", "not a JavaScript group"), (r"a*+", "nothing to repeat"), (r"(a)\2", "octal"),
    (r"a(?i)b", "not a JavaScript group"), (r"[z-a]", "backwards"), (r"\p{L}", "u flag"), ("", "empty"),
    (r"\b+", "does not repeat"), (r"^*a", "does not repeat"), (r"(?<=a)?b", "does not repeat"),
])
def test_regex_constructs_outside_the_subset_are_refused(pattern, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        validate_assertion(Assertion(type="regex", value=pattern))


def test_a_refused_regex_names_the_suite_file_and_line(tmp_path):
    write(tmp_path / "prompts" / "p.j2", "Q: {{ q }}\n")
    write(tmp_path / "evals" / "cases.jsonl", '{"q": "a", "expected": "a"}\n{"q": "b", "assert": [{"type": "regex", "value": "(?P<x>b)"}]}\n')
    suite = write(tmp_path / "evals" / "s.yaml", "prompt: prompts/p.j2\nassert: [{type: regex, value: '\\A'}]\ncases: [{vars: {q: a}}]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(suite, tmp_path)
    assert str(info.value).startswith("evals/s.yaml:2: assert.0: ") and "\\A is not an escape" in str(info.value)
    write(suite, "prompt: prompts/p.j2\ncases: [{file: cases.jsonl}]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(suite, tmp_path)
    assert str(info.value).startswith("evals/cases.jsonl:2: assert.0: ") and "not a JavaScript group" in str(info.value)


def test_regexes_keep_their_timeout():
    # catastrophic backtracking: the search gives up (a failed verdict), it does not hang
    verdict = check(Assertion(type="regex", value="^(a|aa)+$"), "a" * 40 + "b")
    assert not verdict.passed and "gave up" in verdict.reason


RANDOM_ATOMS = ["a", "b", ".", "\\d", "\\w", "\\s", "\\b", "\\B", "[ab]", "[^a]", "[a-c]", "[\\d-]", "^", "$",
                "(a|b)", "(?:ab)", "(?=a)", "(?!b)", "(?<=a)", "(?<!a)", "x{2}", "a{,2}", "é", "😀", "\\u00e9", "[^]",
                "\\.", "\\n", "(?<n>a)", "\\W", "\\S", "\\D", "|", "[\\s]", "[\\w.]", "\\x41", "\\cJ", "(a)\\1", "}", "]"]
RANDOM_QUANTIFIERS = ["", "", "", "*", "+", "?", "*?", "{1,2}", "{2,}"]
RANDOM_TEXT = ["a", "A", "b", "é", "É", "😀", "\n", "\r", " ", "\u00a0", "1", "\u0663", "_", "-", ".", "\u2028", "{", "}"]


@pytest.mark.parametrize("flags", ["", "i", "m", "s"])
def test_random_patterns_match_as_node_does(flags):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the differential check against JavaScript's RegExp needs it")
    rng = random.Random(16)
    pairs = [("".join(rng.choice(RANDOM_ATOMS) + rng.choice(RANDOM_QUANTIFIERS) for _ in range(rng.randint(1, 4))),
              "".join(rng.choice(RANDOM_TEXT) for _ in range(rng.randint(0, 6)))) for _ in range(1500)]
    script = ("const d = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "process.stdout.write(JSON.stringify(d.map(([p, t]) => { try { return new RegExp(p, process.argv[1])"
              ".test(t) } catch (e) { return null } })));")
    answers = json.loads(subprocess.run([node, "-e", script, flags], input=json.dumps(pairs), capture_output=True,
                                        text=True, check=True).stdout)
    prefix = f"(?{flags})" if flags else ""
    wrong, compared = [], 0
    for (pattern, text), theirs in zip(pairs, answers):
        try:
            validate_assertion(Assertion(type="regex", value=prefix + pattern))
        except ValueError:
            continue  # refused: never a different verdict
        compared += 1
        ours = check(Assertion(type="regex", value=prefix + pattern), text).passed
        if ours != theirs:  # theirs None: JavaScript refuses a pattern gpo-action accepted
            wrong.append((pattern, text, theirs, ours))
    assert compared > 500 and wrong == []


def test_translation_is_a_python_pattern():
    assert translate(r"\d+$") == r"[0-9]+\Z"
    with pytest.raises(JsRegexError):
        translate(r"\Z")


# -- 4. file:// references -------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    write(root / "prompts" / "p.j2", "Doc: {{ doc }}\n")
    return root


def test_file_vars_values_and_expected_are_read(repo):
    write(repo / "evals" / "docs" / "refund.txt", "  Refunds take 5 days.\n\n")
    write(repo / "evals" / "order.yaml", "id: 7\nitems: [a, b]\nprice: 1.0\n")
    write(repo / "evals" / "golden.json", '{"answer": "{{ not rendered }}"}')
    write(repo / "evals" / "expected.txt", "Refunds\n")
    write(repo / "evals" / "cases.csv", "doc,__expected\nfile://evals/docs/refund.txt,x\n")
    suite = write(repo / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        cases:
          - vars: {doc: file://docs/refund.txt, order: file://evals/order.yaml}
            expected: file://expected.txt
            assert:
              - {type: equals, value: file://golden.json}
              - {type: contains-any, value: [file://expected.txt, other]}
          - file: cases.csv
        """)
    loaded = load_suite(suite, repo)
    first, from_csv = loaded.cases
    assert first.vars["doc"] == "Refunds take 5 days."             # trimmed text
    assert first.vars["order"] == '{"id":7,"items":["a","b"],"price":1}'  # YAML as compact JSON
    assert first.expected == "Refunds"
    assert first.asserts[0].value == {"answer": "{{ not rendered }}"}
    assert check(first.asserts[0], '{"answer": "{{ not rendered }}"}').passed  # used as written
    assert first.asserts[1].value == ["Refunds", "other"]
    assert from_csv.vars["doc"] == "Refunds take 5 days."
    # the default id hashes the vars as written, so editing the file keeps the case's id
    write(repo / "evals" / "docs" / "refund.txt", "Refunds take 3 days.")
    again = load_suite(suite, repo).cases[0]
    assert again.id == first.id and again.vars["doc"] == "Refunds take 3 days."


@pytest.mark.parametrize("ref, problem", [
    ("file://missing.txt", "file not found"),
    ("file://../../outside.txt", "lies outside the repository"),
    ("file://link.txt", "symlink that leads outside"),
    ("file://.git/notes.txt", "inside .git"),
    ("file://run.py", "code file"),
    ("file://*.txt", "is a glob"),
    ("file://pic.png", "media and PDF"),
    ("file://", "names no file"),
])
def test_a_bad_reference_is_an_error_with_file_and_line(repo, tmp_path, ref, problem):
    (tmp_path / "outside.txt").write_text(CANARY)
    (repo / "evals").mkdir(exist_ok=True)
    os.symlink(tmp_path / "outside.txt", repo / "evals" / "link.txt")
    suite = write(repo / "evals" / "s.yaml", f"""\
        prompt: prompts/p.j2
        cases:
          - vars: {{doc: '{ref}'}}
        """ + "    expected: x\n")
    with pytest.raises(SuiteError) as info:
        load_suite(suite, repo)
    message = str(info.value)
    assert message.startswith("evals/s.yaml:3: cases.0.vars.doc") and problem in message
    assert CANARY not in message


def test_a_nested_reference_is_refused_not_kept_as_text(repo):
    suite = write(repo / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        cases:
          - vars: {doc: [file://a.txt]}
            expected: x
        """)
    with pytest.raises(SuiteError, match="inside a list or mapping"):
        load_suite(suite, repo)


def test_a_value_file_of_another_type_is_refused(repo):
    write(repo / "evals" / "a.md", "x")
    suite = write(repo / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        assert: [{type: equals, value: file://a.md}]
        cases: [{vars: {doc: d}}]
        """)
    with pytest.raises(SuiteError) as info:
        load_suite(suite, repo)
    assert str(info.value).startswith("evals/s.yaml:2: assert.0.value: 'file://a.md': .md is not read here")


def test_the_base_side_reads_the_base_revisions_file(repo, tmp_path):
    from gpo_action import gitrepo, gitsnapshot

    write(repo / "gpo.yaml", "suites: [{eval: evals/s.yaml}]\n")
    write(repo / "evals" / "doc.txt", "base text\n")
    write(repo / "evals" / "s.yaml", "prompt: prompts/p.j2\ncases:\n  - vars: {doc: file://doc.txt}\n    expected: x\n")
    for args in (["add", "-A"], ["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    write(repo / "evals" / "doc.txt", f"head text {CANARY}\n")    # the pull request's change
    with gitrepo.open_repo(repo) as handle:
        snap = gitsnapshot.materialize(handle, gitrepo.head_sha(handle), ".", tmp_path / "base")
    base = load_suite("evals/s.yaml", snap.root, tree=snap.root)
    head = load_suite("evals/s.yaml", repo)
    assert base.cases[0].vars["doc"] == "base text"
    assert head.cases[0].vars["doc"] == f"head text {CANARY}"


@pytest.mark.parametrize("record, read", [
    ({"vars": {"doc": "file://doc.txt"}, "expected": "x"}, lambda case: case.vars["doc"]),
    ({"vars": {"doc": "d"}, "expected": "file://doc.txt"}, lambda case: case.expected),
    ({"vars": {"doc": "d"}, "assert": [{"type": "equals", "value": "file://doc.txt"}]}, lambda case: case.asserts[0].value),
    ({"vars": {"doc": "d"}, "assert": [{"type": "contains-any", "value": ["file://doc.txt", "y"]}]},
     lambda case: case.asserts[0].value[0]),
], ids=["var", "expected", "assertion value", "a list's item"])
def test_a_case_file_both_sides_hold_unchanged_still_reads_each_sides_own_file(repo, tmp_path, record, read):
    """A case file's parse is shared when its bytes are the same (suites._memo), but not what its
    references read: the base's cases read the base's doc.txt, the head's the pull request's."""
    from gpo_action import gitrepo, gitsnapshot

    write(repo / "gpo.yaml", "suites: [{eval: evals/s.yaml}]\n")
    write(repo / "evals" / "doc.txt", "base text\n")
    write(repo / "evals" / "s.yaml", "prompt: prompts/p.j2\ncases:\n  - file: cases.jsonl\n")
    write(repo / "evals" / "cases.jsonl", json.dumps(record) + "\n")
    for args in (["add", "-A"], ["-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "base"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    write(repo / "evals" / "doc.txt", f"head text {CANARY}\n")    # the pull request changes the referenced file only
    with gitrepo.open_repo(repo) as handle:
        snap = gitsnapshot.materialize(handle, gitrepo.head_sha(handle), ".", tmp_path / "base")
    head = load_suite("evals/s.yaml", repo)                          # in a run's order: the head, then the base
    base = load_suite("evals/s.yaml", snap.root, tree=snap.root)
    again = load_suite("evals/s.yaml", repo)
    assert (snap.root / "evals" / "cases.jsonl").read_bytes() == (repo / "evals" / "cases.jsonl").read_bytes()
    assert read(base.cases[0]) == "base text"
    assert read(head.cases[0]) == read(again.cases[0]) == f"head text {CANARY}"


# -- 5. case threshold, metric, weight ------------------------------------------------------------

def test_case_threshold_overrides_the_suite_and_metrics_reach_the_json_report(tmp_path, openai_server, monkeypatch):
    from gpo_action.cli import main
    from tests.support.projects import write_config

    monkeypatch.setenv("GPO_TEST_KEY", "k")
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, openai_server.url, concurrency=1, retries=0)
    write(tmp_path / "prompts" / "p.j2", "Say {{ word }}\n")
    write(tmp_path / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        threshold: 0.9
        assert:
          - {type: contains, value: "{{ word }}", metric: "has-{{ word }}"}
          - {type: starts-with, value: Sure, weight: 3, metric: polite}
        cases:
          - {id: lenient, vars: {word: apple}, threshold: 0.2}
          - {id: strict, vars: {word: pear}}
        """)
    openai_server.add_rule(r"Say apple", "apple")
    openai_server.add_rule(r"Say pear", "pear")
    result = CliRunner().invoke(main, ["eval", "--json", "out.json"], catch_exceptions=False)
    report = json.loads((tmp_path / "out.json").read_text())
    suite = report["suites"][0]
    by_id = {c["case_id"]: c for c in suite["cases"]}
    assert by_id["lenient"]["passed"] and not by_id["strict"]["passed"], result.output
    assert by_id["lenient"]["score"] == pytest.approx(0.25)       # (1 x 1 + 0 x 3) / 4
    assert by_id["lenient"]["metrics"] == {"has-apple": 1.0, "polite": 0.0}
    assert suite["metrics"] == {"has-apple": 1.0, "has-pear": 1.0, "polite": 0.0}
    assert by_id["strict"]["samples"][0]["checks"][0]["metric"] == "has-pear"


def test_weights_and_threshold_as_promptfoo_aggregates():
    a = [Assertion(type="contains", value="x", weight=w) for w in (3, 1)]
    from gpo_action.assertions import Verdict
    ok, bad = Verdict(True, 1.0), Verdict(False, 0.0)
    assert score_case(a, [ok, bad], 0.75) == (0.75, True)
    assert score_case(a, [ok, bad], 0.8) == (0.75, False)
    zero = [Assertion(type="contains", value="x", weight=0)]
    assert score_case(zero, [bad]) == (0.0, True)
    # a checker that raised fails the case even at weight 0 or under a met threshold
    broken = check(Assertion(type="contains-any", value="{{ v }}"), "out", {"v": '"unclosed'})
    assert broken.error and "unterminated" in broken.reason
    assert score_case(zero, [broken]) == (0.0, False)
    assert score_case(a, [ok, broken], 0.7) == (0.75, False)
    assert metric_scores([]) == {}


# -- 6. agreement with promptfoo -----------------------------------------------------------------

def gpo_verdict(case: dict) -> dict:
    """gpo-action's verdict on one agreement case, through the suite schema and the eval scorer."""
    spec = CaseSpec.model_validate({"vars": {}, "assert": case["assert"], **({"threshold": case["threshold"]}
                                                                            if "threshold" in case else {})})
    try:
        for assertion in spec.asserts:
            validate_assertion(assertion)
    except ValueError as exc:
        return {"refused": str(exc)}
    sample = score_sample(Case(case["id"], {}, None, tuple(spec.asserts), threshold=spec.threshold),
                          LLMResponse(text=case["output"]), {}, 0, spec.threshold)
    return {"pass": sample.passed, "score": sample.score, "named_scores": metric_scores(sample.checks)}


def compare(cases: list[dict], verdicts: dict[str, dict]) -> list[str]:
    problems = []
    for case in cases:
        ours, theirs = gpo_verdict(case), verdicts[case["id"]]
        kind = case.get("gpo")
        if kind == "refused":
            if "refused" not in ours:
                problems.append(f"{case['id']}: gpo-action should refuse it ({case['why']}), got {ours}")
        elif "refused" in ours:
            problems.append(f"{case['id']}: gpo-action refused it: {ours['refused']}")
        elif kind == "extension":
            if ours["pass"] == theirs["pass"]:
                problems.append(f"{case['id']}: listed as an extension, but both say {ours['pass']}")
        elif ours["pass"] != theirs["pass"] or ours["score"] != pytest.approx(theirs["score"]) \
                or ours["named_scores"] != pytest.approx(theirs["named_scores"]):
            problems.append(f"{case['id']}: gpo-action {ours}, promptfoo {theirs}")
    return problems


def test_recorded_promptfoo_verdicts_agree_case_by_case():
    cases = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))["cases"]
    recorded = json.loads((DATA / "verdicts.json").read_text(encoding="utf-8"))
    assert recorded["promptfoo_version"] == load_agreement().PROMPTFOO_VERSION
    assert sorted(recorded["verdicts"]) == sorted(c["id"] for c in cases)
    compared = [c for c in cases if "gpo" not in c]
    assert len(compared) >= 40
    assert {True, False} <= {recorded["verdicts"][c["id"]]["pass"] for c in compared}
    assert compare(cases, recorded["verdicts"]) == []


def test_live_promptfoo_agrees_with_the_recording(tmp_path):
    agreement = load_agreement()
    binary = agreement.installed_promptfoo()
    if binary is None:
        pytest.skip("promptfoo is not installed, so the live comparison is skipped (the recorded one ran): "
                    + agreement.INSTALL_HINT.format(version=agreement.PROMPTFOO_VERSION))
    cases = agreement.load_cases()
    live = agreement.run_promptfoo(binary, cases, tmp_path / "pf")
    recorded = json.loads((DATA / "verdicts.json").read_text(encoding="utf-8"))["verdicts"]
    assert {k: v["pass"] for k, v in live.items()} == {k: v["pass"] for k, v in recorded.items()}
    assert compare(cases, live) == []


def test_the_agreement_script_runs_no_promptfoo_without_node(tmp_path):
    script = REPO / "bench" / "promptfoo_agreement.py"
    env = {**os.environ, "PATH": str(tmp_path), "GPO_BENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "npm install --prefix" in proc.stdout
