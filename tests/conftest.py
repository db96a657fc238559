"""Shared fixtures: real servers on 127.0.0.1 (style rule 6)."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.openai_server import ScriptedOpenAIServer


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    """A started scripted OpenAI-compatible server, fresh for each test."""
    with ScriptedOpenAIServer() as server:
        yield server
