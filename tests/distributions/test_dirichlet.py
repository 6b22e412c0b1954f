"""tfbayes.distributions.Dirichlet: gradients through log-Gammas, statistics, errors."""

import mpmath
import numpy as np
import pytest
import scipy.stats as st
import tensorflow as tf
import tensorflow_probability as tfp

from test_incomplete_gamma import mp_gamma_log_grads
from tfbayes.distributions import Dirichlet
from tfbayes.distributions.gamma import sample_log_standard_gamma
from tf_modes import MODES, run_in_mode

# The accuracy table: Beta and Dirichlet gradients w.r.t. each concentration.
RTOL = {np.float32: 1e-4, np.float64: 1e-10}
CONCENTRATIONS = np.array(
    [[1e-3, 0.5, 20.0], [3.0, 1e3, 0.02], [1.0, 1.0, 1.0], [1e-3, 1e-3, 1e-3], [250.0, 7.0, 0.1]]
)


def mp_log_simplex_jacobian(concentration, log_gamma):
    """d log x_i / d a_j = (delta_ij - x_j) g_j for x = g / sum(g), at 40 digits.

    ``g_j = d log G_j / d a_j`` comes from mpmath; the diagonal uses
    ``1 - x_i = sum_{l != i} x_l``. Shapes: ``[..., k]`` in, ``[..., k, k]`` out.
    """
    grads = mp_gamma_log_grads(concentration.ravel(), log_gamma.ravel()).reshape(
        concentration.shape
    )
    k = concentration.shape[-1]
    out = np.zeros(concentration.shape + (k,))
    with mpmath.workdps(40):
        for index in np.ndindex(concentration.shape[:-1]):
            log_g = [mpmath.mpf(float(v)) for v in log_gamma[index]]
            total = mpmath.fsum(mpmath.exp(v) for v in log_g)
            x = [mpmath.exp(v) / total for v in log_g]
            for i in range(k):
                for j in range(k):
                    weight = mpmath.fsum(x[m] for m in range(k) if m != i) if i == j else -x[j]
                    out[index + (i, j)] = float(weight * grads[index + (j,)])
    return out


@pytest.mark.parametrize("mode", MODES)
def test_per_sample_gradients_match_mpmath(dtype, mode):
    a = tf.constant(np.tile(CONCENTRATIONS, [2, 1, 1]), dtype)  # batch [2, 5], k = 3

    def draw(a):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(a)
            log_x = Dirichlet(a).log_sample(seed=(0, 5))
            rows = [log_x[..., i] for i in range(3)]
        # The same Gamma draws, to evaluate the reference at.
        log_gamma = sample_log_standard_gamma(tf.concat([[1], tf.shape(a)], 0), a, (0, 5))[0]
        return log_x, log_gamma, tf.stack([tape.gradient(r, a) for r in rows], -2)

    log_x, log_gamma, jacobian = (t.numpy() for t in run_in_mode(draw, mode, a))
    np.testing.assert_allclose(
        log_x,
        log_gamma - np.log(np.exp(log_gamma.astype(float)).sum(-1, keepdims=True)),
        rtol=0,
        atol=8 * np.finfo(dtype).eps * np.abs(log_gamma).max(),
    )
    ref = mp_log_simplex_jacobian(a.numpy(), log_gamma)
    representable = np.abs(ref) > 1e3 * np.finfo(dtype).tiny
    assert np.all(np.isfinite(jacobian))
    assert np.all(jacobian[representable] != 0)
    rel = np.abs(jacobian - ref)[representable] / np.abs(ref[representable])
    print(
        f"Dirichlet d log x_i/d a_j, {np.dtype(dtype).name}, {mode}: max relative error "
        f"{rel.max():.2e} over {rel.size} entries"
    )
    assert rel.max() <= RTOL[dtype]


