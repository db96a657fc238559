"""promptfoo's other assertion types (issue 16): one test per type, written from promptfoo's
documentation. Where a model is involved (the task's figures, a judge, embeddings) the project
runs `gpo-action eval` with litellm over HTTP to the scripted server."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from gpo_action.assertions import Assertion, ResponseFacts, check, validate_assertion
from gpo_action.cli import main
from gpo_action.textmetrics import bleu, rouge_n

KEY = "sk-test-promptfoo-types-4242"
CANARY = "canary-deploy-secret-55aa77bb"


def write_project(root: Path, url: str, suite: str, *, prompt: str = "Answer: {{ question }}\n",
                  prompt_name: str = "ask.j2", task: str = "openai/scripted", embedding: bool = True,
                  concurrency: int = 2) -> None:
    (root / "prompts").mkdir(exist_ok=True)
    (root / "evals").mkdir(exist_ok=True)
    model = f'{{model: MODEL, api_base: "{url}/v1", api_key_env: GPO_TEST_KEY}}'
    lines = ["models:", f"  task: {model.replace('MODEL', task)}", f"  judge: {model.replace('MODEL', 'openai/judge')}"]
    if embedding:
        lines.append(f"  embedding: {model.replace('MODEL', 'openai/scripted-embedding')}")
    lines += ["suites:", "  - eval: evals/*.yaml", f"concurrency: {concurrency}", "timeout: 5",
              "retries: {max: 0, base: 0.01, max_wait: 0.05}", "max_error_rate: 1.0", "cache: {path: .gpo/cache.sqlite}"]
    (root / "gpo.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "prompts" / prompt_name).write_text(prompt, encoding="utf-8")
    (root / "evals" / "suite.yaml").write_text(f"prompt: prompts/{prompt_name}\n" + suite, encoding="utf-8")


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", KEY)
    monkeypatch.setenv("GPO_WORKERS", "0")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def evaluate(root: Path, name: str = "out.json") -> dict:
    result = CliRunner().invoke(main, ["eval", "--json", name], catch_exceptions=False)
    assert result.exit_code in (0, 1, 3), result.output
    return json.loads((root / name).read_text(encoding="utf-8"))


def samples(report: dict) -> list[dict]:
    return [case["samples"][0] for case in report["suites"][0]["cases"]]


def checks(report: dict) -> list[list[tuple[bool, str]]]:
    """Per case, each check's (passed, reason)."""
    return [[(c["passed"], c["reason"]) for c in sample["checks"]] for sample in samples(report)]


def embedding_requests(server) -> int:
    return sum(1 for body in server.requests if "input" in body)


def judge_requests(server) -> list[dict]:
    return [body for body in server.requests if body.get("model") == "judge"]


# ---- similar --------------------------------------------------------------------------------------
def test_similar_compares_embeddings_at_075_and_a_rerun_makes_no_embedding_request(project, openai_server):
    openai_server.set_reply("the cat sat on the mat")
    write_project(project, openai_server.url, """\
cases:
  - vars: {question: a}
    assert: [{type: similar, value: "The cat sat on the mat."}]
  - vars: {question: b}
    assert: [{type: similar, value: "stock prices fell sharply"}]
  - vars: {question: c}
    assert: [{type: not-similar, value: "stock prices fell sharply"}]
  - vars: {question: d}
    assert: [{type: similar, value: ["stock prices fell", "the cat sat on a mat"], threshold: 0.6}]
""")
    first = evaluate(project)
    verdicts = checks(first)
    assert [v[0][0] for v in verdicts] == [True, False, True, True]
    assert verdicts[0][0][1] == "similarity 1.000 >= 0.75"
    assert verdicts[1][0][1].endswith("< 0.75")
    assert embedding_requests(openai_server) == 1            # every text in one embedding call
    total = openai_server.total
    second = evaluate(project, "again.json")
    assert openai_server.total == total and embedding_requests(openai_server) == 1   # all from the cache
    assert checks(second) == verdicts


