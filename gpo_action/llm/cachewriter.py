"""`CacheWriter`: the client's answers go to the response cache off the request's path.

A slot that has its answer takes its next request at once; the answers wait in a list, and one
task writes them, all that have gathered, in one transaction on a thread (a write that waits
for another process's lock must not stall the loop, or the calls in flight would time out), so
a burst of answers is one commit, not one each. One write is in flight at a time.

    writes = CacheWriter(cache)
    writes.add(key, response)        # any number, from the loop's tasks
    await writes.drained()           # every answer added so far is written
    writes.write_rest()              # after an interrupt: the rest, now, synchronously
"""

from __future__ import annotations

import asyncio

from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.types import LLMResponse


class CacheWriter:
    """Batched, ordered writes of answers to one `ResponseCache`, from one event loop."""

    def __init__(self, cache: ResponseCache):
        self.cache = cache
        self._pending: list[tuple[str, LLMResponse]] = []
        self._task: asyncio.Future | None = None

    def add(self, key: str, response: LLMResponse) -> None:
        self._pending.append((key, response))
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            await asyncio.to_thread(self.cache.put_many, batch)

    async def drained(self) -> None:
        """Wait until every answer added so far is written (a write's own error is raised here)."""
        while self._task is not None:
            task = self._task
            await task
            if task is self._task:
                self._task = asyncio.ensure_future(self._drain()) if self._pending else None

    def write_rest(self) -> None:
        """Write what no task has taken yet, synchronously: after an interrupt or an error, the
        answers already obtained still reach the cache. (A batch on its thread finishes there.)"""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        rest, self._pending = self._pending, []
        if rest:
            self.cache.put_many(rest)
