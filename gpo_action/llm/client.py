"""`LLMClient`: the one place that talks to models; gpo-action's async code is here and in its
helpers (`llm/calls.py`, `llm/embeddings.py`, `llm/ratelimits.py`, `llm/retries.py`, `llm/worker_pool.py`).

    client = LLMClient(ClientSettings(concurrency=16), cache=ResponseCache(".gpo/cache.sqlite"))
    responses = client.complete(requests)          # sync; results in request order

Embeddings (`client.embed`) are in `llm/embeddings.py`, on the same loop, cache and retries; the
retry loop, its backoff and `CallLimit` are in `llm/retries.py`.

A batch goes: cache (one lookup) -> duplicates folded -> a bounded pool of workers per model ->
the rate-limit gate of the model, endpoint and key (`ratelimits`: an adaptive window, a 429's pause,
pacing by configured limits and the provider's headers) -> provider call with a per-request timeout -> retries with exponential backoff and jitter on
retryable errors (honouring Retry-After) -> cache writes off the slot's path, batched on a thread
(`cachewriter`; a cache that cannot be written is reported once and the run goes on, see `cache`). After its
retries a failure is an `LLMResponse` with `error` set, never an exception.

`usage` counts what this client actually did: provider calls (retries included), cache hits,
tokens and cost of calls made. A response's own tokens and cost are nominal: what the answer
cost when it was obtained, also when it now comes from the cache.

A `CallLimit` passed to `complete`/`complete_n` caps provider dispatches, retries included: the
client takes one unit before every dispatch, and a request that finds none left ends as an error
response with `error_type` "BudgetExhausted" (never cached, never raised). Cache hits take
nothing. `uncached_count(requests)` says how many requests a batch would send, without calling.

Worker processes: a batch of at least `OFFLOAD_MIN` uncached requests for a litellm model runs
its calls in `processes` worker processes (`llm/worker_pool.py`; default one per core, at most 4, on
Linux only and none on one core; GPO_WORKERS overrides), so litellm's CPU cost per call is spread
over the cores; once started, the pool serves every later batch. If no worker starts, calls run
in-process (noted).

Cache-only models: after `skip_uncached({model name: reason})`, or `skip_uncached(check)` with
`check(model) -> reason | None` asked once per model name (no key for that model here, e.g. a
pull request from a fork), a request for such a model is answered from the cache when it can be;
otherwise it ends as an error response with `error_type` "Skipped" (`types.SKIPPED`) and
the reason: never dispatched, never cached, its provider never prepared.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence, TypeVar

from gpo_action.llm.cache import ResponseCache, request_key
from gpo_action.llm.cachewriter import CacheWriter
from gpo_action.llm.calls import TIMEOUT_GRACE, CallMixin, _Job
from gpo_action.llm.completer import OnResult
from gpo_action.llm.embeddings import EmbeddingMixin
from gpo_action.llm.providers import Provider, get_provider
from gpo_action.llm.ratelimits import Gates
from gpo_action.llm.retries import CallLimit
from gpo_action.llm.types import (BUDGET_EXHAUSTED, SKIPPED, LLMRequest, LLMResponse, ModelConfig, RateLimit, Usage,
                                  canonical_json)
from gpo_action.llm.worker_pool import PooledProvider, WorkerPool, default_size

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
__all__ = ["BUDGET_EXHAUSTED", "OFFLOAD_MIN", "TIMEOUT_GRACE", "CallLimit", "ClientSettings", "LLMClient"]

log = logging.getLogger("gpo_action.llm")

# Uncached requests for one model that make a batch worth starting the worker processes for.
OFFLOAD_MIN = 100


@dataclass(frozen=True)
class ClientSettings:
    """How the client calls models (gpo.yaml's `concurrency`, `timeout`, `retries` and models'
    `rate_limit`): workers per model, seconds per call, retries of a retryable failure and their
    backoff (`retry_base` doubling up to `retry_max` seconds), worker processes (`processes`; None:
    `worker_pool.default_size()`, 0: in-process), and configured rate limits by model name
    (`ratelimits`). A bad value is a ValueError here."""

    concurrency: int = 16
    timeout: float = 60.0
    max_retries: int = 4
    retry_base: float = 0.5
    retry_max: float = 30.0
    processes: int | None = None
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)  # model name -> gpo.yaml's `rate_limit`

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        if self.processes is not None and self.processes < 0:
            raise ValueError(f"processes must be 0 or more, got {self.processes}")


class LLMClient(CallMixin, EmbeddingMixin):
    """Bounded, retried, cached model calls behind a synchronous batch API (one call with its
    retries comes from `calls.CallMixin`, `embed` from `embeddings.EmbeddingMixin`); a
    `completer.Completer` and a `completer.BudgetedCompleter`.

    `settings` are the call policy (`ClientSettings`); `cache` the response cache (None: none);
    `notes` receives what the client reports once (None: the log); `base_dir` is where providers
    resolve relative files (`replay/`); `env` is the environment the providers read their
    settings from (None: os.environ; `providers.Provider`). `sleep`, `rng` and `clock` exist for
    tests (backoff without waiting, seeded jitter).
    """

    def __init__(
        self,
        settings: ClientSettings | None = None,
        *,
        cache: ResponseCache | None = None,
        notes: Callable[[str], None] | None = None,
        base_dir: Path = Path("."),
        env: Mapping[str, str] | None = None,
        sleep: Sleep | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        settings = ClientSettings() if settings is None else settings
        self.settings = settings
        self.cache = cache
        self.concurrency = settings.concurrency
        self.timeout = settings.timeout
        self.max_retries = settings.max_retries
        self.retry_base = settings.retry_base
        self.retry_max = settings.retry_max
        self.notes = notes
        self.base_dir = Path(base_dir)
        self.env = env  # what providers that `reads_env` are built with (None: os.environ)
        self.usage = Usage()
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rng = rng or random.Random()
        self._clock = clock
        self._providers: dict[str, Provider] = {}
        self._noted: set[str] = set()
        self._runner: asyncio.Runner | None = None
        self._lock = threading.RLock()
        self._skip: dict[str, str | None] = {}
        self._skip_check: Callable[[ModelConfig], str | None] | None = None
        self.processes = default_size() if settings.processes is None else settings.processes
        self._pool: WorkerPool | None = None
        self.gates = Gates(settings.concurrency, settings.rate_limits, settings.retry_max)  # rate limits, learned per model and key

    # ---- public ----------------------------------------------------------------------------
    def skip_uncached(self, models: Mapping[str, str] | Callable[[ModelConfig], str | None]) -> None:
        """Serve some models from the cache only: those named (name -> why they cannot run), or
        those for which `models(model)` gives a reason; see the module doc."""
        with self._lock:
            if callable(models):
                self._skip_check = models
                self._skip = {name: reason for name, reason in self._skip.items() if reason is not None}
            else:
                self._skip.update({str(name): str(reason) for name, reason in models.items()})

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the worker processes making calls now (none: calls run in-process)."""
        return self._pool.pids if self._pool is not None else []

    @property
    def skipped_models(self) -> dict[str, str]:
        """The cache-only models met so far, and why."""
        return {name: reason for name, reason in self._skip.items() if reason is not None}

    def skip_reason(self, model: ModelConfig) -> str | None:
        """Why requests for `model` are served from the cache only (None: they are dispatched)."""
        with self._lock:
            if model.name not in self._skip and self._skip_check is not None:
                self._skip[model.name] = self._skip_check(model)
            return self._skip.get(model.name)

    def complete(self, requests: Sequence[LLMRequest], on_result: OnResult | None = None, *,
                 limit: CallLimit | None = None) -> list[LLMResponse]:
        """One response per request, in order. `on_result(index, response)` fires as each is known
        (cache hits first). Identical requests are sent once. `limit` caps provider dispatches."""
        with self._lock:
            results: list[LLMResponse | None] = [None] * len(requests)
            keys = [request_key(r) for r in requests]
            indexes: dict[str, list[int]] = {}
            for index, key in enumerate(keys):
                indexes.setdefault(key, []).append(index)
            firsts = {key: requests[group[0]] for key, group in indexes.items()}

            def deliver(key: str, response: LLMResponse, from_cache: bool = False) -> None:
                for index in indexes[key]:
                    results[index] = response
                    if from_cache:
                        self.usage.cache_hits += 1
                    elif response.error is not None:
                        self.usage.errors += 1
                    if on_result is not None:
                        on_result(index, response)

            providers = {key: self._provider(request.model) for key, request in firsts.items()}
            hits = self._lookup([key for key in firsts if providers[key].cacheable])
            for key in sorted(hits, key=lambda k: indexes[k][0]):
                deliver(key, hits[key], from_cache=True)
            jobs = [_Job(firsts[key], providers[key], [key], limit) for key in firsts if key not in hits]
            for job in [j for j in jobs if self.skip_reason(j.request.model) is not None]:
                jobs.remove(job)
                deliver(job.keys[0], self._skipped(job.request))
            if jobs:
                self._run(self._dispatch(jobs, deliver))
            return [r if r is not None else _missing() for r in results]

    def complete_n(self, request: LLMRequest, n: int, *, limit: CallLimit | None = None) -> list[LLMResponse]:
        """`n` candidates for one request (samples request.sample .. request.sample + n - 1), in one
        provider request when the provider supports `n`; each is cached under its own sample.
        `limit` caps provider dispatches."""
        if n < 1:
            return []
        samples = [replace(request, sample=request.sample + i) for i in range(n)]
        if n == 1:
            return self.complete(samples, limit=limit)
        with self._lock:
            provider = self._provider(request.model)
            keys = [request_key(r) for r in samples]
            results: dict[str, LLMResponse] = self._lookup(keys) if provider.cacheable else {}
            self.usage.cache_hits += len(results)
            missing = [i for i, key in enumerate(keys) if key not in results]
            if missing and self.skip_reason(request.model) is not None:
                for i in missing:
                    results[keys[i]] = self._skipped(request)
                    self.usage.errors += 1
            elif missing and provider.supports_n:

                def deliver(key: str, response: LLMResponse) -> None:
                    results[key] = response
                    if response.error is not None:
                        self.usage.errors += 1

                job = _Job(samples[missing[0]], provider, [keys[i] for i in missing], limit)
                self._run(self._dispatch([job], deliver))
            elif missing:
                for i, response in zip(missing, self.complete([samples[i] for i in missing], limit=limit)):
                    results[keys[i]] = response
            return [results.get(key) or _missing() for key in keys]

    def uncached_count(self, requests: Sequence[LLMRequest]) -> int:
        """How many provider requests `complete(requests)` would send, first attempts only: the
        distinct requests that the cache cannot answer. Peeks at the cache; never calls a model."""
        with self._lock:
            firsts = {request_key(r): r for r in requests}
            cacheable = [key for key, r in firsts.items() if self._provider(r.model).cacheable]
            return len(firsts) - len(self._lookup(cacheable))

    def expect(self, model: ModelConfig, count: int) -> None:
        """A hint: about `count` requests for `model` come next. When they would go to the worker
        processes and the cache can answer none of them (there is none, or it is empty), the
        workers start now, so litellm's import in them overlaps what comes before the batch
        (rendering, lookups); a cache that may answer them decides first, in `complete`, so a
        fully cached run never pays the import."""
        with self._lock:
            if self._pool is not None or self.processes < 1 or count < OFFLOAD_MIN:
                return
            if self.cache is not None and len(self.cache) > 0:
                return
            if not getattr(self._provider(model), "offloadable", False) or self.skip_reason(model) is not None:
                return
            self._pool = WorkerPool(self.processes)
            self._pool.spawn()  # `_offload` waits for it (and reports a pool that did not start)

    def supports(self, model: ModelConfig, feature: str) -> bool:
        """Whether `model`'s provider declares `supports_<feature>` (e.g. "prefill", "stop"; see
        `providers.Provider`). Builds the provider if needed; never calls a model."""
        with self._lock:
            return bool(getattr(self._provider(model), f"supports_{feature}", False))

    def close(self) -> None:
        """Close the client's event loop (and the connections litellm keeps on it)."""
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
            if self._runner is not None:
                self._runner.close()
                self._runner = None

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- sync plumbing ---------------------------------------------------------------------
    def _provider(self, model: ModelConfig) -> Provider:
        key = canonical_json([model.name, dict(model.params)])
        provider = self._providers.get(key)
        if provider is None:
            provider = self._providers[key] = get_provider(model, self.base_dir, self.env)
        return provider

    def _skipped(self, request: LLMRequest) -> LLMResponse:
        reason = self.skip_reason(request.model)
        return LLMResponse(text=None, error=f"skipped: {reason}; the response cache has no answer for this request",
                           error_type=SKIPPED)

    def _lookup(self, keys: list[str]) -> dict[str, LLMResponse]:
        if self.cache is None or not keys:
            return {}
        return self.cache.get_many(keys)

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run on the client's own loop (kept between calls so connections are reused); from
        inside a running loop (a notebook), on a helper thread."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        runner = self._runner
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return runner.run(coroutine)
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = runner.run(coroutine)
            except BaseException as error:  # noqa: BLE001  (re-raised in the caller's thread)
                outcome["error"] = error

        thread = threading.Thread(target=target, name="gpo-llm-client")
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    def _note_once(self, key: str, message: str) -> None:
        if key in self._noted:
            return
        self._noted.add(key)
        if self.notes is not None:
            self.notes(message)
        else:
            log.warning("%s", message)

    # ---- async part ------------------------------------------------------------------------
    async def _dispatch(self, jobs: list[_Job], deliver: Callable[[str, LLMResponse], None]) -> None:
        """A pool of at most `concurrency` workers per model (fewer when its provider can only
        answer `max_concurrency` at once, so that queued requests do not time out) drains its jobs.
        A big enough batch for a litellm model goes to the worker processes instead."""
        by_model: dict[str, list[_Job]] = {}
        for job in jobs:
            by_model.setdefault(job.request.model.name, []).append(job)
        for model_jobs in by_model.values():
            provider = model_jobs[0].provider
            if await self._offload(provider, len(model_jobs)):
                pooled = PooledProvider(provider, self._pool)
                for job in model_jobs:
                    job.provider = pooled
        for provider in {id(job.provider): job.provider for job in jobs}.values():
            prepare = getattr(provider, "prepare", None)
            if prepare is not None:
                prepare()
        workers = []
        writes = CacheWriter(self.cache) if self.cache is not None else None
        for model_jobs in by_model.values():
            queue = iter(model_jobs)
            limit = getattr(model_jobs[0].provider, "max_concurrency", None) or self.concurrency
            for _ in range(min(self.concurrency, limit, len(model_jobs))):
                workers.append(asyncio.ensure_future(self._work(queue, deliver, writes)))
        try:
            await asyncio.gather(*workers)
            if writes is not None:
                await writes.drained()
        finally:
            for worker in workers:
                worker.cancel()
            if writes is not None:
                writes.write_rest()  # after an interrupt too: the answers obtained are kept

    async def _offload(self, provider: Provider, count: int) -> bool:
        """Whether `provider`'s calls go to the worker processes (started here on first need)."""
        if not getattr(provider, "offloadable", False) or self.processes < 1:
            return False
        if self._pool is None and count < OFFLOAD_MIN:
            return False
        if self._pool is None or self._pool.fresh:  # (a pool `expect` spawned is started here)
            self._pool = self._pool or WorkerPool(self.processes)
            if not await self._pool.start():
                self._note_once("workers", "worker processes did not start: model calls run in this process")
                self.processes = 0
                return False
        return self._pool.alive

    async def _work(self, queue: Iterator[_Job], deliver: Callable[[str, LLMResponse], None],
                    writes: CacheWriter | None) -> None:
        for job in queue:  # a shared iterator: each job goes to exactly one worker
            for key, response in zip(job.keys, await self._obtain(job)):
                if response.error is None and job.provider.cacheable and writes is not None:
                    writes.add(key, response)  # written in batches off this slot's path (`cachewriter`)
                deliver(key, response)


def _missing() -> LLMResponse:
    return LLMResponse(text=None, error="no response was produced", error_type="ProviderError")
