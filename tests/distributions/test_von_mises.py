"""Tests of `VonMises` and `von_mises_cdf` against mpmath, scipy and Monte Carlo."""

import functools

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions import VonMises, implicit_reparameterization, von_mises_cdf
from tfbayes.distributions.von_mises_numerics import von_mises_prob, von_mises_sample_grad
from tf_modes import MODES, run_in_mode

# kappa from 1e-2 to 1e3: past both Fourier tier switches (2, 12), around TFP's
# switch (10.5) and around our switch to the Gaussian expansion (40).
KAPPAS = [0.01, 1.0, 2.01, 5.0, 10.49, 10.5, 10.51, 12.01, 25.0, 39.99, 40.0, 1000.0]
# Standardized offsets t = x sqrt(kappa); |t| <= 4.75 covers all but 2e-6 of the mass.
OFFSETS = [-4.75, -3.0, -0.999, -0.2, 0.01, 1.001, 4.75]


@functools.lru_cache(maxsize=None)
def _mpmath_reference(x, kappa):
    """``(F, dz/dkappa)`` of VonMises(0, kappa) at x in [-pi, pi], to 30 digits.

    ``F = int_{-pi}^x e^{kappa (cos t - 1)} dt / Z`` and, differentiating under
    the integral, ``dF/dkappa = int_{-pi}^x (cos t - I1/I0) e^{kappa (cos t - 1)} dt / Z``
    with ``Z = 2 pi I0(kappa) e^{-kappa}``; ``dz/dkappa = -(dF/dkappa) / p(x)``.
    Upper tails are integrated from the right so that nothing cancels.
    """
    with mpmath.workdps(30):
        x, kappa = mpmath.mpf(x), mpmath.mpf(kappa)
        mean_cos = mpmath.besseli(1, kappa) / mpmath.besseli(0, kappa)
        normalizer = 2 * mpmath.pi * mpmath.besseli(0, kappa) * mpmath.exp(-kappa)

        def density(t):
            return mpmath.exp(kappa * (mpmath.cos(t) - 1))

        def density_dkappa(t):
            return (mpmath.cos(t) - mean_cos) * density(t)

        width = 1 / mpmath.sqrt(kappa)
        if x <= 0:
            points = [-mpmath.pi] + [
                x - j * width for j in (8, 4, 2, 1) if x - j * width > -mpmath.pi
            ]
            points = sorted(points) + [x]
            cdf = mpmath.quad(density, points) / normalizer
            dcdf = mpmath.quad(density_dkappa, points) / normalizer
        else:
            points = [x] + [x + j * width for j in (1, 2, 4, 8) if x + j * width < mpmath.pi]
            points = points + [mpmath.pi]
            cdf = 1 - mpmath.quad(density, points) / normalizer
            dcdf = -mpmath.quad(density_dkappa, points) / normalizer
        return float(cdf), float(-dcdf / (density(x) / normalizer))


def _grid(dtype):
    """(x, kappa, F, dz/dkappa), the inputs rounded to ``dtype`` before the reference."""
    rows = []
    for kappa in KAPPAS:
        kappa = float(dtype(kappa))
        for t in OFFSETS:
            x = float(dtype(np.clip(t * min(1.0, kappa**-0.5), -3.1, 3.1)))
            rows.append((x, kappa) + _mpmath_reference(x, kappa))
    return np.array(rows).T


def _implicit_dz_dkappa(x, kappa):
    """Per-element ``dz/dkappa`` by the path `VonMises.sample` uses."""
    with tf.GradientTape() as tape:
        tape.watch(kappa)
        z = implicit_reparameterization(x, [kappa], cdf=von_mises_cdf, prob=von_mises_prob)
    return tape.gradient(z, kappa)


def _max_relative_error(value, reference):
    return np.max(np.abs(np.asarray(value, np.float64) - reference) / np.abs(reference))


@pytest.mark.parametrize("mode", MODES)
def test_implicit_gradient_and_cdf_match_mpmath(dtype, mode):
    x, kappa, cdf_ref, dz_ref = _grid(dtype)
    x_t, kappa_t = tf.constant(x, dtype), tf.constant(kappa, dtype)
    dz = run_in_mode(lambda: _implicit_dz_dkappa(x_t, kappa_t), mode)
    cdf = run_in_mode(lambda: von_mises_cdf(x_t, kappa_t), mode)
    # Issue 2 targets for dz/dkappa: 1e-10 (float64) and 1e-5 (float32).
    assert _max_relative_error(dz, dz_ref) <= (1e-5 if dtype == np.float32 else 1e-10)
    np.testing.assert_allclose(cdf, cdf_ref, rtol=0, atol=(1e-6 if dtype == np.float32 else 1e-14))


