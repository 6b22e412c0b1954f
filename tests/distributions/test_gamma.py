"""tfbayes.distributions.Gamma: sampler, implicit gradients, statistics, errors."""

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.special as sc
import scipy.stats as st
import tensorflow as tf
import tensorflow_probability as tfp

from test_incomplete_gamma import RTOL, mp_gamma_log_grads
from tfbayes.distributions import Gamma
from tf_modes import MODES, run_in_mode

CONCENTRATIONS = np.logspace(-3, 3, 13)


@pytest.mark.parametrize("mode", MODES)
def test_per_sample_gradients_match_mpmath(dtype, mode):
    # Batch [4, 13] with one draw each, so d(sum)/d(a_ij) is the gradient of draw ij alone.
    a = tf.constant(np.tile(CONCENTRATIONS, [4, 1]), dtype)

    def draw(a):
        with tf.GradientTape() as tape:
            tape.watch(a)
            log_z = Gamma(a, rate=tf.constant(2.5, dtype)).log_sample(seed=(0, 7))
        return log_z, tape.gradient(log_z, a)

    log_z, dlog_z = (t.numpy() for t in run_in_mode(draw, mode, a))
    log_x = (log_z + dtype(np.log(2.5))).astype(dtype)
    ref = mp_gamma_log_grads(a.numpy().ravel(), log_x.ravel()).reshape(log_z.shape)
    assert np.all(np.isfinite(dlog_z)) and np.all(dlog_z != 0)
    rel = np.abs(dlog_z - ref) / np.abs(ref)
    print(
        f"Gamma sample d log z/da, {np.dtype(dtype).name}, {mode}: max relative error "
        f"{rel.max():.2e} over {rel.size} draws"
    )
    assert rel.max() <= RTOL[dtype]


def test_sample_is_exp_log_sample_with_its_gradient(dtype):
    a = tf.constant(np.tile(CONCENTRATIONS, [4, 1]), dtype)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(a)
        dist = Gamma(a, rate=tf.constant(2.5, dtype))
        log_z, z = dist.log_sample(seed=(0, 7)), dist.sample(seed=(0, 7))
    dlog_z, dz = tape.gradient(log_z, a).numpy(), tape.gradient(z, a).numpy()
    # Compared where z is a normal number (TF flushes subnormals to 0).
    normal = np.exp(log_z.numpy()) > 1e3 * np.finfo(dtype).tiny
    assert normal.sum() > 30
    np.testing.assert_allclose(
        z.numpy()[normal], np.exp(log_z.numpy())[normal], rtol=4 * np.finfo(dtype).eps
    )
    np.testing.assert_allclose(
        dz[normal], (z.numpy() * dlog_z)[normal], rtol=4 * np.finfo(dtype).eps
    )


def test_tiny_concentration_float32_gradients_are_never_zero():
    # tf.random.gamma returns x = 0 (clamped) with gradient exactly 0 for most draws here.
    a = tf.fill([2000], tf.constant(1e-3, tf.float32))
    with tf.GradientTape() as tape:
        tape.watch(a)
        log_z = Gamma(a, rate=1.0).log_sample(seed=(0, 3))
    grad = tape.gradient(log_z, a).numpy()
    assert np.mean(log_z.numpy() < -104) > 0.5  # most draws underflow as x ...
    assert np.all(np.isfinite(grad)) and np.all(grad > 0)  # ... but keep their gradient


@pytest.mark.parametrize("concentration", [0.05, 0.7, 3.0, 40.0])
def test_monte_carlo_gradients_match_closed_forms(concentration):
    # d/da E[z] = 1/rate and d/da E[log z] = psi'(a), per-sample gradients within 4 SE.
    n, rate = 4000, 1.7
    a = tf.fill([n], tf.constant(concentration, tf.float64))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(a)
        dist = Gamma(a, rate=rate)
        log_z = dist.log_sample(seed=(0, 11))
        z = tf.exp(log_z)
    for values, truth in (
        (tape.gradient(z, a), 1 / rate),
        (tape.gradient(log_z, a), sc.polygamma(1, concentration)),
    ):
        values = values.numpy()
        se = values.std() / np.sqrt(n)
        assert abs(values.mean() - truth) < 4 * se, (values.mean(), truth, se)


