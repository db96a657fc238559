"""Runs without keys: which models can run, the client's cache-only mode, and "skipped" verdicts."""

from __future__ import annotations

import importlib.util

import pytest

from gpo_action.compare import Comparison, Gate, compare, exit_code, run_exit_code
from gpo_action.config import load_config
from gpo_action.llm.availability import missing_key_envs, model_status, unavailable_models
from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.client import LLMClient
from gpo_action.llm.types import SKIPPED, LLMRequest, ModelConfig
from gpo_action.results import CaseResult, SampleResult, SuiteResult


# ---- which models can run --------------------------------------------------------------------
@pytest.mark.parametrize("name, params, env, available, reason", [
    ("replay/answers.jsonl", {}, {}, True, ""),
    ("openai/gpt-4o-mini", {}, {}, False, "OPENAI_API_KEY is not set"),
    ("openai/gpt-4o-mini", {}, {"OPENAI_API_KEY": ""}, False, "OPENAI_API_KEY is not set"),
    ("openai/gpt-4o-mini", {}, {"OPENAI_API_KEY": "sk"}, True, ""),
    ("openai/gpt-4o-mini", {"api_key": "sk"}, {}, True, ""),                # read from its api_key_env at load
    ("anthropic/claude-3-5-haiku-latest", {}, {}, False, "ANTHROPIC_API_KEY is not set"),
    ("gemini/gemini-2.0-flash", {}, {"GOOGLE_API_KEY": "g"}, True, ""),
    ("azure/my-deployment", {}, {}, False, "AZURE_API_KEY or AZURE_OPENAI_API_KEY is not set"),
])
def test_model_status(name, params, env, available, reason):
    status = model_status(ModelConfig(name, params), env)
    assert (status.available, status.reason) == (available, reason)


def test_local_model_runs_where_llama_cpp_is_installed():
    status = model_status(ModelConfig("local/smollm2"), {})
    assert status.available == (importlib.util.find_spec("llama_cpp") is not None)


def test_api_key_env_decides_for_its_model(tmp_path):
    config = tmp_path / "gpo.yaml"
    config.write_text("models:\n  task: {model: openai/gpt-4o-mini, api_key_env: TEAM_KEY}\n"
                      "  judge: {model: openai/gpt-4o, api_key_env: JUDGE_KEY}\n")
    loaded = load_config(config, env={"JUDGE_KEY": "sk-judge", "OPENAI_API_KEY": "sk-other"})
    missing = missing_key_envs(loaded)
    assert missing == {"openai/gpt-4o-mini": "TEAM_KEY"}
    models = [loaded.model("task"), loaded.model("judge")]
    assert unavailable_models(models, {"OPENAI_API_KEY": "sk-other"}, missing) == {
        "openai/gpt-4o-mini": "TEAM_KEY is not set"}


def test_other_providers_ask_litellm_and_default_to_trying(monkeypatch):
    monkeypatch.delenv("COHERE_API_KEY", raising=False)
    monkeypatch.delenv("FIREWORKS_AI_API_KEY", raising=False)
    status = model_status(ModelConfig("fireworks_ai/accounts/fireworks/models/llama-v3-8b"), {})
    assert not status.available and "FIREWORKS_AI_API_KEY" in status.reason    # litellm knows its variable
    assert model_status(ModelConfig("nosuchprovider/model"), {}).available     # unknown: try it


# ---- the client's cache-only mode --------------------------------------------------------------
def request(model: ModelConfig, text: str) -> LLMRequest:
    return LLMRequest(model, ({"role": "user", "content": text},))