def test_sample_grad_with_one_kappa_per_call_matches_mpmath(dtype):
    # One kappa per call: float32 results take the shared-kappa (Clenshaw) series.
    x, kappa, _, dz_ref = _grid(dtype)
    for value in np.unique(kappa):
        row = kappa == value
        dz = von_mises_sample_grad(tf.constant(x[row], dtype), tf.constant(value, dtype))
        assert _max_relative_error(dz, dz_ref[row]) <= (1e-5 if dtype == np.float32 else 1e-10)


def test_tfp_gradient_dips_near_its_switch_and_ours_does_not():
    x, kappa, _, dz_ref = _grid(np.float64)
    near_switch = (kappa > 10) & (kappa < 11)
    x_t, kappa_t = tf.constant(x[near_switch]), tf.constant(kappa[near_switch])
    with tf.GradientTape() as tape:
        tape.watch(kappa_t)
        cdf = tfp.distributions.VonMises(0.0, kappa_t).cdf(x_t)
    tfp_dz = -tape.gradient(cdf, kappa_t) / tfp.distributions.VonMises(0.0, kappa_t).prob(x_t)
    assert _max_relative_error(tfp_dz, dz_ref[near_switch]) > 1e-6
    assert _max_relative_error(_implicit_dz_dkappa(x_t, kappa_t), dz_ref[near_switch]) <= 1e-10


