"""Tests of `implicit_reparameterization` against closed forms and mpmath."""

import mpmath
import numpy as np
import pytest
import tensorflow as tf

from tfbayes.distributions import implicit_reparameterization
from tf_modes import MODES, run_in_mode


def _normal_cdf(z, loc, scale):
    return 0.5 * tf.math.erfc(-(z - loc) / (scale * np.sqrt(2.0)))


def _tol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_prob", [False, True])
def test_normal_matches_location_scale_gradient(dtype, mode, with_prob):
    # z = loc + scale * eps  =>  dz/dloc = 1, dz/dscale = (z - loc) / scale = eps.
    rng = np.random.default_rng(0)
    loc = tf.constant(rng.normal(size=[3, 1]), dtype)
    scale = tf.constant(rng.uniform(0.5, 2.0, size=[4]), dtype)
    eps = rng.normal(size=[5, 3, 4]).clip(-3, 3)
    z = tf.constant(loc.numpy() + scale.numpy() * eps, dtype)
    upstream = tf.constant(rng.normal(size=[5, 3, 4]), dtype)

    def prob(x, m, s):
        return tf.exp(-0.5 * tf.square((x - m) / s)) / (s * np.sqrt(2 * np.pi))

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([loc, scale])
            out = implicit_reparameterization(
                z, [loc, scale], cdf=_normal_cdf, prob=prob if with_prob else None
            )
        return out, tape.gradient(out, [loc, scale], output_gradients=upstream)

    out, (g_loc, g_scale) = run_in_mode(grads, mode)
    np.testing.assert_array_equal(out.numpy(), z.numpy())
    g = upstream.numpy()
    np.testing.assert_allclose(
        g_loc.numpy(), g.sum(axis=(0, 2))[:, None], rtol=_tol(dtype), atol=_tol(dtype)
    )
    np.testing.assert_allclose(
        g_scale.numpy(), (g * eps).sum(axis=(0, 1)), rtol=_tol(dtype), atol=_tol(dtype) * 10
    )


@pytest.mark.parametrize("mode", MODES)
def test_exponential_rate_gradient_is_minus_z_over_rate(dtype, mode):
    rate = tf.constant([0.3, 1.0, 7.0], dtype)
    z = tf.constant(np.random.default_rng(1).exponential(size=[6, 3]) / rate.numpy(), dtype)

    def grads():
        with tf.GradientTape() as tape:
            tape.watch(rate)
            out = implicit_reparameterization(z, (rate,), cdf=lambda x, r: -tf.math.expm1(-r * x))
        return tape.gradient(out, rate)

    np.testing.assert_allclose(
        run_in_mode(grads, mode).numpy(), (-z.numpy() / rate.numpy()).sum(0), rtol=10 * _tol(dtype)
    )


def _kumaraswamy_cdf(z, a, b):
    return -tf.math.expm1(b * tf.math.log1p(-tf.pow(z, a)))


@pytest.mark.parametrize("mode", MODES)
def test_kumaraswamy_against_mpmath_finite_differences(dtype, mode):
    # Reference: dz/dtheta = -dF/dtheta / dF/dz, each derivative by mpmath.diff at 40 digits.
    mpmath.mp.dps = 40
    a_np, b_np = np.array([0.4, 2.5, 9.0]), np.array([0.7, 3.0, 1.5])
    z_np = np.array([0.05, 0.5, 0.93])
    a, b, z = (tf.constant(v, dtype) for v in (a_np, b_np, z_np))

    def grads():
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([a, b])
            out = implicit_reparameterization(z, [a, b], cdf=_kumaraswamy_cdf)
            da = tape.gradient(out, a)
            db = tape.gradient(out, b)
        return da, db

    da, db = run_in_mode(grads, mode)

    def cdf(x, p, q):
        return 1 - (1 - x**p) ** q

    for i in range(3):
        x, p, q = (mpmath.mpf(float(v)) for v in (z_np[i], a_np[i], b_np[i]))
        density = mpmath.diff(lambda t: cdf(t, p, q), x)
        ref_a = -mpmath.diff(lambda t: cdf(x, t, q), p) / density
        ref_b = -mpmath.diff(lambda t: cdf(x, p, t), q) / density
        np.testing.assert_allclose(da.numpy()[i], float(ref_a), rtol=20 * _tol(dtype))
        np.testing.assert_allclose(db.numpy()[i], float(ref_b), rtol=20 * _tol(dtype))


