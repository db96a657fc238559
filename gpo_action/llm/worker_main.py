"""A worker process of `worker_pool.WorkerPool`: makes litellm calls for the parent, over a Unix socket.

    python -m gpo_action.llm.worker_main SOCKET_PATH COUNT

The process imports litellm once, then forks COUNT - 1 siblings (copy-on-write: the import is
paid once and most of its memory is shared); each process connects to SOCKET_PATH and serves.
Lines are JSON, one message each:

    parent -> worker  {"id": 7, "model": "openai/x", "messages": [...], "params": {...}, "n": 1,
                       "timeout": 60, "sample": 0, "tag": ""}      a call
                      {"cancel": 7}                               the parent gave up on call 7
    worker -> parent  {"hello": PID}                              once, on connecting
                      {"id": 7, "ok": {"texts": [...], "prompt_tokens": .., "completion_tokens": ..,
                                      "cost": .., "headers": {rate-limit headers}}}
                      {"id": 7, "error": {"kind": "RateLimited", "message": .., "status": .., "retry_after": ..,
                                         "headers": {..}}}

A worker ignores SIGINT (the parent decides what an interrupt means) and exits as soon as the
parent's end of the socket closes. Retries, the cache and accounting stay in the parent.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from gpo_action.errors import ProviderError
from gpo_action.llm.providers import LiteLLMProvider, import_litellm, redact
from gpo_action.llm.types import ModelConfig
from gpo_action.streams import install_streams

LINE_LIMIT = 1 << 30  # one message per line; case inputs may be megabytes


def encode(message: dict[str, Any]) -> bytes:
    """One protocol line, for either side."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def error_fields(error: BaseException, params: dict[str, Any]) -> dict[str, Any]:
    """A failure as the parent rebuilds it: ProviderError subclasses keep their kind, others are ProviderError."""
    if isinstance(error, ProviderError):
        return {"kind": type(error).__name__, "message": redact(error.message, params), "status": error.status,
                "retry_after": getattr(error, "retry_after", None), "headers": getattr(error, "headers", None) or {}}
    return {"kind": "ProviderError", "message": redact(f"{type(error).__name__}: {error}", params),
            "status": None, "retry_after": None}


def priced(model: str) -> bool:
    """Whether litellm knows a price for `model`. An unknown one is registered here at price 0:
    litellm would otherwise search its price map fuzzily on every call (about 0.4 ms of CPU);
    the provider still reports its cost as unknown. Only in a worker, a process of our own."""
    litellm = import_litellm()
    try:
        litellm.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
        return True
    except Exception:  # noqa: BLE001  (litellm raises several types for an unpriced model)
        prefix, _, _ = model.partition("/")
        litellm.register_model({model: {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                                        "litellm_provider": prefix if _ else "openai", "mode": "chat"}})
        return False


CALLBACK_LISTS = ("callbacks", "input_callback", "success_callback", "failure_callback",
                  "_async_input_callback", "_async_success_callback", "_async_failure_callback")


def skip_redaction(litellm) -> bool:
    """Turn litellm's message redaction off when no logging callback exists (none does in a fresh
    worker): it only shapes what callbacks receive, and deep-copies every call's messages and
    response to do it (about 0.3 ms of CPU a call). True when it was turned off."""
    if any(getattr(litellm, name, None) for name in CALLBACK_LISTS):
        return False
    litellm.turn_off_message_logging = False
    return True


def skip_success_logging(litellm) -> bool:
    """Drop litellm's per-call success logging when no logging callback exists (none does in a
    fresh worker): with no callback to feed, the task it queues per call only rebuilds a logging
    payload and the cost a second time (about 14% of a worker's CPU a call). True when dropped."""
    if any(getattr(litellm, name, None) for name in CALLBACK_LISTS):
        return False
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER
    except ImportError:  # another litellm layout: keep its logging
        return False
    if not callable(getattr(GLOBAL_LOGGING_WORKER, "ensure_initialized_and_enqueue", None)):
        return False

    def discard(async_coroutine, *args: Any, **kwargs: Any) -> None:
        async_coroutine.close()  # never awaited: close it, so Python does not warn

    GLOBAL_LOGGING_WORKER.ensure_initialized_and_enqueue = discard
    return True


# The models this worker found unpriced (`priced`): their cost is reported unknown, so litellm's
# own pricing of each answer is skipped (`skip_unpriced_costs`).
UNPRICED: set[str] = set()


