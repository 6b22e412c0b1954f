"""Beta distribution sampled in log-space from two Gamma draws.

``x = g_1 / (g_1 + g_0)`` with ``g_i ~ Gamma(a_i, 1)``, i.e. the first
coordinate of ``Dirichlet([a_1, a_0])``; gradients with respect to both
concentrations are the implicit Gamma gradients pushed through
``log x = log g_1 - logaddexp(log g_1, log g_0)`` (Figurnov et al. 2018).

The two Gamma draws are kept as two separate arrays (a leading axis of size 2),
not as a Dirichlet event axis: the normalization and its Jacobian are then
elementwise, with no reductions over a size-2 last axis and no gradient for
the unused second coordinate (4x faster than going through ``Dirichlet``).
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions.base import (
    LogSpaceSampleMixin,
    convert_float_parameters,
    finite_checks,
    mode_where_defined,
    parameter_assertions,
    positive_parameter,
    require_parameters,
    times_exp,
)
from tfbayes.distributions.gamma import sample_log_standard_gamma
from tfbayes.distributions.incomplete_gamma import gamma_log_sample_grad

__all__ = ["Beta", "sample_log_beta", "beta_quantile"]


def sample_log_beta(shape, concentration1, concentration0, seed):
    """Draws ``log x`` with ``x ~ Beta(concentration1, concentration0)``.

    Args:
      shape: 1-D int shape of the output; both concentrations broadcast to it.
      concentration1: float tensor ``a1 > 0``.
      concentration0: float tensor ``a0 > 0``.
      seed: seed by TFP's policy (``base.sanitize_seed``).

    Returns:
      ``log g1 - logaddexp(log g1, log g0)`` of shape ``shape``, where
      ``[log g1, log g0]`` is one ``sample_log_standard_gamma`` draw of shape
      ``[2] + shape``. Its gradients are ``d log x / d a1 = (1 - x) g1'`` and
      ``d log x / d a0 = -(1 - x) g0'``, with ``g'`` the implicit Gamma
      gradient ``d log g / d a`` and ``1 - x = exp(log g0 - logaddexp)``
      (no cancellation).

    Cost: that of ``2 prod(shape)`` Gamma draws and their gradients, plus
    ``O(prod(shape))``.
    """
    concentration = tf.stack(
        [tf.broadcast_to(concentration1, shape), tf.broadcast_to(concentration0, shape)]
    )
    log_gamma = sample_log_standard_gamma(
        tf.concat([[2], shape], 0), tf.stop_gradient(concentration), seed
    )
    return _normalize_pair_with_implicit_gradient(concentration, tf.stop_gradient(log_gamma))


@tf.custom_gradient
def _normalize_pair_with_implicit_gradient(concentration, log_gamma):
    """``log x = log g1 - logaddexp(log g1, log g0)`` for ``[2, ...]`` inputs.

    VJP for an upstream ``u``: ``[u (1 - x) g1', -u (1 - x) g0']``, with each
    product formed by ``times_exp`` from ``log(1 - x)``.
    """
    log_g1, log_g0 = log_gamma[0], log_gamma[1]
    log_total = tf.maximum(log_g1, log_g0) + tf.math.log1p(tf.exp(-tf.abs(log_g1 - log_g0)))
    log_x = log_g1 - log_total

    def grad(upstream):
        scaled = times_exp(gamma_log_sample_grad(concentration, log_gamma), log_g0 - log_total)
        return tf.stack([upstream * scaled[0], -upstream * scaled[1]]), None

    return log_x, grad


class Beta(LogSpaceSampleMixin, tfp.distributions.AutoCompositeTensorDistribution):
    """Beta distribution with implicit reparameterization gradients.

    A drop-in for ``tfp.distributions.Beta``: the same parameters
    (``concentration1`` = alpha, ``concentration0`` = beta), shapes, ``log_prob``,
    ``cdf``, moments, entropy and KL; sampling is stateless, compiles under XLA
    and is done in log-space (``log_sample``).

    Density: ``p(x | a1, a0) = x^(a1 - 1) (1 - x)^(a0 - 1) / B(a1, a0)`` on
    ``[0, 1]``.

    Args:
      concentration1: float tensor ``a1 > 0``.
      concentration0: float tensor ``a0 > 0``, broadcasting with ``a1``.
      validate_args: check that both are positive and finite
        (``InvalidArgumentError`` with TFP's message, naming the parameter) and
        that inputs lie in ``[0, 1]``.
      allow_nan_stats: if ``False``, ``mode`` raises where it is undefined.
      force_probs_to_zero_outside_support: if ``True``, ``log_prob(x) = -inf``
        outside ``[0, 1]``, as in TFP.
      name: name scope.

    Seeds follow TFP's policy (``base.sanitize_seed``). ``quantile(p)`` is
    ``I^{-1}_p(a1, a0)`` (``beta_quantile``: TFP's ``betaincinv`` refined by
    Newton steps, which TFP's own ``Beta.quantile`` lacks).

    Raises:
      ValueError: if the two shapes do not broadcast.
      TypeError: if a parameter is ``None`` or has an integer dtype.

    Cost of ``sample(n)``: ``2 n batch_size`` Gamma draws.
    """

    def __init__(
        self,
        concentration1,
        concentration0,
        validate_args=False,
        allow_nan_stats=True,
        force_probs_to_zero_outside_support=False,
        name="Beta",
    ):
        parameters = dict(locals())
        require_parameters("Beta", concentration1=concentration1, concentration0=concentration0)
        self._force_probs_to_zero_outside_support = force_probs_to_zero_outside_support
        with tf.name_scope(name) as name:
            dtype, params = convert_float_parameters(
                "Beta", concentration1=concentration1, concentration0=concentration0
            )
            self._concentration1 = params["concentration1"]
            self._concentration0 = params["concentration0"]
            super().__init__(
                dtype=dtype,
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                reparameterization_type=tfp.distributions.FULLY_REPARAMETERIZED,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def experimental_from_mean_concentration(cls, mean, total_concentration, **kwargs):
        """The Beta with this mean and ``a1 + a0``: ``a1 = mean c``, ``a0 = (1 - mean) c``.

        Args:
          mean: float tensor in ``(0, 1)``.
          total_concentration: float tensor ``c > 0``, broadcasting with ``mean``.
          **kwargs: passed to ``__init__`` (e.g. ``validate_args``).

        Returns:
          A ``Beta`` whose parameters are ``tfp.util.DeferredTensor`` s of
          ``mean`` (read, and differentiated, at each use), as in TFP.
        """
        _, params = convert_float_parameters(
            "Beta.experimental_from_mean_concentration",
            mean=mean,
            total_concentration=total_concentration,
        )
        mean, total = params["mean"], params["total_concentration"]
        return cls(
            concentration1=tfp.util.DeferredTensor(mean, lambda m: m * total),
            concentration0=tfp.util.DeferredTensor(mean, lambda m: (1.0 - m) * total),
            **kwargs,
        )

    @classmethod
    def experimental_from_mean_variance(cls, mean, variance, **kwargs):
        """The Beta with this mean and variance, ``variance < mean (1 - mean)``.

        ``a1 + a0 = mean (1 - mean) / variance - 1``; then as
        ``experimental_from_mean_concentration``.
        """
        _, params = convert_float_parameters(
            "Beta.experimental_from_mean_variance", mean=mean, variance=variance
        )
        mean, variance = params["mean"], params["variance"]
        total = tfp.util.DeferredTensor(mean, lambda m: m * (1.0 - m) / variance - 1.0)
        return cls.experimental_from_mean_concentration(mean, total, **kwargs)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            concentration1=positive_parameter(dtype), concentration0=positive_parameter(dtype)
        )

    @property
    def concentration1(self):
        """Concentration of the ``x`` factor, ``a1`` (alpha)."""
        return self._concentration1

    @property
    def concentration0(self):
        """Concentration of the ``1 - x`` factor, ``a0`` (beta)."""
        return self._concentration0

    @property
    def force_probs_to_zero_outside_support(self):
        """Whether ``log_prob`` is ``-inf`` (rather than the formula) outside ``[0, 1]``."""
        return self._force_probs_to_zero_outside_support

    def _concentrations(self):
        return tf.convert_to_tensor(self._concentration1), tf.convert_to_tensor(
            self._concentration0
        )

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _event_shape(self):
        return tf.TensorShape([])

    def _log_sample_n(self, n, seed=None):
        c1, c0 = self._concentrations()
        shape = tf.concat([[n], tf.broadcast_dynamic_shape(tf.shape(c1), tf.shape(c0))], 0)
        return sample_log_beta(shape, c1, c0, seed)

    def _log_prob(self, x):
        x = self._check_value(x)
        c1, c0 = self._concentrations()
        log_prob = tf.math.xlogy(c1 - 1.0, x) + tf.math.xlog1py(c0 - 1.0, -x) - _log_beta(c1, c0)
        if self._force_probs_to_zero_outside_support:
            return tf.where((x >= 0.0) & (x <= 1.0), log_prob, tf.constant(-np.inf, log_prob.dtype))
        return log_prob

    def _cdf(self, x):
        x = self._check_value(x)
        c1, c0 = self._concentrations()
        x = tf.clip_by_value(x, tf.zeros([], self.dtype), tf.ones([], self.dtype))
        shape = tf.broadcast_dynamic_shape(
            tf.shape(x), tf.broadcast_dynamic_shape(tf.shape(c1), tf.shape(c0))
        )
        return tf.math.betainc(*(tf.broadcast_to(v, shape) for v in (c1, c0, x)))

    def _quantile(self, p):
        return beta_quantile(*self._concentrations(), p)

    def _mean(self):
        c1, c0 = self._concentrations()
        return c1 / (c1 + c0)

    def _variance(self):
        c1, c0 = self._concentrations()
        total = c1 + c0
        return c1 * c0 / (tf.square(total) * (total + 1.0))

    def _mode(self):
        c1, c0 = self._concentrations()
        mode = (c1 - 1.0) / (c1 + c0 - 2.0)
        return mode_where_defined(
            self,
            mode,
            (c1 > 1.0) & (c0 > 1.0),
            [
                (c1, "Mode undefined for concentration1 <= 1."),
                (c0, "Mode undefined for concentration0 <= 1."),
            ],
        )

    def _entropy(self):
        c1, c0 = self._concentrations()
        total = c1 + c0
        return (
            _log_beta(c1, c0)
            - (c1 - 1.0) * tf.math.digamma(c1)
            - (c0 - 1.0) * tf.math.digamma(c0)
            + (total - 2.0) * tf.math.digamma(total)
        )

    def _default_event_space_bijector(self):
        return tfp.bijectors.Sigmoid(validate_args=self.validate_args)

    def _parameter_control_dependencies(self, is_init):
        return parameter_assertions(
            self.validate_args,
            is_init,
            [
                (
                    value,
                    "positive",
                    f"Concentration parameter must be positive. (Beta: `{name}` must be positive.)",
                )
                for name, value in (
                    ("concentration1", self._concentration1),
                    ("concentration0", self._concentration0),
                )
            ]
            + finite_checks(
                "Beta", concentration1=self._concentration1, concentration0=self._concentration0
            ),
        )

    def _sample_control_dependencies(self, x):
        if not self.validate_args:
            return []
        return [
            tf.debugging.assert_non_negative(x, message="Sample must be non-negative."),
            tf.debugging.assert_less_equal(
                x, tf.ones([], x.dtype), message="Sample must be less than or equal to `1`."
            ),
        ]


# Newton steps after tfp.math.betaincinv's start (each one betainc evaluation).
QUANTILE_NEWTON_STEPS = 40


def beta_quantile(concentration1, concentration0, p):
    """``x`` with ``I_x(a1, a0) = p``, the Beta quantile, shapes broadcast.

    ``tfp.math.betaincinv`` alone is off by up to 40% in float64 (e.g. the median
    of ``Beta(0.3, 1.7)``: 0.0302 against 0.0517), so its result is only the
    start of ``QUANTILE_NEWTON_STEPS`` Newton steps on ``I_x(a1, a0) - p``,
    ``x <- x - (I_x - p) / p(x)``, kept inside the bracket that the signs of
    ``I_x - p`` have established so far (a step that leaves it bisects it
    instead). ``p = 0`` and ``p = 1`` give 0 and 1; ``p`` outside ``[0, 1]``
    gives NaN. Cost: ``QUANTILE_NEWTON_STEPS + 1`` ``betainc`` evaluations per
    element.
    """
    shape = tf.broadcast_dynamic_shape(
        tf.shape(p), tf.broadcast_dynamic_shape(tf.shape(concentration1), tf.shape(concentration0))
    )
    a1, a0, p = (tf.broadcast_to(v, shape) for v in (concentration1, concentration0, p))
    log_beta = _log_beta(a1, a0)

    def newton_step(x, low, high):
        residual = tf.math.betainc(a1, a0, x) - p
        low = tf.where(residual < 0.0, x, low)
        high = tf.where(residual > 0.0, x, high)
        log_density = tf.math.xlogy(a1 - 1.0, x) + tf.math.xlog1py(a0 - 1.0, -x) - log_beta
        stepped = x - residual * tf.exp(-log_density)
        inside = (stepped > low) & (stepped < high)
        return tf.where(inside, stepped, 0.5 * (low + high)), low, high

    x = tfp.math.betaincinv(a1, a0, p)
    _, x, _, _ = tf.while_loop(
        lambda i, *_: i < QUANTILE_NEWTON_STEPS,
        lambda i, x, low, high: (i + 1,) + newton_step(x, low, high),
        (tf.constant(0), x, tf.zeros_like(x), tf.ones_like(x)),
    )
    x = tf.where(p <= 0.0, tf.zeros_like(x), tf.where(p >= 1.0, tf.ones_like(x), x))
    return tf.where((p < 0.0) | (p > 1.0), tf.constant(np.nan, x.dtype), x)


def _log_beta(a, b):
    return tf.math.lgamma(a) + tf.math.lgamma(b) - tf.math.lgamma(a + b)


@tfp.distributions.RegisterKL(Beta, Beta)
def kl_beta_beta(p, q, name=None):
    """``KL(p || q)`` of two Betas, batched.

    ``log B(b1, b0) - log B(a1, a0) + (a1 - b1) psi(a1) + (a0 - b0) psi(a0)
    + (b1 - a1 + b0 - a0) psi(a1 + a0)`` for ``p = Beta(a1, a0)``,
    ``q = Beta(b1, b0)``.
    """
    with tf.name_scope(name or "kl_beta_beta"):
        a1, a0 = p._concentrations()
        b1, b0 = q._concentrations()
        return (
            _log_beta(b1, b0)
            - _log_beta(a1, a0)
            + (a1 - b1) * tf.math.digamma(a1)
            + (a0 - b0) * tf.math.digamma(a0)
            + (b1 - a1 + b0 - a0) * tf.math.digamma(a1 + a0)
        )
