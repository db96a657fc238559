"""Update directions: which earlier prompts the optimizer is shown beside the current one.

The current prompt and its score are always shown (the paper's "P+M"); a direction adds a
trajectory ("momentum"), in the order the meta-prompt shows it. Registered (`DIRECTIONS`, read
through `get_direction(name)`):

- `none`: no trajectory (APE, APO).
- `recency`: the last k prompts of the trajectory, oldest first, the current one last (OPRO, PE2).
- `relevance`: the k-1 earlier prompts most similar to the current one, plus the current one, in
  ascending similarity, so the current one is last (GPO).
- `importance`: the k best-scoring prompts of the trajectory, in ascending score.

Reflection on failed cases (APO, PE2) is a separate switch of the spec, not a direction.
"""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

from gpo_action.optimize.similarity import Similarity
from gpo_action.optimize.trajectory import PromptRecord
from gpo_action.registry import Registry


class Direction(Protocol):
    name: str
    uses_similarity: bool       # recorded in the trajectory when True

    def retrieve(self, history: Sequence[PromptRecord], k: int, similarity: Similarity) -> list[PromptRecord]:
        """Entries of `history` (oldest first; the last is the current prompt) to show, in order."""
        ...


DIRECTIONS: Registry[Callable[[], Direction]] = Registry("direction")
register_direction = DIRECTIONS.decorator


def get_direction(name: str) -> Callable[[], Direction]:
    return DIRECTIONS.lookup(name)


@register_direction("none")
class NoTrajectory:
    name = "none"
    uses_similarity = False

    def retrieve(self, history, k, similarity):
        return []


@register_direction("recency")
class Recency:
    name = "recency"
    uses_similarity = False

    def retrieve(self, history, k, similarity):
        return list(history[-k:])


@register_direction("relevance")
class Relevance:
    name = "relevance"
    uses_similarity = True

    def retrieve(self, history, k, similarity):
        if not history:
            return []
        current, earlier = history[-1], list(history[:-1])
        if k <= 1 or not earlier:
            return [current]
        scores = similarity.scores(current.prompt, [e.prompt for e in earlier])
        ranked = sorted(range(len(earlier)), key=lambda i: (-scores[i], -i))  # most similar; ties: latest
        chosen = sorted(ranked[: k - 1], key=lambda i: (scores[i], i))          # shown least similar first
        return [earlier[i] for i in chosen] + [current]


@register_direction("importance")
class Importance:
    name = "importance"
    uses_similarity = False

    def retrieve(self, history, k, similarity):
        ranked = sorted(range(len(history)), key=lambda i: (-history[i].dev, -i))
        chosen = sorted(ranked[:k], key=lambda i: (history[i].dev, i))
        return [history[i] for i in chosen]
