"""Step-size schedules: how many words step t of T may change (the "learning rate").

Registered (`SCHEDULES`, read through `get_schedule(name)`), each `(start, end, warmup)`:

- `none`: no budget (the meta-prompt says nothing about size; nothing is enforced).
- `fixed`: `start` words at every step.
- `linear`: int(end + (start - end) * (1 - t / T)).
- `cosine`: int(end + (start - end) * 0.5 * (1 + cos(pi * t / T))); GPO's, 50 -> 10.

With `warmup` w > 0, steps 1..w rise linearly from `end` to `start`, and the decay then runs over
the remaining T - w steps. `scaled_words(value, template_words, scale_words)` stretches a budget
for long templates: the paper's 50 -> 10 was set for short instructions.
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

from gpo_action.registry import Registry


class Schedule(Protocol):
    name: str

    def budget(self, step: int, total: int) -> int | None:
        """Words step `step` (1-based) of `total` may change; None for no budget."""
        ...


SCHEDULES: Registry[Callable[[int, int, int], Schedule]] = Registry("schedule")
register_schedule = SCHEDULES.decorator


def get_schedule(name: str) -> Callable[[int, int, int], Schedule]:
    return SCHEDULES.lookup(name)


def scaled_words(value: int, template_words: int, scale_words: int | None) -> int:
    """`value` times max(1, template_words / scale_words), rounded; unchanged when scale_words is None."""
    if not scale_words:
        return value
    return int(round(value * max(1.0, template_words / scale_words)))


class _Decay:
    """Shared warmup handling; subclasses give `decay(fraction)` in [0, 1] (1 = start, 0 = end)."""

    name = ""

    def __init__(self, start: int, end: int, warmup: int = 0):
        if start < 0 or end < 0 or warmup < 0:
            raise ValueError("schedule start, end and warmup must be 0 or more")
        self.start, self.end, self.warmup = start, end, warmup

    def decay(self, fraction: float) -> float:
        raise NotImplementedError

    def budget(self, step: int, total: int) -> int | None:
        if step < 1 or total < 1:
            raise ValueError(f"step {step} of {total}: steps count from 1")
        w = min(self.warmup, max(total - 1, 0))
        if step <= w:
            return int(self.end + (self.start - self.end) * step / w)
        fraction = (step - w) / (total - w)
        return int(self.end + (self.start - self.end) * self.decay(fraction))


@register_schedule("none")
class NoBudget:
    name = "none"

    def __init__(self, start: int = 0, end: int = 0, warmup: int = 0):
        pass

    def budget(self, step: int, total: int) -> int | None:
        return None


@register_schedule("fixed")
class Fixed(_Decay):
    name = "fixed"

    def budget(self, step: int, total: int) -> int | None:
        return self.start


@register_schedule("linear")
class Linear(_Decay):
    name = "linear"

    def decay(self, fraction: float) -> float:
        return 1.0 - fraction


@register_schedule("cosine")
class Cosine(_Decay):
    name = "cosine"

    def decay(self, fraction: float) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * fraction))
