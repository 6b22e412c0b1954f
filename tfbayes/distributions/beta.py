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
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions.dirichlet import times_exp
from tfbayes.distributions.gamma import (LogSpaceSampleMixin, assert_positive,
                                         convert_float_parameters, positive_parameter,
                                         sample_log_standard_gamma, undefined_where)
from tfbayes.distributions.incomplete_gamma import gamma_log_sample_grad

__all__ = ["Beta", "sample_log_beta"]


def sample_log_beta(shape, concentration1, concentration0, seed):
    """Draws ``log x`` with ``x ~ Beta(concentration1, concentration0)``.

    Args:
      shape: 1-D int shape of the output; both concentrations broadcast to it.
      concentration1: float tensor ``a1 > 0``.
      concentration0: float tensor ``a0 > 0``.
      seed: stateless seed (int or ``[2]`` int tensor).

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
    concentration = tf.stack([tf.broadcast_to(concentration1, shape),
                              tf.broadcast_to(concentration0, shape)])
    log_gamma = sample_log_standard_gamma(tf.concat([[2], shape], 0),
                                          tf.stop_gradient(concentration), seed)
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
        scaled = times_exp(gamma_log_sample_grad(concentration, log_gamma),
                           log_g0 - log_total)
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
      validate_args: check that both are positive (``InvalidArgumentError``
        naming the parameter) and that inputs lie in ``[0, 1]``.
      allow_nan_stats: if ``False``, ``mode`` raises where it is undefined.
      name: name scope.

    Raises:
      ValueError: if the two shapes do not broadcast.
      TypeError: if a parameter has an integer dtype.

    Cost of ``sample(n)``: ``2 n batch_size`` Gamma draws.
    """

    def __init__(self, concentration1, concentration0, validate_args=False,
                 allow_nan_stats=True, name="Beta"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype, params = convert_float_parameters(
                "Beta", concentration1=concentration1, concentration0=concentration0)
            self._concentration1 = params["concentration1"]
            self._concentration0 = params["concentration0"]
            super().__init__(
                dtype=dtype, validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                reparameterization_type=tfp.distributions.FULLY_REPARAMETERIZED,
                parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(concentration1=positive_parameter(dtype),
                    concentration0=positive_parameter(dtype))

    @property
    def concentration1(self):
        """Concentration of the ``x`` factor, ``a1`` (alpha)."""
        return self._concentration1

    @property
    def concentration0(self):
        """Concentration of the ``1 - x`` factor, ``a0`` (beta)."""
        return self._concentration0

    def _concentrations(self):
        return tf.convert_to_tensor(self._concentration1), \
            tf.convert_to_tensor(self._concentration0)

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _event_shape(self):
        return tf.TensorShape([])

    def _log_sample_n(self, n, seed=None):
        c1, c0 = self._concentrations()
        shape = tf.concat([[n], tf.broadcast_dynamic_shape(tf.shape(c1), tf.shape(c0))], 0)
        return sample_log_beta(shape, c1, c0, seed)

    def _log_prob(self, x):
        c1, c0 = self._concentrations()
        return (tf.math.xlogy(c1 - 1.0, x) + tf.math.xlog1py(c0 - 1.0, -x)
                - _log_beta(c1, c0))

    def _cdf(self, x):
        c1, c0 = self._concentrations()
        x = tf.clip_by_value(x, tf.zeros([], self.dtype), tf.ones([], self.dtype))
        shape = tf.broadcast_dynamic_shape(
            tf.shape(x), tf.broadcast_dynamic_shape(tf.shape(c1), tf.shape(c0)))
        return tf.math.betainc(*(tf.broadcast_to(v, shape) for v in (c1, c0, x)))

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
        return undefined_where(self, (c1 <= 1.0) | (c0 <= 1.0), mode,
                               "Beta mode is undefined where a concentration is <= 1.")

    def _entropy(self):
        c1, c0 = self._concentrations()
        total = c1 + c0
        return (_log_beta(c1, c0) - (c1 - 1.0) * tf.math.digamma(c1)
                - (c0 - 1.0) * tf.math.digamma(c0) + (total - 2.0) * tf.math.digamma(total))

    def _default_event_space_bijector(self):
        return tfp.bijectors.Sigmoid(validate_args=self.validate_args)

    def _parameter_control_dependencies(self, is_init):
        return assert_positive(self.validate_args, is_init,
                               {"concentration1": self._concentration1,
                                "concentration0": self._concentration0})

    def _sample_control_dependencies(self, x):
        if not self.validate_args:
            return []
        return [tf.debugging.assert_non_negative(x, message="Beta: `x` must be >= 0."),
                tf.debugging.assert_less_equal(x, tf.ones([], x.dtype),
                                               message="Beta: `x` must be <= 1.")]


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
        return (_log_beta(b1, b0) - _log_beta(a1, a0)
                + (a1 - b1) * tf.math.digamma(a1) + (a0 - b0) * tf.math.digamma(a0)
                + (b1 - a1 + b0 - a0) * tf.math.digamma(a1 + a0))
