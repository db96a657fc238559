"""What a run writes to `trajectory.jsonl`: one record per line, each a frozen dataclass that
round-trips through `to_dict`/`from_dict`.

- `PromptRecord` (`kind: "prompt"`): one per evaluated prompt: the original (step 0), every probe
  of the regression's location (step 0, `reverted`: the hunks of the change it puts back) and every
  candidate that reached the task model (a duplicate reuses its first record, it is not written
  again). Scores are dev scores on a 0..1 scale; `holdout` is always None here (see `FinalRecord`).
- `StepRecord` (`kind: "step"`): one per finished step: budget, what was retrieved, how many
  candidates came back, were duplicates or were rejected (by reason), which one became current.
- `FinalRecord` (`kind: "final"`): the outcome: best prompt, dev and holdout scores of the
  original and the best, the edit size, the decision.

`spent` fields are the run's cumulative spend when the record was written (for budget curves).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping


def prompt_id(prompt: str) -> str:
    """A stable short id of a prompt text: the first 12 hex digits of its sha256."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:12]


def _from(cls, data: Mapping[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class PromptRecord:
    id: str
    step: int
    prompt: str
    dev: float                              # mean score on the dev cases evaluated (errors count 0)
    cases: int                              # dev cases evaluated (fewer than dev when raced out)
    complete: bool = True                   # evaluated on every dev case
    parent: str | None = None               # id of the current prompt it was derived from
    budget_words: int | None = None         # the step's word budget (None: no budget)
    edit_words: int | None = None           # word-level Levenshtein distance to the parent
    errors: int = 0                         # dev cases that ended in a provider error
    holdout: float | None = None            # never set here: holdout scores are in FinalRecord
    rejected: Mapping[str, int] = field(default_factory=dict)   # the step's rejections by reason
    calls: int = 0                          # cumulative model calls when written
    tokens: int = 0
    cost: float = 0.0
    reverted: tuple[int, ...] | None = None  # a probe of the regression's location: the hunks it reverts
    kind: str = "prompt"

    def to_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "rejected": dict(self.rejected)}
        if self.reverted is None:
            del data["reverted"]             # records without a location read as before
        else:
            data["reverted"] = list(self.reverted)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PromptRecord":
        record = _from(cls, data)
        return record if record.reverted is None else replace(record, reverted=tuple(record.reverted))


@dataclass(frozen=True)
class StepRecord:
    step: int
    budget_words: int | None
    current: str                            # id of the current prompt the step started from
    shown: tuple[str, ...] = ()             # ids shown as the trajectory, in meta-prompt order
    similarity: str | None = None           # measure used for relevance retrieval, if any
    candidates: int = 0                     # texts returned by the optimizer
    evaluated: int = 0                      # new prompts sent to the task model
    duplicates: int = 0                     # candidates already scored (score reused)
    raced_out: int = 0                      # dropped early by racing
    rejected: Mapping[str, int] = field(default_factory=dict)
    selected: str | None = None             # id that became current (None: current unchanged)
    feedback: str | None = None             # the reflection text, when reflection is on
    spent: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "step"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shown"] = list(self.shown)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StepRecord":
        record = _from(cls, data)
        return StepRecord(**{**asdict(record), "shown": tuple(record.shown)})


@dataclass(frozen=True)
class FinalRecord:
    best: str                               # id of the best prompt on dev
    prompt: str
    original_dev: float
    best_dev: float
    original_holdout: float | None
    best_holdout: float | None
    edit_words: int                         # distance of the best prompt to the original
    proposed: bool
    message: str
    stop_reason: str | None = None
    spent: Mapping[str, Any] = field(default_factory=dict)
    kind: str = "final"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FinalRecord":
        return _from(cls, data)


def record_from_dict(data: Mapping[str, Any]) -> PromptRecord | StepRecord | FinalRecord:
    kind = data.get("kind")
    if kind == "prompt":
        return PromptRecord.from_dict(data)
    if kind == "step":
        return StepRecord.from_dict(data)
    if kind == "final":
        return FinalRecord.from_dict(data)
    raise ValueError(f"unknown trajectory record kind {kind!r}")
