"""The per-weight KL divergences of tfbayes.layers.kl against numerical integration."""

import numpy as np
import pytest
import scipy.integrate
import scipy.optimize
import scipy.stats
import tensorflow as tf

from tfbayes.layers import kl

LOG_ALPHAS = np.linspace(-8.0, 8.0, 33)


def _expected_log_abs_normal(mean, std):
    """E log|x| for x ~ N(mean, std^2) by adaptive quadrature (integrable log singularity at 0)."""
    density = scipy.stats.norm(mean, std).pdf
    lo, hi = mean - 40 * std, mean + 40 * std
    points = [0.0] if lo < 0 < hi else None
    value, _ = scipy.integrate.quad(
        lambda x: density(x) * np.log(abs(x)),
        lo,
        hi,
        points=points,
        limit=500,
        epsabs=1e-11,
        epsrel=1e-11,
    )
    return value


def _log_uniform_kl_up_to_constant(log_alpha):
    """KL(N(theta, alpha theta^2) || p(w) ~ 1/|w|) minus a constant (Molchanov et al. eq. 13).

    With w = theta * eps, eps ~ N(1, alpha): KL = -0.5 log alpha + E log|eps| + const.
    """
    alpha = np.exp(log_alpha)
    return -0.5 * log_alpha + _expected_log_abs_normal(1.0, np.sqrt(alpha))


@pytest.fixture(scope="module")
def log_uniform_reference():
    return np.array([_log_uniform_kl_up_to_constant(la) for la in LOG_ALPHAS])


def _evaluate(fn, x, dtype, mode):
    x = tf.constant(x, dtype)
    if mode == "eager":
        return fn(x).numpy()
    return tf.function(fn, jit_compile=(mode == "xla"))(x).numpy()


@pytest.mark.parametrize("mode", ["eager", "function", "xla"])
def test_log_uniform_kl_matches_quadrature_up_to_a_constant(log_uniform_reference, dtype, mode):
    reference = log_uniform_reference
    ours = _evaluate(kl.log_uniform_kl, LOG_ALPHAS, dtype, mode)
    assert ours.dtype == dtype
    offset = ours - reference
    # The approximation of eq. (14) is within ~0.01 nats of the truth up to one constant.
    assert np.max(np.abs(offset - np.median(offset))) < 0.012
    # Our constant makes KL -> 0 as alpha -> inf; there E log|eps| - 0.5 log alpha tends to
    # E log|z| = -(euler_gamma + log 2) / 2 for z ~ N(0, 1), so the offset is its negative.
    assert np.median(offset) == pytest.approx((np.euler_gamma + np.log(2.0)) / 2, abs=0.012)


def test_ard_kl_is_the_gaussian_kl_at_the_optimal_prior_variance(dtype):
    theta, sigma = 0.7, 0.7 * np.exp(0.5 * LOG_ALPHAS)

    def gaussian_kl(prior_var, s):
        return 0.5 * (np.log(prior_var / s**2) + (s**2 + theta**2) / prior_var - 1.0)

    reference = []
    for s in sigma:
        best = scipy.optimize.minimize_scalar(
            lambda lv, s=s: gaussian_kl(np.exp(lv), s),
            bounds=(-20, 20),
            method="bounded",
            options={"xatol": 1e-10},
        )
        reference.append(best.fun)
    ours = _evaluate(kl.ard_kl, LOG_ALPHAS, dtype, "eager")
    np.testing.assert_allclose(
        ours, reference, rtol=1e-5 if dtype == np.float32 else 1e-8, atol=1e-6
    )


def test_log_alpha_is_log_sigma2_minus_log_theta2_and_clipped(dtype):
    theta = np.array([0.5, -2.0, 1e-6, 3.0], dtype)
    log_sigma2 = np.array([-3.0, 1.0, 0.0, -40.0], dtype)
    ours = kl.log_alpha(tf.constant(theta), tf.constant(log_sigma2)).numpy()
    expected = np.clip(log_sigma2 - np.log(theta.astype(np.float64) ** 2), -8, 8)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    assert ours.dtype == dtype


def test_unknown_prior_is_rejected():
    assert kl.get_prior_kl("ard") is kl.ard_kl
    with pytest.raises(ValueError, match="prior: expected one of .*'log_uniform'.*got 'laplace'"):
        kl.get_prior_kl("laplace")