def skip_unpriced_costs(litellm, unpriced: set[str] = UNPRICED) -> bool:
    """Skip litellm's pricing of an answer from a model in `unpriced` when no logging callback
    exists (one would read the cost): it runs on every answer (about 1.5 ms of CPU, 11% of a call
    against a local server) though the provider reports such a model's cost as unknown anyway
    (`mark_unpriced`). Priced models keep litellm's cost. True when installed."""
    if any(getattr(litellm, name, None) for name in CALLBACK_LISTS):
        return False
    try:
        from litellm.litellm_core_utils.litellm_logging import Logging
    except ImportError:  # another litellm layout: keep its pricing
        return False
    calculate = getattr(Logging, "response_cost_calculator", None)
    if not callable(calculate):
        return False

    def response_cost_calculator(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("litellm_model_name") in unpriced:
            return None
        return calculate(self, *args, **kwargs)

    Logging.response_cost_calculator = response_cost_calculator
    return True


def warm_up(litellm) -> None:
    """One mock completion through litellm before the forks: what litellm imports and builds on
    its first call (about 70 modules, ~0.2 s of CPU) is then done once and shared copy-on-write,
    not once per worker on the first real call. No request leaves the process (`mock_response`);
    none is made when a logging callback exists, which would be told of it."""
    async def call() -> None:
        await litellm.acompletion(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "warm-up"}],
                                  mock_response="ok", max_retries=0, num_retries=0)

    if any(getattr(litellm, name, None) for name in CALLBACK_LISTS):
        return
    try:
        asyncio.run(call())
    except Exception:  # noqa: BLE001  (a warm-up that fails only means the first call pays it)
        pass


class Server:
    """One connection to the parent; each call is a task on this process's loop."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.tasks: dict[int, asyncio.Task] = {}
        self.providers: dict[str, LiteLLMProvider] = {}

    def provider(self, name: str) -> LiteLLMProvider:
        if name not in self.providers:
            provider = LiteLLMProvider(ModelConfig(name=name), Path("."))
            if not priced(name):
                provider.mark_unpriced()
                UNPRICED.add(name)
            self.providers[name] = provider
        return self.providers[name]

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(encode(message))

    async def call(self, job: dict[str, Any]) -> None:
        ident, params = job["id"], job.get("params") or {}
        try:
            raw = await self.provider(job["model"]).acomplete(
                job["messages"], params, int(job.get("n") or 1), float(job["timeout"]),
                sample=int(job.get("sample") or 0), tag=str(job.get("tag") or ""))
            self.send({"id": ident, "ok": {"texts": raw.texts, "prompt_tokens": raw.prompt_tokens,
                                           "completion_tokens": raw.completion_tokens, "cost": raw.cost,
                                           "finish_reasons": raw.finish_reasons, "headers": raw.rate_headers}})
        except asyncio.CancelledError:
            return
        except Exception as error:  # noqa: BLE001  (every failure goes back to the parent as data)
            self.send({"id": ident, "error": error_fields(error, params)})
        finally:
            self.tasks.pop(ident, None)

    async def serve(self) -> None:
        self.send({"hello": os.getpid()})
        while line := await self.reader.readline():
            message = json.loads(line)
            if "cancel" in message:
                task = self.tasks.pop(message["cancel"], None)
                if task is not None:
                    task.cancel()
            else:
                self.tasks[message["id"]] = asyncio.ensure_future(self.call(message))


async def serve(socket_path: str) -> None:
    reader, writer = await asyncio.open_unix_connection(socket_path, limit=LINE_LIMIT)
    await Server(reader, writer).serve()


def main(argv: list[str]) -> None:
    socket_path, count = argv[0], int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    install_streams(actions=bool(os.environ.get("GITHUB_ACTIONS")))  # what litellm prints is scrubbed too
    litellm = import_litellm()
    skip_redaction(litellm)
    skip_success_logging(litellm)
    skip_unpriced_costs(litellm)
    warm_up(litellm)
    gc.freeze()  # keep the import's objects out of the collector, so their pages stay shared
    for _ in range(max(0, count - 1)):
        if os.fork() == 0:
            break  # a sibling: serve, fork no further
    try:
        asyncio.run(serve(socket_path))
    except (OSError, ValueError):
        pass  # the parent went away
    sys.stdout.flush()
    os._exit(0)  # skip litellm's exit hooks: nothing of ours is left to flush


if __name__ == "__main__":
    main(sys.argv[1:])
