"""The sqlite response cache: keys, storage, migrations, concurrent processes, corruption."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from gpo_action.llm.cache import MIGRATIONS, ResponseCache, request_key
from gpo_action.llm.types import LLMRequest, LLMResponse, ModelConfig

ROOT = Path(__file__).resolve().parents[1]
MODEL = ModelConfig("openai/gpt-4o-mini", {"api_key": "sk-one", "temperature": 0})


def ask(text: str, model: ModelConfig = MODEL, **fields) -> LLMRequest:
    return LLMRequest(model, ({"role": "user", "content": text},), **fields)


def test_request_key_is_a_content_hash_without_secrets_or_transport():
    key = request_key(ask("hi"))
    assert len(key) == 64 and key == request_key(ask("hi"))
    assert key == request_key(ask("hi", ModelConfig(MODEL.name, {"api_key": "sk-two", "temperature": 0})))
    assert key == request_key(ask("hi", ModelConfig(MODEL.name, {"temperature": 0, "timeout": 5})))
    assert key == request_key(ask("hi", tag="case-7"))
    different = [
        ask("hello"),
        ask("hi", sample=1),
        ask("hi", ModelConfig("openai/gpt-4o", MODEL.params)),
        ask("hi", ModelConfig(MODEL.name, {"temperature": 1})),
        ask("hi", params={"max_tokens": 5}),
        LLMRequest(MODEL, ({"role": "system", "content": "hi"},)),
    ]
    assert len({key, *(request_key(r) for r in different)}) == len(different) + 1


def test_put_get_many_round_trip_and_errors_are_not_stored(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        cache.put("a", LLMResponse(text="alpha", prompt_tokens=3, completion_tokens=1, cost=0.5, attempts=2))
        cache.put("b", LLMResponse(text=None, error="boom", error_type="ServerError"))
        cache.put("c", LLMResponse(text="gamma"))
        found = cache.get_many(["a", "b", "c", "zzz"])
        assert set(found) == {"a", "c"} and len(cache) == 2
        assert found["a"] == LLMResponse(text="alpha", prompt_tokens=3, completion_tokens=1, cost=0.5, cached=True)
        assert cache.get("b") is None
        assert len(cache.get_many([f"k{i}" for i in range(2000)] + ["c"])) == 1  # chunked lookups


def test_migrations_run_once_and_are_recorded(tmp_path):
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    with ResponseCache(path) as cache:
        cache.put("k", LLMResponse(text="v"))
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        assert rows == [(i + 1, name) for i, (name, _) in enumerate(MIGRATIONS)]
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_newer_schema_disables_the_cache_with_a_note(tmp_path):
    path = tmp_path / "c.sqlite"
    ResponseCache(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    notes: list[str] = []
    with ResponseCache(path, notes=notes.append) as cache:
        cache.put("k", LLMResponse(text="v"))
        assert cache.disabled and cache.get("k") is None
    assert len(notes) == 1 and "newer" in notes[0]


def test_a_file_that_is_not_a_database_is_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "c.sqlite"
    garbage = b"this is not a sqlite database\n" * 200
    path.write_bytes(garbage)
    notes: list[str] = []
    with ResponseCache(path, notes=notes.append) as cache:
        cache.put("k", LLMResponse(text="v"))
        assert cache.get("k").text == "v"
    [aside] = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]
    assert aside.read_bytes() == garbage
    assert len(notes) == 1 and "moved to" in notes[0] and aside.name in notes[0]


def test_a_database_with_damaged_pages_is_moved_aside_and_rebuilt(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        for i in range(3000):
            cache.put(f"key-{i:05d}", LLMResponse(text=f"response number {i} " * 5))
    with sqlite3.connect(path) as db:  # fold the WAL into the main file, then damage it
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    assert len(data) > 40_000
    data[8192:40_000] = os.urandom(40_000 - 8192)
    path.write_bytes(bytes(data))
    notes: list[str] = []
    with ResponseCache(path, notes=notes.append) as cache:
        assert len(cache) == 0
        cache.put("k", LLMResponse(text="v"))
        assert cache.get("k").text == "v"
    assert len(notes) == 1 and "rebuilt" in notes[0]
    assert [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]


WRITER = """
import sys, time
from pathlib import Path
from gpo_action.llm.cache import ResponseCache
from gpo_action.llm.types import LLMResponse
path, name, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
with ResponseCache(path) as cache:
    for i in range(300):
        cache.put(f"{name}-{i}", LLMResponse(text=f"{name} {i}", prompt_tokens=i))
        if i % 50 == 0:
            cache.get_many([f"a-{j}" for j in range(i)] + [f"b-{j}" for j in range(i)])
