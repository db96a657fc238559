"""Results of an evaluation: per sample, per case, per suite. Frozen, JSON round-trippable."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Check:
    """One assertion's verdict on one output, as reported."""

    type: str
    passed: bool
    score: float
    reason: str = ""
    weight: float = 1.0
    metric: str | None = None   # the named score it adds to (rendered)


def metric_scores(checks) -> dict[str, float]:
    """Per metric, the weighted mean score of the checks naming it (promptfoo's namedScores; 0 when
    a metric's weights are all 0)."""
    sums: dict[str, list[float]] = {}
    for c in checks:
        if c.metric:
            entry = sums.setdefault(c.metric, [0.0, 0.0])
            entry[0] += c.score * c.weight
            entry[1] += c.weight
    return {name: (s / w if w > 0 else 0.0) for name, (s, w) in sums.items()}


def _mean_by_name(parts) -> dict[str, float]:
    """The mean of each name over the mappings in `parts` that have it."""
    totals: dict[str, list[float]] = {}
    for part in parts:
        for name, value in part.items():
            entry = totals.setdefault(name, [0.0, 0])
            entry[0] += value
            entry[1] += 1
    return {name: s / n for name, (s, n) in totals.items()}


@dataclass(frozen=True)
class SampleResult:
    """One model output for a case (there are `repeats` of them) and how it scored."""

    output: str | None
    score: float | None = None
    passed: bool = False
    checks: tuple[Check, ...] = ()
    error: str | None = None
    error_type: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: bool = False


_SAMPLE_FIELDS = tuple(f.name for f in fields(SampleResult))
_CHECK_FIELDS = tuple(f.name for f in fields(Check))


def _sample_dict(sample: SampleResult) -> dict[str, Any]:
    """`asdict(sample)` without its deep copies (a 10,000-case report spent seconds in them)."""
    data = {name: getattr(sample, name) for name in _SAMPLE_FIELDS}
    data["checks"] = [{name: getattr(c, name) for name in _CHECK_FIELDS} for c in sample.checks]
    return data


class _cached:
    """functools.cached_property without the lock Python 3.11's takes on every first access (3.12
    dropped it; a merge of 10,000 cases per side makes ~90,000 first accesses): the results are
    frozen, so two threads racing for one compute the same value."""

    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func, self.name, self.__doc__ = func, func.__name__, func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


# Case and suite figures are cached (`_cached`): the results are frozen, and a 10,000-case merge
# asked `CaseResult.error` about 500,000 times.
@dataclass(frozen=True)
class CaseResult:
    case_id: str
    vars: Mapping[str, Any]
    expected: Any
    samples: tuple[SampleResult, ...]
    source: str = ""

    @_cached
    def error(self) -> str | None:
        """A case with any errored sample is an error, counted apart from failures."""
        for s in self.samples:
            if s.error is not None:
                return s.error
        return None

    @property
    def error_type(self) -> str | None:
        for s in self.samples:
            if s.error is not None:
                return s.error_type
        return None

    @_cached
    def score(self) -> float | None:
        if self.error is not None or not self.samples:
            return None
        return sum(s.score or 0.0 for s in self.samples) / len(self.samples)

    @_cached
    def pass_rate(self) -> float | None:
        if self.error is not None or not self.samples:
            return None
        return sum(1 for s in self.samples if s.passed) / len(self.samples)

    @property
    def passed(self) -> bool:
        rate = self.pass_rate
        return rate is not None and rate >= 0.5

    @property
    def output(self) -> str | None:
        return self.samples[0].output if self.samples else None

    @property
    def tokens(self) -> int:
        return sum(s.prompt_tokens + s.completion_tokens for s in self.samples)

    @property
    def metrics(self) -> dict[str, float]:
        """Per named metric, its score averaged over the samples that were scored."""
        return dict(self._metric_items)

    @_cached
    def _metric_items(self) -> tuple[tuple[str, float], ...]:  # a tuple: `metrics` hands out a new dict each time
        return tuple(_mean_by_name(metric_scores(s.checks) for s in self.samples if s.error is None).items())

    @property
    def cost(self) -> float:
        return sum(s.cost for s in self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "vars": dict(self.vars),
            "expected": self.expected,
            "source": self.source,
            "score": self.score,
            "passed": self.passed,
            "error": self.error,
            **({"metrics": dict(self._metric_items)} if self._metric_items else {}),
            "samples": [_sample_dict(s) for s in self.samples],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CaseResult":
        samples = tuple(
            SampleResult(**{**s, "checks": tuple(Check(**c) for c in s.get("checks", ()))})
            for s in data["samples"]
        )
        return cls(data["case_id"], data["vars"], data.get("expected"), samples, data.get("source", ""))


@dataclass(frozen=True)
class SuiteResult:
    name: str
    path: str
    prompt: str
    model: str
    cases: tuple[CaseResult, ...]
    seconds: float = 0.0
    min_score: float | None = None
    notes: tuple[str, ...] = field(default=())

    @_cached
    def scored(self) -> tuple[CaseResult, ...]:
        return tuple(c for c in self.cases if c.error is None)

    @_cached
    def score(self) -> float | None:
        """Mean case score over the cases that did not error; None when every case errored."""
        scored = self.scored
        if not scored:
            return None
        return sum(c.score or 0.0 for c in scored) / len(scored)

    @property
    def passed(self) -> int:
        return sum(1 for c in self.scored if c.passed)

    @property
    def failed(self) -> int:
        return sum(1 for c in self.scored if not c.passed)

    @_cached
    def errors(self) -> int:
        return sum(1 for c in self.cases if c.error is not None)

    @property
    def error_rate(self) -> float:
        return self.errors / len(self.cases) if self.cases else 0.0

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.cases)

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.cases)

    @property
    def metrics(self) -> dict[str, float]:
        """Per named metric, the mean over the cases that did not error and have it."""
        return _mean_by_name(dict(c._metric_items) for c in self.scored if c._metric_items)

    @property
    def below_min(self) -> bool:
        return self.min_score is not None and self.score is not None and self.score < self.min_score

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "prompt": self.prompt,
            "model": self.model,
            "score": self.score,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "tokens": self.tokens,
            "cost": self.cost,
            "seconds": self.seconds,
            "min_score": self.min_score,
            "notes": list(self.notes),
            **({"metrics": metrics} if (metrics := self.metrics) else {}),
            "cases": [c.to_dict() for c in self.cases],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SuiteResult":
        return cls(
            name=data["name"],
            path=data["path"],
            prompt=data["prompt"],
            model=data["model"],
            cases=tuple(CaseResult.from_dict(c) for c in data["cases"]),
            seconds=data.get("seconds", 0.0),
            min_score=data.get("min_score"),
            notes=tuple(data.get("notes", ())),
        )