def test_a_stopped_run_scores_similar_from_the_cached_embeddings_alone(project, openai_server):
    from gpo_action.workspace import Workspace

    openai_server.set_reply("the cat sat on the mat")
    write_project(project, openai_server.url, """\
cases:
  - {vars: {question: a}, assert: [{type: similar, value: the cat sat on a mat}]}
  - {vars: {question: b}, assert: [{type: similar, value: stock prices fell sharply}]}
""")
    evaluate(project)
    total = openai_server.total
    ws = Workspace.open(project / "gpo.yaml")
    try:
        [result] = ws.evaluate_cached(ws.suites())
    finally:
        ws.client.cache.close()
    assert openai_server.total == total
    assert [c.samples[0].error for c in result.cases] == [None, None]
    assert [c.passed for c in result.cases] == [True, False]


def test_similar_without_models_embedding_is_each_case_s_error(project, openai_server):
    write_project(project, openai_server.url, "cases:\n  - vars: {question: a}\n    assert: [{type: similar, value: a}]\n",
                  embedding=False)
    [sample] = samples(evaluate(project))
    assert sample["error_type"] == "EmbeddingError" and "models.embedding" in sample["error"]


# ---- contains-json --------------------------------------------------------------------------------
@pytest.mark.parametrize("output, value, passes", [
    ('Here it is:\n```json\n{"category": "bug"}\n```\nDone.', None, True),
    ('The answer {"category": "bug", "n": 2} is above.', {"type": "object", "required": ["category"]}, True),
    ('First {"x": 1} then {"category": "bug"}', {"type": "object", "required": ["category"]}, True),
    ('{"x": 1}', {"type": "object", "required": ["category"]}, False),
    ("no json {here", None, False),
])
def test_contains_json_finds_an_object_in_prose_and_checks_the_schema(output, value, passes):
    assertion = Assertion(type="contains-json", value=value)
    validate_assertion(assertion)
    assert check(assertion, output).passed is passes
    assert check(Assertion(type="not-contains-json", value=value), output).passed is (not passes)


# ---- latency, cost, finish-reason: the response's own figures ----------------------------------------
def test_latency_is_the_response_s_and_a_cached_answer_keeps_its_first_latency(project, openai_server):
    openai_server.set_latency(0.3)
    write_project(project, openai_server.url, """\
cases:
  - vars: {question: fast}
    assert: [{type: latency, threshold: 100}]
  - vars: {question: slow}
    assert: [{type: latency, threshold: 60000}]
""")
    first = checks(evaluate(project))
    assert first[0][0][0] is False and first[1][0][0] is True
    measured = float(first[0][0][1].split()[1])
    assert measured >= 300                                   # the server waited 0.3 s
    total = openai_server.total
    again = evaluate(project, "again.json")
    assert openai_server.total == total and all(s["cached"] for s in samples(again))
    assert checks(again) == first                            # the same figure, not 0


def test_latency_and_cost_need_a_threshold():
    for type_ in ("latency", "cost"):
        with pytest.raises(ValueError, match="needs a `threshold`"):
            validate_assertion(Assertion(type=type_))


def test_cost_is_the_response_s_own_and_kept_by_the_cache(project, openai_server):
    write_project(project, openai_server.url, """\
cases:
  - vars: {question: cheap}
    assert: [{type: cost, threshold: 1.0}]
  - vars: {question: dear}
    assert: [{type: cost, threshold: 0.0000000001}]
""", task="openai/gpt-4o-mini")
    report = evaluate(project)
    first = checks(report)
    assert first[0][0][0] is True and first[1][0][0] is False
    cost = samples(report)[1]["cost"]
    assert cost > 0 and f"cost {cost:g} $ > 1e-10 $" == first[1][0][1]
    again = evaluate(project, "again.json")
    assert all(s["cached"] for s in samples(again)) and checks(again) == first


def test_cost_of_a_model_with_no_known_price_never_passes(project, openai_server):
    write_project(project, openai_server.url, "cases:\n  - vars: {question: a}\n    assert: [{type: cost, threshold: 1.0}]\n")
    assert checks(evaluate(project)) == [[(False, "the response has no cost")]]        # openai/scripted: unpriced
    assert checks(evaluate(project, "again.json")) == [[(False, "the response has no cost")]]  # also from the cache


