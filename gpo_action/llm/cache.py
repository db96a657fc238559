"""Our response cache: one sqlite file, content-addressed, safe for several processes at once.

Key: `request_key(request)`, the sha256 of `canonical_json` of {model name, messages, public
params, sample index}; secrets (`SECRET_PARAMS`) and transport knobs never enter it. An embedding
is keyed by `embedding_key(model, text)` ({"kind": "embedding", model, params, text}) and stored
as the JSON of its vector in the text column. A row holds
only the response text, its usage (tokens, cost) and its own figures (latency in seconds, finish
reason, whether the cost was priced: a cached answer reports the latency it first took, never 0), never params. Errors are never stored.

The file is in WAL mode with a busy timeout, so a CI job and a local run (or two workers) can
read and write it together. Its schema is an ordered list of migrations recorded in
`schema_migrations` (add a function with `@migration`, never edit an applied one). A file that
is not a database or fails sqlite's quick check is moved aside (`<name>.corrupt-<timestamp>`),
reported through `notes`, and rebuilt empty: a broken cache never stops a run.

Neither does one that cannot be used: a full disk, a lock held past `busy_timeout`, a read-only
file or an I/O error is reported once through `notes` ("the response cache at X cannot be
written (database or disk is full): this run continues uncached"). A cache that cannot be
written is still read; one that cannot be opened or read is not used at all. Either way the
answers that could not be stored are kept in memory for the rest of the process, so a run never
pays twice for one answer; they are lost when it ends.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence, TypeVar

from gpo_action.llm.types import SECRET_PARAMS, LLMRequest, LLMResponse, ModelConfig, canonical_json
from gpo_action.secrets import scrub

# Params that change how a request travels, not what it answers: left out of the key.
TRANSPORT_PARAMS = frozenset({"timeout", "max_retries", "num_retries", "stream_timeout"})
KEY_VERSION = 1

T = TypeVar("T")
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[tuple[str, Migration]] = []

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_BATCH = 500
_INSERT = ("INSERT OR REPLACE INTO responses (key, text, prompt_tokens, completion_tokens, cost, created, seconds,"
           " finish_reason, priced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")

log = logging.getLogger("gpo_action.llm.cache")


def request_key(request: LLMRequest) -> str:
    """The content hash of a request: what it asks, of which model, which sample; no secrets."""
    params = {k: v for k, v in request.merged_params().items() if k not in SECRET_PARAMS and k not in TRANSPORT_PARAMS}
    content = {
        "v": KEY_VERSION,
        "model": request.model.name,
        "messages": [dict(m) for m in request.messages],
        "params": params,
        "sample": request.sample,
    }
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def embedding_key(model: ModelConfig, text: str) -> str:
    """The content hash of one text's embedding by `model`: a key kind of its own, no secrets."""
    params = {k: v for k, v in model.params.items() if k not in SECRET_PARAMS and k not in TRANSPORT_PARAMS}
    content = {"v": KEY_VERSION, "kind": "embedding", "model": model.name, "params": params, "text": text}
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def migration(function: Migration) -> Migration:
    """Append a schema migration; its position in the list is its version."""
    MIGRATIONS.append((function.__name__, function))
    return function


