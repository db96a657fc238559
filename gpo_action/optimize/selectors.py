"""Selection rules: which of a step's scored candidates becomes the current prompt.

Registered (`SELECTORS`, read through `get_selector(name)`):

- `paper`: the best-scoring candidate not selected before becomes current and joins the
  trajectory, even when it scores below the incumbent (what the paper does: the search may
  leave a local optimum). Ties go to the earliest candidate.
- `greedy`: the best-scoring candidate becomes current only when it beats the incumbent.

Candidates raced out on a partial dev slice are never selected. The run's result is always
the best dev score seen, whatever the rule.
"""

from __future__ import annotations

from typing import Callable, Collection, Protocol, Sequence

from gpo_action.optimize.trajectory import PromptRecord
from gpo_action.registry import Registry


class Selector(Protocol):
    name: str

    def select(self, candidates: Sequence[PromptRecord], current: PromptRecord,
               selected: Collection[str]) -> PromptRecord | None:
        """The next current prompt among `candidates` (ids in `selected` were current before), or None."""
        ...


SELECTORS: Registry[Callable[[], Selector]] = Registry("selector")
register_selector = SELECTORS.decorator


def get_selector(name: str) -> Callable[[], Selector]:
    return SELECTORS.lookup(name)


def _best(candidates: Sequence[PromptRecord], selected: Collection[str]) -> PromptRecord | None:
    pool = [c for c in candidates if c.complete and c.id not in selected]
    if not pool:
        return None
    top = max(c.dev for c in pool)
    return next(c for c in pool if c.dev == top)


@register_selector("paper")
class PaperSelection:
    name = "paper"

    def select(self, candidates, current, selected):
        return _best(candidates, selected)


@register_selector("greedy")
class GreedySelection:
    name = "greedy"

    def select(self, candidates, current, selected):
        best = _best(candidates, selected)
        return best if best is not None and best.dev > current.dev else None