print(name, "done")
"""


def test_two_processes_write_the_same_cache_at_once(tmp_path):
    path, go = tmp_path / "shared.sqlite", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(go)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]
    time.sleep(0.3)  # let both start and wait at the barrier
    go.touch()
    outcomes = [w.communicate(timeout=60) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in outcomes]
    with ResponseCache(path) as cache:
        assert len(cache) == 600
        assert cache.get("a-299").text == "a 299" and cache.get("b-0").text == "b 0"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_the_cache_stores_text_usage_and_figures_only(tmp_path):
    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        cache.put(request_key(ask("hi")), LLMResponse(text="hello", prompt_tokens=1, completion_tokens=1))
    with sqlite3.connect(path) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(responses)")]
        rows = db.execute("SELECT * FROM responses").fetchall()
    assert columns == ["key", "text", "prompt_tokens", "completion_tokens", "cost", "created", "seconds",
                       "finish_reason", "priced"]
    assert "sk-one" not in json.dumps(rows)


def test_a_cache_that_cannot_be_written_still_serves_its_rows_and_keeps_new_answers_in_memory(tmp_path):
    from tests.test_own_failures import lock_held

    path = tmp_path / "c.sqlite"
    with ResponseCache(path) as cache:
        cache.put("old", LLMResponse(text="from an earlier run"))
    notes: list[str] = []
    with lock_held(path), ResponseCache(path, notes=notes.append, busy_timeout=0.2) as cache:
        for i in range(3):
            cache.put(f"new-{i}", LLMResponse(text=f"answer {i}", prompt_tokens=i))
        found = cache.get_many(["old", "new-0", "new-2"])
        assert found["old"].text == "from an earlier run" and found["new-2"] == LLMResponse(
            text="answer 2", prompt_tokens=2, cached=True)
        assert not cache.writable and len(cache) == 1      # the file holds only what it had
    assert notes == [f"the response cache at {path} cannot be written (database is locked): this run continues uncached"]
    with ResponseCache(path) as cache:
        assert cache.get("new-0") is None                   # kept for that process only


def test_a_cache_from_before_response_figures_migrates_and_keeps_its_rows(tmp_path):
    path = tmp_path / "c.sqlite"
    with sqlite3.connect(path) as db:                    # the file as migration 1 left it
        MIGRATIONS[0][1](db)
        db.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)")
        db.execute("INSERT INTO schema_migrations VALUES (1, ?, 0)", (MIGRATIONS[0][0],))
        db.execute("INSERT INTO responses VALUES ('old', 'an old answer', 3, 4, 0.5, 0)")
    with ResponseCache(path) as cache:
        old = cache.get("old")
        assert (old.text, old.cost, old.seconds, old.finish_reason) == ("an old answer", 0.5, 0.0, None)
        cache.put("new", LLMResponse(text="a new answer", cost=0.25, seconds=1.5, finish_reason="length"))
        cache.put("unpriced", LLMResponse(text="free?", priced=False))
    with ResponseCache(path) as cache:
        new = cache.get("new")
        assert (new.cached, new.cost, new.seconds, new.finish_reason, new.priced) == (True, 0.25, 1.5, "length", True)
        assert cache.get("unpriced").priced is False and old.priced is True
