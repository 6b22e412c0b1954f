"""Closed-form expectations of test functions, and the densities to check them by quadrature.

Each ``Case`` is a distribution with batch shape ``[5]`` whose member ``j``
carries test function ``functions[j]``; the estimators then see
``f(x) = sum_j functions[j](x_j)`` and the gradient of ``E f`` with respect
to member ``j``'s parameters is that of ``E functions[j](x_j)``, which
``expectation`` gives in closed form (differentiated by autodiff).

Closed forms (derived from the moment and characteristic functions):
  Normal(m, s):      E x = m, E x^2 = m^2 + s^2, E x^3 = m^3 + 3 m s^2,
                     E cos x = cos(m) exp(-s^2 / 2)
  Exponential(l):    E x^k = k! / l^k, E cos x = Re l / (l - i) = l^2 / (1 + l^2)
  Gamma(a, b):       E x^k = a (a+1) ... (a+k-1) / b^k,
                     E cos x = Re (1 - i/b)^(-a) = (1 + b^-2)^(-a/2) cos(a atan(1/b))
  Poisson(l):        E x = l, E x^2 = l + l^2, E x^3 = l^3 + 3 l^2 + l,
                     E cos x = Re exp(l (e^i - 1)) = exp(l (cos 1 - 1)) cos(l sin 1)
  Beta(a, b):        E x^k = prod_{r<k} (a + r) / (a + b + r),
                     E cos x = sum_k (-1)^k E x^(2k) / (2k)!  (x in [0, 1]; 12 terms)
  Dirichlet(alpha):  component 0 is Beta(alpha_0, sum(alpha) - alpha_0)

No concentration is exactly 1: there TF's ``xlogy`` has gradient 0 in its first
argument, so the ``log_prob`` gradients of TFP's (and our) Gamma, Beta and
Dirichlet miss their ``log x`` term and the score function is biased.
  VonMises(m, k):    E cos(n x) = cos(n m) A_n, E sin(n x) = sin(n m) A_n,
                     A_1 = I_1(k) / I_0(k), A_2 = 1 - 2 A_1 / k
"""

import collections
import math

import numpy as np
import scipy.integrate
import scipy.stats as st
import tensorflow as tf
import tensorflow_probability as tfp

import tfbayes.distributions as tbd

tfd = tfp.distributions

Case = collections.namedtuple(
    "Case",
    ["name", "make", "params", "functions", "expectation", "scipy_dist", "discrete", "component"],
)

POLYNOMIAL = (lambda x: 1.5 + 0.0 * x, lambda x: x, lambda x: x**2, lambda x: x**3, tf.cos)
ANGULAR = (
    lambda x: 1.5 + 0.0 * x,
    tf.cos,
    tf.sin,
    lambda x: tf.cos(2.0 * x),
    lambda x: tf.sin(2.0 * x),
)
NUMPY_POLYNOMIAL = (lambda x: 1.5 + 0.0 * x, lambda x: x, lambda x: x**2, lambda x: x**3, np.cos)
NUMPY_ANGULAR = (
    lambda x: 1.5 + 0.0 * x,
    np.cos,
    np.sin,
    lambda x: np.cos(2.0 * x),
    lambda x: np.sin(2.0 * x),
)


def _polynomial_expectation(moments, cosine):
    """``[E 1.5, E x, E x^2, E x^3, E cos x]`` per member, from moment ``k`` of member ``j``."""
    return tf.stack(
        [1.5 + 0.0 * moments(0, 0), moments(1, 1), moments(2, 2), moments(3, 3), cosine(4)]
    )


def _normal(params):
    m, s = params

    def moments(k, j):
        return [1.0 + 0.0 * m[j], m[j], m[j] ** 2 + s[j] ** 2, m[j] ** 3 + 3 * m[j] * s[j] ** 2][k]

    return _polynomial_expectation(moments, lambda j: tf.cos(m[j]) * tf.exp(-(s[j] ** 2) / 2))


def _exponential(params):
    (lam,) = params
    return _polynomial_expectation(
        lambda k, j: math.factorial(k) / lam[j] ** k, lambda j: lam[j] ** 2 / (1 + lam[j] ** 2)
    )


def _rising(a, k):
    out = 1.0 + 0.0 * a
    for r in range(k):
        out = out * (a + r)
    return out


def _gamma(params):
    a, b = params
    return _polynomial_expectation(
        lambda k, j: _rising(a[j], k) / b[j] ** k,
        lambda j: (1 + b[j] ** -2) ** (-a[j] / 2) * tf.cos(a[j] * tf.atan(1 / b[j])),
    )


def _poisson(params):
    (lam,) = params

    def moments(k, j):
        x = lam[j]
        return [1.0 + 0.0 * x, x, x + x**2, x**3 + 3 * x**2 + x][k]

    return _polynomial_expectation(
        moments, lambda j: tf.exp(lam[j] * (math.cos(1) - 1)) * tf.cos(lam[j] * math.sin(1))
    )


def _beta_moment(a, b, k):
    out = 1.0 + 0.0 * a
    for r in range(k):
        out = out * (a + r) / (a + b + r)
    return out


def _beta_cos(a, b):
    return sum((-1) ** k * _beta_moment(a, b, 2 * k) / math.factorial(2 * k) for k in range(12))


def _beta(params):
    a, b = params
    return _polynomial_expectation(
        lambda k, j: _beta_moment(a[j], b[j], k), lambda j: _beta_cos(a[j], b[j])
    )


