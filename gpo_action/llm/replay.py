"""`replay/<file.jsonl>`: answers from recorded completions, for forks without secrets and for tests.

Each line of the file is one recording, either

    {"prompt": "text of a single user message", "completion": "..."}
    {"messages": [{"role": "system", "content": "..."}, ...], "completion": "..."}

A request matches when its messages are exactly one user message equal to `prompt`, or equal
`messages`. Several recordings of the same prompt are samples: the request's sample index picks
one (modulo their count). A miss is a `ReplayMiss` naming the case and the prompt; a malformed
line (or bytes that are not UTF-8) is a `ReplayFileError` naming the file and line. Files are read once per change (mtime).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from gpo_action.errors import ReplayFileError, ReplayMiss
from gpo_action.llm.providers import RawCompletion, count_words, register
from gpo_action.llm.types import Message, ModelConfig, canonical_json
from gpo_action.yamlsource import decode_utf8

PREFIX = "replay/"

Recordings = dict[str, list[str]]  # canonical messages -> completions, in file order

_INDEXES: dict[Path, tuple[tuple[int, int], Recordings]] = {}
_INDEXES_LOCK = threading.Lock()


def messages_key(messages: Sequence[Mapping[str, Any]]) -> str:
    return canonical_json([dict(m) for m in messages])


def load_recordings(path: Path) -> Recordings:
    """The index of a replay file, read once and again only when the file changes."""
    try:
        stat = path.stat()
    except OSError as error:
        raise ReplayFileError(f"replay file not found ({error.strerror})", path=str(path),
                              hint="record one, or fix the path after replay/ in the model name") from None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _INDEXES_LOCK:
        cached = _INDEXES.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ReplayFileError(f"cannot read the replay file ({error.strerror})", path=str(path)) from None
    recordings = parse_recordings(decode_utf8(raw, str(path), ReplayFileError), str(path))
    with _INDEXES_LOCK:
        _INDEXES[path] = (stamp, recordings)
    return recordings


def parse_recordings(text: str, name: str) -> Recordings:
    recordings: Recordings = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReplayFileError(f"not valid JSON: {error.msg}", path=name, line=number) from None
        key = _record_key(record, name, number)
        recordings.setdefault(key, []).append(record["completion"])
    return recordings


def _record_key(record: Any, name: str, number: int) -> str:
    hint = 'expected {"prompt": str, "completion": str} or {"messages": [...], "completion": str}'
    if not isinstance(record, dict) or not isinstance(record.get("completion"), str):
        raise ReplayFileError("a recording needs a string 'completion'", path=name, line=number, hint=hint)
    if "prompt" in record and "messages" not in record:
        if not isinstance(record["prompt"], str):
            raise ReplayFileError("'prompt' must be a string", path=name, line=number, hint=hint)
        return messages_key([{"role": "user", "content": record["prompt"]}])
    if "messages" in record and "prompt" not in record:
        messages = record["messages"]
        if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        ):
            raise ReplayFileError("'messages' must be a non-empty list of {role, content} objects",
                                  path=name, line=number, hint=hint)
        return messages_key(messages)
    raise ReplayFileError("a recording needs exactly one of 'prompt' or 'messages'", path=name, line=number, hint=hint)


@register(PREFIX)
class ReplayProvider:
    """Recorded answers; local already, so never cached, and free."""

    cacheable = False
    supports_n = False

    def __init__(self, model: ModelConfig, base_dir: Path):
        path = Path(model.name[len(PREFIX):])
        self.path = path if path.is_absolute() else Path(base_dir) / path
        self.recordings = load_recordings(self.path)

    async def acomplete(
        self,
        messages: Sequence[Message],
        params: Mapping[str, Any],
        n: int,
        timeout: float,
        *,
        sample: int = 0,
        tag: str = "",
    ) -> RawCompletion:
        completions = self.recordings.get(messages_key(messages))
        if not completions:
            prompt = " ".join(str(messages[-1].get("content", "")).split()) if messages else ""
            shown = prompt if len(prompt) <= 80 else prompt[:77] + "..."
            raise ReplayMiss(f"no recording in {self.path} for {tag or 'a request'}: {shown!r}")
        texts = [completions[(sample + i) % len(completions)] for i in range(n)]
        return RawCompletion(
            texts=texts,
            prompt_tokens=sum(count_words(str(m.get("content", ""))) for m in messages),
            completion_tokens=sum(count_words(t) for t in texts),
            cost=0.0,
        )
