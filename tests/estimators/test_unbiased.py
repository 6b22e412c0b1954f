"""Every estimator is unbiased on every distribution it supports.

For each case of ``estimator_references`` (5 batch members carrying the
constant, linear, quadratic, cubic and cosine test functions), the mean of
``R`` gradient estimates matches the closed-form gradient within 4 standard
errors (the standard error estimated from the ``R`` repeats). The closed forms
are first checked against scipy quadrature and finite differences.
"""

import numpy as np
import pytest
import tensorflow as tf

import tfbayes.estimators as est
from estimator_references import (
    CASES,
    EXPONENTIAL,
    GAMMA,
    NORMAL,
    POISSON,
    TFBAYES_GAMMA,
    exact_gradient,
    quadrature_expectation,
    sum_of_functions,
)

REPEATS, SAMPLES = 40, 250


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_closed_forms_match_quadrature(case):
    params = [tf.constant(p, tf.float64) for p in case.params]
    np.testing.assert_allclose(
        case.expectation(params).numpy(),
        quadrature_expectation(case, case.params),
        rtol=1e-8,
        atol=1e-9,
    )
    # Gradient of the closed form vs central differences of the quadrature; member j's
    # expectation depends only on member j's parameters.
    exact = exact_gradient(case)
    for i, p in enumerate(case.params):
        for index in np.ndindex(p.shape):
            step = 1e-5 * max(1.0, abs(p[index]))
            up, down = [q.copy() for q in case.params], [q.copy() for q in case.params]
            up[i][index] += step
            down[i][index] -= step
            member = index[:1]
            difference = (
                quadrature_expectation(case, up, member)
                - quadrature_expectation(case, down, member)
            )[0] / (2 * step)
            np.testing.assert_allclose(exact[i][index], difference, rtol=1e-5, atol=1e-6)


def _check_unbiased(case, estimator, seed, **options):
    # Our samplers cost most per call: fewer, larger repeats (the standard error is still
    # estimated from 20 of them).
    repeats, samples = (20, 500) if case.name.startswith("tfbayes") else (REPEATS, SAMPLES)
    params = [tf.constant(p, tf.float64) for p in case.params]
    stats = est.gradient_variance(
        estimator,
        sum_of_functions(case),
        case.make(*params),
        samples,
        repeats,
        seed=(0, seed),
        parameters=params,
        **options,
    )
    for mean, variance, exact in zip(stats.mean, stats.variance, exact_gradient(case)):
        standard_error = np.sqrt(variance.numpy() / repeats)
        assert np.all(np.abs(mean.numpy() - exact) <= 4 * standard_error + 1e-12), (
            case.name,
            mean.numpy(),
            exact,
            standard_error,
        )
    return stats


# The score function only needs ``log_prob``; it is tested on TFP's families (our samplers
# are exercised by the pathwise tests, where their gradients matter).
SCORE_FUNCTION_CASES = [NORMAL, EXPONENTIAL, GAMMA, POISSON]
PATHWISE_CASES = [c for c in CASES if c is not POISSON]
MEASURE_VALUED_CASES = [NORMAL, EXPONENTIAL, GAMMA, TFBAYES_GAMMA, POISSON]


@pytest.mark.parametrize("case", SCORE_FUNCTION_CASES, ids=lambda c: c.name)
def test_score_function_unbiased(case):
    _check_unbiased(case, est.score_function, 11)


@pytest.mark.parametrize("case", PATHWISE_CASES, ids=lambda c: c.name)
def test_pathwise_unbiased(case):
    _check_unbiased(case, est.pathwise, 12)


@pytest.mark.parametrize(
    "case,coupled",
    [
        (c, coupled)
        for c in MEASURE_VALUED_CASES
        for coupled in (True, False)
        if coupled or c is not TFBAYES_GAMMA
    ],
    ids=lambda v: getattr(v, "name", "coupled" if v else "independent"),
)
def test_measure_valued_unbiased(case, coupled):
    stats = _check_unbiased(case, est.measure_valued, 13, coupled=coupled)
    # 2 D evaluations per sample for D parameter elements, plus the N for the value.
    dimension = sum(p.size for p in case.params)
    samples = 500 if case.name.startswith("tfbayes") else SAMPLES
    assert stats.cost == samples * (1 + 2 * dimension)


def test_measure_valued_gradient_of_constant_is_exactly_zero():
    params = [tf.constant(p, tf.float64) for p in NORMAL.params]
    stats = est.gradient_variance(
        est.measure_valued,
        lambda x: tf.reduce_sum(0 * x, -1) + 2.0,
        NORMAL.make(*params),
        10,
        5,
        seed=(0, 1),
        parameters=params,
    )
    for estimates in stats.estimates:
        np.testing.assert_array_equal(estimates.numpy(), 0.0)


@pytest.mark.parametrize("baseline", ["leave_one_out", "moving_average", "callable"])
def test_score_function_with_baselines_unbiased(baseline):
    if baseline == "moving_average":
        baseline = est.MovingAverageBaseline(decay=0.8, dtype=tf.float64)
    elif baseline == "callable":
        baseline = lambda: tf.constant(3.0, tf.float64)  # noqa: E731
    stats = _check_unbiased(NORMAL, est.score_function, 14, baseline=baseline)
    plain = est.gradient_variance(
        est.score_function,
        sum_of_functions(NORMAL),
        NORMAL.make(*NORMAL.params),
        SAMPLES,
        REPEATS,
        seed=(0, 14),
    )
    # A baseline near E f lowers the variance of every component here.
    if not callable(baseline) or isinstance(baseline, est.MovingAverageBaseline):
        for with_baseline, without in zip(stats.variance, plain.variance):
            assert np.all(with_baseline.numpy() < without.numpy())
