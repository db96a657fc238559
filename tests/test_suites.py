"""Eval suites: YAML/JSONL/CSV cases, ids, assertions, splits, globs and overrides; errors with file:line."""

from __future__ import annotations

import hashlib
import json
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from gpo_action.assertions import Assertion
from gpo_action.config import load_config
from gpo_action.errors import ConfigError, SuiteError
from gpo_action.llm.types import ModelConfig, canonical_json
from gpo_action.suites import Case, Split, Suite, case_hash, load_suite, resolve_suites, split_cases

EQUALS_EXPECTED = Assertion(type="equals", value="{{ expected }}")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.j2").write_text("Q: {{ q }}\n", encoding="utf-8")
    (tmp_path / "evals").mkdir()
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def suite_error(path: Path, root: Path) -> SuiteError:
    with pytest.raises(SuiteError) as info:
        load_suite(path, root)
    return info.value


# --- inline YAML ---------------------------------------------------------------------------------


def test_inline_cases_ids_sources_and_assertion_order(root):
    path = write(root / "evals" / "triage.yaml", """\
        name: triage
        description: routes tickets
        prompt: prompts/p.j2
        repeats: 3
        min_score: 0.7
        threshold: 0.5
        split: {dev: 0.25, seed: 7}
        assert:
          - {type: icontains, value: "{{ expected }}"}
        cases:
          - id: charged-twice
            description: a billing ticket
            vars: {q: I was charged twice}
            expected: billing
            assert:
              - {type: contains, value: bill}
          - vars: {q: app crashes}
            expected: bug
        """)
    suite = load_suite(path, root)
    assert (suite.name, suite.description, suite.path, suite.prompt) == ("triage", "routes tickets", "evals/triage.yaml", "prompts/p.j2")
    assert (suite.repeats, suite.min_score, suite.threshold, suite.split, suite.model) == (3, 0.7, 0.5, Split(0.25, 7), None)
    first, second = suite.cases
    assert first.id == "charged-twice" and first.description == "a billing ticket"
    assert first.source == "evals/triage.yaml:11"
    assert [a.type for a in first.asserts] == ["contains", "icontains"]          # own first, then the suite's
    assert second.id == hashlib.sha256(canonical_json({"q": "app crashes"}).encode()).hexdigest()[:12]
    assert second.id == case_hash({"q": "app crashes"}) and second.source == "evals/triage.yaml:17"
    assert [a.type for a in second.asserts] == ["icontains"] and second.expected == "bug"


def test_name_defaults_to_the_file_stem_and_expected_alone_gets_equals(root):
    path = write(root / "evals" / "faq.yaml", "prompt: prompts/p.j2\ncases:\n  - vars: {q: a}\n    expected: b\n")
    suite = load_suite(path, root)
    assert suite.name == "faq" and suite.cases[0].asserts == (EQUALS_EXPECTED,)


def test_a_case_with_neither_assertions_nor_expected_is_named(root):
    path = write(root / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        cases:
          - vars: {q: a}
            expected: x
          - id: lonely
            vars: {q: b}
        """)
    err = suite_error(path, root)
    assert (err.path, err.line) == ("evals/s.yaml", 5)
    assert "case 'lonely' has no assertions and no expected value" in str(err)


def test_unknown_case_key_names_file_and_line(root):
    path = write(root / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        cases:
          - vars: {q: a}
            expected: x
          - vars: {q: b}
            expeted: y
        """)
    err = suite_error(path, root)
    assert err.line == 6
    assert str(err).startswith("evals/s.yaml:6: cases.1.expeted: unknown key (allowed: id, description, vars, expected, assert, threshold)")


