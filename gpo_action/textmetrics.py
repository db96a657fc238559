"""Reference-overlap metrics: `rouge-n` and `bleu`, short pure implementations of the formulas,
with the choices promptfoo makes (it uses js-rouge for ROUGE and its own BLEU).

rouge-n (pass at 0.75): ROUGE-1 as js-rouge computes it, the F-measure (beta 1) of unigram
precision and recall, case-sensitive, over word and punctuation tokens (`\\w+` runs and each other
non-space character: close to js-rouge's treebank tokenizer, which also splits contractions):
    m = sum over n-grams g of min(count_out(g), count_ref(g));  P = m / |out|, R = m / |ref|;
    score = 2PR / (P + R) (0 when m = 0).

bleu (BLEU-4, pass at 0.5): over lower-cased whitespace-separated words, as promptfoo. For n = 1..4,
p_n = the most clipped n-gram matches against any one reference / the output's n-grams (a p_n of 0
counts as 1e-7, promptfoo's smoothing); score = BP * exp(mean of log p_n), where the brevity
penalty BP = 1 if c > r else exp(1 - r / c), c the output's length and r the length of the
reference closest to it (the first on a tie). (promptfoo's own code computes exp(1 - c / r) here,
which rewards a short output with a BP above 1; we keep Papineni et al.'s penalty.)

`value` may be a list of references for bleu; for rouge-n a list gives the best score over them.
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
BLEU_ZERO_PRECISION = 1e-7
_TOKEN = re.compile(r"\w+|[^\w\s]")


def rouge_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def bleu_tokens(text: str) -> list[str]:
    return text.lower().split()


def ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def _matches(out: Counter, ref: Counter) -> int:
    return sum(min(count, ref[gram]) for gram, count in out.items())


def rouge_n(candidate: str, reference: str, n: int = 1) -> float:
    """ROUGE-N F-measure of `candidate` against `reference` (see the module doc)."""
    out, ref = ngrams(rouge_tokens(candidate), n), ngrams(rouge_tokens(reference), n)
    matched = _matches(out, ref)
    if not matched:
        return 0.0
    precision, recall = matched / sum(out.values()), matched / sum(ref.values())
    return 2 * precision * recall / (precision + recall)


def bleu(candidate: str, references: Sequence[str], max_n: int = BLEU_MAX_N) -> float:
    """Sentence BLEU of `candidate` against `references` (see the module doc)."""
    out = bleu_tokens(candidate)
    refs = [bleu_tokens(r) for r in references]
    if not out or not refs:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        grams = ngrams(out, n)
        total = sum(grams.values())
        best = max(_matches(grams, ngrams(ref, n)) for ref in refs)
        precision = best / total if total else 0.0
        log_sum += math.log(precision or BLEU_ZERO_PRECISION) / max_n
    c = len(out)
    r = min((len(ref) for ref in refs), key=lambda length: abs(length - c))  # min keeps the first of ties
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
    return _graded(score, assertion, DEFAULT_ROUGE_THRESHOLD, "ROUGE-1")


@checker("bleu")
def bleu_score(output: str, value: Any, assertion: Assertion) -> Verdict:
    return _graded(bleu(output, _references(value, "bleu")), assertion, DEFAULT_BLEU_THRESHOLD, "BLEU-4")
