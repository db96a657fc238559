"""`similar`: the cosine similarity of the embeddings of the output and of `value` (or the case's
expected) is at least `threshold` (default 0.75, as promptfoo). A list of values passes when any
one is similar enough; the score is the best similarity. `not-similar` passes below the threshold.

The embeddings come from `models.embedding` through the client (`client.embed`), which caches
them in the response cache: `evaluate` asks for the texts `similar_texts` names and hands the
vectors over in `ResponseFacts.embeddings`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from gpo_action.assertions import Assertion, ResponseFacts, Verdict, checker

DEFAULT_SIMILAR_THRESHOLD = 0.75


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0 when either vector is all zeros."""
    if len(a) != len(b):
        raise ValueError(f"embeddings of different sizes ({len(a)} and {len(b)})")
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _values(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError("similar needs a text (or a list of texts) in `value` or the case's expected")
    return values


def similar_texts(output: str, value: Any, assertion: Assertion) -> list[str]:
    """The texts whose embeddings `similar` compares: the output, then each value."""
    return [output, *_values(value)]


@checker("similar", facts=True, embeds=similar_texts)
def similar(output: str, value: Any, assertion: Assertion, facts: ResponseFacts) -> Verdict:
    values = _values(value)
    missing = [t for t in [output, *values] if t not in facts.embeddings]
    if missing:
        raise ValueError("similar needs embeddings: set models.embedding in gpo.yaml")
    best = max(cosine(facts.embeddings[output], facts.embeddings[v]) for v in values)
    threshold = DEFAULT_SIMILAR_THRESHOLD if assertion.threshold is None else assertion.threshold
    ok = best >= threshold - 1e-9
    return Verdict(ok, max(0.0, best), f"similarity {best:.3f} {'>=' if ok else '<'} {threshold:g}")