def test_finish_reason_is_the_provider_s_and_kept_by_the_cache(project, openai_server):
    openai_server.enqueue_messages({"content": "a long answer that was cut", "finish_reason": "length"})
    write_project(project, openai_server.url, """\
cases:
  - vars: {question: cut}
    assert: [{type: finish-reason, value: length}, {type: not-finish-reason, value: stop}]
  - vars: {question: whole}
    assert: [{type: finish-reason, value: STOP}, {type: finish-reason, value: length}]
""", concurrency=1)
    first = checks(evaluate(project))
    assert [[ok for ok, _ in case] for case in first] == [[True, True], [True, False]]
    assert first[1][1][1] == "finish reason 'stop', expected 'length'"
    assert checks(evaluate(project, "again.json")) == first


# ---- model-graded ---------------------------------------------------------------------------------
def test_factuality_passes_on_a_b_c_e_fails_on_d_and_an_unreadable_judge_is_an_error(project, openai_server):
    openai_server.set_reply(lambda body, index: f"reply to {body['messages'][-1]['content']}")
    openai_server.add_rule(r"<output>\nreply to Answer: paris", '{"choice": "B", "reason": "adds detail"}')
    openai_server.add_rule(r"<output>\nreply to Answer: lyon", '{"choice": "D", "reason": "wrong city"}')
    openai_server.add_rule(r"<output>\nreply to Answer: nice", "The answer is probably B.")
    write_project(project, openai_server.url, """\
assert: [{type: factuality, value: "{{ expected }}"}]
cases:
  - {vars: {question: paris}, expected: Paris is the capital of France}
  - {vars: {question: lyon}, expected: Paris is the capital of France}
  - {vars: {question: nice}, expected: Paris is the capital of France}
""")
    report = evaluate(project)
    got = samples(report)
    assert got[0]["passed"] and got[0]["checks"][0]["reason"] == "factuality B: adds detail"
    assert not got[1]["passed"] and got[1]["error"] is None
    assert got[2]["error_type"] == "JudgeError" and "one JSON object" in got[2]["error"]
    [asked] = [b for b in judge_requests(openai_server) if "reply to Answer: paris" in b["messages"][-1]["content"]]
    assert "<reference>\nParis is the capital of France\n</reference>" in asked["messages"][-1]["content"]
    assert report["usage"]["calls"] == 6                     # three task calls, three judge calls


def test_model_graded_closedqa_passes_on_y_only(project, openai_server):
    openai_server.add_rule(r"<criterion>\nmentions a cat", '{"reason": "it does", "answer": "Y"}')
    openai_server.add_rule(r"<criterion>\nmentions a dog", '```json\n{"reason": "no dog", "answer": "N"}\n```')
    openai_server.add_rule(r"<criterion>\nis polite", '{"reason": "hm", "answer": "maybe"}')
    write_project(project, openai_server.url, """\
cases:
  - {vars: {question: a cat}, assert: [{type: model-graded-closedqa, value: mentions a cat}]}
  - {vars: {question: a cat}, assert: [{type: model-graded-closedqa, value: mentions a dog}]}
  - {vars: {question: a cat}, assert: [{type: not-model-graded-closedqa, value: mentions a dog}]}
  - {vars: {question: a cat}, assert: [{type: model-graded-closedqa, value: is polite}]}
""")
    got = samples(evaluate(project))
    assert [s["passed"] for s in got[:3]] == [True, False, True]
    assert got[3]["error_type"] == "JudgeError" and "not one of Y/N" in got[3]["error"]


def test_g_eval_scores_out_of_ten_against_a_default_threshold_of_07(project, openai_server):
    openai_server.add_rule(r"<criterion>\nis concise", '{"steps": ["read", "judge"], "score": 8, "reason": "short"}')
    openai_server.add_rule(r"<criterion>\nis funny", '{"steps": ["read"], "score": 5, "reason": "mild"}')
    openai_server.add_rule(r"<criterion>\nis exact", '{"steps": [], "score": 11}')
    write_project(project, openai_server.url, """\
cases:
  - {vars: {question: a}, assert: [{type: g-eval, value: is concise}]}
  - {vars: {question: b}, assert: [{type: g-eval, value: is funny}]}
  - {vars: {question: c}, assert: [{type: g-eval, value: is funny, threshold: 0.5}]}
  - {vars: {question: d}, assert: [{type: g-eval, value: is exact}]}
""")
    got = samples(evaluate(project))
    assert [s["passed"] for s in got[:3]] == [True, False, True]
    assert got[0]["checks"][0]["score"] == pytest.approx(0.8) and got[1]["checks"][0]["score"] == pytest.approx(0.5)
    assert got[3]["error_type"] == "JudgeError" and "0 to 10" in got[3]["error"]