def test_rate_and_log_rate_gradients(dtype):
    rate = tf.constant([0.5, 3.0], dtype)
    log_rate = tf.math.log(rate)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([rate, log_rate])
        z_rate = Gamma(tf.constant(2.0, dtype), rate=rate).sample(5, seed=(0, 1))
        z_log_rate = Gamma(tf.constant(2.0, dtype), log_rate=log_rate).sample(5, seed=(0, 1))
    np.testing.assert_allclose(z_rate.numpy(), z_log_rate.numpy(), rtol=10 * np.finfo(dtype).eps)
    # z = x / rate:  dz/drate = -z / rate,  dz/dlog_rate = -z.
    np.testing.assert_allclose(
        tape.gradient(z_rate, rate).numpy(), -(z_rate.numpy() / rate.numpy()).sum(0), rtol=1e-5
    )
    np.testing.assert_allclose(
        tape.gradient(z_log_rate, log_rate).numpy(), -z_log_rate.numpy().sum(0), rtol=1e-5
    )


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_samples_follow_the_gamma_law(mode):
    concentration = np.array([0.3, 1.0, 4.5, 50.0])
    log_z = run_in_mode(
        lambda a: Gamma(a, rate=2.0).log_sample(3000, seed=(0, 5)), mode, tf.constant(concentration)
    ).numpy()
    for j, a in enumerate(concentration):
        assert st.kstest(np.exp(log_z[:, j]) * 2.0, st.gamma(a).cdf).pvalue > 1e-3


def test_tiny_concentration_log_samples_follow_the_gamma_law():
    # x underflows even in float64, so test u = P(a, x) (uniform) with mpmath on log x.
    a = 1e-3
    log_x = Gamma(tf.constant(a, tf.float64), rate=1.0).log_sample(400, seed=(0, 9)).numpy()
    with mpmath.workdps(30):
        u = [float(mpmath.gammainc(a, 0, mpmath.exp(v), regularized=True)) for v in log_x]
    assert st.kstest(u, "uniform").pvalue > 1e-3
    # E[log x] = psi(a), Var[log x] = psi'(a).
    assert abs(log_x.mean() - sc.digamma(a)) < 4 * np.sqrt(sc.polygamma(1, a) / log_x.size)


def test_statistics_match_scipy(dtype):
    a = np.array([0.4, 1.0, 2.5, 30.0], dtype)
    rate = np.array([0.7, 1.0, 3.0, 0.2], dtype)
    dist = Gamma(a, rate=rate)
    ref = st.gamma(a.astype(float), scale=1 / rate.astype(float))
    x = np.array([0.3, 1.1, 0.8, 140.0], dtype)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    assert dist.batch_shape == [4] and dist.event_shape == []
    assert dist.reparameterization_type == tfp.distributions.FULLY_REPARAMETERIZED
    np.testing.assert_allclose(dist.log_prob(x), ref.logpdf(x), rtol=rtol)
    np.testing.assert_allclose(dist.cdf(x), ref.cdf(x), rtol=rtol)
    np.testing.assert_allclose(dist.mean(), ref.mean(), rtol=rtol)
    np.testing.assert_allclose(dist.variance(), ref.var(), rtol=rtol)
    np.testing.assert_allclose(dist.stddev(), ref.std(), rtol=rtol)
    np.testing.assert_allclose(dist.entropy(), ref.entropy(), rtol=rtol)
    mode = dist.mode().numpy()
    assert np.isnan(mode[0]) and np.isnan(mode[1])  # undefined for a <= 1, as in TFP
    np.testing.assert_allclose(mode[2:], ((a - 1) / rate)[2:], rtol=rtol)
    assert dist.cdf(dtype(-1.0)).numpy()[0] == 0.0
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="Mode not defined when any concentration <= 1"
    ):
        Gamma(a, rate=rate, allow_nan_stats=False).mode()