@migration
def create_responses(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS responses ("
        " key TEXT PRIMARY KEY,"
        " text TEXT NOT NULL,"
        " prompt_tokens INTEGER NOT NULL DEFAULT 0,"
        " completion_tokens INTEGER NOT NULL DEFAULT 0,"
        " cost REAL NOT NULL DEFAULT 0,"
        " created REAL NOT NULL"
        ") WITHOUT ROWID"
    )


class CacheMergeError(Exception):
    """A cache that cannot be merged in (`ResponseCache.merge_from`); the message names it."""


@migration
def add_response_figures(db: sqlite3.Connection) -> None:
    """The answer's latency, finish reason and whether its cost was priced (rows from before read as
    0, None and priced)."""
    db.execute("ALTER TABLE responses ADD COLUMN seconds REAL NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE responses ADD COLUMN finish_reason TEXT")
    db.execute("ALTER TABLE responses ADD COLUMN priced INTEGER NOT NULL DEFAULT 1")


class CacheCorruptError(Exception):
    """Internal: the file is not a usable database (never leaves this module)."""


# What a file in a bad state raises: full, locked, read-only, an I/O error, a folder that cannot
# be made, a corruption that cannot be repaired. `_unusable` tells them from our own mistakes.
_STORAGE_ERRORS = (sqlite3.DatabaseError, CacheCorruptError, OSError)


class ResponseCache:
    """The sqlite response cache at `path` (created with its directory when missing)."""

    def __init__(self, path: str | os.PathLike[str], notes: Callable[[str], None] | None = None,
                 busy_timeout: float = 30.0):
        self.path = Path(path)
        self.notes = notes
        self.busy_timeout = busy_timeout
        self.disabled = False
        self.writable = True
        self._failed = False
        self._unsaved: dict[str, LLMResponse] = {}   # answers the file could not take
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except _STORAGE_ERRORS as error:
            if not _unusable(error):
                raise
            self._fail("opened", error)

    # ---- public ----------------------------------------------------------------------------
    def get(self, key: str) -> LLMResponse | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, LLMResponse]:
        """The cached responses among `keys` (missing keys are absent from the result)."""
        unique = list(dict.fromkeys(keys))
        if not unique or self.disabled:
            return {}
        found = {key: self._unsaved[key] for key in unique if key in self._unsaved}
        rest = [key for key in unique if key not in found]
        if rest:
            found.update(self._guarded(lambda db: self._select(db, rest), {}, "read"))
        return found

    def put(self, key: str, response: LLMResponse) -> None:
        """Store a successful response (text, scrubbed of secrets, and usage); errors are ignored,
        never stored. An answer the file cannot take is kept in memory instead (see the module doc)."""
        self.put_many([(key, response)])

    def put_many(self, items: Iterable[tuple[str, LLMResponse]]) -> None:
        """`put` for several responses, in one transaction: one commit for a batch of answers."""
        if self.disabled:
            return
        now = time.time()
        rows = [(key, scrub(r.text), int(r.prompt_tokens), int(r.completion_tokens), float(r.cost), now,
                 float(r.seconds), r.finish_reason, int(r.priced))
                for key, r in items if r.error is None and r.text is not None]
        if not rows or (self.writable and self._guarded(lambda db: _insert_batch(db, _INSERT, rows) >= 0, False, "written")):
            return
        for row in rows:
            self._unsaved[row[0]] = LLMResponse(text=row[1], prompt_tokens=row[2], completion_tokens=row[3],
                                                cost=row[4], cached=True, seconds=row[6], finish_reason=row[7],
                                                priced=bool(row[8]))

    def merge_from(self, source: str | os.PathLike[str]) -> int:
        """Add the rows of the cache file `source` that this one lacks (a key already here is kept:
        the same key is the same answer); the number added. One transaction per batch, so a process
        reading this cache meanwhile sees each batch whole or not at all (WAL). Raises
        `CacheMergeError` when `source` is not a cache of this schema, or this one cannot be written."""
        if self.disabled or not self.writable or self._db is None:
            raise CacheMergeError(f"the cache at {self.path} cannot be written")
        try:
            # not read-only: a copied cache may come with its -wal file, which sqlite must index to read
            src = sqlite3.connect(Path(source), timeout=self.busy_timeout)
        except sqlite3.Error as error:
            raise CacheMergeError(f"{source} cannot be opened ({_describe(error)})") from None
        try:
            try:
                version = self._version(src)
                columns = [row[1] for row in src.execute("PRAGMA table_info(responses)")]
            except sqlite3.DatabaseError as error:
                raise CacheMergeError(f"{source} is not a response cache ({_describe(error)})") from None
            if version != len(MIGRATIONS) or not columns:
                raise CacheMergeError(f"{source} is not a response cache of this gpo-action's schema "
                                      f"(schema {version}, this one {len(MIGRATIONS)})")
            text = columns.index("text")
            names = ", ".join(columns)
            insert = f"INSERT OR IGNORE INTO responses ({names}) VALUES ({', '.join('?' * len(columns))})"
            added = 0
            rows = src.execute(f"SELECT {names} FROM responses")
            while batch := rows.fetchmany(_BATCH):
                clean = [(*row[:text], scrub(row[text]), *row[text + 1:]) for row in batch]
                added += self._guarded(lambda db: _insert_batch(db, insert, clean), -1, "written")
                if not self.writable:
                    raise CacheMergeError(f"the cache at {self.path} cannot be written")
            return added
        finally:
            src.close()

    def __len__(self) -> int:
        """The responses stored in the file."""
        if self.disabled:
            return 0
        return self._guarded(lambda db: db.execute("SELECT COUNT(*) FROM responses").fetchone()[0], 0, "read")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                db, self._db = self._db, None
                try:
                    db.close()
                except sqlite3.Error:  # a last checkpoint that failed: the rows are in the WAL
                    pass

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------------------
    @staticmethod
    def _select(db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, LLMResponse]:
        found: dict[str, LLMResponse] = {}
        for start in range(0, len(keys), _BATCH):
            chunk = keys[start:start + _BATCH]
            marks = ",".join("?" * len(chunk))
            rows = db.execute(
                "SELECT key, text, prompt_tokens, completion_tokens, cost, seconds, finish_reason, priced"
                f" FROM responses WHERE key IN ({marks})", chunk
            )
            for key, text, prompt_tokens, completion_tokens, cost, seconds, reason, priced in rows:
                found[key] = LLMResponse(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                         cost=cost, cached=True, seconds=seconds, finish_reason=reason, priced=bool(priced))
        return found

    def _guarded(self, operation: Callable[[sqlite3.Connection], T], default: T, doing: str) -> T:
        """Run `operation`; on corruption found mid-run, rebuild the file and try once more. When
        the file cannot be used (`doing`: "read" or "written"), give it up and return `default`."""
        with self._lock:
            for attempt in (1, 2):
                if self._db is None or (doing == "written" and not self.writable):
                    return default  # (checked under the lock: writers that queued behind a failed one)
                try:
                    return operation(self._db)
                except sqlite3.DatabaseError as error:
                    if attempt == 1 and _is_corruption(error):
                        try:
                            self._recover(f"{type(error).__name__}: {error}")
                        except _STORAGE_ERRORS as failure:
                            if not _unusable(failure):
                                raise
                            self._fail("rebuilt", failure)
                            return default
                        continue
                    if not _unusable(error):
                        raise
                    self._fail(doing, error)
                    return default
        return default

    def _fail(self, doing: str, error: BaseException) -> None:
        """Give the file up, and say so once: after a failed write only writing ("written"),
        else altogether ("opened", "read", "rebuilt"). Called holding the lock, or from __init__."""
        self.writable = False
        if doing != "written" and self._db is not None:
            db, self._db = self._db, None
            try:
                db.close()
            except sqlite3.Error:
                pass
        if not self._failed:
            self._failed = True
            self._note(f"the response cache at {self.path} cannot be {doing} ({_describe(error)}): "
                       "this run continues uncached")

    def _open(self) -> None:
        try:
            self._db = self._connect()
        except (sqlite3.DatabaseError, CacheCorruptError) as error:
            if isinstance(error, sqlite3.DatabaseError) and not _is_corruption(error):
                raise
            self._recover(str(error))

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            self._use_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CacheCorruptError(f"quick_check: {check}")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        return db

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """Switch to WAL (persistent in the file). sqlite answers BUSY without waiting when another
        process switches at the same moment, so retry until the busy timeout has passed."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as error:
                if getattr(error, "sqlite_errorcode", _SQLITE_BUSY) & 0xFF not in (_SQLITE_BUSY, _SQLITE_LOCKED) \
                        or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _migrate(self, db: sqlite3.Connection) -> None:
        if self._version(db) == len(MIGRATIONS):
            return
        db.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it done
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                       " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied REAL NOT NULL)")
            version = self._version(db)
            if version > len(MIGRATIONS):
                self.disabled = True
                self._note(f"response cache {self.path} has schema {version}, newer than this gpo-action "
                           f"knows ({len(MIGRATIONS)}): cache not used")
            for number, (name, function) in enumerate(MIGRATIONS[version:], version + 1):
                function(db)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, time.time()))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # sqlite rolls back by itself after some errors (a full disk)
                db.execute("ROLLBACK")
            raise

    @staticmethod
    def _version(db: sqlite3.Connection) -> int:
        exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").fetchone()
        if not exists:
            return 0
        return db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]

    def _recover(self, reason: str) -> None:
        """Move the broken file (and its WAL/SHM companions) aside and start an empty cache."""
        if self._db is not None:
            self._db.close()
            self._db = None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                os.replace(source, Path(f"{aside}{suffix}"))
        self._note(f"response cache {self.path} was unreadable ({reason}); moved to {aside.name} and rebuilt empty")
        self._db = self._connect()

    def _note(self, message: str) -> None:
        if self.notes is not None:
            self.notes(message)
        else:
            log.warning("%s", message)


def _insert_batch(db: sqlite3.Connection, insert: str, rows: list[tuple]) -> int:
    before = db.total_changes
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(insert, rows)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return db.total_changes - before


def _unusable(error: BaseException) -> bool:
    """Whether `error` is the file's state (see `_STORAGE_ERRORS`), not a wrong statement of ours."""
    if isinstance(error, sqlite3.DatabaseError):
        return isinstance(error, sqlite3.OperationalError) or _is_corruption(error)
    return True


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error) or type(error).__name__


def _is_corruption(error: sqlite3.DatabaseError) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(error).lower()
    return "not a database" in text or "malformed" in text