def test_sample_gradient_matches_mpmath_at_the_drawn_samples(dtype):
    kappa = tf.constant(np.tile(np.geomspace(1e-2, 1e3, 12), [3, 1]), dtype)
    with tf.GradientTape() as tape:
        tape.watch(kappa)
        z = VonMises(tf.zeros([], dtype), kappa).sample(seed=7)
    dz = tape.gradient(z, kappa).numpy().ravel()
    reference = np.array(
        [
            _mpmath_reference(float(zi), float(ki))[1]
            for zi, ki in zip(z.numpy().ravel(), kappa.numpy().ravel())
        ]
    )
    assert np.all(np.isfinite(dz)) and np.all(dz != 0)
    assert _max_relative_error(dz, reference) <= (1e-5 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("kappa", [0.01, 1.0, 10.5, 100.0, 1000.0])
def test_samples_follow_scipy_von_mises(kappa):
    loc = 2.5
    z = VonMises(loc, kappa).sample(20000, seed=11).numpy()
    assert np.all(np.abs(z) <= np.pi)
    # Compare the offsets from loc, wrapped to [-pi, pi], with scipy's standard law.
    offsets = np.angle(np.exp(1j * (z - loc)))
    assert scipy.stats.kstest(offsets, scipy.stats.vonmises(kappa).cdf).pvalue > 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_sample_gradients_in_every_mode(mode):
    # XLA's Philox stream differs from TF's, so each mode's own draws are
    # checked against the implicit gradient evaluated eagerly at those draws.
    loc = tf.constant([0.3, -2.0, 3.0], tf.float64)
    kappa = tf.constant([0.5, 10.5, 300.0], tf.float64)

    def draw():
        with tf.GradientTape() as tape:
            tape.watch([loc, kappa])
            z = VonMises(loc, kappa).sample(50, seed=(1, 2))
            loss = tf.reduce_sum(tf.sin(z) * z)
        return (z,) + tuple(tape.gradient(loss, [loc, kappa]))

    z, dloc, dkappa = run_in_mode(draw, mode)
    standardized = tf.constant(np.angle(np.exp(1j * (z.numpy() - loc.numpy()))))
    dz = _implicit_dz_dkappa(standardized, tf.broadcast_to(kappa, z.shape)).numpy()
    outer = (np.cos(z) * z + np.sin(z)).numpy()
    np.testing.assert_allclose(dloc, outer.sum(0), rtol=1e-12)
    np.testing.assert_allclose(dkappa, (outer * dz).sum(0), rtol=1e-12)
    if mode == "function":
        np.testing.assert_allclose(z, draw()[0], rtol=1e-14)


@pytest.mark.parametrize("kappa", [0.3, 4.0, 10.5, 60.0])
def test_monte_carlo_gradient_of_mean_cosine_matches_closed_form(kappa):
    # E cos(z - mu) = A(kappa) = I1/I0, so d/dkappa = 1 - A/kappa - A^2, and
    # E sin z = A sin(mu), so d/dmu = A cos(mu).
    mu, n = 0.7, 20000
    # One batch member per sample, so the gradient holds the per-sample pathwise
    # derivatives, whose spread gives the estimator's standard error.
    loc = tf.fill([n], tf.constant(mu, tf.float64))
    conc = tf.fill([n], tf.constant(kappa, tf.float64))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([loc, conc])
        z = VonMises(loc, conc).sample(seed=5)
        cos_sum = tf.reduce_sum(tf.cos(z - tf.stop_gradient(loc)))
        sin_sum = tf.reduce_sum(tf.sin(z))
    d_cos = tape.gradient(cos_sum, conc).numpy()
    d_sin = tape.gradient(sin_sum, loc).numpy()
    a = scipy.special.i1e(kappa) / scipy.special.i0e(kappa)
    for samples, exact in ((d_cos, 1 - a / kappa - a * a), (d_sin, a * np.cos(mu))):
        assert abs(samples.mean() - exact) <= 4 * samples.std() / np.sqrt(n)


@pytest.mark.parametrize("kappa", [0.05, 2.0, 50.0])
def test_statistics_match_scipy(dtype, kappa):
    loc = 1.2
    dist = VonMises(tf.constant(loc, dtype), tf.constant(kappa, dtype))
    x = np.linspace(-np.pi, np.pi, 9)[1:-1].astype(dtype)
    law = scipy.stats.vonmises(kappa, loc=loc)
    rtol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(
        dist.log_prob(x), law.logpdf(np.angle(np.exp(1j * (x - loc))) + loc), rtol=rtol, atol=rtol
    )
    a = scipy.special.i1e(kappa) / scipy.special.i0e(kappa)
    np.testing.assert_allclose(dist.variance(), 1 - a, rtol=rtol)
    np.testing.assert_allclose(dist.entropy(), law.entropy(), rtol=rtol)
    np.testing.assert_allclose(dist.mean(), loc, rtol=rtol)
    np.testing.assert_allclose(dist.mode(), loc, rtol=rtol)


def test_cdf_counts_periods_and_matches_tfp_away_from_its_switch():
    x = tf.constant([-7.0, -1.0, 0.5, 4.0, 9.0], tf.float64)
    loc, kappa = tf.constant(0.4, tf.float64), tf.constant(3.0, tf.float64)
    ours = VonMises(loc, kappa).cdf(x)
    np.testing.assert_allclose(ours, tfp.distributions.VonMises(loc, kappa).cdf(x), atol=1e-9)
    assert np.all(np.diff(ours.numpy()) > 0)
    np.testing.assert_allclose(
        VonMises(loc, kappa).cdf(x + 2 * np.pi) - ours, np.ones(5), atol=1e-12
    )


@pytest.mark.parametrize("kappa_p, kappa_q, dloc", [(0.5, 3.0, 1.0), (20.0, 2.0, -2.5)])
def test_kl_matches_quadrature(kappa_p, kappa_q, dloc):
    p, q = scipy.stats.vonmises(kappa_p), scipy.stats.vonmises(kappa_q, loc=dloc)
    exact, _ = scipy.integrate.quad(
        lambda t: p.pdf(t) * (p.logpdf(t) - q.logpdf(np.angle(np.exp(1j * (t - dloc))) + dloc)),
        -np.pi,
        np.pi,
        epsabs=1e-13,
        limit=200,
    )
    f64 = functools.partial(tf.constant, dtype=tf.float64)
    kl = tfp.distributions.kl_divergence(
        VonMises(f64(0.0), f64(kappa_p)), VonMises(f64(dloc), f64(kappa_q))
    )
    np.testing.assert_allclose(kl, exact, rtol=1e-9)


def test_shapes_and_composite_tensor():
    dist = VonMises(tf.zeros([3, 1]), tf.ones([4]))
    assert dist.batch_shape == [3, 4] and dist.event_shape == []
    assert dist.sample(5, seed=1).shape == [5, 3, 4]
    assert dist.log_prob(tf.zeros([2, 1, 1])).shape == [2, 3, 4]
    assert dist.reparameterization_type == tfp.distributions.FULLY_REPARAMETERIZED

    @tf.function
    def draw(d):
        return d.sample(seed=3)

    np.testing.assert_array_equal(draw(dist), dist.sample(seed=3))


def test_validation_errors_name_the_argument():
    with pytest.raises(tf.errors.InvalidArgumentError, match="concentration"):
        VonMises(0.0, [1.0, -1e-30], validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="concentration"):
        VonMises(0.0, -2.0, validate_args=True).sample(seed=1)
    kappa = tf.Variable(1.0)
    dist = VonMises(0.0, kappa, validate_args=True)
    kappa.assign(-1.0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="concentration"):
        dist.log_prob(0.0)
    with pytest.raises(ValueError, match="loc.*concentration"):
        VonMises(tf.zeros([3]), tf.ones([4]))
    with pytest.raises(TypeError, match="concentration"):
        VonMises(0.0, np.array([1, 2]))
    with pytest.raises(TypeError, match="float dtype"):
        VonMises(tf.constant(0.0, tf.float64), tf.constant(1.0, tf.float32))


@pytest.mark.parametrize("mode", MODES)
def test_zero_concentration_samples_the_uniform_law(dtype, mode):
    # kappa = 0 is the uniform law on [-pi, pi]: a KS test against it, and the
    # first two circular moments, which are 0 with standard error 1 / sqrt(2 n).
    n, loc = 20000, 1.3
    dist = VonMises(tf.constant(loc, dtype), tf.constant(0.0, dtype), validate_args=True)
    z = run_in_mode(lambda: dist.sample(n, seed=(3, 4)), mode).numpy()
    assert z.dtype == dtype and np.all(np.isfinite(z)) and np.all(np.abs(z) <= np.pi)
    assert scipy.stats.kstest(z, scipy.stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
    for moment in (np.cos(z), np.sin(z), np.cos(2 * z), np.sin(2 * z)):
        assert abs(moment.mean()) <= 4 / np.sqrt(2 * n)
    np.testing.assert_allclose(dist.log_prob(z[:5]), np.full(5, -np.log(2 * np.pi)), rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_zero_concentration_gradient_is_minus_sine(dtype, mode):
    # At kappa = 0 the CDF is (x + pi) / (2 pi), dF/dkappa = sin(x) / (2 pi) and
    # p = 1 / (2 pi), so the implicit gradient is dz/dkappa = -sin(z - loc).
    loc = tf.constant([0.0, 2.0, -3.0], dtype)
    kappa = tf.zeros([3], dtype)

    def draw():
        with tf.GradientTape() as tape:
            tape.watch([loc, kappa])
            z = VonMises(loc, kappa).sample(100, seed=(5, 6))
            loss = tf.reduce_sum(z)
        return (z,) + tuple(tape.gradient(loss, [loc, kappa]))

    z, dloc, dkappa = (t.numpy() for t in run_in_mode(draw, mode))
    offsets = np.angle(np.exp(1j * (z.astype(np.float64) - loc.numpy())))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dloc, np.full(3, 100.0), rtol=tol)
    np.testing.assert_allclose(dkappa, -np.sin(offsets).sum(0), rtol=0, atol=100 * tol)
    x = tf.constant(np.linspace(-3.1, 3.1, 7), dtype)
    np.testing.assert_allclose(
        von_mises_cdf(x, tf.zeros([], dtype)), (x + np.pi) / (2 * np.pi), atol=tol
    )


def test_tiny_concentration_is_continuous_with_zero():
    # The same seed at kappa = 1e-8 and at kappa = 0 gives draws, and gradients,
    # that differ by O(kappa): the density is uniform up to a factor 1 + O(kappa).
    for dtype in (tf.float32, tf.float64):
        draws = []
        for value in (0.0, 1e-8):
            kappa = tf.fill([1000], tf.constant(value, dtype))
            with tf.GradientTape() as tape:
                tape.watch(kappa)
                z = VonMises(tf.zeros([], dtype), kappa).sample(seed=(9, 10))
            draws.append((z.numpy(), tape.gradient(z, kappa).numpy()))
        (z0, dz0), (z1, dz1) = draws
        tol = 1e-5 if dtype == tf.float32 else 1e-7
        np.testing.assert_allclose(z1, z0, rtol=0, atol=tol)
        np.testing.assert_allclose(dz1, -np.sin(z1), rtol=0, atol=tol)
        np.testing.assert_allclose(dz0, -np.sin(z0), rtol=0, atol=tol)