@pytest.mark.parametrize("mode", MODES)
def test_multivariate_normal_standardization(dtype, mode):
    # S(z) = L^{-1}(z - mu):  z = mu + L eps, so dL/dmu = sum g and dL/dL_ij = sum g_i eps_j.
    rng = np.random.default_rng(2)
    d = 3
    mu = tf.constant(rng.normal(size=[d]), dtype)
    chol_np = np.tril(rng.normal(size=[d, d])) + 3 * np.eye(d)
    chol = tf.constant(chol_np, dtype)
    eps = rng.normal(size=[7, d])
    z = tf.constant(mu.numpy() + eps @ chol_np.T, dtype)
    upstream = rng.normal(size=[7, d])

    def standardize(x, m, lower):
        diff = (x - m)[..., None]
        lower = tf.broadcast_to(lower, tf.concat([tf.shape(x)[:-1], [d, d]], 0))
        return tf.linalg.triangular_solve(lower, diff, lower=True)[..., 0]

    def grads():
        with tf.GradientTape() as tape:
            tape.watch([mu, chol])
            out = implicit_reparameterization(z, [mu, chol], standardize=standardize)
        return tape.gradient(out, [mu, chol], output_gradients=tf.constant(upstream, dtype))

    g_mu, g_chol = run_in_mode(grads, mode)
    tol = 1e-4 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(g_mu.numpy(), upstream.sum(0), rtol=tol, atol=tol)
    np.testing.assert_allclose(g_chol.numpy(), np.tril(upstream.T @ eps), rtol=tol, atol=tol)


def test_variable_parameters_receive_gradients():
    rate = tf.Variable([2.0, 4.0], dtype=tf.float64)
    z = tf.constant([0.5, 0.25], tf.float64)
    with tf.GradientTape() as tape:
        out = implicit_reparameterization(z, [rate], cdf=lambda x, r: 1 - tf.exp(-r * x))
    np.testing.assert_allclose(tape.gradient(out, rate).numpy(), [-0.25, -0.0625], rtol=1e-13)


def test_bad_arguments_raise_clear_errors():
    z = tf.constant([0.5], tf.float32)
    rate = tf.constant([1.0], tf.float32)
    cdf = lambda x, r: 1 - tf.exp(-r * x)  # noqa: E731
    with pytest.raises(ValueError, match="exactly one of `cdf`"):
        implicit_reparameterization(z, [rate])
    with pytest.raises(ValueError, match="exactly one of `cdf`"):
        implicit_reparameterization(z, [rate], cdf=cdf, standardize=cdf)
    with pytest.raises(TypeError, match="`cdf` must be callable"):
        implicit_reparameterization(z, [rate], cdf=3.0)
    with pytest.raises(TypeError, match="`params` must be a list or tuple"):
        implicit_reparameterization(z, rate, cdf=cdf)
    with pytest.raises(ValueError, match="`params` is empty"):
        implicit_reparameterization(z, [], cdf=cdf)
    with pytest.raises(TypeError, match="`sample` must be a float tensor, got dtype int32"):
        implicit_reparameterization(tf.constant([1]), [rate], cdf=cdf)
    with pytest.raises(TypeError, match=r"`params\[0\]` has dtype float64, expected .* float32"):
        implicit_reparameterization(z, [tf.constant([1.0], tf.float64)], cdf=cdf)
    with pytest.raises(ValueError, match="must return the shape of z"):
        with tf.GradientTape() as tape:
            tape.watch(rate)
            out = implicit_reparameterization(z, [rate], cdf=lambda x, r: tf.reduce_sum(x * r))
        tape.gradient(out, rate)
