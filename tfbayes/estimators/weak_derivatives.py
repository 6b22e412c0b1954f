"""Weak-derivative decompositions ``d p(x; theta)/d theta = c (p+(x) - p-(x))``.

For each supported family and parameter, ``c > 0`` is a constant and ``p+``,
``p-`` are probability laws we can sample (Mohamed et al. 2020, arXiv
1906.10652, Table 1; Pflug 1989). Derivations, with ``p`` the density of one
batch member:

* Normal(mu, sigma), mean: ``dp/dmu = (x - mu)/sigma^2 p``. Split at
  ``x = mu``: ``c = 1/(sigma sqrt(2 pi))``, ``p+ = mu + sigma R``,
  ``p- = mu - sigma R`` with ``R`` Rayleigh(1) = Weibull(2, sqrt 2)
  (density ``r exp(-r^2/2)``). Coupled: the same ``R``.
* Normal(mu, sigma), scale: ``dp/dsigma = (1/sigma)((x - mu)^2/sigma^2 - 1) p``:
  ``c = 1/sigma``, ``p+ = mu + sigma M`` with ``M`` double-sided Maxwell
  (density ``m^2 phi(m)``), ``p- = Normal(mu, sigma)``. Coupled: ``M U`` with
  ``U ~ Uniform(0, 1)`` is standard normal, so ``p-`` uses ``M U``.
* Exponential(lambda), rate: ``dp/dlambda = (1 - lambda x) e^(-lambda x)
  = (1/lambda)(Exp(lambda) - Gamma(2, lambda))``: ``c = 1/lambda``.
  Coupled: ``E1/lambda`` and ``(E1 + E2)/lambda``.
* Gamma(a, b), rate: ``dp/db = (a/b - x) p = (a/b)(Gamma(a, b) - Gamma(a + 1, b))``
  (since ``x Gamma(x; a, b) = (a/b) Gamma(x; a + 1, b)``): ``c = a/b``.
  Coupled: ``G/b`` and ``(G + E)/b``.
* Gamma(a, b), concentration: ``dp/da = (log(b x) - psi(a)) p``. With
  ``y = b x ~ Gamma(a, 1)`` and ``P(a, y)`` the regularized lower incomplete
  gamma function, ``int_0^y (log u - psi(a)) p(u) du = dP(a, y)/da``, which
  is negative and smallest at ``y = k = exp(psi(a))``. The Hahn-Jordan split
  at ``k`` gives ``c = -dP(a, k)/da``, ``p+`` on ``y > k`` with CDF
  ``1 + (dP(a, y)/da)/c`` and ``p-`` on ``y < k`` with CDF
  ``-(dP(a, y)/da)/c``; both are sampled by inverting these CDFs by
  bisection in ``log y``. Coupled: the same uniform for both.
* Poisson(lambda), rate: ``dp(k)/dlambda = p(k - 1) - p(k)``: ``c = 1``,
  ``p+ = 1 + Poisson(lambda)``, ``p- = Poisson(lambda)``. Coupled: the same draw.
* Bernoulli(p), probs: ``dp(x)/dp = [x = 1] - [x = 0]``: ``c = 1``,
  ``p+ = delta_1``, ``p- = delta_0``.
* Categorical(p), probs ``p_k``: with TFP's normalization ``p(x) = p_x /
  sum_j p_j``, at ``sum p = 1``: ``dp(x)/dp_k = [x = k] - p_x``: ``c = 1``,
  ``p+ = delta_k``, ``p- = Categorical(p)``. Coupled: one ``p-`` draw shared
  by the ``K`` classes.

Logits, log-rates and other parameterizations are reached by the chain rule:
the decomposition is with respect to the canonical parameter read from the
distribution (``loc``, ``scale``, ``rate``, ``probs_parameter()``, ...) as a
differentiable function of what it was built from.
"""

import collections

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfbayes.distributions as tbd
from tfbayes.distributions.gamma import derive_seed

__all__ = ["WeakDerivative", "weak_derivatives", "SUPPORTED"]

tfd = tfp.distributions

WeakDerivative = collections.namedtuple(
    "WeakDerivative", ["name", "parameter", "constant", "positive", "negative"]
)
WeakDerivative.__doc__ = """One parameter's decomposition, drawn for ``n`` samples.

``parameter``: the differentiable canonical parameter, shape ``batch_shape +
extra`` (``extra`` is ``[K]`` for Categorical probabilities, else ``[]``);
``constant``: ``c``, same shape, no gradient; ``positive`` / ``negative``:
draws of ``p+`` / ``p-`` for that batch member, shape ``[n] + batch_shape +
extra``, in the distribution's dtype, no gradient."""

