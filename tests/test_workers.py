"""Worker processes: a big batch's litellm calls run in other processes, over real HTTP, and
nothing is lost when they fail or when the parent goes away."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from gpo_action.errors import InputError
from gpo_action.llm.client import OFFLOAD_MIN, ClientSettings, LLMClient
from gpo_action.llm.types import LLMRequest, ModelConfig
from gpo_action.llm.worker_pool import default_size
from tests.support import RecordedSleep
from tests.support.openai_server import ScriptedOpenAIServer
from tests.test_faults import write_project

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-test-WORKER-SECRET-0123456789"
N = OFFLOAD_MIN + 20

pytestmark = pytest.mark.timeout(120)


def scripted(server: ScriptedOpenAIServer, api_key: str = "test-key") -> ModelConfig:
    return ModelConfig("openai/scripted", {"api_base": server.url + "/v1", "api_key": api_key})


def ask(model: ModelConfig, text: str) -> LLMRequest:
    return LLMRequest(model, ({"role": "user", "content": text},))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def worker_pids_of(parent: int) -> set[int]:
    """The `gpo_action.llm.worker_main` processes started by `parent` (the first one and its forks)."""
    found: dict[int, tuple[int, bytes]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                found[int(entry)] = (ppid, Path(f"/proc/{entry}/cmdline").read_bytes())
            except (OSError, IndexError, ValueError):
                continue
    first = {pid for pid, (ppid, cmd) in found.items() if ppid == parent and b"gpo_action.llm.worker_main" in cmd}
    return first | {pid for pid, (ppid, _) in found.items() if ppid in first}


def test_a_big_batch_runs_in_worker_processes_and_the_parent_never_imports_litellm(openai_server):
    script = textwrap.dedent(f"""
        import json, sys
        from gpo_action.llm.client import ClientSettings, LLMClient
        from gpo_action.llm.types import LLMRequest, ModelConfig
        model = ModelConfig("openai/scripted", {{"api_base": {openai_server.url + "/v1"!r}, "api_key": "k"}})
        texts = [f"question {{i}}" for i in range({N - 1})] + ["x" * 2_000_000]  # one protocol line carries 2 MB
        with LLMClient(ClientSettings(concurrency=8, processes=2)) as client:
            responses = client.complete([LLMRequest(model, ({{"role": "user", "content": t}},)) for t in texts])
            print(json.dumps({{"right": sum(r.text == t for r, t in zip(responses, texts)),
                              "workers": len(client.worker_pids), "calls": client.usage.calls,
                              "tokens": client.usage.prompt_tokens, "litellm": "litellm" in sys.modules}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    # closing the loop cancels the connection handlers: on 3.11 a handler ending cancelled is
    # logged as an "Exception in callback" traceback (asyncio's streams call task.exception())
    assert "Traceback" not in done.stderr and "Exception in callback" not in done.stderr, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"right": N, "workers": 2, "calls": N, "tokens": 2 * (N - 1) + 1, "litellm": False}
    assert openai_server.total == N and openai_server.peak <= 8


def test_a_small_batch_stays_in_process(openai_server):
    with LLMClient(ClientSettings(concurrency=4, processes=2)) as client:
        responses = client.complete([ask(scripted(openai_server), f"q{i}") for i in range(OFFLOAD_MIN - 1)])
        assert client.worker_pids == []
    assert all(r.ok for r in responses)


def test_errors_from_workers_keep_their_kind_retries_and_redaction(openai_server):
    openai_server.retry_after = 0.3
    openai_server.enqueue_faults("429", "500", "garbage", "401")
    sleep = RecordedSleep()
    model = scripted(openai_server, api_key=SECRET)
    with LLMClient(ClientSettings(concurrency=1, processes=2, max_retries=3, retry_base=0.01), sleep=sleep) as client:
        responses = client.complete([ask(model, f"q{i}") for i in range(N)])
        assert len(client.worker_pids) == 2
    failed = [r for r in responses if not r.ok]
    # 429, 500 and malformed JSON are retried; the 401 is not (the first request's fourth attempt)
    assert len(failed) == 1 and failed[0].error_type == "AuthError" and failed[0].attempts == 4
    assert SECRET not in failed[0].error and "***" in failed[0].error
    assert [r.text for r in responses[1:]] == [f"q{i}" for i in range(1, N)]
    assert sleep.delays[0] >= 0.3  # Retry-After crossed the process boundary
    assert client.usage.calls == N + 3 and openai_server.total == N + 3


def test_killed_workers_fail_over_to_this_process_and_every_request_gets_one_answer(openai_server):
    openai_server.set_latency(0.05)
    # 40 answers, then every request is held until both workers are killed, so calls are in
    # flight at the kill however this test is scheduled
    openai_server.enqueue_faults(*["ok"] * 40)
    openai_server.set_fault_rates(phang=1.0)
    model = scripted(openai_server)
    killed: list[int] = []
    client = LLMClient(ClientSettings(concurrency=8, processes=2, retry_base=0.01), sleep=RecordedSleep())

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (openai_server.outcomes["ok"] < 40 or len(client.worker_pids) < 2):
            time.sleep(0.01)
        for pid in client.worker_pids:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        openai_server.set_fault_rates()

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    try:
        seen: list[int] = []
        responses = client.complete([ask(model, f"q{i}") for i in range(300)], on_result=lambda i, r: seen.append(i))
        killer.join()
        assert len(killed) == 2 and client.worker_pids == []
    finally:
        client.close()
    assert [r.text for r in responses] == [f"q{i}" for i in range(300)]
    assert sorted(seen) == list(range(300))  # one outcome each, none twice
    assert any(r.attempts > 1 for r in responses)  # the calls in flight were retried
    assert client.usage.errors == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_workers_do_not_outlive_the_parent(tmp_path, monkeypatch, sig):
    monkeypatch.setenv("GPO_TEST_KEY", "sk-test-faults-1234")
    monkeypatch.setenv("GPO_WORKERS", "2")
    with ScriptedOpenAIServer(latency=0.2) as server:
        write_project(tmp_path, server.url, 400, concurrency=16)
        proc = subprocess.Popen([sys.executable, "-m", "gpo_action", "eval"], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while server.total < 32 and time.monotonic() < deadline:
                time.sleep(0.02)
            workers = worker_pids_of(proc.pid)
            assert len(workers) == 2 and server.total >= 32
            proc.send_signal(sig)
            proc.communicate(timeout=30)
        finally:
            proc.kill()
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in workers)


def test_worker_count_follows_gpo_workers_and_the_cores(monkeypatch):
    monkeypatch.setenv("GPO_WORKERS", "0")
    assert default_size() == 0
    monkeypatch.setenv("GPO_WORKERS", "3")
    assert default_size() == 3
    monkeypatch.setenv("GPO_WORKERS", "two")
    with pytest.raises(InputError, match="GPO_WORKERS must be a whole number"):
        default_size()
    monkeypatch.delenv("GPO_WORKERS")
    cores = len(os.sched_getaffinity(0))
    assert default_size() == (min(cores, 4) if cores >= 2 else 0)


def test_a_provider_error_quoting_the_key_reaches_no_output_through_the_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("GPO_TEST_KEY", SECRET)
    monkeypatch.setenv("GPO_WORKERS", "2")
    with ScriptedOpenAIServer() as server:
        server.set_fault_rates(p401=1.0)  # its message quotes the bearer token
        write_project(tmp_path, server.url, N, concurrency=8, max_error_rate=1.0)
        done = subprocess.run([sys.executable, "-m", "gpo_action", "eval", "--json", "out.json"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=100)
        assert server.total == N  # an AuthError is not retried
    report = (tmp_path / "out.json").read_text(encoding="utf-8")
    assert '"AuthError"' in report and "***" in report
    assert SECRET not in done.stdout + done.stderr + report


def test_a_finish_reason_and_a_tool_call_come_back_through_the_workers(openai_server):
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    openai_server.set_reply(lambda body, index: "fine")
    openai_server.enqueue_messages({"content": "cut sho", "finish_reason": "length"},
                                   {"content": None, "tool_calls": [call]})
    with LLMClient(ClientSettings(concurrency=1, processes=1)) as client:
        responses = client.complete([ask(scripted(openai_server), f"q{i}") for i in range(N)])
        assert client.worker_pids                                     # the batch went to a worker
    reasons = [r.finish_reason for r in responses]
    assert reasons.count("length") == 1 and reasons.count("tool_calls") == 1 and reasons.count("stop") == N - 2
    [tools] = [r for r in responses if r.finish_reason == "tool_calls"]
    assert json.loads(tools.text)[0]["function"] == call["function"]


WORKER_SETUP = textwrap.dedent("""
    import asyncio, json, sys
    import litellm
    from gpo_action.llm.providers import import_litellm
    from gpo_action.llm.worker_main import skip_success_logging, warm_up
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    seen = []
    if sys.argv[2] == "callback":
        from litellm.integrations.custom_logger import CustomLogger
        class Seen(CustomLogger):
            async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
                seen.append(response_obj.choices[0].message.content)
        litellm.callbacks = [Seen()]
    lib = import_litellm()
    before = len(sys.modules)
    warm_up(lib)
    warmed = len(sys.modules) - before
    dropped = skip_success_logging(lib)
    async def main():
        response = await litellm.acompletion(model="openai/scripted", api_base=sys.argv[1] + "/v1", api_key="k",
                                             messages=[{"role": "user", "content": "hello"}])
        await asyncio.sleep(0.2)
        await GLOBAL_LOGGING_WORKER.flush()
        return response.choices[0].message.content
    print(json.dumps({"dropped": dropped, "warmed": warmed, "text": asyncio.run(main()), "seen": seen}))
""")


def in_fresh_process(script: str, server: ScriptedOpenAIServer, callbacks: str) -> dict:
    """What `script` prints last (JSON), run as a fresh process, as a worker is: the steps under
    test change litellm's module state. argv: the server's URL, then "none" or "callback"."""
    done = subprocess.run([sys.executable, "-c", script, server.url, callbacks], capture_output=True,
                          text=True, timeout=100, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("callbacks", ["none", "callback"])
def test_a_worker_warms_litellm_without_a_request_and_drops_its_logging_only_without_callbacks(callbacks):
    with ScriptedOpenAIServer() as server:
        out = in_fresh_process(WORKER_SETUP, server, callbacks)
        assert server.total == 1  # the warm-up sent nothing; the call after it was answered
    assert out["text"] == "hello"
    if callbacks == "none":
        assert out["dropped"] is True and out["seen"] == [] and out["warmed"] > 0
    else:  # a user's callback still gets every call, and no warm-up call
        assert out["dropped"] is False and len(out["seen"]) == 1 and out["warmed"] == 0


COST_SETUP = textwrap.dedent("""
    import asyncio, json, sys
    import litellm
    from gpo_action.llm.providers import import_litellm
    from gpo_action.llm.worker_main import priced, skip_unpriced_costs
    if sys.argv[2] == "callback":
        from litellm.integrations.custom_logger import CustomLogger
        litellm.callbacks = [CustomLogger()]
    lib = import_litellm()
    unpriced = {name for name in ("openai/scripted", "openai/gpt-4o-mini") if not priced(name)}
    skipped = skip_unpriced_costs(lib, unpriced)
    async def cost(model):
        response = await litellm.acompletion(model=model, api_base=sys.argv[1] + "/v1", api_key="k",
                                             messages=[{"role": "user", "content": "hello there"}])
        return response._hidden_params.get("response_cost")
    async def main():
        return {model: await cost(model) for model in ("openai/scripted", "openai/gpt-4o-mini")}
    print(json.dumps({"unpriced": sorted(unpriced), "skipped": skipped, "costs": asyncio.run(main())}))
""")


@pytest.mark.parametrize("callbacks", ["none", "callback"])
def test_a_worker_skips_litellms_pricing_of_unpriced_models_only_and_only_without_callbacks(callbacks):
    with ScriptedOpenAIServer() as server:
        out = in_fresh_process(COST_SETUP, server, callbacks)
    assert out["unpriced"] == ["openai/scripted"]
    costs = out["costs"]
    assert costs["openai/gpt-4o-mini"] > 0                      # a priced model keeps litellm's cost
    if callbacks == "none":
        assert out["skipped"] is True and costs["openai/scripted"] is None
    else:  # a callback reads the cost: litellm prices every answer as before (0, as registered)
        assert out["skipped"] is False and costs["openai/scripted"] == 0.0


def test_expect_starts_the_workers_before_the_batch_only_when_the_cache_cannot_answer(openai_server, tmp_path):
    from gpo_action.llm.cache import ResponseCache

    model = scripted(openai_server)
    requests = [ask(model, f"q{i}") for i in range(N)]
    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        with LLMClient(ClientSettings(concurrency=8, processes=2), cache=cache) as client:
            client.expect(model, N)                 # an empty cache: the workers start now
            assert worker_pids_of(os.getpid())      # (spawned synchronously: the first is a child already)
            assert openai_server.total == 0
            assert [r.text for r in client.complete(requests)] == [f"q{i}" for i in range(N)]
            assert len(client.worker_pids) == 2 and openai_server.total == N
        with LLMClient(ClientSettings(concurrency=8, processes=2), cache=cache) as client:
            client.expect(model, N)                 # the cache may answer: nothing starts before the lookup
            assert not worker_pids_of(os.getpid())
            assert all(r.cached for r in client.complete(requests))
            assert client.worker_pids == [] and not worker_pids_of(os.getpid())
    with LLMClient(ClientSettings(concurrency=8, processes=2)) as client:
        client.expect(model, OFFLOAD_MIN - 1)       # too few to be worth the workers
        assert not worker_pids_of(os.getpid())