def test_cache_only_models_are_answered_from_the_cache_and_never_dispatched(tmp_path, openai_server):
    model = ModelConfig("openai/scripted", {"api_base": openai_server.url + "/v1", "api_key": "k"})
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        with LLMClient(cache=cache) as client:
            [first] = client.complete([request(model, "cached question")])
        assert first.ok and openai_server.total == 1
        with LLMClient(cache=cache) as client:
            asked = []
            client.skip_uncached(lambda m: asked.append(m.name) or "TEAM_KEY is not set")
            hit, miss = client.complete([request(model, "cached question"), request(model, "new question")])
            [n1, n2] = client.complete_n(request(model, "new question n"), 2)
            assert client.skipped_models == {"openai/scripted": "TEAM_KEY is not set"}
        assert hit.ok and hit.cached and hit.text == first.text
        for skipped in (miss, n1, n2):
            assert skipped.error_type == SKIPPED and "TEAM_KEY is not set" in skipped.error
            assert "cache has no answer" in skipped.error
        assert openai_server.total == 1 and asked == ["openai/scripted"]   # asked once, nothing dispatched
        with LLMClient(cache=cache) as client:                             # skipped answers were not cached
            [again] = client.complete([request(model, "new question")])
        assert again.ok and openai_server.total == 2


def test_a_named_cache_only_model_leaves_the_others_alone(openai_server):
    good = ModelConfig("openai/good", {"api_base": openai_server.url + "/v1", "api_key": "k"})
    bad = ModelConfig("openai/bad", {"api_base": openai_server.url + "/v1"})
    with LLMClient() as client:
        client.skip_uncached({"openai/bad": "OPENAI_API_KEY is not set"})
        ok, skipped = client.complete([request(good, "a"), request(bad, "b")])
    assert ok.ok and skipped.error_type == SKIPPED and openai_server.total == 1


# ---- verdicts ----------------------------------------------------------------------------------
def case(case_id: str, score: float | None, error_type: str | None = None) -> CaseResult:
    if score is None:
        sample = SampleResult(output=None, error="skipped: no key" if error_type == SKIPPED else "boom",
                              error_type=error_type or "ServerError")
    else:
        sample = SampleResult(output="x", score=score, passed=score >= 0.5)
    return CaseResult(case_id, {}, None, (sample,))


def suite(cases) -> SuiteResult:
    return SuiteResult("triage", "evals/triage.yaml", "prompts/triage.j2", "openai/x", tuple(cases))


def test_skipped_cases_are_not_errors_and_never_a_regression():
    base = suite([case(f"c{i}", 1.0) for i in range(30)])
    head = suite([case(f"c{i}", 0.0) for i in range(10)] + [case(f"c{i}", None, SKIPPED) for i in range(10, 30)])
    result = compare(base, head, Gate(), max_error_rate=0.05)
    assert result.verdict == "skipped" and result.head_skipped == 20 and result.head_errors == 0
    assert result.delta == -1.0 and result.n_paired == 10                     # the figures are still given
    assert any("20 of 30 cases on head were skipped" in n for n in result.notes)
    assert exit_code([result]) == 0
    everything = suite([case(f"c{i}", None, SKIPPED) for i in range(30)])
    assert compare(base, everything, Gate()).verdict == "skipped"
    assert compare(None, everything, Gate()).verdict == "skipped"


def test_provider_errors_still_count_next_to_skipped_cases():
    base = suite([case(f"c{i}", 1.0) for i in range(30)])
    head = suite([case(f"c{i}", 1.0) for i in range(20)] + [case(f"c{i}", None, SKIPPED) for i in range(20, 25)]
                 + [case(f"c{i}", None) for i in range(25, 30)])
    result = compare(base, head, Gate(), max_error_rate=0.05)
    assert result.verdict == "error" and result.head_errors == 5 and result.head_skipped == 5
    assert any("5 of 25 cases errored on head" in n for n in result.notes)


def test_a_run_that_skipped_a_suite_exits_2_unless_skipping_may_pass():
    def verdict(v: str) -> Comparison:
        return Comparison(suite=v, verdict=v, base_score=None, head_score=None)

    skipped, regressed, error, unchanged = (verdict(v) for v in ("skipped", "regressed", "error", "unchanged"))
    assert run_exit_code([unchanged, skipped]) == 2
    assert run_exit_code([regressed, skipped]) == 2                  # incomplete comes before failed
    assert run_exit_code([error, skipped]) == 3                      # provider errors come first
    assert run_exit_code([unchanged, skipped], skipped_pass=True) == 0
    assert run_exit_code([regressed, skipped], skipped_pass=True) == 1
    assert exit_code([skipped]) == 0                                 # "skipped" never fails the gate itself
