"""`WorkerPool`: litellm calls spread over worker processes, so a large batch uses every core.

litellm spends about 4 ms of CPU on each call (parsing, its logging object, cost lookup) and
takes over 2 s to import; in one process that caps a cold run near 250 calls a second and
makes the client's slots wait for each other. The pool starts `size` workers
(`python -m gpo_action.llm.worker_main`, one import, the rest forked from it), talks to them over a
Unix socket in a private temp dir, and hands each call to the least busy one. The parent then
never imports litellm for those calls.

    pool = WorkerPool(size=2)
    if await pool.start():                       # False: no worker came up; call in-process
        raw = await pool.call("openai/x", messages, params, n=1, timeout=60)
    pool.close()                                 # also done if the pool is collected, or at exit

Only the transport lives here: the client keeps retries, timeouts, the cache and accounting.
A worker's failure comes back as the `ProviderError` subclass it raised; a worker that dies
fails its calls in flight with a retryable `ServerError`, and once none is left `call` raises
`WorkersGone` so the caller can go on in-process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any, Mapping, Sequence

import gpo_action
from gpo_action.errors import (AuthError, BadResponse, InputError, ProviderError, ProviderTimeout, RateLimited,
                               ReplayMiss, ServerError)
from gpo_action.llm.providers import RawCompletion
from gpo_action.llm.ratelimits import rate_headers
from gpo_action.llm.types import Message
from gpo_action.llm.worker_main import LINE_LIMIT, encode

# Seconds a worker may take to import litellm and connect before the pool gives up on it.
START_TIMEOUT = 120.0
ERRORS: dict[str, type[ProviderError]] = {cls.__name__: cls for cls in (
    ProviderError, RateLimited, ProviderTimeout, ServerError, BadResponse, AuthError, ReplayMiss)}


class WorkersGone(ProviderError):
    """No worker process is left to take a call."""


def default_size(env: Mapping[str, str] | None = None) -> int:
    """Workers for this machine: one per core, at most 4; 0 (in-process) on one core and off
    Linux (forking after an import is not safe on macOS, and Windows has no fork).
    GPO_WORKERS in `env` (None: os.environ) overrides it (0 turns the pool off)."""
    if not hasattr(os, "fork"):
        return 0
    override = (os.environ if env is None else env).get("GPO_WORKERS", "").strip()
    if override:
        if not override.isdigit():
            raise InputError(f"GPO_WORKERS must be a whole number of processes (0 = none), got {override!r}")
        return int(override)
    if not sys.platform.startswith("linux"):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 4) if cores >= 2 else 0


def rebuild_error(fields: Mapping[str, Any]) -> ProviderError:
    cls = ERRORS.get(str(fields.get("kind")), ProviderError)
    message, status = str(fields.get("message") or "worker error"), fields.get("status")
    if cls is RateLimited:
        headers = fields.get("headers")
        return RateLimited(message, status=status or 429, retry_after=fields.get("retry_after"),
                           headers=rate_headers(headers if isinstance(headers, dict) else None))
    return cls(message, status=status)


class _Worker:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future] = {}
        self.pid = 0

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(encode(message))


class WorkerPool:
    """Worker processes making litellm calls; one pool per client event loop."""

    def __init__(self, size: int):
        self.size = size
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._process: subprocess.Popen | None = None
        self._server: asyncio.AbstractServer | None = None
        self._socket: socket.socket | None = None  # bound and listening from `spawn` on
        self._dir: str | None = None
        self._started: bool | None = None  # None: not tried; False: failed or gone
        self._first = asyncio.Event()
        self._finalizer: weakref.finalize | None = None

    @property
    def alive(self) -> bool:
        return bool(self._started) and bool(self._workers)

    @property
    def fresh(self) -> bool:
        """`start` was never called (the processes may be spawned already)."""
        return self._started is None

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers serving now."""
        return [worker.pid for worker in self._workers]

    def spawn(self) -> bool:
        """Start the worker processes without waiting for them (no event loop needed): their
        litellm import runs while the caller goes on; `start` then waits for them. The socket
        listens from here on, so a worker that connects early waits in its backlog. False when
        the process could not be started (`start` then reports it)."""
        if self._process is not None or self._dir is not None:
            return self._process is not None
        self._dir = tempfile.mkdtemp(prefix="gpo-workers-")  # 0700: only this user can connect
        path = str(Path(self._dir) / "s")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(path)
        self._socket.listen(max(16, self.size))
        package_root = str(Path(gpo_action.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        try:
            # -P: `-m` would put the current directory (the checkout) first on sys.path, and a pull
            # request's `gpo_action/` or `litellm/` there would run with every key in the environment
            self._process = subprocess.Popen(
                [sys.executable, "-P", "-m", "gpo_action.llm.worker_main", path, str(self.size)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError:
            return False
        self._finalizer = weakref.finalize(self, _stop, self._process, self._dir)
        return True

    async def start(self) -> bool:
        """Start the workers (unless `spawn` did) and wait for the first to connect (after its
        litellm import). True when at least one serves; False (and nothing left running) otherwise."""
        if self._started is not None:
            return self.alive
        self._started = False
        if not self.spawn() or self._process is None:
            self.close()
            return False
        self._server = await asyncio.start_unix_server(self._accept, sock=self._socket, limit=LINE_LIMIT)
        waited = 0.0
        while not self._first.is_set():
            if self._process.poll() is not None or waited >= START_TIMEOUT:
                self.close()
                return False
            try:
                async with asyncio.timeout(0.05):
                    await self._first.wait()
            except TimeoutError:
                waited += 0.05
        self._started = True
        return True

    async def call(self, model: str, messages: Sequence[Message], params: Mapping[str, Any], n: int,
                   timeout: float, *, sample: int = 0, tag: str = "") -> RawCompletion:
        """One provider call in a worker; raises the worker's ProviderError, or WorkersGone."""
        if not self.alive:
            raise WorkersGone("no worker process is running")
        worker = min(self._workers, key=lambda w: len(w.pending))
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        worker.pending[ident] = future
        worker.send({"id": ident, "model": model, "messages": [dict(m) for m in messages], "params": dict(params),
                     "n": n, "timeout": timeout, "sample": sample, "tag": tag})
        try:
            reply = await future
        except asyncio.CancelledError:
            if worker.pending.pop(ident, None) is not None and worker in self._workers:
                worker.send({"cancel": ident})
            raise
        if "error" in reply:
            raise rebuild_error(reply["error"])
        ok = reply["ok"]
        return RawCompletion(texts=list(ok.get("texts") or []), prompt_tokens=int(ok.get("prompt_tokens") or 0),
                             completion_tokens=int(ok.get("completion_tokens") or 0), cost=ok.get("cost"),
                             finish_reasons=list(ok.get("finish_reasons") or []),
                             rate_headers=rate_headers(ok.get("headers") if isinstance(ok.get("headers"), dict) else None))

    def close(self) -> None:
        """Stop every worker now. Synchronous, so it also works on an interrupted loop; the
        loop's owner cancels the connection tasks when it closes the loop."""
        self._started = False
        self._workers.clear()
        try:
            if self._server is not None:
                self._server.close()
        except RuntimeError:  # the loop is closed already
            pass
        self._server = None
        if self._socket is not None:
            self._socket.close()  # (already the server's when it was made: closing twice is harmless)
            self._socket = None
        if self._finalizer is not None:
            self._finalizer()
        elif self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._process = self._dir = self._finalizer = None

    # ---- connections -----------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        worker = _Worker(reader, writer)
        try:
            hello = json.loads(await reader.readline() or b"{}")
            if "hello" not in hello:
                return
            worker.pid = int(hello["hello"])
            self._workers.append(worker)
            self._first.set()
            while line := await reader.readline():
                reply = json.loads(line)
                future = worker.pending.pop(reply.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # the loop is closing: a handler that ends cancelled makes 3.11's streams print a
            # traceback ("Exception in callback": its done-callback calls task.exception())
            pass
        finally:
            if worker in self._workers:
                self._workers.remove(worker)
            for future in worker.pending.values():
                if not future.done():
                    future.set_exception(ServerError("the worker process making this call exited"))
            worker.pending.clear()
            try:
                writer.close()
            except RuntimeError:  # the loop is closed already
                pass


def _stop(process: subprocess.Popen, folder: str) -> None:
    """Stop the first worker and its forks (one process group), and remove the socket's folder."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    shutil.rmtree(folder, ignore_errors=True)


class PooledProvider:
    """A litellm provider whose calls go to the pool; in-process again once no worker is left."""

    def __init__(self, inner: Any, pool: WorkerPool):
        self.inner = inner
        self.pool = pool
        self.cacheable = inner.cacheable

    @property
    def supports_n(self) -> bool:
        return self.inner.supports_n

    @property
    def supports_stop(self) -> bool:
        return self.inner.supports_stop

    @property
    def supports_prefill(self) -> bool:
        return self.inner.supports_prefill

    async def acomplete(self, messages: Sequence[Message], params: Mapping[str, Any], n: int, timeout: float,
                        *, sample: int = 0, tag: str = "") -> RawCompletion:
        try:
            return await self.pool.call(self.inner.model, messages, params, n, timeout, sample=sample, tag=tag)
        except WorkersGone:
            self.inner.prepare()
            return await self.inner.acomplete(messages, params, n, timeout, sample=sample, tag=tag)
