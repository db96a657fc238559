"""Paired tests for base-versus-head comparisons: pure functions, standard library only.

- `mcnemar_exact(b, c)`: exact two-sided McNemar test on the discordant pairs of pass/fail
  outcomes (b = passed on base only, c = passed on head only).
- `sign_flip_test(diffs)`: two-sided paired permutation test of "mean difference == 0", for
  graded scores or per-case means over repeats.
- `one_sided(p, effect)`: the one-sided p-value of "effect > 0" from either test's two-sided one.
- `mcnemar_interval(b, c, n)`, `sign_flip_interval(diffs)`: the (1 - alpha) interval of the change
  that inverts the matching test, so it excludes 0 exactly when that test's p < alpha (shown beside it).
- `min_flips(alpha)`, `detectable_drop(n, alpha)`: the smallest fall of a pass rate over n paired
  cases that McNemar's test can ever call significant (what an "unchanged" verdict could have seen).

Randomness comes only from `random.Random(seed)`: the same input and seed give the same answer.
Speed matters because a run compares every suite: with 250 paired cases, 10,000 sign-flip
resamples take about 10 ms in CPython 3.11 on an idle core. `sign_flip_interval` draws its own
10,000 patterns and sorts their means, and runs the test once more: measured on 2 shared cores
(load 4), 0.24 s for 250 cases and 1.1 s for 1,000 (the test alone: 0.14 s and 0.64 s there);
`mcnemar_interval` takes 8 ms for 250 discordant pairs and 0.6 s for 5,800.
"""

from __future__ import annotations

import math
import random
from operator import getitem
from typing import Iterable, Sequence

__all__ = ["mcnemar_exact", "sign_flip_test", "one_sided", "mcnemar_interval", "sign_flip_interval", "min_flips",
           "detectable_drop", "EXACT_SIGN_FLIP_MAX"]

# Up to this many non-zero differences the sign-flip test enumerates all 2**n sign patterns.
EXACT_SIGN_FLIP_MAX = 16

