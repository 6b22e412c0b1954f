"""Dirichlet distribution sampled in log-space from Gamma draws.

``x = g / sum(g)`` with independent ``g_i ~ Gamma(a_i, 1)``, so
``log x = log g - logsumexp(log g)``: the gradients with respect to each
concentration are the implicit Gamma gradients ``d log g_i / d a_i`` pushed
through the normalization (Figurnov et al. 2018, section 3.3), and ``log x``
stays finite where ``x`` underflows.
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

__all__ = ["Dirichlet", "sample_log_dirichlet"]


def sample_log_dirichlet(shape, concentration, seed):
    """Draws ``log x`` with ``x ~ Dirichlet(concentration)`` over the last axis.

    Args:
      shape: 1-D int shape of the output, ending in the event size ``k``;
        ``concentration`` (``[..., k]``) broadcasts to it.
      concentration: float tensor, positive.
      seed: seed by TFP's policy (``base.sanitize_seed``).

    Returns:
      ``log g - logsumexp(log g, axis=-1)`` for ``log g`` from
      ``sample_log_standard_gamma``; shape ``shape``. Its gradient with respect
      to ``concentration`` is ``d log x_i / d a_j = (delta_ij - x_j) g_j``,
      ``g_j = d log g_j / d a_j`` the implicit Gamma gradient.

    Cost: that of ``k`` Gamma draws and their gradients per event, plus ``O(k)``.
    """
    concentration = tf.broadcast_to(tf.convert_to_tensor(concentration), shape)
    log_gamma = sample_log_standard_gamma(shape, tf.stop_gradient(concentration), seed)
    return _normalize_with_implicit_gradient(concentration, tf.stop_gradient(log_gamma))


@tf.custom_gradient
def _normalize_with_implicit_gradient(concentration, log_gamma):
    """``log x = log g - logsumexp(log g)`` with the Jacobian in ``a`` formed stably.

    For an upstream ``u`` the VJP is
    ``u_j g_j sum_{i != j} x_i - x_j g_j sum_{i != j} u_i``. Two things keep
    every entry at full relative accuracy, however extreme the draw:
    ``sum_{i != j} x_i`` comes from ``_leave_one_out_sum`` (never from a
    cancelling ``1 - x_j``), and ``x_j g_j`` is formed as
    ``exp(log x_j + log g_j)``, so it is non-zero whenever it is representable
    even where ``x_j`` alone underflows.
    """
    log_x = log_gamma - tf.reduce_logsumexp(log_gamma, axis=-1, keepdims=True)

    def grad(upstream):
        gamma_grad = gamma_log_sample_grad(concentration, log_gamma)
        return _normalization_vjp(gamma_grad, log_x, upstream), None

    return log_x, grad


@tf.function(jit_compile=True, reduce_retracing=True, autograph=False)
def _normalization_vjp(gamma_grad, log_x, upstream):
    """The VJP above from the Gamma gradients, fused by XLA also for eager and
    ``tf.function`` callers (1e6 x 3 draws: 55 ms as TF ops, 22 ms, measured).
    The Gamma gradients stay outside: inlined here, their kernel ran slower."""
    others = _leave_one_out_sum(log_x)
    x_times_grad = times_exp(gamma_grad, log_x)
    upstream_others = tf.reduce_sum(upstream, axis=-1, keepdims=True) - upstream
    return upstream * others * gamma_grad - x_times_grad * upstream_others


def _leave_one_out_sum(log_x):
    """``sum_{i != j} x_i`` for every ``j``, at full relative accuracy, from ``log x``.

    ``log x`` lies on the simplex (``sum_i x_i = 1``). Where ``x_j <= 1/2`` the
    sum is ``1 - x_j = -expm1(log x_j)``, which does not cancel. At most one
    entry exceeds ``1/2``; it is the largest, and its sum is that of all the
    other entries, a ``logsumexp`` with the maximum masked out. Cost: ``O(k)``
    per event, two reductions over the last axis (XLA lowers the cumulative
    ``logsumexp`` s this replaces to slow windowed reductions).
    """
    is_max = tf.equal(log_x, tf.reduce_max(log_x, axis=-1, keepdims=True))
    rest = tf.exp(
        tf.reduce_logsumexp(
            tf.where(is_max, tf.constant(-float("inf"), log_x.dtype), log_x), axis=-1, keepdims=True
        )
    )
    return tf.where(log_x > -np.log(2.0), rest, -tf.math.expm1(log_x))


class Dirichlet(LogSpaceSampleMixin, tfp.distributions.AutoCompositeTensorDistribution):
    """Dirichlet distribution with implicit reparameterization gradients.

    A drop-in for ``tfp.distributions.Dirichlet``: the same parameter, shapes,
    ``log_prob``, moments, entropy and KL; sampling is stateless, compiles under
    XLA and is done in log-space (``log_sample``).

    Density on the simplex: ``p(x | a) = prod_i x_i^(a_i - 1) / B(a)``,
    ``B(a) = prod_i Gamma(a_i) / Gamma(sum_i a_i)``.

    Args:
      concentration: float tensor of shape ``batch_shape + [k]``, positive.
      validate_args: check that ``concentration`` is positive and finite
        (``InvalidArgumentError`` naming it, with TFP's messages) and that
        ``log_prob`` inputs lie on the simplex: non-negative, summing to 1
        along the last axis (within ``10 eps``, as ``tf.debugging.assert_near``).
      allow_nan_stats: if ``False``, ``mode`` raises where it is undefined.
      force_probs_to_zero_outside_support: if ``True``, ``log_prob(x) = -inf``
        off the simplex (a negative entry, or a sum further than ``10 eps``
        from 1), as in TFP.
      name: name scope.

    Seeds follow TFP's policy (``base.sanitize_seed``).

    Raises:
      ValueError: if ``concentration`` is a scalar or has event size 1, or
        ``log_prob`` gets a value whose shape does not broadcast.
      TypeError: if ``concentration`` is ``None`` or has an integer dtype.

    Cost of ``sample(n)``: ``n * batch_size * k`` Gamma draws.
    """

    def __init__(
        self,
        concentration,
        validate_args=False,
        allow_nan_stats=True,
        force_probs_to_zero_outside_support=False,
        name="Dirichlet",
    ):
        parameters = dict(locals())
        require_parameters("Dirichlet", concentration=concentration)
        with tf.name_scope(name) as name:
            dtype, params = convert_float_parameters("Dirichlet", concentration=concentration)
            self._concentration = params["concentration"]
            self._force_probs_to_zero_outside_support = force_probs_to_zero_outside_support
            shape = tf.TensorShape(self._concentration.shape)
            if shape.rank == 0:
                raise ValueError(
                    "Argument `concentration` must have rank at least 1. "
                    "(Dirichlet: `concentration` needs the event axis of size k; "
                    "got a scalar.)"
                )
            if shape.rank is not None and shape[-1] is not None and shape[-1] < 2:
                raise ValueError(
                    "Argument `concentration` must have `event_size` at least 2. "
                    f"(Dirichlet: got shape {shape}.)"
                )
            super().__init__(
                dtype=dtype,
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                reparameterization_type=tfp.distributions.FULLY_REPARAMETERIZED,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(concentration=positive_parameter(dtype, event_ndims=1))

    @property
    def concentration(self):
        """Concentration ``a``, shape ``batch_shape + [k]``."""
        return self._concentration

    @property
    def force_probs_to_zero_outside_support(self):
        """Whether ``log_prob`` is ``-inf`` (rather than the formula) off the simplex."""
        return self._force_probs_to_zero_outside_support

    def _event_shape_tensor(self):
        return tf.shape(self._concentration)[-1:]

    def _event_shape(self):
        return tf.TensorShape(self._concentration.shape)[-1:]

    def _log_sample_n(self, n, seed=None):
        concentration = tf.convert_to_tensor(self._concentration)
        shape = tf.concat([[n], tf.shape(concentration)], 0)
        return sample_log_dirichlet(shape, concentration, seed)

    def _log_prob(self, x):
        x = self._check_value(x)
        concentration = tf.convert_to_tensor(self._concentration)
        log_prob = tf.reduce_sum(tf.math.xlogy(concentration - 1.0, x), axis=-1) - tf.math.lbeta(
            concentration
        )
        if self._force_probs_to_zero_outside_support:
            eps = np.finfo(x.dtype.as_numpy_dtype).eps
            on_simplex = tf.reduce_all(x >= 0.0, axis=-1) & (
                tf.abs(tf.reduce_sum(x, axis=-1) - 1.0) < 10.0 * eps
            )
            return tf.where(on_simplex, log_prob, tf.constant(-np.inf, log_prob.dtype))
        return log_prob

    def _total(self):
        return tf.reduce_sum(self._concentration, axis=-1, keepdims=True)

    def _mean(self):
        return self._concentration / self._total()

    def _variance(self):
        total = self._total()
        mean = self._concentration / total
        return mean * (1.0 - mean) / (total + 1.0)

    def _covariance(self):
        total = self._total()
        mean = self._concentration / total
        outer = mean[..., :, None] * mean[..., None, :]
        return (tf.linalg.diag(mean) - outer) / (total[..., None] + 1.0)

    def _mode(self):
        concentration = tf.convert_to_tensor(self._concentration)
        k = tf.cast(tf.shape(concentration)[-1], self.dtype)
        mode = (concentration - 1.0) / (self._total() - k)
        defined = tf.reduce_all(concentration > 1.0, axis=-1, keepdims=True)
        return mode_where_defined(
            self, mode, defined, [(concentration, "Mode undefined when any concentration <= 1")]
        )

    def _entropy(self):
        concentration = tf.convert_to_tensor(self._concentration)
        total = tf.reduce_sum(concentration, axis=-1)
        k = tf.cast(tf.shape(concentration)[-1], self.dtype)
        return (
            tf.math.lbeta(concentration)
            + (total - k) * tf.math.digamma(total)
            - tf.reduce_sum((concentration - 1.0) * tf.math.digamma(concentration), axis=-1)
        )

    def _default_event_space_bijector(self):
        return tfp.bijectors.SoftmaxCentered(validate_args=self.validate_args)

    def _parameter_control_dependencies(self, is_init):
        assertions = []
        unknown_rank = tf.TensorShape(self._concentration.shape).rank is None
        if is_init and self.validate_args and unknown_rank:
            assertions.append(
                tf.debugging.assert_rank_at_least(
                    self._concentration,
                    1,
                    message="Argument `concentration` must have rank at least 1.",
                )
            )
        return assertions + parameter_assertions(
            self.validate_args,
            is_init,
            [(self._concentration, "positive", "Argument `concentration` must be positive.")]
            + finite_checks("Dirichlet", concentration=self._concentration),
        )

    def _sample_control_dependencies(self, x):
        if not self.validate_args:
            return []
        return [
            tf.debugging.assert_non_negative(x, message="Samples must be non-negative."),
            tf.debugging.assert_near(
                tf.ones([], x.dtype),
                tf.reduce_sum(x, axis=-1),
                message="Sample last-dimension must sum to `1`.",
            ),
        ]


@tfp.distributions.RegisterKL(Dirichlet, Dirichlet)
def kl_dirichlet_dirichlet(p, q, name=None):
    """``KL(p || q)`` of two Dirichlets, batched.

    ``log B(b) - log B(a) + sum_i (a_i - b_i) (psi(a_i) - psi(sum_j a_j))`` for
    ``p = Dir(a)``, ``q = Dir(b)``.
    """
    with tf.name_scope(name or "kl_dirichlet_dirichlet"):
        a, b = tf.convert_to_tensor(p.concentration), tf.convert_to_tensor(q.concentration)
        digamma_gap = tf.math.digamma(a) - tf.math.digamma(tf.reduce_sum(a, -1, keepdims=True))
        return tf.math.lbeta(b) - tf.math.lbeta(a) + tf.reduce_sum((a - b) * digamma_gap, axis=-1)