def test_g_eval_takes_a_list_of_criteria_one_per_line():
    from gpo_action.graders import geval_prompt

    [_, user] = geval_prompt("out", ["is concise", "is polite"], Assertion(type="g-eval"), ResponseFacts())
    assert "<criterion>\n- is concise\n- is polite\n</criterion>" in user["content"]


def test_answer_relevance_embeds_the_judge_s_questions_against_the_query(project, openai_server):
    openai_server.add_rule(r"Answer: weather", "It will rain in Paris tomorrow.")
    openai_server.add_rule(r"Answer: recipe", "Stocks rose sharply today.")
    openai_server.add_rule(r"It will rain", '{"questions": ["what is the weather in paris tomorrow"]}')
    openai_server.add_rule(r"Stocks rose", '{"questions": ["how did stocks do today"]}')
    write_project(project, openai_server.url, """\
assert: [{type: answer-relevance}]
cases:
  - {vars: {question: weather, query: what is the weather in paris tomorrow}}
  - {vars: {question: recipe, query: how do I bake bread}}
""")
    got = samples(evaluate(project))
    assert got[0]["passed"] and got[0]["checks"][0]["reason"] == "relevance 1.000 >= 0.7"
    assert not got[1]["passed"] and got[1]["error"] is None
    assert embedding_requests(openai_server) == 1


def test_judge_prompts_carry_no_secret_the_output_echoes(project, openai_server, monkeypatch):
    from gpo_action import secrets

    monkeypatch.setenv("DEPLOY_SECRET_VALUE", CANARY)
    secrets.reset()
    openai_server.set_reply(f"the key is {CANARY}")
    openai_server.add_rule(r"<output>", '{"choice": "C", "reason": "same", "answer": "Y", "score": 9, "steps": []}')
    write_project(project, openai_server.url, f"""\
assert:
  - {{type: llm-rubric, value: names the key}}
  - {{type: factuality, value: the key is {CANARY}}}
  - {{type: model-graded-closedqa, value: names the key}}
  - {{type: g-eval, value: names the key}}
cases:
  - vars: {{question: key}}
""")
    report = evaluate(project)
    judged = judge_requests(openai_server)
    assert len(judged) == 4 and all(CANARY not in json.dumps(body) for body in judged)
    assert CANARY not in json.dumps(report)


# ---- tool calls -----------------------------------------------------------------------------------
TOOLS_PROMPT = """\
messages:
  - {role: user, content: "Weather in {{ city }}?"}
params:
  tools:
    - type: function
      function:
        name: get_weather
        parameters:
          type: object
          properties: {city: {type: string}, unit: {type: string, enum: [c, f]}}
          required: [city]
"""


def call(name: str, arguments: dict | str) -> dict:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": "call_1", "type": "function", "function": {"name": name, "arguments": text}}


def test_is_valid_openai_tools_call_checks_the_calls_against_the_declared_tools(project, openai_server):
    openai_server.enqueue_messages(
        {"content": None, "tool_calls": [call("get_weather", {"city": "Paris", "unit": "c"})]},
        {"content": None, "tool_calls": [call("get_time", {"city": "Paris"})]},
        {"content": None, "tool_calls": [call("get_weather", {"unit": "k"})]},
        {"content": "It is sunny."},
    )
    write_project(project, openai_server.url, """\
assert: [{type: is-valid-openai-tools-call}]
cases:
  - vars: {city: a}
  - vars: {city: b}
  - vars: {city: c}
  - vars: {city: d}
""", prompt=TOOLS_PROMPT, prompt_name="weather.yaml", concurrency=1)
    got = checks(evaluate(project))
    assert got[0] == [(True, "valid call of get_weather")]
    assert got[1][0][0] is False and "'get_time', which the prompt file does not declare" in got[1][0][1]
    assert got[2][0][0] is False and "arguments do not match its parameters" in got[2][0][1]
    assert got[3] == [(False, "output is not a list of tool calls")]
    sent = [body for body in openai_server.requests if body.get("model") == "scripted"]
    assert all(body["tools"][0]["function"]["name"] == "get_weather" for body in sent)   # declared tools go out


