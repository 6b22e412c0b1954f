"""dP(a, x)/da and the Gamma implicit gradient against mpmath at 40 digits."""

import functools

import mpmath
import numpy as np
import pytest
import scipy.special as sc
import tensorflow as tf

from tfbayes.distributions.incomplete_gamma import gamma_log_sample_grad, igamma_grad_a

# The accuracy table: max relative error of the Gamma gradient over a in [1e-3, 1e3].
RTOL = {np.float32: 5e-5, np.float64: 1e-12}
QUANTILES = [1e-4, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 0.9999]


def _grid():
    """(a, log x) at quantiles of Gamma(a, 1), for 31 log-spaced a in [1e-3, 1e3].

    Quantiles below float64's range (small a) are taken from the small-x
    asymptote P(a, x) ~ x^a / Gamma(a + 1), i.e. log x = (log p + lgamma(a+1)) / a.
    """
    points = []
    for a in np.logspace(-3, 3, 31):
        for p in QUANTILES:
            x = sc.gammaincinv(a, p)
            points.append((a, np.log(x) if x > 1e-300 else (np.log(p) + sc.gammaln(a + 1)) / a))
    return np.array(points)


@functools.lru_cache(maxsize=None)
def mp_gamma_log_grad(a, log_x):
    """-(dP/da) / (x^a e^-x / Gamma(a)) with mpmath.diff of gammainc, 40 digits."""
    with mpmath.workdps(40):
        a, log_x = mpmath.mpf(a), mpmath.mpf(log_x)
        x = mpmath.exp(log_x)
        dp_da = mpmath.diff(lambda t: mpmath.gammainc(t, 0, x, regularized=True), a)
        return float(-dp_da / mpmath.exp(a * log_x - x - mpmath.loggamma(a)))


def mp_gamma_log_grads(a, log_x):
    """The reference above, elementwise over arrays (cached per point)."""
    return np.array([mp_gamma_log_grad(float(ai), float(li)) for ai, li in zip(a, log_x)])


@pytest.mark.parametrize("mode", ["eager", "function", "jit"])
def test_log_sample_grad_accuracy_table(dtype, mode):
    grid = _grid().astype(dtype)  # the reference is evaluated at the rounded inputs
    fn = (
        gamma_log_sample_grad
        if mode == "eager"
        else tf.function(gamma_log_sample_grad, jit_compile=(mode == "jit"))
    )
    ours = fn(tf.constant(grid[:, 0]), tf.constant(grid[:, 1])).numpy()
    ref = mp_gamma_log_grads(grid[:, 0], grid[:, 1])
    assert np.all(np.isfinite(ours)) and np.all(ours != 0)
    rel = np.abs(ours - ref) / np.abs(ref)
    print(
        f"Gamma d log x/da, {np.dtype(dtype).name}, {mode}: max relative error {rel.max():.2e} "
        f"over {len(grid)} points"
    )
    assert rel.max() <= RTOL[dtype], (rel.max(), grid[np.argmax(rel)])


def test_large_concentrations_use_the_uniform_asymptotic_expansion(dtype):
    # From a = 1e4 on, Temme's expansion replaces the O(sqrt(a))-term loops near x ~ a.
    grid = np.array(
        [
            (a, np.log(sc.gammaincinv(a, p)))
            for a in (1e4, 3e4, 1e6)
            for p in (1e-6, 0.01, 0.5, 0.99, 1 - 1e-6)
        ],
        dtype,
    )
    ours = gamma_log_sample_grad(grid[:, 0], grid[:, 1]).numpy()
    rel = np.abs(ours - mp_gamma_log_grads(grid[:, 0], grid[:, 1])) / np.abs(ours)
    print(
        f"Gamma d log x/da, a in [1e4, 1e6], {np.dtype(dtype).name}: max relative error "
        f"{rel.max():.2e}"
    )
    assert rel.max() <= RTOL[dtype]


def test_tiny_samples_keep_their_gradient_in_float32():
    # a = 1e-3: log x ~ -1e3, so x = 0 in float32 but d log x / da ~ 1e6 is exact.
    a = np.full(4, 1e-3, np.float32)
    log_x = np.array([-9000.0, -2000.0, -700.0, -50.0], np.float32)
    ours = gamma_log_sample_grad(a, log_x).numpy()
    np.testing.assert_allclose(ours, mp_gamma_log_grads(a, log_x), rtol=RTOL[np.float32])
    # Leading term of the small-x limit: (psi(a + 1) - log x) / a.
    np.testing.assert_allclose(ours, (sc.digamma(1.001) - log_x.astype(float)) / 1e-3, rtol=1e-5)


def test_igamma_grad_a_matches_mpmath_and_tf():
    a = np.array([1e-3, 0.2, 1.0, 7.5, 40.0, 900.0])
    x = np.array([1e-5, 0.05, 2.0, 7.0, 41.0, 950.0])
    ours = igamma_grad_a(a, x).numpy()
    with mpmath.workdps(40):
        ref = [
            float(
                mpmath.diff(
                    lambda t: mpmath.gammainc(t, 0, mpmath.mpf(xi), regularized=True),
                    mpmath.mpf(ai),
                )
            )
            for ai, xi in zip(a, x)
        ]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    # TF's own derivative of igamma agrees to its (lower) accuracy.
    at = tf.constant(a)
    with tf.GradientTape() as tape:
        tape.watch(at)
        p = tf.math.igamma(at, tf.constant(x))
    np.testing.assert_allclose(ours, tape.gradient(p, at).numpy(), rtol=1e-6)


def test_results_do_not_depend_on_the_batch(dtype):
    # Converged elements are frozen: an element gets the same value alone or
    # next to elements that need many more terms.
    a = np.array([0.5, 3.0, 1000.0], dtype)
    log_x = np.array([-0.3, 1.5, np.log(1000.0)], dtype)
    together = gamma_log_sample_grad(a, log_x).numpy()
    alone = [gamma_log_sample_grad(a[i : i + 1], log_x[i : i + 1]).numpy()[0] for i in range(3)]
    np.testing.assert_array_equal(together, alone)
