"""How alike two prompts are, for relevance retrieval.

Registered measures (`SIMILARITIES`, read through `get_similarity(name)`):

- `tfidf`: cosine of TF-IDF word vectors fitted on the prompts being compared (pure Python,
  local, free). The default, and the one used when no embedding model is configured.

An embedding measure through the LLM client (`models.embedding`) is a planned addition; the
trajectory records which measure a run used.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Callable, Protocol, Sequence

from gpo_action.optimize.registry import lookup, registrar

_WORD = re.compile(r"\w+")


class Similarity(Protocol):
    name: str

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        """Similarity of each document to the query, in [0, 1] (1 = same words, same weights)."""
        ...


SIMILARITIES: dict[str, Callable[[], Similarity]] = {}
register_similarity = registrar(SIMILARITIES, "similarity")


def get_similarity(name: str) -> Callable[[], Similarity]:
    return lookup(SIMILARITIES, "similarity", name)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore); Jinja delimiters are not words."""
    return _WORD.findall(text.lower())


def tfidf_similarities(query: str, documents: Sequence[str]) -> list[float]:
    """Cosine similarity of `query` to each document; IDF is smoothed, ln((1 + n) / (1 + df)) + 1,
    over the query and the documents together."""
    bags = [Counter(words(text)) for text in (query, *documents)]
    n = len(bags)
    df: Counter[str] = Counter()
    for bag in bags:
        df.update(bag.keys())
    idf = {word: math.log((1 + n) / (1 + count)) + 1.0 for word, count in df.items()}
    vectors = [{word: tf * idf[word] for word, tf in bag.items()} for bag in bags]
    norms = [math.sqrt(sum(v * v for v in vector.values())) for vector in vectors]
    q, q_norm = vectors[0], norms[0]
    out: list[float] = []
    for vector, norm in zip(vectors[1:], norms[1:]):
        if not q_norm or not norm:
            out.append(0.0)
            continue
        dot = sum(weight * vector.get(word, 0.0) for word, weight in q.items())
        out.append(min(1.0, dot / (q_norm * norm)))
    return out


@register_similarity("tfidf")
class TfidfSimilarity:
    name = "tfidf"

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        return tfidf_similarities(query, documents)