def test_is_valid_openai_function_call_and_a_prompt_without_tools():
    functions = ({"name": "lookup", "parameters": {"type": "object", "required": ["id"],
                                                  "properties": {"id": {"type": "integer"}}}},)
    facts = ResponseFacts(functions=functions)
    good, bad = '{"name": "lookup", "arguments": "{\\"id\\": 7}"}', '{"name": "lookup", "arguments": {"id": "x"}}'
    assert check(Assertion(type="is-valid-openai-function-call"), good, facts=facts).passed
    assert not check(Assertion(type="is-valid-openai-function-call"), bad, facts=facts).passed
    none = check(Assertion(type="is-valid-openai-tools-call"), json.dumps([call("lookup", {"id": 1})]), facts=ResponseFacts())
    assert not none.passed and none.reason == "the prompt file declares no tools (params.tools)"


# ---- rouge-n, bleu: against hand-computed values -------------------------------------------------------
def test_rouge_n_is_js_rouge_s_unigram_f_measure_against_hand_computed_values():
    # tokens are words and punctuation, case kept. output: the cat lay on a mat (6 tokens);
    # reference: The cat sat on the mat . (7 tokens; "The" is not "the"): matched the, cat, on, mat = 4,
    # so P = 4/6, R = 4/7 and F = 2PR / (P + R) = 2 * 4 / (6 + 7)
    assert rouge_n("the cat lay on a mat", "The cat sat on the mat.") == pytest.approx(8 / 13)
    # bigrams: the-cat is the only one of 5 in each: F = 2 * 1 / (5 + 5)
    assert rouge_n("the cat lay on a mat", "the cat sat on the mat", n=2) == pytest.approx(0.2)
    assert rouge_n("THE CAT", "the cat") == 0.0
    reference = "the cat sat on the mat."
    assert check(Assertion(type="rouge-n", value=reference), "the cat sat on the mat").passed      # 12/13
    assert not check(Assertion(type="rouge-n", value=reference), "the cat lay on a mat").passed    # 8/13
    assert check(Assertion(type="rouge-n", value=reference, threshold=0.6), "the cat lay on a mat").passed
    assert check(Assertion(type="not-rouge-n", value=reference), "stocks fell").passed


def test_bleu_is_bleu4_with_brevity_penalty_against_hand_computed_values():
    reference = "the quick brown fox jumps over the lazy dog"
    assert bleu(reference, [reference]) == pytest.approx(1.0)
    assert bleu("The Quick brown fox jumps over the lazy dog", [reference]) == pytest.approx(1.0)  # any case
    # output of 8 tokens (drops "lazy"): every n-gram matches but those across "the dog":
    # p1 = 8/8, p2 = 6/7, p3 = 5/6, p4 = 4/5; r = 9, c = 8, so BP = exp(1 - 9/8)
    out = "the quick brown fox jumps over the dog"
    expected = math.exp(1 - 9 / 8) * (1 * 6 / 7 * 5 / 6 * 4 / 5) ** 0.25
    assert expected == pytest.approx(0.7673, abs=1e-4)
    assert bleu(out, [reference]) == pytest.approx(expected)
    # p1 = 3/3, p2 = p3 = 0 and no 4-gram: each 0 counts as 1e-7; BP = exp(1 - 9/3)
    assert bleu("dog lazy the", [reference]) == pytest.approx(math.exp(-2) * 1e-7 ** 0.75)
    assert check(Assertion(type="bleu", value=[reference, "a fox"]), out).passed           # closest r = 9
    assert not check(Assertion(type="bleu", value=reference, threshold=0.9), out).passed


# ---- code stays refused ------------------------------------------------------------------------------
@pytest.mark.parametrize("type_", ["javascript", "python", "not-python"])
def test_code_assertions_stay_refused(type_):
    with pytest.raises(ValueError, match="never runs code"):
        validate_assertion(Assertion(type=type_, value="output.length > 3"))


def test_the_readme_names_every_registered_type():
    from gpo_action.assertions import CHECKERS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert [name for name in CHECKERS.names() if f"`{name}`" not in readme] == []
