"""Test support: the scripted OpenAI-compatible server and the GitHub stand-in (both run by
`background.BackgroundServer`), the projects CLI tests write (`projects`), small injectable stand-ins."""

from __future__ import annotations


class RecordedSleep:
    """An async sleep for `LLMClient(sleep=...)`: records each backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