SUPPORTED = (
    "Normal (loc, scale)",
    "Exponential (rate)",
    "Gamma (concentration, rate)",
    "Poisson (rate)",
    "Bernoulli (probs)",
    "Categorical (probs)",
)

# Bisection steps for the Gamma-concentration decomposition: the bracket in log y
# is at most ~1e3 wide, so 64 halvings reach float64 resolution.
_BISECTION_STEPS = 64


def weak_derivatives(estimator, dist, n, seed, coupled):
    """The ``WeakDerivative`` of each parameter of ``dist``, drawn with ``seed``.

    Raises:
      ValueError: if ``dist``'s family has no decomposition here.
    """
    shape = dist.batch_shape_tensor()

    def param(value):
        return tf.broadcast_to(tf.convert_to_tensor(value), shape)

    seeds = [derive_seed(seed, i) for i in range(4)]
    if isinstance(dist, tfd.Normal):
        return _normal(param(dist.loc), param(dist.scale), n, seeds, coupled)
    if isinstance(dist, tfd.Exponential):
        return [_rate_of_exponential(param(_rate(dist)), n, seeds, coupled)]
    if isinstance(dist, (tfd.Gamma, tbd.Gamma)):
        concentration, rate = param(dist.concentration), param(_rate(dist))
        return [
            _gamma_concentration(concentration, rate, n, seeds[:2], coupled),
            _gamma_rate(concentration, rate, n, seeds[2:], coupled),
        ]
    if isinstance(dist, tfd.Poisson):
        return [_poisson(param(dist.rate_parameter()), n, seeds, coupled)]
    if isinstance(dist, tfd.Bernoulli):
        return [_bernoulli(param(dist.probs_parameter()), n, dist.dtype)]
    if isinstance(dist, tfd.Categorical):
        probs = tf.convert_to_tensor(dist.probs_parameter())
        probs = tf.broadcast_to(probs, tf.concat([shape, tf.shape(probs)[-1:]], 0))
        return [_categorical(probs, n, seeds, coupled, dist.dtype)]
    raise ValueError(
        f"{estimator}: `dist`: no weak-derivative decomposition for "
        f"{type(dist).__name__}; supported: {', '.join(SUPPORTED)}."
    )


def _rate(dist):
    return dist.rate if dist.rate is not None else tf.exp(dist.log_rate)


def _shape(n, param):
    return tf.concat([[n], tf.shape(param)], 0)


def _uniform(n, param, seed):
    """Uniforms in (0, 1) of shape ``[n] + shape(param)``."""
    tiny = np.finfo(param.dtype.as_numpy_dtype).tiny
    return tf.random.stateless_uniform(
        _shape(n, param), seed, minval=tiny, maxval=1.0, dtype=param.dtype
    )


def _normal(loc, scale, n, seeds, coupled):
    mu, sigma = tf.stop_gradient(loc), tf.stop_gradient(scale)
    rayleigh = tf.sqrt(-2.0 * tf.math.log(_uniform(n, mu, seeds[0])))
    rayleigh_minus = rayleigh if coupled else tf.sqrt(-2.0 * tf.math.log(_uniform(n, mu, seeds[1])))
    mean = WeakDerivative(
        "loc",
        loc,
        1.0 / (sigma * np.sqrt(2.0 * np.pi)),
        mu + sigma * rayleigh,
        mu - sigma * rayleigh_minus,
    )
    normals = tf.random.stateless_normal(
        tf.concat([[3], _shape(n, mu)], 0), seeds[2], dtype=mu.dtype
    )
    sign = tf.sign(_uniform(n, mu, seeds[3]) - 0.5)
    maxwell = sign * tf.norm(normals, axis=0)
    if coupled:
        normal = maxwell * _uniform(n, mu, derive_seed(seeds[3], 1))
    else:
        normal = tf.random.stateless_normal(_shape(n, mu), derive_seed(seeds[3], 2), dtype=mu.dtype)
    scale_part = WeakDerivative(
        "scale", scale, 1.0 / sigma, mu + sigma * maxwell, mu + sigma * normal
    )
    return [mean, scale_part]


def _exponential(n, param, seed):
    return -tf.math.log(_uniform(n, param, seed))


def _rate_of_exponential(rate, n, seeds, coupled):
    lam = tf.stop_gradient(rate)
    first = _exponential(n, lam, seeds[0])
    second = _exponential(n, lam, seeds[1])
    erlang = first + second if coupled else _exponential(n, lam, seeds[2]) + second
    return WeakDerivative("rate", rate, 1.0 / lam, first / lam, erlang / lam)


