"""Paired tests: known values, hand enumerations, determinism (stdlib only, no scipy/numpy)."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest

from gpo_action.stats import EXACT_SIGN_FLIP_MAX, mcnemar_exact, sign_flip_test


# --- mcnemar_exact -----------------------------------------------------------------------------

def _mcnemar_by_comb(b: int, c: int) -> float:
    n = b + c
    if n == 0:
        return 1.0
    tail = Fraction(sum(math.comb(n, k) for k in range(min(b, c) + 1)), 2 ** n)
    return float(min(Fraction(1), 2 * tail))


@pytest.mark.parametrize(("b", "c", "expected"), [
    (0, 0, 1.0),
    (10, 0, 2 / 1024),
    (0, 10, 0.001953125),
    (5, 5, 1.0),
    (1, 0, 1.0),            # 2 * P[X <= 0] with n = 1 is 1
    (3, 12, 2 * (1 + 15 + 105 + 455) / 2 ** 15),
    (12, 3, 0.03515625),
])
def test_mcnemar_known_values(b: int, c: int, expected: float) -> None:
    assert mcnemar_exact(b, c) == expected


def test_mcnemar_matches_math_comb_on_a_grid() -> None:
    for b in range(0, 40, 3):
        for c in range(0, 40, 5):
            assert mcnemar_exact(b, c) == pytest.approx(_mcnemar_by_comb(b, c), rel=1e-12, abs=0)
    assert mcnemar_exact(117, 1) == pytest.approx(_mcnemar_by_comb(117, 1), rel=1e-12)


def _mcnemar_by_logs(b: int, c: int) -> float:
    n, k = b + c, min(b, c)
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, 2 * math.exp(top) * math.fsum(math.exp(x - top) for x in logs))


def test_mcnemar_large_counts() -> None:
    assert mcnemar_exact(5000, 5000) == 1.0
    assert mcnemar_exact(700, 800) == pytest.approx(_mcnemar_by_comb(700, 800), rel=1e-12)
    assert mcnemar_exact(4990, 5010) == pytest.approx(_mcnemar_by_logs(4990, 5010), rel=1e-8)
    tiny = mcnemar_exact(4000, 6000)          # about 1e-89: tiny but not rounded to 0
    assert 0.0 < tiny < 1e-80
    assert tiny == pytest.approx(_mcnemar_by_logs(4000, 6000), rel=1e-8)


def test_mcnemar_rejects_bad_counts() -> None:
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)
    with pytest.raises(TypeError):
        mcnemar_exact(1.5, 3)  # type: ignore[arg-type]


# --- sign_flip_test ----------------------------------------------------------------------------

def _sign_flip_by_hand(diffs: list[float]) -> float:
    observed = abs(sum(diffs))
    patterns = list(itertools.product((1, -1), repeat=len(diffs)))
    extreme = sum(1 for signs in patterns
                  if abs(sum(s * d for s, d in zip(signs, diffs))) >= observed - 1e-12)
    return extreme / len(patterns)


def test_sign_flip_exact_three_values_by_hand() -> None:
    # sums of +-0.5 +-0.2 +-0.1: +-0.8, +-0.6, +-0.4, +-0.2; observed 0.4 -> 6 of 8 at least as extreme
    assert sign_flip_test([0.5, -0.2, 0.1]) == 0.75
    assert sign_flip_test([1.0, 1.0, 1.0, 1.0]) == 2 / 16


def test_sign_flip_exact_matches_full_enumeration() -> None:
    rng = random.Random(7)
    for size in (1, 5, 9, 12):
        diffs = [round(rng.uniform(-1, 1), 3) for _ in range(size)]
        assert sign_flip_test(diffs) == pytest.approx(_sign_flip_by_hand(diffs), abs=1e-12)


def test_sign_flip_exact_on_ties_equals_mcnemar() -> None:
    # With differences of +-1 the sign-flip null is the binomial one: the same p as McNemar.
    for b, c in [(3, 12), (0, 7), (2, 5), (8, 8), (0, 16)]:
        assert sign_flip_test([1.0] * c + [-1.0] * b) == pytest.approx(mcnemar_exact(b, c), abs=1e-12)


def test_sign_flip_zero_differences_change_nothing() -> None:
    diffs = [0.3, -0.1, 0.25, 0.4, -0.05]
    assert sign_flip_test(diffs + [0.0] * 40) == sign_flip_test(diffs)   # still exact: zeros dropped
    assert sign_flip_test([0.0] * 300) == 1.0
    assert sign_flip_test([]) == 1.0


def test_sign_flip_monte_carlo_close_to_exact_binomial() -> None:
    # 100 discordant +-1 differences: the Monte Carlo p must be near the exact McNemar value.
    diffs = [1.0] * 62 + [-1.0] * 38 + [0.0] * 150
    exact = mcnemar_exact(38, 62)
    assert len([d for d in diffs if d]) > EXACT_SIGN_FLIP_MAX
    p = sign_flip_test(diffs, n_resamples=20_000, seed=3)
    assert abs(p - exact) < 0.01


def test_sign_flip_monte_carlo_never_reports_zero() -> None:
    p = sign_flip_test([0.5] * 60, n_resamples=999, seed=0)
    assert p == 1 / 1000


def test_sign_flip_is_deterministic_by_seed() -> None:
    rng = random.Random(11)
    diffs = [rng.gauss(0.02, 0.2) for _ in range(250)]
    first = sign_flip_test(diffs, seed=5)
    assert sign_flip_test(diffs, seed=5) == first
    assert sign_flip_test(list(diffs), seed=5, n_resamples=10_000) == first
    others = {sign_flip_test(diffs, seed=s, n_resamples=2_000) for s in range(6)}
    assert len(others) > 1                   # the seed does drive the resampling


def test_sign_flip_graded_signal_and_noise() -> None:
    rng = random.Random(2)
    shifted = [rng.gauss(0.1, 0.2) for _ in range(200)]
    centred = [d - sum(shifted) / len(shifted) for d in shifted]
    assert sign_flip_test(shifted) < 0.001
    assert sign_flip_test(centred) > 0.5


def test_one_sided_halves_the_two_sided_p_on_the_side_of_a_gain_and_is_at_least_half_otherwise():
    from gpo_action.stats import one_sided

    # exact McNemar: 5 fixed, 0 broke -> P[X >= 5 | n=5] = 1/32, the one-sided tail
    assert one_sided(mcnemar_exact(0, 5), +5) == pytest.approx(1 / 32)
    assert one_sided(mcnemar_exact(5, 0), -5) == pytest.approx(1 - 1 / 32)
    assert one_sided(1.0, 0.0) == 0.5                 # a tie is no evidence for a gain
    diffs = [1.0, 0.5, 1.0, 0.25, 1.0, 0.75]          # every sign pattern enumerated: exact
    assert one_sided(sign_flip_test(diffs), sum(diffs)) == pytest.approx(1 / 64)
    with pytest.raises(ValueError):
        one_sided(1.5, 1.0)


# --- what a suite can detect -------------------------------------------------------------------

@pytest.mark.parametrize(("alpha", "flips"), [
    (0.05, 6),              # 2 * 2**-6 = 0.031 < 0.05; 2 * 2**-5 = 0.0625 is not
    (0.01, 8),              # 2 * 2**-8 = 0.0078; 2 * 2**-7 = 0.0156
    (0.1, 5),
    (0.5, 3),               # 2 * 2**-2 = 0.5 is not below 0.5
    (2 ** -5, 7),           # p < alpha is strict: 2 * 2**-6 equals it
])
def test_min_flips_by_hand(alpha: float, flips: int) -> None:
    from gpo_action.stats import min_flips

    assert min_flips(alpha) == flips
    assert mcnemar_exact(flips, 0) < alpha <= mcnemar_exact(flips - 1, 0)


@pytest.mark.parametrize(("n", "alpha", "drop"), [
    (12, 0.05, 0.5),        # 6 of 12 cases must fall, none rise
    (30, 0.05, 0.2),
    (300, 0.05, 0.02),
    (100, 0.01, 0.08),
    (6, 0.05, 1.0),
    (5, 0.05, None),        # even all five falling gives p = 0.0625
    (0, 0.05, None),
])
def test_detectable_drop_by_hand(n: int, alpha: float, drop: float | None) -> None:
    from gpo_action.stats import detectable_drop

    assert detectable_drop(n, alpha) == drop


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.1, 0.2])
def test_detectable_drop_is_the_least_over_every_outcome_of_the_test(alpha: float) -> None:
    from gpo_action.stats import detectable_drop

    for n in range(1, 41):
        drops = [Fraction(b - c, n) for b in range(n + 1) for c in range(n + 1 - b)
                 if b > c and mcnemar_exact(b, c) < alpha]
        expected = float(min(drops)) if drops else None
        assert detectable_drop(n, alpha) == expected, n


# --- intervals that agree with the tests -------------------------------------------------------

def test_mcnemar_interval_by_hand() -> None:
    from gpo_action.stats import mcnemar_interval

    # 5 of 12 cases fell, none rose: pi (the share of rises among the 5) has the Clopper-Pearson upper
    # bound 1 - 0.025**(1/5) and the lower bound 0; the change is (2 pi - 1) * 5 / 12.
    low, high = mcnemar_interval(5, 0, 12)
    assert low == pytest.approx(-5 / 12) and high == pytest.approx((1 - 2 * 0.025 ** (1 / 5)) * 5 / 12, abs=1e-9)
    assert low < 0 < high and mcnemar_exact(5, 0) == 0.0625
    assert mcnemar_interval(0, 5, 12) == pytest.approx((-high, 5 / 12), abs=1e-9)
    # 3 rises of 10 discordant pairs: Clopper-Pearson (0.0667, 0.6525), the textbook values
    low, high = mcnemar_interval(7, 3, 10)
    assert (low, high) == pytest.approx((2 * 0.06673 - 1, 2 * 0.65245 - 1), abs=2e-4)
    assert mcnemar_interval(0, 0, 8) == (0.0, 0.0)
    with pytest.raises(ValueError):
        mcnemar_interval(3, 3, 5)


@pytest.mark.parametrize("alpha", [0.05, 0.01, 0.2])
def test_mcnemar_interval_excludes_0_exactly_when_the_test_rejects(alpha: float) -> None:
    from gpo_action.stats import mcnemar_interval

    for b in range(45):
        for c in range(45):
            n = b + c + (b * 7 + c) % 11
            if n == 0:
                continue
            low, high = mcnemar_interval(b, c, n, alpha=alpha)
            assert low <= (c - b) / n <= high
            assert (low > 0 or high < 0) == (mcnemar_exact(b, c) < alpha), (b, c, n)


def _graded(rng: random.Random, n: int) -> list[float]:
    shift = rng.choice((-0.4, -0.15, 0.0, 0.15, 0.4))
    return [max(-1.0, min(1.0, round(shift + rng.choice((-1, 0, 0, 1)) * rng.random(), 2))) for _ in range(n)]


def test_sign_flip_interval_is_the_set_of_shifts_the_test_does_not_reject() -> None:
    from gpo_action.stats import sign_flip_interval

    rng = random.Random(5)
    checked = 0
    for _ in range(40):
        diffs = _graded(rng, rng.randint(2, 10))
        low, high = sign_flip_interval(diffs)
        for step in range(201):
            t = -1 + step / 100
            if min(abs(t - low), abs(t - high)) < 1e-6:
                continue                                  # on a bound: either answer is right
            kept = sign_flip_test([d - t for d in diffs]) >= 0.05
            assert kept == (low <= t <= high), (diffs, t, low, high)
            checked += 1
    assert checked > 7000


def test_sign_flip_interval_excludes_0_exactly_when_the_test_rejects_over_random_samples() -> None:
    from gpo_action.stats import sign_flip_interval

    rng = random.Random(11)
    rejected = kept = 0
    for _ in range(120):
        n = rng.choice((rng.randint(1, EXACT_SIGN_FLIP_MAX), rng.randint(EXACT_SIGN_FLIP_MAX + 1, 60)))
        diffs = _graded(rng, n)
        alpha = rng.choice((0.05, 0.01, 0.2))
        low, high = sign_flip_interval(diffs, alpha=alpha, seed=n)
        p = sign_flip_test(diffs, seed=n)
        assert -1.0 <= low <= sum(diffs) / n <= high <= 1.0
        assert (low > 0 or high < 0) == (p < alpha), (diffs, alpha, low, high, p)
        rejected += p < alpha
        kept += p >= alpha
    assert rejected > 20 and kept > 20                        # both sides of the rule were exercised


def test_sign_flip_interval_narrows_with_more_cases_and_is_deterministic() -> None:
    from gpo_action.stats import sign_flip_interval

    rng = random.Random(3)
    small, large = _graded(rng, 40), _graded(rng, 400)
    low_s, high_s = sign_flip_interval(small)
    low_l, high_l = sign_flip_interval(large)
    assert high_l - low_l < high_s - low_s
    assert sign_flip_interval(large, seed=4) == sign_flip_interval(list(large), seed=4)
    assert sign_flip_interval([0.0] * 5) == (-1.0, 1.0)      # five cases: no shift can be rejected
    with pytest.raises(ValueError):
        sign_flip_interval([])