def _dirichlet(params):
    (alpha,) = params
    a, b = alpha[:, 0], tf.reduce_sum(alpha, -1) - alpha[:, 0]
    return _beta((a, b))


def _von_mises(params):
    m, k = params
    a1 = tf.math.bessel_i1e(k) / tf.math.bessel_i0e(k)
    a2 = 1 - 2 * a1 / k
    return tf.stack(
        [
            1.5 + 0.0 * m[0],
            tf.cos(m[1]) * a1[1],
            tf.sin(m[2]) * a1[2],
            tf.cos(2 * m[3]) * a2[3],
            tf.sin(2 * m[4]) * a2[4],
        ]
    )


def _implicit_normal(loc, scale):
    return tbd.ImplicitReparameterized(tfd.Normal(loc, scale))


NORMAL = Case(
    "Normal",
    tfd.Normal,
    (np.array([0.3, -0.5, 0.8, 0.4, 1.0]), np.array([1.2, 0.7, 0.5, 0.9, 0.6])),
    POLYNOMIAL,
    _normal,
    lambda m, s: st.norm(m, s),
    False,
    None,
)
EXPONENTIAL = Case(
    "Exponential",
    tfd.Exponential,
    (np.array([0.8, 1.5, 2.0, 2.5, 0.9]),),
    POLYNOMIAL,
    _exponential,
    lambda lam: st.expon(scale=1 / lam),
    False,
    None,
)
GAMMA_PARAMS = (np.array([0.6, 2.5, 1.7, 3.0, 0.8]), np.array([1.3, 2.0, 1.5, 2.5, 0.9]))
GAMMA = Case(
    "Gamma",
    tfd.Gamma,
    GAMMA_PARAMS,
    POLYNOMIAL,
    _gamma,
    lambda a, b: st.gamma(a, scale=1 / b),
    False,
    None,
)
TFBAYES_GAMMA = GAMMA._replace(name="tfbayes.Gamma", make=tbd.Gamma)
POISSON = Case(
    "Poisson",
    tfd.Poisson,
    (np.array([0.7, 1.5, 2.2, 1.2, 3.0]),),
    POLYNOMIAL,
    _poisson,
    lambda lam: st.poisson(lam),
    True,
    None,
)
BETA = Case(
    "tfbayes.Beta",
    tbd.Beta,
    (np.array([0.7, 1.5, 2.2, 1.2, 3.0]), np.array([1.1, 0.6, 2.0, 1.4, 0.8])),
    POLYNOMIAL,
    _beta,
    lambda a, b: st.beta(a, b),
    False,
    None,
)
DIRICHLET = Case(
    "tfbayes.Dirichlet",
    tbd.Dirichlet,
    (
        np.array(
            [[0.7, 1.3, 0.5], [1.5, 0.4, 0.8], [2.2, 1.2, 0.9], [1.2, 0.9, 2.0], [3.0, 0.5, 0.6]]
        ),
    ),
    POLYNOMIAL,
    _dirichlet,
    lambda alpha: st.beta(alpha[0], alpha.sum() - alpha[0]),
    False,
    0,
)
VON_MISES = Case(
    "tfbayes.VonMises",
    tbd.VonMises,
    (np.array([0.3, -0.5, 0.8, 0.4, 1.0]), np.array([0.5, 2.0, 1.2, 3.0, 0.8])),
    ANGULAR,
    _von_mises,
    lambda m, k: st.vonmises(k, loc=m),
    False,
    None,
)
IMPLICIT_NORMAL = NORMAL._replace(name="ImplicitReparameterized(Normal)", make=_implicit_normal)

CASES = (
    NORMAL,
    EXPONENTIAL,
    GAMMA,
    TFBAYES_GAMMA,
    POISSON,
    BETA,
    DIRICHLET,
    VON_MISES,
    IMPLICIT_NORMAL,
)


def sum_of_functions(case):
    """``f(x) = sum_j functions[j](x_j)`` on ``x`` of shape ``[n, 5]`` (``[n, 5, K]``)."""

    def f(x):
        x = tf.cast(x, tf.float64)
        if case.component is not None:
            x = x[..., case.component]
        return tf.add_n([g(x[:, j]) for j, g in enumerate(case.functions)])

    return f


def exact_gradient(case):
    """``d E f / d params`` from the closed form, by autodiff, in float64."""
    params = [tf.constant(p, tf.float64) for p in case.params]
    with tf.GradientTape() as tape:
        tape.watch(params)
        total = tf.reduce_sum(case.expectation(params))
    return [g.numpy() for g in tape.gradient(total, params)]


def quadrature_expectation(case, params, members=range(5)):
    """``[E functions[j](x_j)]_j`` by scipy quadrature (or summation), for ``j in members``."""
    numpy_functions = NUMPY_ANGULAR if case.functions is ANGULAR else NUMPY_POLYNOMIAL
    out = []
    for j in members:
        g = numpy_functions[j]
        dist = case.scipy_dist(*[p[j] for p in params])
        if case.discrete:
            k = np.arange(0, 200)
            out.append(np.sum(g(k.astype(float)) * dist.pmf(k)))
            continue
        lo, hi = dist.support()
        if case.functions is ANGULAR:
            lo, hi = params[0][j] - np.pi, params[0][j] + np.pi
        value, _ = scipy.integrate.quad(
            lambda x: g(x) * dist.pdf(x),
            max(lo, -40),
            min(hi, 80),
            epsabs=1e-13,
            epsrel=1e-12,
            limit=400,
        )
        out.append(value)
    return np.array(out)