def test_monte_carlo_gradients_match_closed_form():
    # d E[x_i] / d a_j = (delta_ij c - a_i) / c^2, c = sum(a); per-sample gradients, 4 SE.
    n, base = 4000, np.array([0.6, 2.0, 5.0])
    a = tf.constant(np.tile(base, [n, 1]))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(a)
        x = Dirichlet(a).sample(seed=(0, 13))
        rows = [x[:, i] for i in range(3)]
    c = base.sum()
    for i, row in enumerate(rows):
        per_sample = tape.gradient(row, a).numpy()
        truth = ((i == np.arange(3)) * c - base[i]) / c**2
        se = per_sample.std(0) / np.sqrt(n)
        assert np.all(np.abs(per_sample.mean(0) - truth) < 4 * se), (i, per_sample.mean(0), truth)


def test_samples_follow_the_dirichlet_law():
    a = np.array([0.3, 2.0, 6.0])
    x = Dirichlet(tf.constant(a)).sample(3000, seed=(0, 3)).numpy()
    np.testing.assert_allclose(x.sum(-1), 1.0, rtol=1e-12)
    for i in range(3):  # marginals are Beta(a_i, sum(a) - a_i)
        assert st.kstest(x[:, i], st.beta(a[i], a.sum() - a[i]).cdf).pvalue > 1e-3


def test_tiny_concentrations_float32_log_samples_are_finite():
    log_x = Dirichlet(tf.fill([500, 4], 1e-3)).log_sample(seed=(0, 2)).numpy()
    assert np.all(np.isfinite(log_x))
    assert np.mean(np.exp(log_x) == 0) > 0.3  # many coordinates underflow as x, not as log x


def test_statistics_match_scipy(dtype):
    a = np.array([0.7, 2.0, 4.5], dtype)
    dist = Dirichlet(a)
    ref = st.dirichlet(a.astype(float))
    x = np.array([[0.2, 0.3, 0.5], [0.05, 0.15, 0.8]], dtype)
    rtol = 5e-5 if dtype == np.float32 else 1e-12
    assert dist.batch_shape == [] and dist.event_shape == [3]
    assert dist.reparameterization_type == tfp.distributions.FULLY_REPARAMETERIZED
    x64 = x.astype(float) / x.astype(float).sum(-1, keepdims=True)  # scipy wants sum == 1
    np.testing.assert_allclose(dist.log_prob(x), [ref.logpdf(v) for v in x64], rtol=rtol)
    np.testing.assert_allclose(dist.mean(), ref.mean(), rtol=rtol)
    np.testing.assert_allclose(dist.variance(), ref.var(), rtol=rtol)
    np.testing.assert_allclose(dist.covariance(), ref.cov(), rtol=rtol, atol=1e-7)
    np.testing.assert_allclose(dist.entropy(), ref.entropy(), rtol=rtol)
    assert np.isnan(dist.mode().numpy()).all()  # a_0 < 1: undefined, as in TFP
    b = np.array([2.0, 3.0, 5.0], dtype)
    np.testing.assert_allclose(Dirichlet(b).mode(), (b - 1) / (b.sum() - 3), rtol=rtol)


def test_kl_matches_monte_carlo():
    a, b = np.array([0.7, 2.0, 4.5]), np.array([1.5, 1.0, 3.0])
    samples = st.dirichlet(a).rvs(20000, random_state=0)
    log_ratio = st.dirichlet(a).logpdf(samples.T) - st.dirichlet(b).logpdf(samples.T)
    kl = tfp.distributions.kl_divergence(Dirichlet(a), Dirichlet(b)).numpy()
    assert abs(kl - log_ratio.mean()) < 4 * log_ratio.std() / np.sqrt(log_ratio.size)


def test_validate_args_and_shape_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="`concentration` must be positive"):
        Dirichlet([1.0, 0.0, 2.0], validate_args=True)
    with pytest.raises(ValueError, match="`concentration` must have rank at least 1"):
        Dirichlet(1.0)
    with pytest.raises(ValueError, match="`value` of shape \\(2,\\) does not broadcast"):
        Dirichlet([1.0, 2.0, 3.0]).log_prob([0.5, 0.5])
    with pytest.raises(
        TypeError, match="`concentration` must be a floating-point tensor .* got dtype int32"
    ):
        Dirichlet(tf.constant([1, 2, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Samples must be non-negative"):
        Dirichlet([1.0, 2.0], validate_args=True).log_prob([-0.5, 1.5])
