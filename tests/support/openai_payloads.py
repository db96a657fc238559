"""What the scripted OpenAI server reads from a request and writes in an answer: the last user
message, the default replies, word counts as tokens (`prompt_tokens`, `requested_completion`), the
hashed embeddings, and the OpenAI-shaped error body (`error_response`)."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Callable

from aiohttp import web

ReplyFunction = Callable[[dict[str, Any], int], str]


def last_user_message(body: dict[str, Any]) -> str:
    """The content of the last user message of a chat request ("" when there is none)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
            return str(content or "")
    return ""


def echo_reply(body: dict[str, Any], index: int) -> str:
    """Default reply: the last user message; choice i > 0 gets a " #i" suffix so candidates differ."""
    text = last_user_message(body)
    return text if index == 0 else f"{text} #{index}"


def fixed_reply(text: str) -> ReplyFunction:
    return lambda body, index: text


def count_words(text: str) -> int:
    return len(text.split())


def prompt_tokens(body: dict[str, Any]) -> int:
    """The prompt tokens the server reports in `usage` (and charges against `tpm`): the words of the
    messages' contents of a chat request, or of the inputs of an embeddings request."""
    if "messages" not in body and "input" in body:
        inputs = body.get("input")
        return sum(count_words(str(t)) for t in ([inputs] if isinstance(inputs, str) else inputs or []))
    return sum(count_words(str(m.get("content") or "")) for m in body.get("messages") or [] if isinstance(m, dict))


def requested_completion(body: dict[str, Any]) -> int:
    """The completion tokens a request reserves at admission: `max_tokens` (or
    `max_completion_tokens`), 0 when it gives neither."""
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def embed_text(text: str, dimensions: int = 64) -> list[float]:
    """A deterministic hashed bag of words, L2-normalised (all zeros for an empty text)."""
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimensions
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector] if norm else vector


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           error_type: str | None = None) -> web.Response:
    """An OpenAI-shaped error body; `type` is `code` unless given (rate limits: "requests"/"tokens")."""
    payload = {"error": {"message": message, "type": error_type or code, "param": None, "code": code}}
    return web.json_response(payload, status=status, headers=headers)
