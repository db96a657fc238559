"""replay/<file.jsonl> through the real provider registry and client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpo_action.errors import InputError
from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.providers import PROVIDERS, LiteLLMProvider, RawCompletion, get_provider, register
from gpo_action.llm.replay import ReplayFileError, ReplayProvider
from gpo_action.llm.types import LLMRequest, ModelConfig

SYSTEM_CHAT = [{"role": "system", "content": "You triage tickets."}, {"role": "user", "content": "I was charged twice"}]


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


def ask(model: ModelConfig, text: str, **fields) -> LLMRequest:
    return LLMRequest(model, ({"role": "user", "content": text},), **fields)


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "rec.jsonl", [
        {"prompt": "capital of France?", "completion": "Paris"},
        {"messages": SYSTEM_CHAT, "completion": "Category: billing"},
        {"prompt": "a colour", "completion": "red"},
        {"prompt": "a colour", "completion": "green"},
    ])


def test_prompts_and_chats_are_answered_from_the_recordings(tmp_path, recordings):
    model = ModelConfig("replay/rec.jsonl")
    with LLMClient(base_dir=tmp_path) as client:
        responses = client.complete([ask(model, "capital of France?"), LLMRequest(model, tuple(SYSTEM_CHAT))])
    assert [r.text for r in responses] == ["Paris", "Category: billing"]
    assert responses[0].prompt_tokens == 3 and responses[0].completion_tokens == 1 and responses[0].cost == 0
    assert client.usage.calls == 2 and client.usage.cost == 0


def test_an_absolute_path_works_from_any_base_dir(tmp_path, recordings):
    with LLMClient(base_dir=Path("/")) as client:
        [response] = client.complete([ask(ModelConfig(f"replay/{recordings}"), "capital of France?")])
    assert response.text == "Paris"


def test_a_miss_names_the_case_and_the_prompt_and_is_not_retried(tmp_path, recordings):
    prompt = "What is the airspeed velocity of an unladen swallow, African or European? " * 3
    with LLMClient(base_dir=tmp_path) as client:
        [response] = client.complete([ask(ModelConfig("replay/rec.jsonl"), prompt, tag="case-42")])
    assert response.error_type == "ReplayMiss" and response.attempts == 1
    assert "case-42" in response.error and prompt[:60] in response.error and prompt not in response.error


def test_samples_cycle_through_recordings_of_the_same_prompt(tmp_path, recordings):
    model = ModelConfig("replay/rec.jsonl")
    with LLMClient(base_dir=tmp_path) as client:
        singles = client.complete([ask(model, "a colour", sample=s) for s in range(3)])
        candidates = client.complete_n(ask(model, "a colour"), 4)
    assert [r.text for r in singles] == ["red", "green", "red"]
    assert [r.text for r in candidates] == ["red", "green", "red", "green"]


def test_replay_answers_are_not_cached(tmp_path, recordings):
    with ResponseCache(tmp_path / "cache.sqlite") as cache, LLMClient(cache=cache, base_dir=tmp_path) as client:
        client.complete([ask(ModelConfig("replay/rec.jsonl"), "capital of France?")])
        assert len(cache) == 0


@pytest.mark.parametrize("line, message", [
    ('{"prompt": "x", "completion": ', "not valid JSON"),
    ('{"prompt": "x"}', "string 'completion'"),
    ('{"prompt": "x", "messages": [], "completion": "y"}', "exactly one of"),
    ('{"messages": [{"role": "user"}], "completion": "y"}', "'messages' must be"),
    ('["prompt", "completion"]', "string 'completion'"),
])
def test_a_malformed_line_names_file_and_line(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok", "completion": "fine"}, "", line])
    with LLMClient(base_dir=tmp_path) as client, pytest.raises(ReplayFileError) as raised:
        client.complete([ask(ModelConfig("replay/bad.jsonl"), "ok")])
    error = raised.value
    assert isinstance(error, InputError) and error.path == str(path) and error.line == 3
    assert str(error).startswith(f"{path}:3: ") and message in str(error)


def test_a_recording_cut_inside_a_character_is_an_input_error_naming_its_line(tmp_path):
    path = tmp_path / "cut.jsonl"
    good = '{"prompt": "ok", "completion": "fine"}\n'.encode()
    path.write_bytes(good + '{"prompt": "日本", "completion": "x"}'.encode()[:14])  # 14: inside 日
    with pytest.raises(ReplayFileError) as raised:
        get_provider(ModelConfig("replay/cut.jsonl"), tmp_path)
    assert raised.value.path == str(path) and raised.value.line == 2 and "not valid UTF-8" in str(raised.value)


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(ReplayFileError, match="not found"):
        get_provider(ModelConfig("replay/nope.jsonl"), tmp_path)


def test_an_edited_file_is_read_again(tmp_path, recordings):
    model = ModelConfig("replay/rec.jsonl")
    with LLMClient(base_dir=tmp_path) as client:
        assert client.complete([ask(model, "new prompt")])[0].error_type == "ReplayMiss"
    write_jsonl(recordings, [{"prompt": "new prompt", "completion": "new answer"}])
    with LLMClient(base_dir=tmp_path) as client:
        assert client.complete([ask(model, "new prompt")])[0].text == "new answer"


def test_the_registry_routes_by_longest_prefix(tmp_path, recordings):
    assert isinstance(get_provider(ModelConfig("replay/rec.jsonl"), tmp_path), ReplayProvider)
    assert isinstance(get_provider(ModelConfig("openai/gpt-4o-mini"), tmp_path), LiteLLMProvider)
    assert {"", "replay/"} <= set(PROVIDERS)


class PartialProvider:
    """A registered stand-in that returns at most two candidates per call."""

    cacheable = True
    supports_n = True

    def __init__(self, model: ModelConfig, base_dir: Path):
        self.calls: list[int] = []

    async def acomplete(self, messages, params, n, timeout, *, sample=0, tag=""):
        texts = [f"candidate {sample + i}" for i in range(min(n, 2))]
        return RawCompletion(texts=texts, prompt_tokens=4, completion_tokens=2 * len(texts), cost=None)


def test_a_registered_provider_is_used_and_short_answers_are_topped_up(tmp_path):
    register("partial/")(PartialProvider)
    notes: list[str] = []
    try:
        with LLMClient(notes=notes.append) as client:
            candidates = client.complete_n(ask(ModelConfig("partial/x"), "go"), 5)
    finally:
        PROVIDERS.unregister("partial/")
    assert [c.text for c in candidates] == [f"candidate {i}" for i in range(5)]
    assert client.usage.calls == 3 and client.usage.prompt_tokens == 12
    assert notes == ["no price known for partial/x: cost counted as 0"]


class OneAtATimeProvider:
    """Records how many of its calls overlap; declares that it serves one at a time."""

    cacheable = False
    supports_n = False
    max_concurrency = 1
    active = 0
    peak = 0

    def __init__(self, model, base_dir):
        pass

    async def acomplete(self, messages, params, n, timeout, *, sample=0, tag=""):
        import asyncio

        cls = OneAtATimeProvider
        cls.active += 1
        cls.peak = max(cls.peak, cls.active)
        await asyncio.sleep(0.01)
        cls.active -= 1
        return RawCompletion(texts=["ok"], prompt_tokens=1, completion_tokens=1, cost=0.0)


def test_a_provider_max_concurrency_caps_the_workers():
    register("serial/")(OneAtATimeProvider)
    try:
        with LLMClient(ClientSettings(concurrency=8)) as client:
            responses = client.complete([ask(ModelConfig("serial/x"), f"q{i}") for i in range(6)])
    finally:
        PROVIDERS.unregister("serial/")
    assert [r.text for r in responses] == ["ok"] * 6
    assert OneAtATimeProvider.peak == 1