def test_kl_matches_numerical_integration():
    p, q = Gamma(2.5, rate=1.5), Gamma(0.8, log_rate=np.log(0.6).astype(np.float32))
    pd, qd = st.gamma(2.5, scale=1 / 1.5), st.gamma(0.8, scale=1 / 0.6)
    ref, _ = scipy.integrate.quad(lambda x: pd.pdf(x) * (pd.logpdf(x) - qd.logpdf(x)), 0, np.inf)
    np.testing.assert_allclose(tfp.distributions.kl_divergence(p, q).numpy(), ref, rtol=1e-5)


def test_seeds_are_stateless_and_reproducible():
    dist = Gamma(tf.constant([0.5, 2.0]), rate=1.0)
    first, again = dist.sample(6, seed=(0, 42)), dist.sample(6, seed=(0, 42))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(
        dist.sample(6, seed=tf.constant([3, 4])),
        tf.function(lambda: dist.sample(6, seed=tf.constant([3, 4])))(),
    )
    assert not np.array_equal(first, dist.sample(6, seed=(0, 43)))
    np.testing.assert_array_equal(first, dist.sample(6, seed=tf.constant(42)))
    # A composite tensor: the distribution itself crosses the tf.function boundary.
    np.testing.assert_array_equal(first, tf.function(lambda d: d.sample(6, seed=(0, 42)))(dist))
    jit = tf.function(lambda: dist.sample(6, seed=(0, 42)), jit_compile=True)
    np.testing.assert_array_equal(jit(), jit())
    assert dist.sample([2, 3], seed=(0, 1)).shape == [2, 3, 2]
    with pytest.raises(ValueError, match="`seed`: expected a stateless seed of shape \\[2\\]"):
        dist.sample(2, seed=tf.constant([1, 2, 3]))


def test_variables_are_trained_through_samples():
    a = tf.Variable([0.5, 2.0], dtype=tf.float64)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.reduce_mean(Gamma(a, rate=1.0).sample(3000, seed=(0, 2)), 0))
    grad = tape.gradient(loss, a).numpy()
    np.testing.assert_allclose(grad, [1.0, 1.0], rtol=0.15)  # d/da E[z] = 1


def test_validate_args_errors():
    with pytest.raises(tf.errors.InvalidArgumentError, match="`concentration` must be positive"):
        Gamma([1.0, -1.0], rate=1.0, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`rate` must be positive"):
        Gamma(1.0, rate=[0.0, 1.0], validate_args=True)
    a = tf.Variable([1.0, 2.0])
    dist = Gamma(a, rate=1.0, validate_args=True)
    a.assign([1.0, -2.0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="`concentration` must be positive"):
        dist.sample(seed=(0, 1))
    with pytest.raises(tf.errors.InvalidArgumentError, match="Sample must be non-negative"):
        Gamma(1.0, rate=1.0, validate_args=True).log_prob(-1.0)
    with pytest.raises(
        ValueError, match="shapes must broadcast.*`concentration`: \\(3,\\).*`rate`: \\(2,\\)"
    ):
        Gamma([1.0, 2.0, 3.0], rate=[1.0, 2.0])
    with pytest.raises(
        TypeError, match="`concentration` must be a floating-point tensor .* got dtype int32"
    ):
        Gamma(tf.constant([1, 2]), rate=1.0)
    with pytest.raises(
        TypeError, match="`rate` must be a floating-point tensor .* got dtype int64"
    ):
        Gamma(1.0, rate=np.array([1, 2]))
    with pytest.raises(TypeError, match="share one float dtype"):
        Gamma(tf.constant(1.0, tf.float32), rate=tf.constant(1.0, tf.float64))
    with pytest.raises(ValueError, match="exactly one of `rate` and `log_rate`"):
        Gamma(1.0, rate=1.0, log_rate=0.0)
