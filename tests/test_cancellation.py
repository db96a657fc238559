"""A cancel is never lost: a call, a wait at the rate-limit gate, or the wait for the first worker
process, cancelled in the very loop iteration in which its answer (its turn, the worker's hello)
arrives ends cancelled. Python 3.11's `asyncio.wait_for` returned the answer instead, so after a
SIGTERM the client's workers went on to their next requests and the run did not stop (the
end-to-end case: test_faults' stopped runs)."""

from __future__ import annotations

import asyncio

from gpo_action.llm.client import ClientSettings, LLMClient
from gpo_action.llm.ratelimits import Gate
from gpo_action.llm.types import RateLimit
from gpo_action.llm.worker_pool import WorkerPool


def test_a_call_cancelled_as_its_answer_arrives_is_cancelled_not_answered():
    client = LLMClient(ClientSettings(timeout=5.0, processes=0))

    async def go() -> None:
        answer = asyncio.get_running_loop().create_future()

        async def start() -> str:
            return await answer

        call = asyncio.ensure_future(client._call(start))
        for _ in range(3):
            await asyncio.sleep(0)  # the call is waiting for its answer
        answer.set_result("the answer")
        call.cancel()  # in the same iteration
        await asyncio.wait([call], timeout=2)
        assert call.cancelled()

    try:
        asyncio.run(go())
    finally:
        client.close()


def test_a_wait_at_the_gate_cancelled_as_its_turn_comes_takes_no_ticket():
    gate = Gate("m", 4, RateLimit(rpm=60))  # one request a second, one at once

    async def go() -> None:
        first = await gate.acquire(1)
        waiting = asyncio.ensure_future(gate.acquire(1))  # its turn is about a second away
        for _ in range(3):
            await asyncio.sleep(0)
        gate.release(first, ok=True)  # wakes the waiter...
        waiting.cancel()              # ...which is cancelled in the same iteration
        await asyncio.wait([waiting], timeout=3)
        assert waiting.cancelled()
        assert gate.window.in_flight == 0

    asyncio.run(go())


def test_a_start_cancelled_as_the_first_worker_connects_is_cancelled_not_started():
    # the pool's wait for its first worker (a real process) polls in steps of 0.05 s under asyncio.timeout
    pool = WorkerPool(1)

    async def go() -> None:
        starting = asyncio.ensure_future(pool.start())
        for _ in range(100):
            if pool._first._waiters:  # waiting for the first worker's hello
                break
            await asyncio.sleep(0)
        assert pool._first._waiters
        pool._first.set()   # the hello...
        starting.cancel()   # ...and a cancel in the same iteration
        await asyncio.wait([starting], timeout=2)
        assert starting.cancelled()

    try:
        asyncio.run(go())
    finally:
        pool.close()
