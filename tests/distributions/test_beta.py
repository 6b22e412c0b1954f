"""tfbayes.distributions.Beta: gradients through log-Gammas, statistics, errors."""

import numpy as np
import pytest
import scipy.integrate
import scipy.special as sc
import scipy.stats as st
import tensorflow as tf
import tensorflow_probability as tfp

from test_dirichlet import RTOL, mp_log_simplex_jacobian
from tfbayes.distributions import Beta
from tfbayes.distributions.gamma import sample_log_standard_gamma
from tf_modes import MODES, run_in_mode

CONCENTRATION1 = np.array([1e-3, 1e-3, 0.4, 1.0, 6.0, 1e3, 1e3, 30.0])
CONCENTRATION0 = np.array([1e-3, 5.0, 0.4, 1.0, 0.05, 1e-3, 2e3, 30.0])


@pytest.mark.parametrize("mode", MODES)
def test_per_sample_gradients_match_mpmath(dtype, mode):
    c1 = tf.constant(np.tile(CONCENTRATION1, [2]), dtype)
    c0 = tf.constant(np.tile(CONCENTRATION0, [2]), dtype)

    def draw(c1, c0):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([c1, c0])
            log_x = Beta(c1, c0).log_sample(seed=(0, 21))
        # x = g1 / (g1 + g0): the same Gamma draws ([2, 1, batch]), to evaluate the reference at.
        stacked = tf.stack([c1, c0])[:, None]
        log_gamma = tf.transpose(
            sample_log_standard_gamma(tf.shape(stacked), stacked, (0, 21))[:, 0]
        )
        return log_x, log_gamma, tape.gradient(log_x, c1), tape.gradient(log_x, c0)

    log_x, log_gamma, d_c1, d_c0 = (t.numpy() for t in run_in_mode(draw, mode, c1, c0))
    ref = mp_log_simplex_jacobian(np.stack([c1.numpy(), c0.numpy()], -1), log_gamma)[:, 0]
    ours = np.stack([d_c1, d_c0], -1)
    assert np.all(np.isfinite(ours))
    representable = np.abs(ref) > 1e3 * np.finfo(dtype).tiny
    assert np.all(ours[representable] != 0)
    rel = np.abs(ours - ref)[representable] / np.abs(ref[representable])
    print(
        f"Beta d log x/d a1, d log x/d a0, {np.dtype(dtype).name}, {mode}: max relative error "
        f"{rel.max():.2e} over {rel.size} entries"
    )
    assert rel.max() <= RTOL[dtype]


def test_monte_carlo_gradients_match_closed_forms():
    # d E[x]/d a1 = a0 / (a1 + a0)^2 and d E[log x]/d a1 = psi'(a1) - psi'(a1 + a0).
    n, a1, a0 = 4000, 0.8, 2.5
    c1 = tf.fill([n], tf.constant(a1, tf.float64))
    c0 = tf.fill([n], tf.constant(a0, tf.float64))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([c1, c0])
        log_x = Beta(c1, c0).log_sample(seed=(0, 17))
        x = tf.exp(log_x)
    cases = [
        (tape.gradient(x, c1), a0 / (a1 + a0) ** 2),
        (tape.gradient(x, c0), -a1 / (a1 + a0) ** 2),
        (tape.gradient(log_x, c1), sc.polygamma(1, a1) - sc.polygamma(1, a1 + a0)),
        (tape.gradient(log_x, c0), -sc.polygamma(1, a1 + a0)),
    ]
    for values, truth in cases:
        values = values.numpy()
        se = values.std() / np.sqrt(n)
        assert abs(values.mean() - truth) < 4 * se, (values.mean(), truth, se)


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_samples_follow_the_beta_law(mode):
    c1, c0 = np.array([0.3, 2.0, 40.0]), np.array([0.5, 2.0, 3.0])
    x = run_in_mode(
        lambda a, b: Beta(a, b).sample(3000, seed=(0, 4)), mode, tf.constant(c1), tf.constant(c0)
    ).numpy()
    for j in range(3):
        assert st.kstest(x[:, j], st.beta(c1[j], c0[j]).cdf).pvalue > 1e-3


def test_statistics_match_scipy(dtype):
    c1 = np.array([0.5, 1.0, 2.5, 30.0], dtype)
    c0 = np.array([0.7, 3.0, 2.0, 4.0], dtype)
    dist = Beta(c1, c0)
    ref = st.beta(c1.astype(float), c0.astype(float))
    x = np.array([0.3, 0.1, 0.8, 0.9], dtype)
    rtol = 5e-5 if dtype == np.float32 else 1e-12
    assert dist.batch_shape == [4] and dist.event_shape == []
    assert dist.reparameterization_type == tfp.distributions.FULLY_REPARAMETERIZED
    np.testing.assert_allclose(dist.log_prob(x), ref.logpdf(x), rtol=rtol)
    np.testing.assert_allclose(dist.cdf(x), ref.cdf(x), rtol=rtol)
    np.testing.assert_allclose(dist.mean(), ref.mean(), rtol=rtol)
    np.testing.assert_allclose(dist.variance(), ref.var(), rtol=rtol)
    np.testing.assert_allclose(dist.entropy(), ref.entropy(), rtol=rtol)
    mode = dist.mode().numpy()
    assert np.isnan(mode[:2]).all()
    np.testing.assert_allclose(mode[2:], ((c1 - 1) / (c1 + c0 - 2))[2:], rtol=rtol)
    np.testing.assert_allclose(
        dist.cdf(np.array([-0.5, 1.5, 0.3, 0.3], dtype)),
        [0.0, 1.0, ref.cdf(0.3)[2], ref.cdf(0.3)[3]],
        rtol=rtol,
    )


def test_kl_matches_numerical_integration():
    p, q = st.beta(2.5, 1.5), st.beta(0.8, 3.0)
    ref, _ = scipy.integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), 0, 1)
    kl = tfp.distributions.kl_divergence(Beta(2.5, 1.5), Beta(0.8, 3.0)).numpy()
    np.testing.assert_allclose(kl, ref, rtol=1e-5)


def test_validate_args_and_shape_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="`concentration1` must be positive"):
        Beta([-1.0, 1.0], 1.0, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`concentration0` must be positive"):
        Beta(1.0, 0.0, validate_args=True)
    with pytest.raises(ValueError, match="`concentration1`: \\(3,\\), `concentration0`: \\(2,\\)"):
        Beta([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(TypeError, match="`concentration0` must be a floating-point tensor"):
        Beta(1.0, tf.constant(2))
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="Sample must be less than or equal to `1`"
    ):
        Beta(1.0, 2.0, validate_args=True).log_prob(1.5)
