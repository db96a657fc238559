"""Assertions: the registry, every checker (and its not- form), the shared steps, rubric, aggregation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gpo_action.assertions import (
    CHECKERS,
    MAX_REGEX_INPUT,
    Assertion,
    Verdict,
    check,
    checker,
    get_checker,
    needs_llm,
    score_case,
    validate_assertion,
)
from gpo_action.rubric import parse_rubric, rubric_messages

KNOWN = {
    "equals", "contains", "icontains", "contains-any", "contains-all", "icontains-any", "icontains-all",
    "regex", "starts-with", "is-json", "levenshtein", "llm-rubric",
    # promptfoo's other types (issue 16): their own modules, the same table
    "similar", "contains-json", "latency", "cost", "finish-reason", "factuality", "model-graded-closedqa",
    "answer-relevance", "g-eval", "is-valid-openai-tools-call", "is-valid-openai-function-call", "rouge-n", "bleu",
}
JUDGED = {"llm-rubric", "factuality", "model-graded-closedqa", "answer-relevance", "g-eval"}

SCHEMA = {
    "type": "object",
    "required": ["category", "confidence"],
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug"]},
        "confidence": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}

# (type, value, output, passes)
CASES = [
    ("equals", "billing", "billing", True),
    ("equals", "billing", "Billing", False),
    ("equals", {"a": [1, True]}, '{"a": [1, true]}', True),
    ("equals", {"a": [1, True]}, '{"a": [1, 1]}', False),
    ("equals", 3, "3", True),
    ("equals", 1, "true", False),
    ("equals", ["x"], "not json", False),
    ("contains", "refund", "we will refund you", True),
    ("contains", "refund", "we will REFUND you", False),
    ("contains", 42, "answer: 42", True),
    ("icontains", "REFUND", "we will refund you", True),
    ("icontains", "refund", "no money back", False),
    ("contains-any", ["billing", "bug"], "looks like a bug", True),
    ("contains-any", "billing, bug", "looks like a bug", True),
    ("contains-any", ["billing", "bug"], "a feature", False),
    ("contains-all", ["order", "refund"], "refund for order 7", True),
    ("contains-all", "order,refund", "order 7", False),
    ("icontains-any", ["BUG"], "a bug", True),
    ("icontains-any", ["BUG"], "a feature", False),
    ("icontains-all", ["A", "B"], "a b", True),
    ("icontains-all", ["A", "B"], "a", False),
    ("regex", r"^Category: \w+$", "Category: billing", True),
    ("regex", r"^\d{3}$", "12", False),
    ("starts-with", "Category:", "Category: bug", True),
    ("starts-with", "Category:", "The Category: bug", False),
    ("is-json", None, '{"a": 1}', True),
    ("is-json", None, "{a: 1}", False),
    ("is-json", SCHEMA, '{"category": "bug", "confidence": 0.9, "tags": ["x"]}', True),
    ("is-json", SCHEMA, '{"category": "bug"}', False),
    ("is-json", SCHEMA, '{"category": "bug", "confidence": "high"}', False),
    ("is-json", SCHEMA, '{"category": "spam", "confidence": 1}', False),
    ("is-json", SCHEMA, '{"category": "bug", "confidence": 1, "tags": [1]}', False),
    ("is-json", {"type": "array", "items": {"type": "integer"}}, "[1, 2.0]", True),
    ("is-json", {"type": "object", "additionalProperties": False}, '{"x": 1}', False),
    ("levenshtein", "kitten", "sitting", True),
    ("levenshtein", "kitten", "a completely different text", False),
]


def test_registry_matches_the_documented_types():
    assert set(CHECKERS) == KNOWN
    assert {name for name, spec in CHECKERS.items() if spec.needs_llm} == JUDGED
    assert get_checker("contains").name == "contains"


@pytest.mark.parametrize("type_, value, output, passes", CASES)
def test_checker(type_, value, output, passes):
    verdict = check(Assertion(type=type_, value=value), output)
    assert verdict.passed is passes, verdict.reason
    assert 0.0 <= verdict.score <= 1.0
    if type_ != "levenshtein":
        assert verdict.score == (1.0 if passes else 0.0)
    assert verdict.reason


@pytest.mark.parametrize("type_, value, output, passes", CASES)
def test_not_variant_flips(type_, value, output, passes):
    plain = check(Assertion(type=type_, value=value), output)
    flipped = check(Assertion(type=f"not-{type_}", value=value), output)
    assert flipped.passed is (not passes)
    assert flipped.score == pytest.approx(1.0 - plain.score)
    if passes:
        assert flipped.reason.startswith(f"expected not {type_}: ")


def test_levenshtein_score_and_threshold():
    verdict = check(Assertion(type="levenshtein", value="kitten"), "sitting")
    assert verdict.score == 1.0  # promptfoo scores a levenshtein assertion 1 or 0, not by distance
    assert "distance 3" in verdict.reason
    failed = check(Assertion(type="levenshtein", value="kitten", threshold=2), "sitting")
    assert not failed.passed and failed.score == 0.0


# -- shared steps ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "extract, output, passes",
    [
        (r"Category: (\w+)", "Reasoning...\nCategory: billing\n", True),    # first group
        (r"billing|bug", "It is billing.", True),                           # no group: whole match
        (r"Label: (\w+)|Category: (\w+)", "Category: billing", True),       # first group that matched
        (r"Category: (\w+)", "Category: bug", False),
    ],
)
def test_extract(extract, output, passes):
    verdict = check(Assertion(type="equals", value="billing", extract=extract), output)
    assert verdict.passed is passes


def test_extract_not_found_fails_and_is_not_flipped():
    for type_ in ("equals", "not-equals"):
        verdict = check(Assertion(type=type_, value="x", extract=r"Category: (\w+)"), "no label here")
        assert verdict == Verdict(False, 0.0, "extract pattern not found: 'Category: (\\\\w+)'")


def test_regex_inputs_are_bounded():
    output = "x" * MAX_REGEX_INPUT + "needle"
    assert not check(Assertion(type="regex", value="needle"), output).passed
    assert check(Assertion(type="contains", value="needle"), output).passed


@pytest.mark.parametrize(
    "normalize, output, value, passes",
    [
        (["strip"], "  billing \n", "billing", True),
        (["lower"], "BILLING", "Billing", True),
        (["collapse_spaces"], "a \t\n b", "a b", True),
        (["strip_punctuation"], "«Billing!»", "billing", False),
        (["strip_punctuation", "lower"], "«Billing!»", "billing", True),
        (["strip_punctuation"], "¿Qué tal?", "Qué tal", True),
        (["strip", "lower", "collapse_spaces", "strip_punctuation"], "  Hello,   WORLD!! ", "hello world", True),
        ([], " billing", "billing", False),
    ],
)
def test_normalize_chain(normalize, output, value, passes):
    assert check(Assertion(type="equals", value=value, normalize=normalize), output).passed is passes


def test_normalize_applies_to_value_and_list_items():
    assertion = Assertion(type="contains-any", value=["  BUG ", "Billing"], normalize=["strip", "lower"])
    assert check(assertion, "a bug report").passed


@pytest.mark.parametrize(
    "value, vars, expected, output, passes",
    [
        ("{{ expected }}", {}, "billing", "billing", True),
        ("Dear {{ name }}", {"name": "Ann"}, None, "Dear Ann, hello", True),
        (None, {}, "billing", "billing", True),                   # missing value = expected
        (None, {}, {"a": 1}, '{"a": 1}', True),                   # ... also for non-strings (JSON compare)
        ("{{ expected | upper }}", {}, "bug", "BUG", True),
        ("{{ expected }}", {"expected": "shadowed"}, "real", "real", True),
    ],
)
def test_value_rendering(value, vars, expected, output, passes):
    assertion = Assertion(type="contains" if value and "Dear" in value else "equals", value=value)
    assert check(assertion, output, vars, expected).passed is passes


def test_list_values_are_rendered():
    assertion = Assertion(type="contains-all", value=["{{ a }}", "{{ expected }}"])
    assert check(assertion, "x and y", {"a": "x"}, "y").passed


def test_value_with_undefined_variable_is_a_failed_verdict():
    verdict = check(Assertion(type="equals", value="{{ missing }}"), "x", {}, None)
    assert not verdict.passed and verdict.score == 0.0
    assert "undefined variable 'missing'" in verdict.reason


def test_value_is_not_rendered_when_it_comes_from_expected():
    assert check(Assertion(type="equals"), "{{ x }}", {}, "{{ x }}").passed


# -- checker errors -------------------------------------------------------------------------------

@pytest.fixture
def exploding_checker():
    @checker("test-explodes")
    def explodes(output, value, assertion):
        raise RuntimeError("boom")

    try:
        yield "test-explodes"
    finally:
        CHECKERS.unregister("test-explodes")


def test_checker_exception_becomes_failed_verdict(exploding_checker):
    for type_ in (exploding_checker, f"not-{exploding_checker}"):
        verdict = check(Assertion(type=type_), "output")
        assert verdict == Verdict(False, 0.0, f"{type_} error: boom", error=True)


@pytest.mark.parametrize(
    "assertion, reason",
    [
        (Assertion(type="contains"), "contains needs a value"),
        (Assertion(type="contains", value={"a": 1}), "needs a string or a number as its value, got dict"),
        (Assertion(type="contains-any", value=[]), "needs at least one item"),
        (Assertion(type="regex", value="(unclosed"), "invalid regex pattern"),
        (Assertion(type="is-json", value={"type": "object", "minProperties": 1}), "not supported"),
    ],
)
def test_bad_values_at_check_time_are_failed_verdicts(assertion, reason):
    verdict = check(assertion, "output")
    assert not verdict.passed and reason in verdict.reason


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        checker("contains")(lambda output, value, assertion: Verdict(True, 1.0))
    with pytest.raises(ValueError, match="cannot register"):
        checker("not-thing")


# -- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "assertion, message",
    [
        (Assertion(type="contain", value="x"), "unknown assertion type 'contain'; known types: answer-relevance, bleu, contains, contains-all"),
        (Assertion(type="not-nope"), "unknown assertion type 'nope'"),
        (Assertion(type="python", value="x"), "'python' is not supported: gpo-action never runs code"),
        (Assertion(type="not-javascript", value="x"), "'javascript' is not supported"),
        (Assertion(type="regex", value="(a"), "invalid regex pattern '(a': missing ), unterminated subpattern"),
        (Assertion(type="regex", value=5), "regex must be a string pattern"),
        (Assertion(type="equals", value="x", extract="[a-"), "invalid extract pattern '[a-': unterminated character set"),
        (Assertion(type="equals", value="{{ expected "), "value is not a valid template"),
        (Assertion(type="contains-any", value={"a": 1}), "list or a comma-separated string"),
        (Assertion(type="is-json", value={"type": "object", "pattern": "x"}), "keyword(s) pattern at $ are not supported"),
        (Assertion(type="is-json", value={"properties": {"a": {"type": "text"}}}), "unknown schema type 'text' at $.a"),
        (Assertion(type="llm-rubric"), "needs a rubric"),
        (Assertion.model_construct(type="equals", normalize=("upper",)), "unknown normalize step 'upper'"),
    ],
)
def test_validate_assertion_names_the_problem(assertion, message):
    with pytest.raises(ValueError) as info:
        validate_assertion(assertion)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "assertion",
    [
        Assertion(type="regex", value=r"^\d{2,3}$"),
        Assertion(type="regex", value="{{ pattern }}"),
        Assertion(type="equals", value="{{ expected }}", extract=r"Category: (\w+)", normalize=["strip", "lower"]),
        Assertion(type="is-json", value=SCHEMA),
        Assertion(type="not-llm-rubric", value="is rude"),
    ],
)
def test_validate_assertion_accepts_good_ones(assertion):
    validate_assertion(assertion)


def test_bad_normalize_name_is_refused_by_the_model():
    with pytest.raises(ValidationError, match="normalize"):
        Assertion(type="equals", normalize=["upper"])


# -- llm-rubric -----------------------------------------------------------------------------------

def test_needs_llm():
    assert needs_llm(Assertion(type="llm-rubric", value="r"))
    assert needs_llm(Assertion(type="not-llm-rubric", value="r"))
    assert not needs_llm(Assertion(type="contains", value="r"))


def test_rubric_messages_render_the_rubric_and_apply_extract():
    assertion = Assertion(type="llm-rubric", value="Is polite to {{ name }}", extract=r"Answer: (.*)")
    system, user = rubric_messages(assertion, "Thinking...\nAnswer: Hello Bo!", {"name": "Bo"}, None)
    assert system["role"] == "system" and '{"score"' in system["content"]
    assert user == {"role": "user", "content": "<rubric>\nIs polite to Bo\n</rubric>\n\n<output>\nHello Bo!\n</output>"}


def test_rubric_messages_empty_when_already_decided():
    assertion = Assertion(type="llm-rubric", value="polite", extract=r"Answer: (.*)")
    assert rubric_messages(assertion, "no answer", {}, None) == ()
    assert check(assertion, "no answer").reason.startswith("extract pattern not found")
    with pytest.raises(ValueError, match="rubric_messages"):
        check(assertion, "Answer: hi")
    with pytest.raises(ValueError, match="not graded by a judge"):
        rubric_messages(Assertion(type="contains", value="x"), "x")


@pytest.mark.parametrize(
    "reply, threshold, passes, score, reason",
    [
        ('{"score": 0.8, "reason": "mostly polite"}', None, True, 0.8, "mostly polite"),
        ('```json\n{"score": 0.2, "reason": "rude"}\n```', None, False, 0.2, "rude"),
        ('Here is my grade: {"reason": "ok", "score": 1} Hope it helps {x}', None, True, 1.0, "ok"),
        ('I think {this} matters. {"score": "0.6", "reason": "fine"}', None, True, 0.6, "fine"),
        ('{"score": 7, "reason": "great"}', None, True, 1.0, "great"),
        ('{"score": -2}', None, False, 0.0, "judge score 0"),
        ('{"pass": true, "reason": "yes"}', None, True, 1.0, "yes"),
        ('{"score": 0.7}', 0.75, False, 0.7, "judge score 0.7"),
        ('{"score": 0.5}', None, True, 0.5, "judge score 0.5"),
    ],
)
def test_parse_rubric(reply, threshold, passes, score, reason):
    verdict = parse_rubric(reply, Assertion(type="llm-rubric", value="r", threshold=threshold))
    assert verdict == Verdict(passes, pytest.approx(score), reason)


@pytest.mark.parametrize("reply", ["I cannot grade this.", "", '{"reason": "no score"}', '{"score": "high"}', '{"score": NaN}'])
def test_unparseable_rubric_reply_fails(reply):
    verdict = parse_rubric(reply, Assertion(type="not-llm-rubric", value="r"))
    assert not verdict.passed and verdict.score == 0.0
    assert "judge reply has no JSON score" in verdict.reason


def test_not_llm_rubric_flips():
    verdict = parse_rubric('{"score": 0.9, "reason": "rude"}', Assertion(type="not-llm-rubric", value="is rude"))
    assert verdict == Verdict(False, pytest.approx(0.1), "expected not llm-rubric: rude")


# -- aggregation ----------------------------------------------------------------------------------

def _a(weight: float) -> Assertion:
    return Assertion(type="contains", value="x", weight=weight)


PASS, FAIL, HALF = Verdict(True, 1.0), Verdict(False, 0.0), Verdict(True, 0.5)


@pytest.mark.parametrize(
    "weights, verdicts, threshold, score, passed",
    [
        ([1], [PASS], None, 1.0, True),
        ([1, 1], [PASS, FAIL], None, 0.5, False),
        ([3, 1], [PASS, FAIL], None, 0.75, False),
        ([1, 0], [PASS, FAIL], None, 1.0, True),         # weight 0: reported only
        ([0, 0], [PASS, HALF], None, 0.0, True),         # all 0: score 0 (promptfoo), nothing fails it
        ([0, 0], [PASS, FAIL], None, 0.0, True),
        ([0, 0], [PASS, PASS], 0.5, 0.0, False),         # ... but a threshold still judges that score
        ([3, 1], [PASS, FAIL], 0.7, 0.75, True),         # threshold overrides individual passes
        ([1, 1], [PASS, PASS], 1.1, 1.0, False),
        ([0.1, 0.2], [PASS, PASS], 1.0, 1.0, True),      # float sums do not fail an exact threshold
    ],
)
def test_score_case(weights, verdicts, threshold, score, passed):
    result = score_case([_a(w) for w in weights], verdicts, threshold)
    assert result == (pytest.approx(score), passed)


def test_score_case_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        score_case([], [])
    with pytest.raises(ValueError, match="2 assertions but 1 verdicts"):
        score_case([_a(1), _a(1)], [PASS])


def test_schema_strings_are_rendered_with_case_vars():
    a = Assertion(type="is-json", value={"properties": {"email": {"enum": ["{{ email }}"]}}})
    assert check(a, '{"email": "ann@example.com"}', {"email": "ann@example.com"}).passed
    assert not check(a, '{"email": "bob@example.com"}', {"email": "ann@example.com"}).passed