def test_suite_level_schema_errors(root):
    path = write(root / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        repeats: 0
        split:
          dev: 1.5
        colour: red
        cases:
          - vars: {q: a}
            expected: x
        """)
    err = suite_error(path, root)
    assert err.line == 2 and "evals/s.yaml:2: repeats:" in str(err)
    assert "evals/s.yaml:4: split.dev: Input should be less than 1" in str(err)
    assert "evals/s.yaml:5: colour: unknown key" in str(err)


def test_vars_must_be_a_mapping(root):
    path = write(root / "evals" / "s.yaml", "prompt: prompts/p.j2\ncases:\n  - vars: [1, 2]\n    expected: x\n")
    err = suite_error(path, root)
    assert err.line == 3 and "cases.0.vars: Input should be a valid dictionary" in str(err)


def test_a_case_that_is_not_a_mapping(root):
    path = write(root / "evals" / "s.yaml", "prompt: prompts/p.j2\ncases:\n  - just a string\n")
    err = suite_error(path, root)
    assert err.line == 3 and "a case must be a mapping" in str(err)


def test_unknown_assertion_type_gives_the_line_of_that_assertion(root):
    path = write(root / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        cases:
          - vars: {q: a}
            assert:
              - {type: contains, value: a}
              - {type: no-such-check, value: a}
        """)
    err = suite_error(path, root)
    assert (err.path, err.line) == ("evals/s.yaml", 6)
    assert "cases.0.assert.1:" in str(err) and "no-such-check" in str(err)


def test_bad_regex_in_suite_defaults_gives_the_line(root):
    path = write(root / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        assert:
          - {type: equals, value: x}
          - {type: equals, value: x, extract: "Category: ("}
        cases:
          - vars: {q: a}
        """)
    err = suite_error(path, root)
    assert err.line == 4 and "assert.1:" in str(err)


def test_unknown_assertion_field_gives_the_line(root):
    path = write(root / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        cases:
          - vars: {q: a}
            assert:
              - type: contains
                valu: a
        """)
    err = suite_error(path, root)
    assert err.line == 6 and "cases.0.assert.0.valu: unknown key (allowed: type, value, weight," in str(err)


def test_empty_suite_is_an_error(root):
    err = suite_error(write(root / "evals" / "s.yaml", "prompt: prompts/p.j2\ncases: []\n"), root)
    assert err.line == 2 and "no cases" in str(err)
    err = suite_error(write(root / "evals" / "t.yaml", "prompt: prompts/p.j2\n"), root)
    assert err.line == 1 and "cases: required key is missing" in str(err)
    err = suite_error(write(root / "evals" / "u.yaml", ""), root)
    assert err.path == "evals/u.yaml" and "empty file" in str(err)


def test_prompt_resolution(root):
    write(root / "evals" / "local.j2", "x {{ q }}")
    near = load_suite(write(root / "evals" / "a.yaml", "prompt: local.j2\ncases: [{vars: {q: 1}, expected: 1}]\n"), root)
    assert near.prompt == "evals/local.j2"
    at_root = load_suite(write(root / "evals" / "b.yaml", "prompt: prompts/p.j2\ncases: [{vars: {q: 1}, expected: 1}]\n"), root)
    assert at_root.prompt == "prompts/p.j2" and (root / at_root.prompt).is_file()
    err = suite_error(write(root / "evals" / "c.yaml", "cases: [{vars: {q: 1}, expected: 1}]\nprompt: prompts/nope.j2\n"), root)
    assert err.line == 2 and "'prompts/nope.j2' not found" in str(err)


def test_yaml_with_tabs_and_bad_indentation_gives_the_line(root):
    path = root / "evals" / "tabs.yaml"
    path.write_text("prompt: prompts/p.j2\ncases:\n  - vars: {q: a}\n\t  expected: x\n", encoding="utf-8")
    err = suite_error(path, root)
    assert (err.path, err.line) == ("evals/tabs.yaml", 4) and "tabs" in str(err)
    path = write(root / "evals" / "indent.yaml", "prompt: prompts/p.j2\ncases:\n  - vars: {q: a}\n   expected: x\n")
    err = suite_error(path, root)
    assert (err.path, err.line) == ("evals/indent.yaml", 4) and "invalid YAML" in str(err)


