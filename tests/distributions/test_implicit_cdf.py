"""Tests of `ImplicitReparameterized` on TFP distributions TFP does not reparameterize."""

import mpmath
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions import ImplicitReparameterized
from tf_modes import MODES, run_in_mode

tfd = tfp.distributions


def _truncated_cauchy_quantile(u, loc, scale, low, high):
    """Closed form ``loc + scale tan(a + u (b - a))``, ``a, b`` = atan of the scaled bounds."""
    a = mpmath.atan((low - loc) / scale)
    b = mpmath.atan((high - loc) / scale)
    return loc + scale * mpmath.tan(a + u * (b - a))


def _truncated_cauchy_mean(loc, scale, low, high):
    """``E z = loc + scale log((1 + beta^2) / (1 + alpha^2)) / (2 (atan beta - atan alpha))``."""
    alpha, beta = (low - loc) / scale, (high - loc) / scale
    return loc + scale * mpmath.log((1 + beta**2) / (1 + alpha**2)) / (
        2 * (mpmath.atan(beta) - mpmath.atan(alpha))
    )


@pytest.mark.parametrize("mode", MODES)
def test_truncated_cauchy_gradients_match_quantile_derivatives(dtype, mode):
    assert (
        tfd.TruncatedCauchy(0.0, 1.0, -1.0, 1.0).reparameterization_type == tfd.NOT_REPARAMETERIZED
    )
    values = [0.3, 1.5, -1.0, 4.0]
    # Six batch copies of the parameters: one backward pass gives per-sample gradients.
    params = [tf.Variable(tf.fill([6], tf.constant(v, dtype))) for v in values]
    dist = ImplicitReparameterized(tfd.TruncatedCauchy(*params))
    assert dist.reparameterization_type == tfd.FULLY_REPARAMETERIZED

    def draw():
        with tf.GradientTape() as tape:
            z = dist.sample(seed=(3, 3))
        return z, tape.gradient(z, params)

    z, grads = run_in_mode(draw, mode)
    grads = np.stack([g.numpy() for g in grads], axis=1)  # [sample, parameter]
    with mpmath.workdps(30):
        values = [mpmath.mpf(float(dtype(v))) for v in values]
        for zi, grad in zip(z.numpy(), grads):
            u = mpmath.findroot(lambda t: _truncated_cauchy_quantile(t, *values) - float(zi), 0.5)
            for i, g in enumerate(grad):

                def quantile_of(theta, i=i):
                    return _truncated_cauchy_quantile(
                        u, *[theta if j == i else v for j, v in enumerate(values)]
                    )

                exact = float(mpmath.diff(quantile_of, values[i]))
                rtol = 2e-4 if dtype == np.float32 else 1e-9
                np.testing.assert_allclose(g, exact, rtol=rtol, atol=rtol * 1e-2)


def test_truncated_cauchy_monte_carlo_gradient_of_mean():
    n = 20000
    values = [0.3, 1.5, -1.0, 4.0]
    params = [tf.fill([n], tf.constant(v, tf.float64)) for v in values]
    with tf.GradientTape() as tape:
        tape.watch(params)
        z = ImplicitReparameterized(tfd.TruncatedCauchy(*params)).sample(seed=9)
    per_sample = [g.numpy() for g in tape.gradient(z, params)]
    with mpmath.workdps(30):
        for i, samples in enumerate(per_sample):
            exact = float(
                mpmath.diff(
                    lambda t: _truncated_cauchy_mean(
                        *[t if j == i else v for j, v in enumerate(values)]
                    ),
                    values[i],
                )
            )
            assert abs(samples.mean() - exact) <= 4 * samples.std() / np.sqrt(n)


def _mixture(logits, loc, scale):
    return tfd.MixtureSameFamily(tfd.Categorical(logits=logits), tfd.Normal(loc, scale))


