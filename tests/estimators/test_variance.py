"""Reported variances vs numerical integration (the survey's Section 3), and control variates.

A Gaussian with 4 members carries the survey's test functions
``x, x^2, exp(-x^2), cos x``; ``f = sum_j h_j(x_j)``. For each estimator,
``N`` times the variance that ``gradient_variance`` reports must match the
per-sample variance computed by scipy quadrature within 5 standard errors of
the variance estimate (score function: including the noise the other
members' terms add, ``E[(F s_j)^2]`` with ``F = sum_i h_i``).
"""

import numpy as np
import pytest
import scipy.integrate
import scipy.stats as st
import tensorflow as tf
import tensorflow_probability as tfp

import tfbayes.estimators as est
from tfbayes.estimators.quadrature import gaussian_estimator_variances
from estimator_references import GAMMA, NORMAL, exact_gradient, sum_of_functions

tfd = tfp.distributions

LOC = np.array([0.5, -0.8, 0.3, 1.2])
SCALE = np.array([1.0, 0.6, 1.5, 0.8])
H = (lambda x: x, lambda x: x**2, lambda x: np.exp(-(x**2)), np.cos)
DH = (
    lambda x: 1.0 + 0.0 * x,
    lambda x: 2 * x,
    lambda x: -2 * x * np.exp(-(x**2)),
    lambda x: -np.sin(x),
)
TF_H = (lambda x: x, lambda x: x**2, lambda x: tf.exp(-(x**2)), tf.cos)
REPEATS, SAMPLES = 300, 10


def f(x):
    return tf.add_n([h(x[:, j]) for j, h in enumerate(TF_H)])


def per_sample_variances():
    """``{estimator: [variance wrt loc_j, variance wrt scale_j]}`` by quadrature; each member's
    score-function noise includes the other members' terms."""

    def expect(fn, m, s):
        return scipy.integrate.quad(
            lambda x: fn(x) * st.norm.pdf(x, m, s), m - 12 * s, m + 12 * s, epsabs=1e-13, limit=200
        )[0]

    moments = [
        (expect(h, m, s), expect(lambda x: h(x) ** 2, m, s)) for h, m, s in zip(H, LOC, SCALE)
    ]
    out = {"score_function": [], "pathwise": [], "measure_valued": []}
    for j, (h, dh, m, s) in enumerate(zip(H, DH, LOC, SCALE)):
        other_mean = sum(m1 for i, (m1, _) in enumerate(moments) if i != j)
        other_var = sum(m2 - m1**2 for i, (m1, m2) in enumerate(moments) if i != j)
        variances = gaussian_estimator_variances(
            h, dh, m, s, other_mean=other_mean, other_second_moment=other_var + other_mean**2
        )
        for name in out:
            out[name].append(variances[name])
    return {k: np.array(v).T for k, v in out.items()}  # [2 (loc, scale), 4]


def test_quadrature_variances_of_a_linear_function_have_closed_forms():
    # h(x) = x, x = mu + sigma eps: score function (mu + sigma eps) eps / sigma has variance
    # mu^2 / sigma^2 + 2; pathwise 1 and eps: 0 and 1; measure-valued 2 r / sqrt(2 pi) with a
    # Rayleigh r: 4 / pi - 1, and m (1 - u) with a double-sided Maxwell m: E m^2 E (1 - u)^2 = 1.
    mu, sigma = 0.7, 1.3
    variances = gaussian_estimator_variances(lambda x: x, lambda x: 1.0, mu, sigma)
    np.testing.assert_allclose(variances["score_function"][0], mu**2 / sigma**2 + 2, rtol=1e-10)
    np.testing.assert_allclose(variances["pathwise"], (0.0, 1.0), atol=1e-10)
    np.testing.assert_allclose(variances["measure_valued"], (4 / np.pi - 1, 1.0), rtol=1e-8)
    assert "score_function+delta" not in variances
    with pytest.raises(ValueError, match="scale: expected a positive float, got 0.0"):
        gaussian_estimator_variances(lambda x: x, lambda x: 1.0, mu, 0.0)


@pytest.fixture(scope="module")
def reference_variances():
    return per_sample_variances()


@pytest.mark.parametrize("estimator", ["score_function", "pathwise", "measure_valued"])
def test_reported_variance_matches_quadrature(estimator, reference_variances):
    params = [tf.constant(LOC), tf.constant(SCALE)]
    stats = est.gradient_variance(
        getattr(est, estimator),
        f,
        tfd.Normal(*params),
        SAMPLES,
        REPEATS,
        seed=(0, 21),
        parameters=params,
    )
    for k, (estimates, variance) in enumerate(zip(stats.estimates, stats.variance)):
        estimates = estimates.numpy()
        squared = (estimates - estimates.mean(0)) ** 2
        error = np.sqrt(squared.var(0) / REPEATS)
        expected = reference_variances[estimator][k] / SAMPLES
        assert np.all(np.abs(variance.numpy() - expected) <= 5 * error + 1e-12), (
            k,
            variance.numpy(),
            expected,
            error,
        )


CV_REPEATS, CV_SAMPLES = 40, 50


def _stats(estimator, case=NORMAL, seed=(0, 31), **options):
    params = [tf.constant(p, tf.float64) for p in case.params]
    return est.gradient_variance(
        estimator,
        sum_of_functions(case),
        case.make(*params),
        CV_SAMPLES,
        CV_REPEATS,
        seed=seed,
        parameters=params,
        **options,
    )