def _standard_gamma(n, concentration, seed):
    return tfd.Gamma(concentration, tf.ones_like(concentration)).sample(n, seed=seed)


def _gamma_rate(concentration, rate, n, seeds, coupled):
    a, b = tf.stop_gradient(concentration), tf.stop_gradient(rate)
    gamma = _standard_gamma(n, a, seeds[0])
    if coupled:
        gamma_plus_one = gamma + _exponential(n, a, seeds[1])
    else:
        gamma_plus_one = _standard_gamma(n, a + 1.0, seeds[1])
    return WeakDerivative("rate", rate, a / b, gamma / b, gamma_plus_one / b)


def _gamma_concentration(concentration, rate, n, seeds, coupled):
    a, b = tf.stop_gradient(concentration), tf.stop_gradient(rate)
    log_k = tf.math.digamma(a)
    c = -_igamma_grad_a(a, tf.exp(log_k))
    u_plus = _uniform(n, a, seeds[0])
    u_minus = u_plus if coupled else _uniform(n, a, seeds[1])
    a_n = tf.broadcast_to(a, tf.shape(u_plus))
    log_k_n = tf.broadcast_to(log_k, tf.shape(u_plus))
    c_n = tf.broadcast_to(c, tf.shape(u_plus))
    # Brackets in log y: the Gamma(a, 1) tail beyond a + 40 sqrt(a) + 40 holds
    # less than exp(-30); below k, dP/da ~ y^a log y / (a Gamma(a)) reaches
    # float resolution above log y = psi(a) - 200 / a - 50.
    upper = tf.math.log(a_n + 40.0 * tf.sqrt(a_n) + 40.0)
    lower = log_k_n - 200.0 / a_n - 50.0
    # Positive part: F+(y) = 1 + dP/da / c increases on (k, inf).
    log_y_plus = _bisect(
        lambda t: 1.0 + _igamma_grad_a(a_n, tf.exp(t)) / c_n - u_plus, log_k_n, upper
    )
    # Negative part: F-(y) = -dP/da / c increases on (0, k).
    log_y_minus = _bisect(lambda t: -_igamma_grad_a(a_n, tf.exp(t)) / c_n - u_minus, lower, log_k_n)
    return WeakDerivative(
        "concentration", concentration, c, tf.exp(log_y_plus) / b, tf.exp(log_y_minus) / b
    )


def _igamma_grad_a(a, y):
    """``dP(a, y)/da``: TF's kernel, fast under XLA and inside a bisection loop.

    It agrees with ``tfbayes.distributions.incomplete_gamma.igamma_grad_a`` (and
    mpmath) to float64 round-off on the range the bisection visits.
    """
    return tf.raw_ops.IgammaGradA(a=a, x=y)


def _bisect(increasing, low, high):
    """The root of an increasing elementwise function in ``[low, high]``, by bisection."""

    def body(i, low, high):
        mid = 0.5 * (low + high)
        above = increasing(mid) > 0.0
        return i + 1, tf.where(above, low, mid), tf.where(above, mid, high)

    _, low, high = tf.while_loop(
        lambda i, low, high: i < _BISECTION_STEPS, body, (tf.constant(0), low, high)
    )
    return 0.5 * (low + high)


def _poisson(rate, n, seeds, coupled):
    lam = tf.stop_gradient(rate)
    draw = tfd.Poisson(rate=lam).sample(n, seed=seeds[0])
    other = draw if coupled else tfd.Poisson(rate=lam).sample(n, seed=seeds[1])
    return WeakDerivative("rate", rate, tf.ones_like(lam), draw + 1.0, other)


def _bernoulli(probs, n, dtype):
    shape = _shape(n, probs)
    return WeakDerivative(
        "probs", probs, tf.ones_like(probs), tf.ones(shape, dtype), tf.zeros(shape, dtype)
    )


def _categorical(probs, n, seeds, coupled, dtype):
    p = tf.stop_gradient(probs)
    classes = tf.shape(p)[-1]
    positive = tf.broadcast_to(tf.range(classes, dtype=dtype), _shape(n, p))
    if coupled:
        negative = tfd.Categorical(probs=p, dtype=dtype).sample(n, seed=seeds[0])
        negative = tf.broadcast_to(negative[..., tf.newaxis], _shape(n, p))
    else:
        repeated = tf.broadcast_to(p[..., tf.newaxis, :], tf.concat([tf.shape(p), [classes]], 0))
        negative = tfd.Categorical(probs=repeated, dtype=dtype).sample(n, seed=seeds[0])
    return WeakDerivative("probs", probs, tf.ones_like(p), positive, negative)