# Differences are floats: a resampled statistic counts as "at least as extreme" as the observed
# one when it falls short of it by no more than this fraction of sum(|d|) (rounding noise only).
_REL_TOL = 1e-9


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` and `c` discordant pairs.

    Under the null each discordant pair is equally likely to go either way, so with
    X ~ Binomial(b + c, 1/2) the p-value is min(1, 2 * P[X <= min(b, c)]); it is 1.0 when there
    are no discordant pairs. Computed with exact integers (one big-integer division at the end),
    so it is exact to float precision for any size; b + c = 10,000 takes about 25 ms.
    """
    for name, value in (("b", b), ("c", c)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    n, k = b + c, min(b, c)
    if n == 0 or 2 * k == n:
        return 1.0
    term = total = 1                      # C(n, 0)
    for i in range(k):                    # C(n, i + 1) = C(n, i) * (n - i) / (i + 1), exact
        term = term * (n - i) // (i + 1)
        total += term
    return min(1.0, (2 * total) / (1 << n))


def one_sided(p_two_sided: float, effect: float) -> float:
    """One-sided p-value of "the effect is positive" from the two-sided p of `mcnemar_exact` or
    `sign_flip_test`. Both nulls are symmetric, so the tail on the side of a positive effect holds
    half of the two-sided p (exactly, for McNemar and the enumerated sign-flip test); an effect
    that is zero or negative is no evidence for a gain, and gets 1 - p/2 (at least 0.5)."""
    if not 0.0 <= p_two_sided <= 1.0:
        raise ValueError(f"p must be between 0 and 1, got {p_two_sided}")
    return p_two_sided / 2 if effect > 0 else 1.0 - p_two_sided / 2


def _clean(diffs: Iterable[float]) -> list[float]:
    values = [float(d) for d in diffs]
    for d in values:
        if not math.isfinite(d):
            raise ValueError(f"differences must be finite numbers, got {d!r}")
    return values


def _subset_sum_table(values: Sequence[float]) -> list[float]:
    """Sums of every subset of `values`; entry i sums the values whose bit is set in i."""
    table = [0.0]
    for v in values:
        table += [s + v for s in table]
    return table


def sign_flip_test(diffs: Iterable[float], *, n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired sign-flip (permutation) test of "mean difference == 0".

    Under the null each per-case difference is as likely to have the other sign, so the
    statistic |sum of sign-flipped diffs| is compared with the observed |sum of diffs|.
    Zero differences do not change the statistic under any sign and are dropped first. With at
    most `EXACT_SIGN_FLIP_MAX` (16) non-zero differences every sign pattern is enumerated and the
    p-value is exact; otherwise `n_resamples` random patterns are drawn and the p-value is
    (count + 1) / (n_resamples + 1), which never reports 0. No differences, or only zeros, give 1.0.
    """
    values = [d for d in _clean(diffs) if d != 0.0]
    if not values:
        return 1.0
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    total = sum(values)
    # |flipped sum| = |2 * (sum of the diffs kept positive) - total|; count patterns at least as
    # extreme as the observed one (all kept positive), within rounding tolerance.
    threshold = abs(total) - _REL_TOL * sum(abs(d) for d in values)
    n = len(values)
    if n <= EXACT_SIGN_FLIP_MAX:
        table = _subset_sum_table(values)
        hits = sum(1 for p in table if abs(2.0 * p - total) >= threshold)
        return hits / len(table)
    # Monte Carlo: one random bit per difference, read eight at a time through per-byte tables of
    # subset sums, so a resample costs n/8 lookups instead of n additions.
    tables = [_subset_sum_table(values[i:i + 8]) for i in range(0, n, 8)]
    n_bytes = len(tables)
    rng = random.Random(seed)
    bits = rng.getrandbits
    hits = 0
    for _ in range(n_resamples):
        kept = sum(map(getitem, tables, bits(n).to_bytes(n_bytes, "little")))
        if abs(2.0 * kept - total) >= threshold:
            hits += 1
    return (hits + 1) / (n_resamples + 1)


# --- what a suite can detect ------------------------------------------------------------------

def min_flips(alpha: float) -> int:
    """The fewest discordant pairs, all going one way, with which `mcnemar_exact` reaches p < alpha:
    the least k with 2 * 2**-k < alpha (6 at alpha 0.05, 8 at 0.01). Powers of two are exact floats."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    k = 1
    while 2.0 ** (1 - k) >= alpha:
        k += 1
    return k


def detectable_drop(n: int, alpha: float) -> float | None:
    """The smallest fall of a pass rate over `n` paired pass/fail cases that `mcnemar_exact` can
    call significant at `alpha` (p < alpha), as a fraction of the cases; None when no fall can be.

    A fall of the pass rate by m/n takes b = m + c cases that pass on base and fail on head against
    c the other way, and p = 2 * P[Bin(m + 2c, 1/2) <= c], which for a fixed m only grows with c:
    the best case is c = 0, p = 2 * 2**-m. So the answer is `min_flips(alpha)` / n, or None when
    that exceeds n (`tests/test_stats.py` checks this against every (b, c) for small n).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    k = min_flips(alpha)
    return None if k > n else k / n


# --- intervals that agree with the tests -------------------------------------------------------

_BISECTIONS = 40            # halvings of a bracket of width <= 1: about 1e-12, far below one case in a million


def _binom_sum(lo: int, hi: int, n: int, p: float) -> float:
    """P[lo <= Bin(n, p) <= hi], summed in log space (no underflow for large n)."""
    lo, hi = max(lo, 0), min(hi, n)
    if lo > hi:
        return 0.0
    if p <= 0.0:
        return 1.0 if lo == 0 else 0.0
    if p >= 1.0:
        return 1.0 if hi == n else 0.0
    lp, lq, ln = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    logs = [ln - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * lp + (n - i) * lq for i in range(lo, hi + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def _tail_at_least(c: int, d: int, p: float) -> float:
    """P[Bin(d, p) >= c], from the shorter of the two sums."""
    return _binom_sum(c, d, d, p) if d - c <= c else 1.0 - _binom_sum(0, c - 1, d, p)


def _tail_at_most(c: int, d: int, p: float) -> float:
    return 1.0 - _tail_at_least(c + 1, d, p)


def _boundary(accepted, rejected_end: float, accepted_end: float) -> float:
    """Bisect between a point the test rejects and one it accepts; the accepted end of the last bracket."""
    for _ in range(_BISECTIONS):
        mid = (rejected_end + accepted_end) / 2
        if accepted(mid):
            accepted_end = mid
        else:
            rejected_end = mid
    return accepted_end


def mcnemar_interval(b: int, c: int, n: int, *, alpha: float = 0.05) -> tuple[float, float]:
    """The (1 - alpha) interval of the paired change of a pass rate, (c - b) / n, that is exact for
    `mcnemar_exact(b, c)`: it excludes 0 exactly when that p-value is below alpha.

    Given the d = b + c discordant pairs, c ~ Bin(d, pi) and the change is (2 pi - 1) d / n. The
    bounds on pi are the equal-tailed Clopper-Pearson ones (P[X >= c] = alpha/2 below, P[X <= c] =
    alpha/2 above), the inversion of the exact binomial test whose value at pi = 1/2 is McNemar's
    (twice the smaller tail). The side of 1/2 each bound falls on is taken from `mcnemar_exact`
    itself, so rounding in the float tails can never make the interval and the test disagree.
    """
    p_value = mcnemar_exact(b, c)
    if n < b + c:
        raise ValueError(f"n ({n}) must be at least b + c ({b + c})")
    d = b + c
    if d == 0:
        return 0.0, 0.0
    half = alpha / 2
    rejects = p_value < alpha
    if c == 0:
        low = 0.0
    else:
        above = lambda pi: _tail_at_least(c, d, pi) >= half       # noqa: E731  (pi not rejected from below)
        low = _boundary(above, 0.5, c / d) if rejects and 2 * c > d else _boundary(above, 0.0, min(0.5, c / d))
    if c == d:
        high = 1.0
    else:
        below = lambda pi: _tail_at_most(c, d, pi) >= half        # noqa: E731
        high = _boundary(below, 0.5, c / d) if rejects and 2 * c < d else _boundary(below, 1.0, max(0.5, c / d))
    scale = d / n
    return (2 * low - 1) * scale, (2 * high - 1) * scale


def _flip_patterns(values: list[float], n_resamples: int, seed: int) -> tuple[list[tuple[float, int]], bool]:
    """(sum, size) of the flipped set of every sign pattern of `values` (all 2**n of them when n is at
    most EXACT_SIGN_FLIP_MAX), or of `n_resamples` random ones; and whether they are all of them."""
    n = len(values)
    if n <= EXACT_SIGN_FLIP_MAX:
        sums, sizes = [0.0], [0]
        for v in values:
            sums += [s + v for s in sums]
            sizes += [k + 1 for k in sizes]
        return list(zip(sums, sizes)), True
    tables = [_subset_sum_table(values[i:i + 8]) for i in range(0, n, 8)]
    n_bytes = len(tables)
    bits = random.Random(seed).getrandbits
    out = []
    for _ in range(n_resamples):
        pattern = bits(n)
        out.append((sum(map(getitem, tables, pattern.to_bytes(n_bytes, "little"))), pattern.bit_count()))
    return out, False


def sign_flip_interval(diffs: Iterable[float], *, alpha: float = 0.05, n_resamples: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """The (1 - alpha) interval of the mean paired difference that inverts `sign_flip_test`: the
    shifts t for which the sign-flip test of the differences minus t is not rejected at alpha. It
    excludes 0 exactly when `sign_flip_test(diffs, n_resamples=..., seed=...)` is below alpha.

    Sign flips of fixed values are symmetric, so the test's two-sided p at t is twice the tail on
    the side of the observed sum: below the mean, 2 * #{patterns whose flipped set F has
    sum(d_F) <= |F| t} / #patterns, which only grows with t (the bound is a quantile of the means of
    the flipped sets, as in Hartigan's randomization intervals). Every case counts, zeros included
    (a zero minus t is not zero). Up to EXACT_SIGN_FLIP_MAX cases every pattern is used; beyond,
    `n_resamples` seeded random ones, counted as the test counts them ((hits + 1) / (resamples + 1)).
    Monte Carlo draws and rounding may place a bound a hair on the other side of 0 from the test's
    own decision; the bound nearest 0 is then moved to the nearest flipped-set mean (or to 0) on
    the test's side, so the interval and the p-value never disagree about 0. Bounds lie in [-1, 1],
    the range of a difference of 0..1 scores, and around the mean.
    """
    values = _clean(diffs)
    if not values:
        raise ValueError("sign_flip_interval needs at least one difference")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    n = len(values)
    mean = sum(values) / n
    patterns, exact = _flip_patterns(values, n_resamples, seed)
    empty = sum(1 for _, size in patterns if size == 0) + (0 if exact else 1)   # the observed pattern itself
    means = sorted(total / size for total, size in patterns if size)
    count = len(patterns) + (0 if exact else 1)
    need = math.ceil(alpha * count / 2 - 1e-12)     # patterns needed on the observed side for p >= alpha
    if need <= empty:
        low, high = -1.0, 1.0
    else:
        low, high = means[need - empty - 1], means[len(means) - (need - empty)]
    low, high = max(-1.0, min(low, mean)), min(1.0, max(high, mean))
    rejects = sign_flip_test(values, n_resamples=n_resamples, seed=seed) < alpha
    if mean > 0 and rejects != (low > 0):
        low = min((m for m in means if 0 < m <= mean), default=mean) if rejects else 0.0
    elif mean < 0 and rejects != (high < 0):
        high = max((m for m in means if mean <= m < 0), default=mean) if rejects else 0.0
    return low, high
