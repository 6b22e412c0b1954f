"""Each weak-derivative decomposition, checked by quadrature, and its samplers by KS tests.

For each family and parameter, with the densities of ``p+`` and ``p-`` written
out independently in scipy (``weak_derivatives`` docstring for their
derivation):
  * ``p+`` and ``p-`` integrate to 1,
  * ``c (E_{p+}[g] - E_{p-}[g]) = d/dtheta E_p[g]`` (central differences of the
    quadrature) for a bounded smooth test function ``g``,
  * the draws ``weak_derivatives`` makes follow ``p+`` and ``p-`` (KS test).
"""

import mpmath
import numpy as np
import pytest
import scipy.integrate
import scipy.special as sc
import scipy.stats as st
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.estimators.weak_derivatives import weak_derivatives

tfd = tfp.distributions


def g(x):
    return np.cos(1.3 * x) + x / (1.0 + x * x)


def _expect(density, lo, hi):
    value, _ = scipy.integrate.quad(
        lambda x: g(x) * density(x), lo, hi, epsabs=1e-12, epsrel=1e-11, limit=400
    )
    return value


def _mass(density, lo, hi):
    return scipy.integrate.quad(density, lo, hi, epsabs=1e-12, epsrel=1e-11, limit=400)[0]


def _derivative(expectation, theta, step=1e-5):
    return (expectation(theta + step) - expectation(theta - step)) / (2 * step)


MU, SIGMA, LAM, A, B = 0.4, 1.3, 1.7, 0.8, 1.4


def _gamma_shape_parts(a, b):
    """``c`` and the densities of ``p+`` / ``p-`` for the Gamma concentration, in scipy/mpmath."""
    k = np.exp(sc.digamma(a))
    c = -float(mpmath.diff(lambda s: mpmath.gammainc(s, 0, k, regularized=True), a))
    density = st.gamma(a, scale=1 / b).pdf

    def plus(x):
        return np.where(b * x > k, (np.log(b * x) - sc.digamma(a)) * density(x) / c, 0.0)

    def minus(x):
        return np.where(b * x < k, (sc.digamma(a) - np.log(b * x)) * density(x) / c, 0.0)

    return c, plus, minus, k / b


def _rayleigh(x, sign):
    z = sign * (x - MU) / SIGMA
    return np.where(z > 0, z * np.exp(-z * z / 2) / SIGMA, 0.0)


# (name, c, p+ density, p- density, d/dtheta E_p[g] function, support, split points)
DECOMPOSITIONS = {
    "normal-loc": (
        1 / (SIGMA * np.sqrt(2 * np.pi)),
        lambda x: _rayleigh(x, 1),
        lambda x: _rayleigh(x, -1),
        lambda t: _expect(st.norm(t, SIGMA).pdf, -np.inf, np.inf),
        MU,
        (-np.inf, np.inf),
    ),
    "normal-scale": (
        1 / SIGMA,
        lambda x: ((x - MU) / SIGMA) ** 2 * st.norm(MU, SIGMA).pdf(x),
        st.norm(MU, SIGMA).pdf,
        lambda t: _expect(st.norm(MU, t).pdf, -np.inf, np.inf),
        SIGMA,
        (-np.inf, np.inf),
    ),
    "exponential-rate": (
        1 / LAM,
        st.expon(scale=1 / LAM).pdf,
        st.gamma(2, scale=1 / LAM).pdf,
        lambda t: _expect(st.expon(scale=1 / t).pdf, 0, np.inf),
        LAM,
        (0, np.inf),
    ),
    "gamma-rate": (
        A / B,
        st.gamma(A, scale=1 / B).pdf,
        st.gamma(A + 1, scale=1 / B).pdf,
        lambda t: _expect(st.gamma(A, scale=1 / t).pdf, 0, np.inf),
        B,
        (0, np.inf),
    ),
    "gamma-concentration": (
        _gamma_shape_parts(A, B)[0],
        _gamma_shape_parts(A, B)[1],
        _gamma_shape_parts(A, B)[2],
        lambda t: _expect(st.gamma(t, scale=1 / B).pdf, 0, np.inf),
        A,
        (0, np.inf),
    ),
}


@pytest.mark.parametrize("name", sorted(DECOMPOSITIONS))
def test_decomposition_by_quadrature(name):
    c, plus, minus, expectation, theta, (lo, hi) = DECOMPOSITIONS[name]
    assert _mass(plus, lo, hi) == pytest.approx(1.0, abs=1e-8)
    assert _mass(minus, lo, hi) == pytest.approx(1.0, abs=1e-8)
    weak = c * (_expect(plus, lo, hi) - _expect(minus, lo, hi))
    assert weak == pytest.approx(_derivative(expectation, theta), rel=1e-6, abs=1e-8)


