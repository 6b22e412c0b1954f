"""Von Mises distribution with a stateless XLA sampler and accurate implicit gradients.

Samples of ``VonMises(0, kappa)`` are drawn by Best and Fisher's rejection
sampler (Applied Statistics 28, 1979; Devroye 1986, IX.3.2) from a wrapped
Cauchy proposal with stateless (Philox) uniforms, the retries on compacted
buffers of the rejected elements (``rejection``), so ``sample`` compiles under
XLA and a seed gives the same draws at every call (eagerly, in ``tf.function``
and under ``jit_compile`` the draws may differ where an acceptance test is
decided by the last bit of a cosine). Each proposal costs one cosine and one
exponential; the angle itself is formed once, after the rejection loop.

The gradient with respect to ``concentration`` is the implicit one,
``dz/dkappa = -(dF/dkappa) / p(z)`` (Figurnov et al. 2018, eq. 5), attached by
``von_mises_sample_grad`` from the expansions of ``von_mises_cdf``: float64
relative error <= 2e-12 for ``kappa`` in ``[1e-2, 1e3]`` (see
``von_mises_numerics``); ``dz/dloc = 1``.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions.base import (
    DistributionChecksMixin,
    convert_float_parameters,
    finite_checks,
    parameter_assertions,
    positive_parameter,
    require_parameters,
    sanitize_seed,
)
from tfbayes.distributions.chunks import call_in_blocks
from tfbayes.distributions.rejection import rejection_sample
from tfbayes.distributions.von_mises_numerics import von_mises_cdf, von_mises_sample_grad

__all__ = ["VonMises", "sample_standard_von_mises"]

MAX_REJECTION_ROUNDS = 100
# Retries on 6 compacted buffers of 1/2 the size each (at least 66% accept).
RETRY_LEVELS, RETRY_SHRINK = 6, 2


@tf.autograph.experimental.do_not_convert
def _wrapped_cauchy_parameters(kappa):
    """Best-Fisher's proposal for ``kappa``, as ``(1 / (r - 1), kappa (r - 1))``.

    ``r = (1 + rho^2) / (2 rho)`` with
    ``rho = (tau - sqrt(2 tau)) / (2 kappa)``, ``tau = 1 + sqrt(1 + 4 kappa^2)``,
    and ``kappa (r - 1) = kappa (1 - rho)^2 / (2 rho)``, rearranged without
    cancellation: for ``kappa <= 1`` through
    ``kappa / (2 rho) = (q + 1)(sqrt(tau) + sqrt(2)) / (4 sqrt(tau))`` with
    ``q = sqrt(1 + 4 kappa^2)``, and above through
    ``1 - rho = (sqrt(2 tau) - 2 / (1 + 2 kappa / (q + 1))) / (2 kappa)``.
    ``kappa (r - 1)`` tends to 1 as ``kappa -> 0``, so ``1 / (r - 1) = kappa /
    (kappa (r - 1))`` is finite for every ``kappa >= 0`` and exactly 0 at
    ``kappa = 0`` (where ``r - 1`` itself would overflow): the proposal is then
    the uniform law, and every proposal is accepted.
    The rejection step is exact for any ``rho`` in ``[0, 1)``; only its
    acceptance rate (between 1 and ``sqrt(2 pi / e)^-1 ~ 0.66``) depends on it.
    """
    q = tf.sqrt(1.0 + 4.0 * kappa * kappa)
    sqrt_tau = tf.sqrt(1.0 + q)
    small = kappa <= 1.0
    half_kappa_over_rho_small = (q + 1.0) * (sqrt_tau + np.sqrt(2.0)) / (4.0 * sqrt_tau)
    safe_kappa = tf.where(small, tf.ones_like(kappa), kappa)
    one_minus_rho_large = (np.sqrt(2.0) * sqrt_tau - 2.0 / (1.0 + 2.0 * safe_kappa / (q + 1.0))) / (
        2.0 * safe_kappa
    )
    one_minus_rho = tf.where(
        small, 1.0 - kappa / (2.0 * half_kappa_over_rho_small), one_minus_rho_large
    )
    half_kappa_over_rho = tf.where(
        small, half_kappa_over_rho_small, kappa / (2.0 * (1.0 - one_minus_rho_large))
    )
    kappa_r_minus_1 = half_kappa_over_rho * tf.square(one_minus_rho)
    return kappa / kappa_r_minus_1, kappa_r_minus_1


@tf.autograph.experimental.do_not_convert
def _best_fisher(kappa, seed):
    """Standardized von Mises draws of ``kappa``'s shape, without gradients.

    Per round, for the elements not yet accepted: ``u ~ U(-1, 1)``,
    ``w = cos(pi u)`` (``f = (1 + r w) / (r + w)`` is the cosine of the wrapped
    Cauchy proposal) and ``c = kappa (r - f) = kappa (r - 1)(r + 1) / (r + w)``;
    accept when ``v <= c exp(1 - c)``. The retries run on compacted buffers
    (``rejection.rejection_sample``): as rounds over the whole array, the 30%
    rejected at ``kappa = 5`` took 12 rounds for 1e6 draws. After the loop the
    angle is ``sign(u) acos(f) = sign(u) 2 asin(sin(pi |u| / 2) sqrt((r - 1) / (r + w)))``,
    which keeps relative precision for small angles (large ``kappa``).
    """
    kappa = tf.stop_gradient(kappa)
    return tf.reshape(
        call_in_blocks(_best_fisher_kernel, (tf.reshape(kappa, [-1]),), (1.0,), seed=seed),
        tf.shape(kappa),
    )


def _best_fisher_kernel(kappa, seed):
    """``_best_fisher`` of 1-D ``kappa``, compiled by XLA also for eager and
    ``tf.function`` callers (1e6 draws at ``kappa = 5``: 50 ms against 110 ms as
    TF ops, measured; one compilation per dtype and size, small sizes bucketed, about 1 s)."""
    inv_r_minus_1, kappa_r_minus_1 = _wrapped_cauchy_parameters(kappa)
    u = rejection_sample(
        _best_fisher_proposal,
        (inv_r_minus_1, kappa_r_minus_1),
        seed,
        levels=RETRY_LEVELS,
        shrink=RETRY_SHRINK,
        max_rounds=MAX_REJECTION_ROUNDS,
    )
    # (r + w) / (r - 1) = 1 + (1 + w) / (r - 1), w = cos(pi u).
    r_plus_w_ratio = 1.0 + (1.0 + tf.cos(np.pi * u)) * inv_r_minus_1
    half_sine = tf.sin(0.5 * np.pi * tf.abs(u)) * tf.math.rsqrt(r_plus_w_ratio)
    return tf.sign(u) * 2.0 * tf.asin(tf.minimum(half_sine, 1.0))


def _best_fisher_proposal(params, seed):
    """One proposal ``u`` per element of ``(1 / (r - 1), kappa (r - 1))``: ``(u, accepted)``.

    ``c = kappa (r - 1)(r + 1) / (r + w)``, with numerator and denominator
    divided by ``r - 1`` so that ``kappa = 0`` (``1 / (r - 1) = 0``) gives
    ``c = 1`` and an acceptance probability of 1.
    """
    inv_r_minus_1, kappa_r_minus_1 = params
    proposal_u, v = tf.unstack(
        tf.random.stateless_uniform(
            tf.concat([[2], tf.shape(inv_r_minus_1)], 0),
            seed,
            dtype=inv_r_minus_1.dtype,
            alg="philox",
        )
    )
    proposal_u = 2.0 * proposal_u - 1.0
    r_plus_w_ratio = 1.0 + (1.0 + tf.cos(np.pi * proposal_u)) * inv_r_minus_1
    c = kappa_r_minus_1 * (1.0 + 2.0 * inv_r_minus_1) / r_plus_w_ratio
    return proposal_u, v <= c * tf.exp(1.0 - c)


@tf.autograph.experimental.do_not_convert
def sample_standard_von_mises(shape, concentration, seed):
    """Draws ``VonMises(0, concentration)`` with implicit gradients in ``concentration``.

    Args:
      shape: 1-D int shape of the output; ``concentration`` broadcasts to it.
      concentration: float32/float64 tensor ``kappa >= 0`` (``kappa = 0`` is
        the uniform law on the circle; its gradient is then ``-sin z``, from
        ``dF/dkappa = sin(z) / (2 pi)`` and ``p = 1 / (2 pi)``).
      seed: ``None`` or an int (stateful), or a ``[2]`` int tensor or pair
        (stateless): TFP's policy, see ``base.sanitize_seed``.

    Returns:
      Float tensor of ``shape`` with values in ``[-pi, pi]``; its gradient with
      respect to ``concentration`` is ``dz/dkappa = -(dF/dkappa) / p(z)``.

    Cost: about ``2 prod(shape)`` proposals, each accepted with probability
    at least 0.66 (one round over all elements, then the retries on
    compacted buffers of half the size at each level, at most
    ``MAX_REJECTION_ROUNDS`` rounds per retry loop). The backward pass costs
    one ``von_mises_cdf`` evaluation (about 100 elementwise steps per sample).
    """
    with tf.name_scope("sample_standard_von_mises"):
        concentration = tf.convert_to_tensor(concentration)
        seed = sanitize_seed(seed, salt="tfbayes_von_mises")
        theta = _best_fisher(tf.broadcast_to(concentration, shape), seed)
        return _attach_implicit_gradient(tf.broadcast_to(concentration, shape), theta)


@tf.custom_gradient
def _attach_implicit_gradient(concentration, theta):
    """``theta``, whose gradient in ``concentration`` (same shape) is ``dz/dkappa``.

    The same gradient as ``implicit_reparameterization(theta, [concentration],
    cdf=von_mises_cdf, prob=von_mises_prob)`` (Figurnov et al. 2018, eq. 5), with
    ``dF/dkappa`` and the density formed in one kernel (``von_mises_sample_grad``).
    """

    def grad(upstream):
        return upstream * von_mises_sample_grad(theta, concentration), None

    return tf.identity(theta), grad


class VonMises(DistributionChecksMixin, tfp.distributions.AutoCompositeTensorDistribution):
    """Von Mises distribution on the circle, with implicit reparameterization gradients.

    A drop-in for ``tfp.distributions.VonMises``: same parameters, shapes,
    ``log_prob``/``cdf``/moments and KL. Its sampler is stateless and compiles
    under XLA, and its gradient with respect to ``concentration`` has a float64
    relative error <= 2e-12 in every regime (TFP's reaches 8e-4 near
    ``concentration = 10.5``, where its CDF switches approximation).

    Density on ``[-pi, pi]``: ``p(x | mu, kappa) = exp(kappa cos(x - mu)) /
    (2 pi I0(kappa))``. Samples are mapped to ``[-pi, pi]``.

    Args:
      loc: float tensor ``mu``, the circular mean.
      concentration: float tensor ``kappa >= 0``, broadcasting with ``loc``;
        ``kappa = 0`` is the uniform distribution on ``[-pi, pi]``, as in TFP.
      validate_args: check that ``concentration`` is non-negative and both
        parameters finite (raising ``InvalidArgumentError`` naming them).
      allow_nan_stats: kept for the TFP interface; no statistic is undefined.
      name: name scope.

    Seeds: ``None`` or an int is stateful (a fresh draw at each call), a
    ``[2]`` int tensor or pair is stateless (the same draws at each call), as
    in TFP; see ``base.sanitize_seed``.

    Example:
      ```python
      kappa = tf.Variable(4.0)
      with tf.GradientTape() as tape:
          z = VonMises(loc=0.0, concentration=kappa).sample(10000, seed=(1, 2))
          loss = tf.reduce_mean(tf.cos(z))      # E cos z = I1(kappa) / I0(kappa)
      tape.gradient(loss, kappa)                # ~ d/dkappa I1/I0 = 0.038
      ```

    Cost: ``sample(n)`` is about ``2 n * batch_size`` rejection proposals (see
    ``sample_standard_von_mises``); ``log_prob`` is ``O(1)`` and ``cdf`` about
    100 elementwise steps per element.
    """

    def __init__(
        self, loc, concentration, validate_args=False, allow_nan_stats=True, name="VonMises"
    ):
        parameters = dict(locals())
        require_parameters("VonMises", loc=loc, concentration=concentration)
        with tf.name_scope(name) as name:
            dtype, params = convert_float_parameters(
                "VonMises", loc=loc, concentration=concentration
            )
            self._loc = params["loc"]
            self._concentration = params["concentration"]
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
        return dict(loc=tfp.util.ParameterProperties(), concentration=positive_parameter(dtype))

    @property
    def loc(self):
        """Circular mean ``mu``."""
        return self._loc

    @property
    def concentration(self):
        """Concentration ``kappa``."""
        return self._concentration

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _event_shape(self):
        return tf.TensorShape([])

    def _sample_n(self, n, seed=None):
        loc = tf.convert_to_tensor(self._loc)
        concentration = tf.convert_to_tensor(self._concentration)
        shape = tf.concat([[n], self._batch_shape_tensor(loc=loc, concentration=concentration)], 0)
        z = loc + sample_standard_von_mises(shape, concentration, seed)
        return z - (2.0 * np.pi) * tf.stop_gradient(tf.round(z / (2.0 * np.pi)))

    def _log_prob(self, x):
        x = self._check_value(x)
        concentration = tf.convert_to_tensor(self._concentration)
        return -2.0 * concentration * tf.square(tf.sin(0.5 * (x - self._loc))) - tf.math.log(
            2.0 * np.pi * tf.math.bessel_i0e(concentration)
        )

    def _cdf(self, x):
        x = self._check_value(x)
        return von_mises_cdf(x - self._loc, self._concentration)

    def _mean(self):
        loc = tf.convert_to_tensor(self._loc)
        return tf.broadcast_to(loc, self._batch_shape_tensor(loc=loc))

    def _mode(self):
        return self._mean()

    def _mean_resultant_length(self):
        """``E cos(x - mu) = I1(kappa) / I0(kappa)``, broadcast to the batch shape."""
        concentration = tf.convert_to_tensor(self._concentration)
        concentration = tf.broadcast_to(
            concentration, self._batch_shape_tensor(concentration=concentration)
        )
        return tf.math.bessel_i1e(concentration) / tf.math.bessel_i0e(concentration)

    def _variance(self):
        """Circular variance ``1 - E cos(x - mu) = 1 - I1(kappa) / I0(kappa)``, as in TFP."""
        return 1.0 - self._mean_resultant_length()

    def _entropy(self):
        concentration = tf.convert_to_tensor(self._concentration)
        return concentration * self._variance() + tf.math.log(
            2.0 * np.pi * tf.math.bessel_i0e(concentration)
        )

    def _default_event_space_bijector(self):
        return tfp.bijectors.Sigmoid(
            low=tf.constant(-np.pi, self.dtype),
            high=tf.constant(np.pi, self.dtype),
            validate_args=self.validate_args,
        )

    def _parameter_control_dependencies(self, is_init):
        return parameter_assertions(
            self.validate_args,
            is_init,
            [
                (
                    self._concentration,
                    "non_negative",
                    "Argument `concentration` must be non-negative.",
                )
            ]
            + finite_checks("VonMises", loc=self._loc, concentration=self._concentration),
        )


@tfp.distributions.RegisterKL(VonMises, VonMises)
def kl_von_mises_von_mises(p, q, name=None):
    """``KL(p || q)`` of two von Mises distributions, batched.

    With ``A(k) = I1(k) / I0(k)`` (``E_p cos(x - mu_p) = A(k_p)``, and the sine
    term vanishes by symmetry):
    ``log I0(k_q) - log I0(k_p) + (k_p - k_q cos(mu_p - mu_q)) A(k_p)``, written
    with the scaled ``I0e(k) = exp(-k) I0(k)`` so that nothing overflows.
    """
    with tf.name_scope(name or "kl_von_mises_von_mises"):
        k_p = tf.convert_to_tensor(p.concentration)
        k_q = tf.convert_to_tensor(q.concentration)
        i0e_p = tf.math.bessel_i0e(k_p)
        return (
            k_q
            - k_p
            + tf.math.log(tf.math.bessel_i0e(k_q) / i0e_p)
            + (k_p - k_q * tf.cos(p.loc - q.loc)) * tf.math.bessel_i1e(k_p) / i0e_p
        )
