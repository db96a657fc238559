"""Budgets as small any-of stoppers over what a run has spent.

A stopper answers two questions about a `Spend`: is its cap reached (`exhausted`), and how many
more calls like a projected one fit under it (`room`, None = it sets no limit), after keeping a
`reserve` (the final holdout check). The engine asks before every dispatch, so no cap is crossed.
`gates_dispatch` is False for a stopper that ends the loop but never refuses a call (`max_steps`:
the final holdout check still runs after the last step).

Registered (`STOPPERS`, read through `get_stopper(name)`; each factory takes the cap):

- `max_steps`: optimisation steps finished.
- `max_calls`: model calls, task and optimizer together (retries included).
- `max_task_calls`: calls to the task model (and the judge, for llm-rubric assertions).
- `max_optimizer_calls`: calls to the optimizer model (candidates and reflection).
- `max_tokens`: prompt plus completion tokens.
- `max_usd`: cost in US dollars, as priced by the provider.
- `max_seconds`: wall-clock seconds on a monotonic clock, summed over resumed sessions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping, Protocol, Sequence

from gpo_action.registry import Registry

ROLES = ("task", "optimizer")


@dataclass
class Spend:
    """What a run has used so far (mutable; restored from state.json on resume)."""

    steps: int = 0
    task_calls: int = 0
    optimizer_calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        return self.task_calls + self.optimizer_calls

    def calls_of(self, role: str | None) -> int:
        if role is None:
            return self.calls
        return self.task_calls if role == "task" else self.optimizer_calls

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "calls": self.calls}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Spend":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Dispatch:
    """A projected use of the budget: `calls` calls of `role`, with their tokens, cost and seconds."""

    role: str
    calls: int
    tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0

    def times(self, n: int) -> "Dispatch":
        return Dispatch(self.role, self.calls * n, self.tokens * n, self.cost * n, self.seconds * n)


class Stopper(Protocol):
    name: str
    limit: float
    gates_dispatch: bool

    def exhausted(self, spend: Spend) -> bool: ...

    def room(self, spend: Spend, unit: Dispatch, reserve: Sequence[Dispatch] = ()) -> int | None: ...


STOPPERS: Registry[Callable[[float], Stopper]] = Registry("stopper")
register_stopper = STOPPERS.decorator


def get_stopper(name: str) -> Callable[[float], Stopper]:
    return STOPPERS.lookup(name)


def _fit(left: float, per_call: float) -> int | None:
    """Calls of size `per_call` that fit in `left`; None when a call uses none of it."""
    if per_call <= 0:
        return 0 if left <= 0 else None
    return max(0, math.floor(left / per_call + 1e-9))


@register_stopper("max_steps")
class MaxSteps:
    name = "max_steps"
    gates_dispatch = False

    def __init__(self, limit: float):
        self.limit = int(limit)

    def exhausted(self, spend):
        return spend.steps >= self.limit

    def room(self, spend, unit, reserve=()):
        return None


class _CallCap:
    name = ""
    gates_dispatch = True
    role: str | None = None

    def __init__(self, limit: float):
        self.limit = int(limit)

    def _counts(self, role: str) -> bool:
        return self.role is None or self.role == role

    def exhausted(self, spend):
        return spend.calls_of(self.role) >= self.limit

    def room(self, spend, unit, reserve=()):
        if not self._counts(unit.role):
            return None
        kept = sum(d.calls for d in reserve if self._counts(d.role))
        return max(0, self.limit - spend.calls_of(self.role) - kept)


@register_stopper("max_calls")
class MaxCalls(_CallCap):
    name = "max_calls"


@register_stopper("max_task_calls")
class MaxTaskCalls(_CallCap):
    name = "max_task_calls"
    role = "task"


@register_stopper("max_optimizer_calls")
class MaxOptimizerCalls(_CallCap):
    name = "max_optimizer_calls"
    role = "optimizer"


class _SpendCap:
    """A cap on one figure that both `Spend` and `Dispatch` carry (`figure`: tokens, cost, seconds)."""

    name = ""
    gates_dispatch = True
    figure = ""
    limit_type: Callable[[float], float] = float  # int for counts

    def __init__(self, limit: float):
        self.limit = self.limit_type(limit)

    def exhausted(self, spend):
        return getattr(spend, self.figure) >= self.limit

    def room(self, spend, unit, reserve=()):
        left = self.limit - getattr(spend, self.figure) - sum(getattr(d, self.figure) for d in reserve)
        return _fit(left, getattr(unit, self.figure))


@register_stopper("max_tokens")
class MaxTokens(_SpendCap):
    name = "max_tokens"
    figure = "tokens"
    limit_type = int


@register_stopper("max_usd")
class MaxUsd(_SpendCap):
    name = "max_usd"
    figure = "cost"


@register_stopper("max_seconds")
class MaxSeconds(_SpendCap):
    name = "max_seconds"
    figure = "seconds"


class AnyStopper:
    """Stoppers joined by "any": the first exhausted one stops the run; the tightest room binds."""

    def __init__(self, stoppers: Sequence[Stopper]):
        self.stoppers = tuple(stoppers)

    def stop_reason(self, spend: Spend, dispatch: bool = False) -> str | None:
        """The first exhausted stopper; with `dispatch`, only those that refuse calls."""
        return next((s.name for s in self.stoppers if (s.gates_dispatch or not dispatch) and s.exhausted(spend)), None)

    def room(self, spend: Spend, unit: Dispatch, reserve: Sequence[Dispatch] = ()) -> tuple[int | None, str | None]:
        """(calls that fit, the stopper that binds); (None, None) when nothing limits calls."""
        best: tuple[int | None, str | None] = (None, None)
        for stopper in self.stoppers:
            room = stopper.room(spend, unit, reserve)
            if room is not None and (best[0] is None or room < best[0]):
                best = (room, stopper.name)
        return best

    def limit_of(self, name: str) -> float | None:
        return next((s.limit for s in self.stoppers if s.name == name), None)
