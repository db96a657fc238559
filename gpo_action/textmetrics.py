"""Reference-overlap metrics: `rouge-n` and `bleu`, short pure implementations of the formulas.

Both tokenize the same way: lower-cased runs of letters, digits and underscores (`\\w+`).

rouge-n (promptfoo's default: unigrams, pass at 0.75): the share of the reference's n-grams that
the output has, each counted at most as often as the output has it (ROUGE-N recall):
    sum over reference n-grams g of min(count_out(g), count_ref(g)) / number of reference n-grams.

bleu (BLEU-4, promptfoo's default pass mark 0.5): the geometric mean of the clipped n-gram
precisions p1..p4 (each output n-gram counted at most as often as the most any one reference has
it), times the brevity penalty BP = 1 if c > r else exp(1 - r / c), where c is the output's length
and r the length of the reference closest to it (the shorter one on a tie). No smoothing: a
precision of 0 gives 0. `value` may be a list of references for bleu; for rouge-n a list gives
the best score over its references.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any, Sequence

from gpo_action.assertions import Assertion, Verdict, checker

DEFAULT_ROUGE_THRESHOLD = 0.75
DEFAULT_BLEU_THRESHOLD = 0.5
BLEU_MAX_N = 4
_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    """ROUGE-N recall of `candidate` against `reference` (0 when the reference has no n-gram)."""
    ref = ngrams(tokens(reference), n)
    total = sum(ref.values())
    if not total:
        return 0.0
    out = ngrams(tokens(candidate), n)
    return sum(min(count, out[gram]) for gram, count in ref.items()) / total


def bleu(candidate: str, references: Sequence[str], max_n: int = BLEU_MAX_N) -> float:
    """Sentence BLEU of `candidate` against `references` (see the module doc)."""
    out = tokens(candidate)
    refs = [tokens(r) for r in references]
    if not out or not refs:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        grams = ngrams(out, n)
        total = sum(grams.values())
        if not total:
            return 0.0
        most = Counter()
        for ref in refs:
            for gram, count in ngrams(ref, n).items():
                most[gram] = max(most[gram], count)
        clipped = sum(min(count, most[gram]) for gram, count in grams.items())
        if not clipped:
            return 0.0
        log_sum += math.log(clipped / total) / max_n
    c = len(out)
    r = min((len(ref) for ref in refs), key=lambda length: (abs(length - c), length))
    penalty = 1.0 if c > r else math.exp(1 - r / c)
    return penalty * math.exp(log_sum)


def _references(value: Any, name: str) -> list[str]:
    refs = value if isinstance(value, list) else [value]
    if not refs or not all(isinstance(r, str) and r.strip() for r in refs):
        raise ValueError(f"{name} needs a reference text (or a list of them) in `value` or the case's expected")
    return refs


def _graded(score: float, assertion: Assertion, default: float, name: str) -> Verdict:
    threshold = default if assertion.threshold is None else assertion.threshold
    ok = score >= threshold - 1e-9
    return Verdict(ok, score, f"{name} {score:.3f} {'>=' if ok else '<'} {threshold:g}")


@checker("rouge-n")
def rouge(output: str, value: Any, assertion: Assertion) -> Verdict:
    score = max(rouge_n(output, ref) for ref in _references(value, "rouge-n"))
    return _graded(score, assertion, DEFAULT_ROUGE_THRESHOLD, "ROUGE-1 recall")


@checker("bleu")
def bleu_score(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _graded(bleu(output, _references(value, "bleu")), assertion, DEFAULT_BLEU_THRESHOLD, "BLEU-4")