def test_model_override_becomes_a_model_config(root):
    path = write(root / "evals" / "s.yaml", """\
        prompt: prompts/p.j2
        model: {model: openai/gpt-4.1, temperature: 0, api_key_env: SUITE_KEY}
        cases: [{vars: {q: a}, expected: b}]
        """)
    suite = load_suite(path, root, env={"SUITE_KEY": "k-1"})
    assert suite.model == ModelConfig("openai/gpt-4.1", {"temperature": 0.0, "api_key": "k-1"})
    assert suite.model.public_params() == {"temperature": 0.0}
    short = load_suite(write(root / "evals" / "t.yaml", "prompt: prompts/p.j2\nmodel: openai/o3\ncases: [{vars: {q: a}, expected: b}]\n"), root)
    assert short.model == ModelConfig("openai/o3", {})


def test_case_round_trips_through_a_dict(root):
    case = Case("x", {"q": 1}, "y", (EQUALS_EXPECTED,), "evals/s.yaml:3", "d")
    assert Case.from_dict(json.loads(json.dumps(case.to_dict()))) == case


# --- JSONL ---------------------------------------------------------------------------------------


def suite_with_file(root: Path, ref: str, extra: str = "") -> Path:
    return write(root / "evals" / "s.yaml", f"prompt: prompts/p.j2\n{extra}cases:\n  - file: {ref}\n")


