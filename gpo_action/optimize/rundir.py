"""The run directory: `state.json` (schema version, config fingerprint, progress, spend) and
`trajectory.jsonl` (one record per line, see `trajectory`). Nothing is pickled.

`state.json` is written atomically after every step; trajectory lines are appended and flushed as
prompts are scored, so an interrupted run loses nothing it paid for. A line left torn by a crash
mid-write (even inside a multi-byte character) is skipped when the file is read, and counted. A run resumes only when the
fingerprint of its inputs (template, cases, models, spec, meta-prompts) matches; on resume the
records of the unfinished step (and any final record) are dropped and the step is run again,
its calls answered by the response cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from gpo_action.errors import InputError
from gpo_action.files import append_durably, write_atomic
from gpo_action.llm.types import canonical_json
from gpo_action.optimize.trajectory import FinalRecord, PromptRecord, StepRecord, record_from_dict

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
TRAJECTORY_FILE = "trajectory.jsonl"
Record = PromptRecord | StepRecord | FinalRecord


def fingerprint(data: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that decides a run's calls."""
    return hashlib.sha256(canonical_json({"schema": SCHEMA_VERSION, **data}).encode("utf-8")).hexdigest()


@dataclass
class RunState:
    fingerprint: str
    status: str = "running"                  # running | interrupted | stopped | finished
    stop_reason: str | None = None
    step_done: int = -1                      # -1: the original is not scored yet
    history: list[str] = field(default_factory=list)   # ids that were current, in order
    original_holdout: float | None = None
    spend: dict[str, Any] = field(default_factory=dict)
    similarity: str | None = None
    location: dict[str, Any] | None = None   # what locating the regression found (see localize)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunState":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Trajectory:
    """What `read_records` found: the complete records, and how many lines it skipped."""

    records: list[Record]
    skipped: int = 0

    def note(self, path: str | os.PathLike) -> str | None:
        """The line to report when lines were skipped (None when none was)."""
        if not self.skipped:
            return None
        lines = "a line" if self.skipped == 1 else f"{self.skipped} lines"
        return (f"{path}: skipped {lines} cut short or unreadable (a run stopped mid-write); "
                "the steps before are kept, the rest is done again")


def read_records(path: str | os.PathLike) -> Trajectory:
    """The records of a trajectory file. A line that does not decode or parse (a crash mid-write
    leaves the last one torn, maybe inside a multi-byte character) is skipped and counted."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return Trajectory([])
    records: list[Record] = []
    skipped = 0
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(record_from_dict(json.loads(line.decode("utf-8"))))
        except (ValueError, TypeError, KeyError, AttributeError):  # UnicodeDecodeError is a ValueError
            skipped += 1
    return Trajectory(records, skipped)


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.state_path = self.path / STATE_FILE
        self.trajectory_path = self.path / TRAJECTORY_FILE

    def load_state(self) -> RunState | None:
        if not self.state_path.exists():
            return None
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the run state: {exc}", path=str(self.state_path),
                             hint="start afresh without --resume") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise InputError(f"run state has schema {version!r}, this gpo-action writes {SCHEMA_VERSION}",
                             path=str(self.state_path), hint="start afresh without --resume")
        return RunState.from_dict(data)

    def save_state(self, state: RunState) -> None:
        write_atomic(self.state_path, json.dumps(state.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def reset(self, state: RunState) -> None:
        """Start afresh: an empty trajectory and a new state."""
        write_atomic(self.trajectory_path, "")
        self.save_state(state)

    def append(self, record: Record) -> None:
        append_durably(self.trajectory_path, json.dumps(record.to_dict(), ensure_ascii=False) + "\n")

    def read(self) -> Trajectory:
        """The trajectory's complete records and the count of lines skipped (`read_records`)."""
        return read_records(self.trajectory_path)

    def records(self) -> list[Record]:
        return self.read().records

    def rewrite(self, records: list[Record]) -> None:
        write_atomic(self.trajectory_path, "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in records))