@pytest.mark.parametrize(
    "estimator,coefficient",
    [
        ("score_function", 1.0),
        ("score_function", "optimal"),
        ("pathwise", "optimal"),
        ("measure_valued", "optimal"),
        ("measure_valued", 0.5),
    ],
)
def test_delta_method_keeps_the_expectation(estimator, coefficient):
    stats = _stats(getattr(est, estimator), control_variate="delta", coefficient=coefficient)
    for mean, variance, exact in zip(stats.mean, stats.variance, exact_gradient(NORMAL)):
        assert np.all(
            np.abs(mean.numpy() - exact) <= 4 * np.sqrt(variance.numpy() / CV_REPEATS) + 1e-10
        )


def _section3_stats(scale, **options):
    params = [tf.constant(LOC), tf.constant(scale, tf.float64)]
    # 400 repeats: the variance ratio at scale 0.5 is 0.16-0.20 (measured with three seeds), and
    # with 100 repeats its estimate scatters past the 0.25 bound.
    return est.gradient_variance(
        est.score_function,
        f,
        tfd.Normal(*params),
        CV_SAMPLES,
        400,
        seed=(0, 3),
        parameters=params,
        **options,
    )


def test_optimal_coefficient_lowers_the_score_function_variance():
    """Survey Sec. 7.4: where the Taylor expansion is good (small scales), the delta method
    removes most of the score function's variance."""
    scale = [0.3, 0.4, 0.5, 0.3]
    plain = _section3_stats(scale)
    controlled = _section3_stats(scale, control_variate="delta", coefficient="optimal")
    for with_cv, without in zip(controlled.variance, plain.variance):
        assert np.all(with_cv.numpy() < 0.25 * without.numpy())
    # Cost: one more evaluation of f (at the mean) and the fresh samples of the coefficient.
    assert controlled.cost == plain.cost + 1 + CV_SAMPLES
    # With a baseline, which also applies to h so that it cancels in f - beta h.
    loo = _section3_stats(scale, baseline="leave_one_out")
    both = _section3_stats(
        scale, baseline="leave_one_out", control_variate="delta", coefficient="optimal"
    )
    for with_cv, without in zip(both.variance, loo.variance):
        with_cv, without = with_cv.numpy(), without.numpy()
        assert np.all(with_cv < without)
        assert np.all(with_cv[[0, 1, 3]] < 0.25 * without[[0, 1, 3]])  # x, x^2, cos x


def test_optimal_coefficient_limits_a_poor_control_variate():
    """Where the expansion is poor (exp(-x^2) at scale 2), beta = 1 multiplies the variance
    and the estimated optimal coefficient keeps it near that of no control variate."""
    scale = [2.0, 2.0, 2.0, 2.0]
    plain = _section3_stats(scale).variance[1].numpy()[2]
    fixed = _section3_stats(scale, control_variate="delta").variance[1].numpy()[2]
    optimal = (
        _section3_stats(scale, control_variate="delta", coefficient="optimal")
        .variance[1]
        .numpy()[2]
    )
    assert fixed > 2 * plain and optimal < 0.5 * fixed


def test_quadratic_f_is_exact_with_the_delta_method():
    """For a quadratic f, h = f: with beta = 1 the estimate is the exact gradient."""
    loc, scale = tf.constant([0.3, -0.4], tf.float64), tf.constant([0.8, 1.6], tf.float64)
    stats = est.gradient_variance(
        est.score_function,
        lambda x: tf.reduce_sum((x - 0.2) ** 2, -1) + x[:, 0] * x[:, 1],
        tfd.Normal(loc, scale),
        5,
        4,
        seed=(0, 2),
        parameters=[loc, scale],
        control_variate="delta",
    )
    for estimates, exact in zip(stats.estimates, [2 * (loc - 0.2) + loc[::-1], 2 * scale]):
        np.testing.assert_allclose(estimates.numpy(), np.broadcast_to(exact, (4, 2)), rtol=1e-10)


def test_delta_method_for_linear_and_constant_f():
    """f linear in x (zero Hessian) or constant: h = f, the estimate is exact."""
    loc = tf.constant([0.3, -0.4], tf.float64)
    for f, exact in (
        (lambda x: 2.0 * x[:, 0] - x[:, 1], [2.0, -1.0]),
        (lambda x: 0.0 * x[:, 0] + 1.5, [0.0, 0.0]),
    ):
        stats = est.gradient_variance(
            est.score_function,
            f,
            tfd.Normal(loc, 1.0),
            5,
            3,
            seed=(0, 4),
            parameters=[loc],
            control_variate="delta",
        )
        np.testing.assert_allclose(
            stats.estimates[0].numpy(), np.broadcast_to(exact, (3, 2)), atol=1e-12
        )


def test_delta_method_on_gamma_keeps_the_expectation():
    stats = _stats(est.score_function, GAMMA, control_variate="delta", coefficient="optimal")
    for mean, variance, exact in zip(stats.mean, stats.variance, exact_gradient(GAMMA)):
        assert np.all(
            np.abs(mean.numpy() - exact) <= 4 * np.sqrt(variance.numpy() / CV_REPEATS) + 1e-10
        )