def test_jsonl_flat_and_structured(root):
    lines = [
        {"q": "flat one", "lang": "en", "expected": "A", "id": "f1", "description": "flat"},
        {"vars": {"q": "structured"}, "expected": "B", "assert": [{"type": "contains", "value": "B"}]},
        {"q": "flat with assert", "assert": [{"type": "icontains", "value": "c"}]},
    ]
    text = "\n".join(json.dumps(x) for x in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\n"
    (root / "evals" / "cases.jsonl").write_text(text, encoding="utf-8")
    suite = load_suite(suite_with_file(root, "cases.jsonl"), root)
    flat, structured, with_assert = suite.cases
    assert (flat.id, flat.vars, flat.expected, flat.description) == ("f1", {"q": "flat one", "lang": "en"}, "A", "flat")
    assert flat.asserts == (EQUALS_EXPECTED,) and flat.source == "evals/cases.jsonl:1"
    assert structured.vars == {"q": "structured"} and structured.id == case_hash({"q": "structured"})
    assert [a.type for a in structured.asserts] == ["contains"] and structured.source == "evals/cases.jsonl:2"
    assert with_assert.vars == {"q": "flat with assert"} and with_assert.source == "evals/cases.jsonl:4"


def test_broken_jsonl_line_names_file_and_line(root):
    (root / "evals" / "cases.jsonl").write_text('{"q": 1, "expected": 1}\n{"q": 2, "expected": \n', encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.jsonl"), root)
    assert (err.path, err.line) == ("evals/cases.jsonl", 2) and "invalid JSON" in str(err)


def test_jsonl_line_that_is_not_an_object(root):
    (root / "evals" / "cases.jsonl").write_text('{"q": 1, "expected": 1}\n[1, 2]\n', encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.jsonl"), root)
    assert (err.path, err.line) == ("evals/cases.jsonl", 2) and "JSON object" in str(err)


def test_structured_jsonl_with_an_unknown_key(root):
    (root / "evals" / "cases.jsonl").write_text('{"q": 1, "expected": 1}\n{"vars": {"q": 2}, "expectd": 3}\n', encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.jsonl"), root)
    assert (err.path, err.line) == ("evals/cases.jsonl", 2) and "expectd: unknown key" in str(err)


def test_bad_assertion_in_jsonl_names_file_and_line(root):
    (root / "evals" / "cases.jsonl").write_text(
        '{"q": 1, "expected": 1}\n{"q": 2, "assert": [{"type": "regex", "value": "("}]}\n', encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.jsonl"), root)
    assert (err.path, err.line) == ("evals/cases.jsonl", 2) and "assert.0" in str(err)


def test_jsonl_case_without_expected_or_assertions(root):
    (root / "evals" / "cases.jsonl").write_text('{"q": 1, "expected": 1}\n{"q": 2}\n', encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.jsonl"), root)
    assert (err.path, err.line) == ("evals/cases.jsonl", 2) and "no assertions and no expected" in str(err)


def test_invalid_utf8_in_a_case_file_names_file_and_line(root):
    (root / "evals" / "cases.jsonl").write_bytes(b'{"q": "a", "expected": 1}\n{"q": "caf\xe9", "expected": 1}\n')
    err = suite_error(suite_with_file(root, "cases.jsonl"), root)
    assert (err.path, err.line) == ("evals/cases.jsonl", 2) and "UTF-8" in str(err)


def test_a_jsonl_record_may_nest_max_depth_levels_and_no_more_however_its_brackets_are_written(root):
    from gpo_action.casefiles import MAX_DEPTH

    def record(levels: int) -> str:  # the record itself is one level; its `q` holds the rest as lists
        return '{"q": ' + "[" * (levels - 1) + "1" + "]" * (levels - 1) + ', "expected": "x"}'

    brackets = json.dumps({"q": "[{" * 300, "expected": "x"})  # many brackets, in a string: one level
    (root / "evals" / "cases.jsonl").write_text(f"{record(MAX_DEPTH)}\n{brackets}\n{record(2)}\n", encoding="utf-8")
    assert len(load_suite(suite_with_file(root, "cases.jsonl"), root).cases) == 3
    (root / "evals" / "cases.jsonl").write_text(f"{record(2)}\n{record(MAX_DEPTH + 1)}\n", encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.jsonl"), root)
    assert (err.path, err.line) == ("evals/cases.jsonl", 2) and f"nested more than {MAX_DEPTH} levels" in str(err)

# --- one case file loaded again (`run` loads the head's suites, then the base's) ------------------


def test_a_case_file_loaded_again_gives_the_same_cases_its_new_bytes_new_ones_and_each_suite_its_defaults(root):
    rows = [{"q": f"question {i}", "expected": str(i)} for i in range(5)]
    cases = root / "evals" / "cases.jsonl"
    cases.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    first = load_suite(suite_with_file(root, "cases.jsonl"), root)
    again = load_suite(suite_with_file(root, "cases.jsonl"), root)
    assert again.cases == first.cases and [c.expected for c in first.cases] == ["0", "1", "2", "3", "4"]
    rows[2]["expected"] = "9"                       # the same path and size, other bytes
    cases.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    changed = load_suite(suite_with_file(root, "cases.jsonl"), root)
    assert [c.expected for c in changed.cases] == ["0", "1", "9", "3", "4"]
    assert changed.cases[2].id == first.cases[2].id and changed.cases[3] == first.cases[3]  # the id hashes the vars
    other = load_suite(suite_with_file(root, "cases.jsonl", 'assert: [{type: contains, value: "n"}]\n'), root)
    assert {c.asserts for c in other.cases} == {(Assertion(type="contains", value="n"),)}
    assert {c.asserts for c in changed.cases} == {(EQUALS_EXPECTED,)}


def test_a_refused_case_file_is_refused_on_every_load(root):
    (root / "evals" / "cases.jsonl").write_text('{"q": 1, "expected": 1}\n{"vars": {"q": 2}, "expectd": 3}\n', encoding="utf-8")
    errors = [suite_error(suite_with_file(root, "cases.jsonl"), root) for _ in range(2)]
    assert [(e.path, e.line, "expectd: unknown key" in str(e)) for e in errors] == [("evals/cases.jsonl", 2, True)] * 2


# --- CSV -----------------------------------------------------------------------------------------


def test_csv_with_promptfoo_expected_and_ids(root):
    (root / "evals" / "cases.csv").write_bytes(
        '\ufeffq,lang,__expected,id\r\n'
        'hello,en,greeting,c1\r\n'
        '"multi\r\nline",fr,other,\r\n'
        '\r\n'
        'bye,en,,c3\r\n'.encode("utf-8"))
    suite = load_suite(suite_with_file(root, "cases.csv", 'assert: [{type: contains, value: "e"}]\n'), root)
    one, two, three = suite.cases
    # promptfoo's `__expected` is an assertion (a plain value: equals), not the expected value
    assert (one.id, one.vars, one.expected, one.source) == ("c1", {"q": "hello", "lang": "en"}, None, "evals/cases.csv:2")
    assert [(a.type, a.value) for a in one.asserts] == [("equals", "greeting"), ("contains", "e")]
    assert two.vars == {"q": "multi\r\nline", "lang": "fr"} and two.id == case_hash(two.vars)
    assert two.source == "evals/cases.csv:3"
    assert (three.id, three.expected, three.source) == ("c3", None, "evals/cases.csv:6")
    assert [a.type for a in three.asserts] == ["contains"]  # a blank cell adds none


def test_csv_expected_column_gets_the_default_equals(root):
    (root / "evals" / "cases.csv").write_text("q,expected\nhi,x\n", encoding="utf-8")
    suite = load_suite(suite_with_file(root, "cases.csv"), root)
    assert suite.cases[0].expected == "x" and suite.cases[0].asserts == (EQUALS_EXPECTED,)


def test_csv_errors_name_file_and_line(root):
    (root / "evals" / "cases.csv").write_text("q,expected\nhi,x\nextra,x,y\n", encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.csv"), root)
    assert (err.path, err.line) == ("evals/cases.csv", 3) and "3 fields" in str(err)
    (root / "evals" / "cases.csv").write_bytes(b"q,expected\nhi,x\nh\xff,y\n")
    err = suite_error(suite_with_file(root, "cases.csv"), root)
    assert (err.path, err.line) == ("evals/cases.csv", 3) and "UTF-8" in str(err)
    (root / "evals" / "cases.csv").write_text("q,__prefix,expected\nhi,x,y\n", encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.csv"), root)
    assert (err.path, err.line) == ("evals/cases.csv", 1) and "'__prefix' is not supported" in str(err)


# --- case files and globs -----------------------------------------------------------------------


def test_case_file_globs_are_sorted_and_relative_to_the_suite(root):
    for name, q in (("b.jsonl", "two"), ("a.jsonl", "one")):
        (root / "evals" / "data" / name).parent.mkdir(exist_ok=True)
        (root / "evals" / "data" / name).write_text(json.dumps({"q": q, "expected": q}) + "\n", encoding="utf-8")
    (root / "evals" / "data" / "c.csv").write_text("q,expected\nthree,3\n", encoding="utf-8")
    suite = load_suite(suite_with_file(root, '"data/*"'), root)
    assert [c.vars["q"] for c in suite.cases] == ["one", "two", "three"]
    assert [c.source for c in suite.cases] == ["evals/data/a.jsonl:1", "evals/data/b.jsonl:1", "evals/data/c.csv:2"]


def test_case_file_that_matches_nothing(root):
    path = write(root / "evals" / "s.yaml", "prompt: prompts/p.j2\ncases:\n  - {vars: {q: 1}, expected: 1}\n  - file: nope/*.jsonl\n")
    err = suite_error(path, root)
    assert (err.path, err.line) == ("evals/s.yaml", 4) and "'nope/*.jsonl' matched no files" in str(err)


def test_case_file_of_an_unknown_kind(root):
    (root / "evals" / "cases.json").write_text("[]", encoding="utf-8")
    err = suite_error(suite_with_file(root, "cases.json"), root)
    assert err.line == 3 and ".jsonl or .csv" in str(err)


def test_file_entry_with_other_keys(root):
    path = write(root / "evals" / "s.yaml", "prompt: prompts/p.j2\ncases:\n  - file: a.jsonl\n    vars: {q: 1}\n")
    err = suite_error(path, root)
    assert err.line == 4 and "cases.0.vars: unknown key (allowed: file)" in str(err)


# --- ids -----------------------------------------------------------------------------------------


def jsonl_suite(root: Path, rows: list[dict], split: str = "") -> Suite:
    (root / "evals" / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return load_suite(suite_with_file(root, "cases.jsonl", split), root)


def test_duplicate_ids_get_suffixes_in_file_order(root):
    rows = [{"q": "same", "expected": 1}, {"id": "x", "q": "a", "expected": 1},
            {"q": "same", "expected": 2}, {"id": "x", "q": "b", "expected": 1}, {"q": "same", "expected": 3}]
    ids = [c.id for c in jsonl_suite(root, rows).cases]
    h = case_hash({"q": "same"})
    assert ids == [h, "x", f"{h}#2", "x#2", f"{h}#3"]


def test_ids_do_not_depend_on_order(root):
    rows = [{"q": f"question {i}", "expected": i % 3} for i in range(20)] + [{"id": "named", "q": "z", "expected": 0}]
    forward = {c.vars["q"]: c.id for c in jsonl_suite(root, rows).cases}
    backward = {c.vars["q"]: c.id for c in jsonl_suite(root, rows[::-1]).cases}
    assert forward == backward and forward["z"] == "named"


# --- splits --------------------------------------------------------------------------------------


def make_suite(n: int, dev: float = 0.5, seed: int = 0) -> Suite:
    cases = tuple(Case(f"case-{i}", {"i": i}, i, (EQUALS_EXPECTED,)) for i in range(n))
    return Suite("s", "evals/s.yaml", "prompts/p.j2", cases, Split(dev, seed))


def test_split_is_proportional_ordered_and_complete():
    suite = make_suite(100, dev=0.3)
    dev, holdout = split_cases(suite)
    assert len(dev) == 30 and len(holdout) == 70
    assert {c.id for c in dev} | {c.id for c in holdout} == {c.id for c in suite.cases}
    order = {c.id: i for i, c in enumerate(suite.cases)}
    assert [order[c.id] for c in dev] == sorted(order[c.id] for c in dev)
    assert [order[c.id] for c in holdout] == sorted(order[c.id] for c in holdout)


def test_split_is_seeded_and_deterministic():
    assert split_cases(make_suite(40)) == split_cases(make_suite(40))
    seed0 = {c.id for c in split_cases(make_suite(40, seed=0))[0]}
    seed1 = {c.id for c in split_cases(make_suite(40, seed=1))[0]}
    assert len(seed0) == len(seed1) == 20 and seed0 != seed1


def test_split_of_each_id_survives_reordering():
    suite = make_suite(50, dev=0.4, seed=3)
    shuffled = replace(suite, cases=suite.cases[::2] + suite.cases[1::2])
    assert {c.id for c in split_cases(suite)[0]} == {c.id for c in split_cases(shuffled)[0]}


def test_split_of_loaded_cases_survives_reordering(root):
    rows = [{"q": f"question {i}", "expected": i} for i in range(12)]
    a = jsonl_suite(root, rows, "split: {dev: 0.5, seed: 11}\n")
    b = jsonl_suite(root, rows[::-1], "split: {dev: 0.5, seed: 11}\n")
    assert {c.id for c in split_cases(a)[0]} == {c.id for c in split_cases(b)[0]}


def test_small_suites_are_not_split_and_both_sides_stay_non_empty():
    for n in (1, 2, 3):
        suite = make_suite(n)
        assert split_cases(suite) == (suite.cases, ())
    assert [len(x) for x in split_cases(make_suite(4, dev=0.01))] == [1, 3]
    assert [len(x) for x in split_cases(make_suite(4, dev=0.99))] == [3, 1]


# --- resolve_suites -----------------------------------------------------------------------------


def project(root: Path, config: str) -> None:
    write(root / "gpo.yaml", config)
    for name in ("b", "a", "c"):
        write(root / "evals" / f"{name}.yaml", f"prompt: prompts/p.j2\ncases: [{{vars: {{q: {name}}}, expected: {name}}}]\n")
    write(root / "other" / "z.yaml", "name: zed\nprompt: prompts/p.j2\ncases: [{vars: {q: z}, expected: z}]\n")


def test_resolve_default_glob_sorted(root):
    project(root, "models: {task: openai/x}\n")
    suites = resolve_suites(load_config(root / "gpo.yaml"))
    assert [s.name for s in suites] == ["a", "b", "c"]
    assert [s.path for s in suites] == ["evals/a.yaml", "evals/b.yaml", "evals/c.yaml"]


def test_entry_overrides_and_dedup(root):
    project(root, """\
        suites:
          - evals/*.yaml
          - {eval: evals/b.yaml, model: {model: openai/o3, api_key_env: K}, min_score: 0.9}
          - other
        """)
    suites = resolve_suites(load_config(root / "gpo.yaml", env={"K": "secret"}))
    assert [s.name for s in suites] == ["a", "b", "c", "zed"]
    b = suites[1]
    assert b.model == ModelConfig("openai/o3", {"api_key": "secret"}) and b.min_score == 0.9
    assert suites[0].model is None and suites[0].min_score is None


def test_suite_env_follows_the_config_env(root):
    write(root / "gpo.yaml", "suites: [evals/s.yaml]\n")
    write(root / "evals" / "s.yaml", "prompt: prompts/p.j2\nmodel: {model: m, api_key_env: SK}\ncases: [{vars: {q: 1}, expected: 1}]\n")
    (suite,) = resolve_suites(load_config(root / "gpo.yaml", env={"SK": "v"}))
    assert suite.model.params["api_key"] == "v"


def test_a_pattern_matching_nothing_names_the_pattern_and_line(root):
    project(root, "models: {task: openai/x}\nsuites:\n  - evals/*.yaml\n  - evals/missing/*.yaml\n")
    with pytest.raises(ConfigError) as info:
        resolve_suites(load_config(root / "gpo.yaml"))
    assert info.value.line == 4 and "'evals/missing/*.yaml' matched no suite files" in str(info.value)


def test_default_glob_matching_nothing(tmp_path):
    write(tmp_path / "gpo.yaml", "")
    with pytest.raises(ConfigError, match="'evals/\\*.yaml' matched no suite files"):
        resolve_suites(load_config(tmp_path / "gpo.yaml"))


def test_duplicate_suite_names(root):
    project(root, "suites: [evals/a.yaml, other/z.yaml]\n")
    write(root / "other" / "z.yaml", "name: a\nprompt: prompts/p.j2\ncases: [{vars: {q: z}, expected: z}]\n")
    with pytest.raises(ConfigError, match="two suites are named 'a': evals/a.yaml and other/z.yaml"):
        resolve_suites(load_config(root / "gpo.yaml"))


def test_config_file_is_not_taken_for_a_suite(root):
    project(root, "suites: ['*.yaml', 'evals/a.yaml']\n")
    write(root / "top.yaml", "prompt: prompts/p.j2\ncases: [{vars: {q: t}, expected: t}]\n")
    assert [s.name for s in resolve_suites(load_config(root / "gpo.yaml"))] == ["top", "a"]


def test_suite_errors_come_through_resolve(root):
    project(root, "suites: [evals/*.yaml]\n")
    write(root / "evals" / "b.yaml", "prompt: prompts/p.j2\ncases:\n  - vars: {q: 1}\n    expecte: 2\n")
    with pytest.raises(SuiteError) as info:
        resolve_suites(load_config(root / "gpo.yaml"))
    assert (info.value.path, info.value.line) == ("evals/b.yaml", 4)
