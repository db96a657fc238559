"""An aiohttp app on 127.0.0.1, served from a background thread with its own event loop.

The lifecycle the test servers share (`ScriptedOpenAIServer`, `GitHubServer`): `start()` binds
the host on the requested port (0: a free one), then runs the app in a daemon thread until
`close()`; `url` is the base URL once started; `with server:` starts and closes it. A subclass
builds its app in `make_app()` and may pass options through to aiohttp's `AppRunner` and
`SockSite`.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Any, ClassVar, Mapping, Self

from aiohttp import web


class BackgroundServer:
    """The lifecycle only: a subclass names itself and builds its app in `make_app()`."""

    thread_name: ClassVar[str] = "background-server"
    description: ClassVar[str] = "background server"   # in "... did not start"
    runner_options: ClassVar[Mapping[str, Any]] = {}    # more AppRunner keyword arguments
    site_options: ClassVar[Mapping[str, Any]] = {}      # more SockSite keyword arguments

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host = host
        self._requested_port = port
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Base URL without a path, e.g. http://127.0.0.1:41234."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(sock, started), name=self.thread_name, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"{self.description} did not start")
        return self

    def _serve(self, sock: socket.socket, started: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.make_app(), handle_signals=False, access_log=None, shutdown_timeout=0.5,
                                     **self.runner_options)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, sock, **self.site_options).start())
        started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def close(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
