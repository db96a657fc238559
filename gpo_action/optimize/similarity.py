"""How alike two prompts are, for relevance retrieval.

Registered measures (`SIMILARITIES`, read through `get_similarity(name)`; a factory takes the
keyword arguments `client` and `model`, which only `embedding` uses):

- `tfidf`: cosine of TF-IDF word vectors fitted on the prompts being compared (pure Python,
  local, free). The default, and the one used when no embedding model is configured.
- `embedding`: cosine of the prompts' embeddings from `models.embedding`, through the LLM client
  (`client.embed`: cached, so a prompt is embedded once). Its name in the trajectory is
  `embedding:<model>`. If the embedding calls fail it falls back to `tfidf` for the rest of the run
  and calls `on_fallback(note)`.

The trajectory records which measure a run used.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Callable, Protocol, Sequence

from gpo_action.errors import ProviderError
from gpo_action.llm.completer import BudgetedCompleter
from gpo_action.registry import Registry

_WORD = re.compile(r"\w+")


class Similarity(Protocol):
    name: str

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        """Similarity of each document to the query, in [0, 1] (1 = same words, same weights)."""
        ...


SIMILARITIES: Registry[Callable[..., Similarity]] = Registry("similarity")
register_similarity = SIMILARITIES.decorator


def get_similarity(name: str) -> Callable[..., Similarity]:
    return SIMILARITIES.lookup(name)


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


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine of two vectors (0.0 when either is all zeros)."""
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b)) / norm if norm else 0.0


@register_similarity("tfidf")
class TfidfSimilarity:
    name = "tfidf"

    def __init__(self, **_: Any):
        pass

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        return tfidf_similarities(query, documents)


@register_similarity("embedding")
class EmbeddingSimilarity:
    """Cosine of embeddings by `model` through `client.embed`; tfidf after a ProviderError."""

    def __init__(self, *, client: BudgetedCompleter | None = None, model: Any = None,
                 on_fallback: Callable[[str], None] | None = None, **_: Any):
        if client is None or model is None:
            raise ValueError("the embedding similarity needs a client and models.embedding")
        self.client, self.model, self.on_fallback = client, model, on_fallback
        self.name = f"embedding:{model.name}"
        self.failed: str | None = None
        self.limit: Any = None  # the engine's CallLimit for the next retrieval (None: no call cap)

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        if self.failed is None:
            try:
                vectors = self.client.embed(self.model, [query, *documents], limit=self.limit)
                return [cosine(vectors[0], vector) for vector in vectors[1:]]
            except ProviderError as error:
                self.failed = f"embedding similarity failed ({error}): using tfidf for the rest of the run"
                self.name = "tfidf"
                if self.on_fallback is not None:
                    self.on_fallback(self.failed)
        return tfidf_similarities(query, documents)