def test_poisson_decomposition_by_summation():
    k = np.arange(0, 120)
    pmf = st.poisson(LAM).pmf
    weak = np.sum(g(k + 1.0) * pmf(k)) - np.sum(g(k * 1.0) * pmf(k))
    derivative = _derivative(lambda t: np.sum(g(k * 1.0) * st.poisson(t).pmf(k)), LAM)
    assert weak == pytest.approx(derivative, rel=1e-7)


def _draws(dist, coupled, n=4000, seed=7):
    parts = weak_derivatives("test", dist, n, tf.constant([3, seed]), coupled)
    return {
        p.name: (np.ravel(p.constant.numpy()), p.positive.numpy()[:, 0], p.negative.numpy()[:, 0])
        for p in parts
    }


def _dP_da(a, x, step=1e-6):
    """``dP(a, x)/da`` by central differences of scipy's regularized incomplete gamma."""
    return (sc.gammainc(a + step, x) - sc.gammainc(a - step, x)) / (2 * step)


def _ks(draws, cdf):
    return st.kstest(draws, cdf).pvalue


@pytest.mark.parametrize("coupled", [True, False])
def test_samplers_follow_the_decomposition(coupled):
    f64 = tf.float64
    normal = _draws(tfd.Normal(tf.constant([MU], f64), tf.constant([SIGMA], f64)), coupled)
    c, pos, neg = normal["loc"]
    assert c[0] == pytest.approx(DECOMPOSITIONS["normal-loc"][0], rel=1e-12)
    rayleigh = st.rayleigh(scale=SIGMA)
    assert _ks(pos - MU, rayleigh.cdf) > 1e-3 and _ks(MU - neg, rayleigh.cdf) > 1e-3
    if coupled:
        np.testing.assert_allclose(pos - MU, MU - neg, rtol=1e-12)
    c, pos, neg = normal["scale"]
    assert c[0] == pytest.approx(1 / SIGMA)
    maxwell = st.maxwell(scale=SIGMA)
    assert _ks(np.abs(pos - MU), maxwell.cdf) > 1e-3
    assert _ks(neg, st.norm(MU, SIGMA).cdf) > 1e-3

    c, pos, neg = _draws(tfd.Exponential(tf.constant([LAM], f64)), coupled)["rate"]
    assert c[0] == pytest.approx(1 / LAM)
    assert _ks(pos, st.expon(scale=1 / LAM).cdf) > 1e-3
    assert _ks(neg, st.gamma(2, scale=1 / LAM).cdf) > 1e-3

    gamma = _draws(tfd.Gamma(tf.constant([A], f64), tf.constant([B], f64)), coupled)
    c, pos, neg = gamma["rate"]
    assert c[0] == pytest.approx(A / B)
    assert _ks(pos, st.gamma(A, scale=1 / B).cdf) > 1e-3
    assert _ks(neg, st.gamma(A + 1, scale=1 / B).cdf) > 1e-3
    c, pos, neg = gamma["concentration"]
    c_ref, plus, minus, split = _gamma_shape_parts(A, B)
    assert c[0] == pytest.approx(c_ref, rel=1e-9)
    assert pos.min() >= split >= neg.max()

    # CDFs: int_0^y (log u - psi(a)) p(u) du = dP(a, y)/da, checked against the
    # quadrature of the densities at a few points.
    def cdf_plus(x):
        return 1.0 + _dP_da(A, B * x) / c_ref

    def cdf_minus(x):
        return -_dP_da(A, B * x) / c_ref

    for x in (0.3 * split, 2 * split, 5 * split):
        if x > split:
            assert cdf_plus(x) == pytest.approx(_mass(plus, split, x), abs=1e-7)
        else:
            assert cdf_minus(x) == pytest.approx(_mass(minus, 0.0, x), abs=1e-7)
    assert _ks(pos, cdf_plus) > 1e-3
    assert _ks(neg, cdf_minus) > 1e-3

    c, pos, neg = _draws(tfd.Poisson(tf.constant([LAM], f64)), coupled)["rate"]
    assert c[0] == 1.0
    if coupled:
        np.testing.assert_array_equal(pos - neg, 1.0)
    for draws, shift in ((pos, 1), (neg, 0)):
        counts = np.bincount(draws.astype(int) - shift, minlength=8)[:8]
        expected = len(draws) * st.poisson(LAM).pmf(np.arange(8))
        assert np.all(np.abs(counts - expected) <= 5 * np.sqrt(expected) + 1)