@pytest.mark.parametrize("mode", MODES)
def test_normal_mixture_gradients_match_mpmath_implicit_function(dtype, mode):
    # Five batch copies of the parameters: one backward pass gives per-sample gradients.
    logits = tf.Variable(tf.tile(tf.constant([[0.2, -0.5, 1.0]], dtype), [5, 1]))
    loc = tf.Variable(tf.tile(tf.constant([[-2.0, 0.5, 3.0]], dtype), [5, 1]))
    scale = tf.Variable(tf.tile(tf.constant([[0.7, 1.3, 0.4]], dtype), [5, 1]))
    dist = ImplicitReparameterized(_mixture(logits, loc, scale))
    variables = [logits, loc, scale]

    def draw():
        with tf.GradientTape() as tape:
            z = dist.sample(seed=(4, 4))
        return z, tape.gradient(z, variables)

    z, grads = run_in_mode(draw, mode)
    grads = np.stack([g.numpy() for g in grads], axis=1)  # [sample, group, component]
    with mpmath.workdps(30):
        theta = [[mpmath.mpf(float(x)) for x in v.numpy()[0]] for v in variables]

        def cdf(x, lg, mu, sd):
            weights = [mpmath.exp(l) for l in lg]
            return sum(w * mpmath.ncdf((x - m) / s) for w, m, s in zip(weights, mu, sd)) / sum(
                weights
            )

        for zi, grad in zip(z.numpy(), grads):
            x = mpmath.mpf(float(zi))
            density = mpmath.diff(lambda t: cdf(t, *theta), x)
            for group, g in enumerate(grad):
                for k in range(3):

                    def cdf_k(t, group=group, k=k):
                        perturbed = [list(p) for p in theta]
                        perturbed[group][k] = t
                        return cdf(x, *perturbed)

                    exact = float(-mpmath.diff(cdf_k, theta[group][k]) / density)
                    tol = 1e-4 if dtype == np.float32 else 1e-10
                    np.testing.assert_allclose(g[k], exact, rtol=tol, atol=tol)


def test_normal_mixture_monte_carlo_gradient_of_mean():
    # E z = sum_k w_k mu_k: d/dmu_k = w_k and d/dlogit_k = w_k (mu_k - E z).
    n = 20000
    logits = np.array([0.2, -0.5, 1.0])
    loc = np.array([-2.0, 0.5, 3.0])
    batch_logits = tf.constant(np.tile(logits, [n, 1]))
    batch_loc = tf.constant(np.tile(loc, [n, 1]))
    with tf.GradientTape() as tape:
        tape.watch([batch_logits, batch_loc])
        z = ImplicitReparameterized(
            _mixture(batch_logits, batch_loc, tf.constant([0.7, 1.3, 0.4], tf.float64))
        ).sample(seed=2)
    d_logits, d_loc = (g.numpy() for g in tape.gradient(z, [batch_logits, batch_loc]))
    weights = np.exp(logits) / np.exp(logits).sum()
    mean = weights @ loc
    for samples, exact in ((d_loc, weights), (d_logits, weights * (loc - mean))):
        se = samples.std(0) / np.sqrt(n)
        assert np.all(np.abs(samples.mean(0) - exact) <= 4 * se)


def test_sample_values_and_other_methods_are_the_wrapped_ones():
    base = tfd.TruncatedCauchy(tf.constant(0.3, tf.float64), 1.5, -1.0, 4.0)
    wrapped = ImplicitReparameterized(base)
    np.testing.assert_array_equal(wrapped.sample(7, seed=(1, 5)), base.sample(7, seed=(1, 5)))
    x = tf.constant([-0.5, 0.0, 2.0], tf.float64)
    for method in ("log_prob", "prob", "cdf", "log_cdf", "survival_function"):
        np.testing.assert_array_equal(getattr(wrapped, method)(x), getattr(base, method)(x))
    np.testing.assert_array_equal(wrapped.mean(), base.mean())
    assert wrapped.batch_shape == base.batch_shape and wrapped.event_shape == []
    batched = ImplicitReparameterized(
        tfd.TruncatedCauchy(tf.zeros([2, 1]), tf.ones([3]), -1.0, 1.0)
    )
    assert batched.batch_shape == [2, 3] and batched.sample(4, seed=1).shape == [4, 2, 3]


def test_bad_distributions_are_rejected_with_clear_errors():
    with pytest.raises(TypeError, match="tfp.distributions.Distribution"):
        ImplicitReparameterized(tf.constant(1.0))
    with pytest.raises(TypeError, match="floating dtype"):
        ImplicitReparameterized(tfd.Categorical(logits=[0.0, 1.0]))
    with pytest.raises(ValueError, match="univariate"):
        ImplicitReparameterized(tfd.MultivariateNormalDiag([0.0, 0.0]))
    with pytest.raises(ValueError, match="cdf"):
        ImplicitReparameterized(tfd.Horseshoe(1.0))
