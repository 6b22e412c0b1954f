"""Structured Bayesian Pruning (Neklyudov, Molchanov, Ashukha, Vetrov 2017, arXiv 1705.07283).

:class:`SBPDropout` multiplies each neuron (or channel) ``j`` of its input by a
random ``theta_j > 0``. With ``phi = log theta``:

* prior: ``phi ~ Uniform[a, b]`` (the log-uniform prior truncated to
  ``[e^a, e^b]``; the paper's defaults ``a = -20``, ``b = 0``);
* posterior: ``phi ~ N(mu, sigma^2)`` truncated to ``[a, b]`` (a truncated
  log-normal ``theta``).

The KL is invariant under the bijection ``theta = e^phi``, so it is the KL
between a truncated normal and a uniform on ``[a, b]``: with
``alpha = (a - mu)/sigma``, ``beta = (b - mu)/sigma``,
``Z = Phi(beta) - Phi(alpha)`` and the standard normal pdf ``phi_N``,

    KL = log(b - a) - log(sigma * sqrt(2 pi e)) - log Z
         - (alpha phi_N(alpha) - beta phi_N(beta)) / (2 Z),

i.e. ``log(b - a)`` minus the entropy of the truncated normal (the paper's
eq. for KL(q || p)). The moments of ``theta`` follow from
``E[e^{k phi}] = e^{k mu + k^2 sigma^2 / 2} (Phi(beta - k sigma) - Phi(alpha - k sigma)) / Z``,
and a unit is kept at inference when its signal-to-noise ratio
``SNR = E[theta] / sqrt(Var[theta])`` exceeds a threshold (1 by default); its
deterministic output is then ``x * E[theta]``, else 0.

All functions work in log space (``log Phi`` via ``logerfc``, and reflection
``(alpha, beta) -> (-beta, -alpha)`` when the interval lies in the upper tail),
so they stay finite when ``[alpha, beta]`` is far in a tail.
"""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.layers.base import BayesianLayer, check_finite_real, variable_dtype_scope

LOG_SIGMA_CLIP = (-20.0, 5.0)
"""``log sigma`` is clipped to this range in every computation, for numerical safety."""

# ``mu`` is kept inside [a, b] (clipped in every function, and constrained in the layer):
# then alpha <= 0 <= beta, Z >= ~0.05, and no term of the KL or the moments cancels
# catastrophically (outside [a, b], with a small sigma, -log Z and the pdf/Z terms are each
# ~beta^2/2 and cancel, which float32 cannot resolve). The family is unchanged in effect:
# mu beyond a bound only sharpens the mass at that bound, as a smaller sigma does.


def log_ndtr(x):
    """``log Phi(x)`` of the standard normal CDF, accurate in both tails."""
    return tfp.math.logerfc(-x / math.sqrt(2.0)) - math.log(2.0)


def _log1mexp(d):
    """``log(1 - e^d)`` for ``d <= 0`` (Maechler's two-branch formula)."""
    return tf.where(
        d > -math.log(2.0),
        tf.math.log(-tf.math.expm1(d)),
        tf.math.log1p(-tf.exp(tf.minimum(d, -math.log(2.0)))),
    )


def _logaddexp(x, y):
    """``log(e^x + e^y)``, broadcasting."""
    top = tf.maximum(x, y)
    return top + tf.math.log(tf.exp(x - top) + tf.exp(y - top))


def _reflect_to_lower_tail(lo, hi):
    """``(lo, hi)`` or ``(-hi, -lo)``, whichever has ``lo + hi <= 0``; and the flag."""
    flip = lo + hi > 0
    return tf.where(flip, -hi, lo), tf.where(flip, -lo, hi), flip


def log_diff_ndtr(lo, hi):
    """``log(Phi(hi) - Phi(lo))`` for ``lo < hi``, stable in both tails."""
    lo, hi, _ = _reflect_to_lower_tail(lo, hi)
    log_hi = log_ndtr(hi)
    return log_hi + _log1mexp(log_ndtr(lo) - log_hi)


def _standardized_bounds(mu, log_sigma, a, b):
    mu = tf.clip_by_value(mu, a, b)
    log_sigma = tf.clip_by_value(log_sigma, *LOG_SIGMA_CLIP)
    sigma = tf.exp(log_sigma)
    return (a - mu) / sigma, (b - mu) / sigma, sigma, log_sigma


def truncated_log_normal_kl(mu, log_sigma, a, b):
    """KL(q || p) for ``log theta ~ N(mu, sigma^2)`` truncated to [a, b] vs ``Uniform[a, b]``.

    Elementwise over ``mu`` and ``log_sigma`` (same shape); ``a < b`` are floats.
    See the module docstring for the formula. Cost: O(#units).
    """
    alpha, beta, _, log_sigma = _standardized_bounds(mu, log_sigma, a, b)
    log_z = log_diff_ndtr(alpha, beta)
    half_log_2pi = 0.5 * math.log(2.0 * math.pi)
    # (alpha pdf(alpha) - beta pdf(beta)) / Z, each pdf/Z ratio formed in log space.
    ratio = alpha * tf.exp(-0.5 * tf.square(alpha) - half_log_2pi - log_z) - beta * tf.exp(
        -0.5 * tf.square(beta) - half_log_2pi - log_z
    )
    return math.log(b - a) - log_sigma - half_log_2pi - 0.5 - log_z - 0.5 * ratio


def _log_moment(k, mu, sigma, alpha, beta, log_z):
    """``log E[theta^k]`` of the truncated log-normal."""
    return (
        k * mu + 0.5 * (k * sigma) ** 2 + log_diff_ndtr(alpha - k * sigma, beta - k * sigma) - log_z
    )


def truncated_log_normal_mean_snr(mu, log_sigma, a, b):
    """``E[theta]`` and ``SNR = E[theta] / sqrt(Var[theta])`` of the truncated log-normal.

    Elementwise; cost O(#units). ``SNR`` is formed as
    ``1 / sqrt(expm1(log E[theta^2] - 2 log E[theta]))``, computed in float64 whatever
    the input dtype: for a narrow posterior, ``Var/E^2 ~ sigma^2`` is far below float32's
    resolution of the log-moments. Results are cast back to ``mu``'s dtype.
    """
    dtype = mu.dtype
    mu, log_sigma = tf.cast(mu, tf.float64), tf.cast(log_sigma, tf.float64)
    alpha, beta, sigma, _ = _standardized_bounds(mu, log_sigma, a, b)
    mu = tf.clip_by_value(mu, a, b)
    log_z = log_diff_ndtr(alpha, beta)
    log_mean = _log_moment(1.0, mu, sigma, alpha, beta, log_z)
    log_second = _log_moment(2.0, mu, sigma, alpha, beta, log_z)
    # Var/E^2 = E[theta^2]/E[theta]^2 - 1 >= 0; the floor keeps rounding from making it negative.
    relative_var = tf.maximum(tf.math.expm1(log_second - 2.0 * log_mean), 1e-300)
    return tf.cast(tf.exp(log_mean), dtype), tf.cast(tf.math.rsqrt(relative_var), dtype)


def sample_truncated_log_normal(mu, log_sigma, a, b, uniform):
    """``theta = exp(phi)``, ``phi ~ N(mu, sigma^2)`` truncated to [a, b], by the inverse CDF.

    ``phi = mu + sigma * Phi^{-1}(Phi(alpha) + u Z)`` with ``u = uniform`` in
    (0, 1) (broadcast against ``mu``), computed in the lower tail after
    reflection (:func:`ndtri_of_log` keeps deep lower tails finite).
    Differentiable in ``mu`` and ``log_sigma``, with finite gradients everywhere.
    """
    alpha, beta, sigma, _ = _standardized_bounds(mu, log_sigma, a, b)
    lo, hi, flip = _reflect_to_lower_tail(alpha, beta)
    log_z = log_diff_ndtr(lo, hi)
    log_p = _logaddexp(log_ndtr(lo), tf.math.log(uniform) + log_z)
    x = tf.clip_by_value(ndtri_of_log(log_p), lo, hi)
    x = tf.where(flip, -x, x)
    return tf.exp(tf.clip_by_value(tf.clip_by_value(mu, a, b) + sigma * x, a, b))


_DIRECT_NDTRI_MIN_LOG_P = -80.0
"""Below this ``log p`` (float32 underflows near -87), :func:`ndtri_of_log` uses the tail expansion."""


def ndtri_of_log(log_p):
    """``Phi^{-1}(exp(log_p))`` for ``log_p <= 0``, finite with finite gradients.

    For ``log p > -80`` it is ``ndtri(p)``, with ``p`` capped just below 1.
    Deeper in the lower tail it solves ``log p = -x^2/2 - log|x| - log(2 pi)/2``
    (Mills' ratio, relative error O(1/x^2) < 0.1% there) by two fixed-point steps.
    """
    direct = log_p > _DIRECT_NDTRI_MIN_LOG_P
    eps = np.finfo(log_p.dtype.as_numpy_dtype).eps
    p = tf.minimum(tf.exp(tf.where(direct, log_p, tf.zeros_like(log_p))), 1.0 - eps)
    x_direct = tf.math.ndtri(tf.where(direct, p, 0.5 * tf.ones_like(p)))
    t = -2.0 * tf.where(direct, _DIRECT_NDTRI_MIN_LOG_P * tf.ones_like(log_p), log_p)
    x_tail = -tf.sqrt(t)
    for _ in range(2):
        x_tail = -tf.sqrt(t - 2.0 * tf.math.log(-x_tail) - math.log(2.0 * math.pi))
    return tf.where(direct, x_direct, x_tail)


@keras.saving.register_keras_serializable(package="tfbayes")
class ClipValue(keras.constraints.Constraint):
    """Clips a weight elementwise to ``[min_value, max_value]`` after each update."""

    def __init__(self, min_value, max_value):
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def __call__(self, w):
        return keras.ops.clip(w, self.min_value, self.max_value)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value}


def _normalize_axes(axis):
    axes = (axis,) if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) else axis
    if (
        not isinstance(axes, (tuple, list))
        or not axes
        or not all(isinstance(ax, (int, np.integer)) and not isinstance(ax, bool) for ax in axes)
    ):
        raise ValueError(f"axis: expected an int or a non-empty tuple of ints, got {axis!r}")
    return tuple(int(ax) for ax in axes)


@keras.saving.register_keras_serializable(package="tfbayes")
class SBPDropout(BayesianLayer):
    """Structured Bayesian Pruning: learned multiplicative log-normal noise per unit.

    ``y = x * theta``, one ``theta_j`` per index ``j`` along ``axis`` (a neuron
    of a Dense output, a channel of a conv feature map), with a truncated
    log-normal posterior and a truncated log-uniform prior (see the module
    docstring). In training a fresh ``theta`` is sampled per example and unit;
    at inference ``y = x * E[theta] * [SNR(theta) > snr_threshold]``, which
    :func:`tfbayes.sparsity.compress` turns into physically smaller layers.
    Place it after the layer whose outputs it prunes, e.g.
    ``Dense(300, 'relu'), SBPDropout()`` or ``Conv2D(20, 5), SBPDropout()``.

    Args:
      axis: the input axis (or tuple of axes) with one variable per index;
        default -1 (channels_last). The batch axis 0 is not allowed.
      log_theta_min, log_theta_max: the bounds ``a < b`` of ``log theta``
        (paper defaults -20 and 0).
      snr_threshold: a unit is kept when its SNR exceeds this positive number (default 1).
      mu_initializer, log_sigma_initializer: initial ``mu`` and ``log sigma``
        of ``log theta`` (floats; defaults 0 and -5, so ``theta`` starts near 1).
      seed: an int seed for the training noise, or None.
      num_examples: the training-set size N (see :class:`BayesianLayer`).

    Call arguments:
      inputs: a tensor of rank >= 2. training: Python bool.

    Returns:
      A tensor of the input's shape. Cost: O(#inputs) plus O(#units) special functions.

    Under a mixed policy ``theta`` (its sample, which needs the inverse normal
    CDF, and its inference factor) is computed in the variable dtype, float32,
    and only the product ``x * theta`` runs in the compute dtype.
    """

    def __init__(
        self,
        axis=-1,
        log_theta_min=-20.0,
        log_theta_max=0.0,
        snr_threshold=1.0,
        mu_initializer=0.0,
        log_sigma_initializer=-5.0,
        seed=None,
        num_examples=None,
        **kwargs,
    ):
        super().__init__(num_examples=num_examples, **kwargs)
        self.axis = _normalize_axes(axis)
        self.log_theta_min = check_finite_real(log_theta_min, "log_theta_min")
        self.log_theta_max = check_finite_real(log_theta_max, "log_theta_max")
        if not self.log_theta_min < self.log_theta_max:
            raise ValueError(
                "log_theta_min, log_theta_max: expected log_theta_min < log_theta_max, "
                f"got {log_theta_min!r} and {log_theta_max!r}"
            )
        self.snr_threshold = check_finite_real(snr_threshold, "snr_threshold")
        if self.snr_threshold <= 0:
            raise ValueError(f"snr_threshold: expected a positive number, got {snr_threshold!r}")
        self.mu_initializer = check_finite_real(mu_initializer, "mu_initializer")
        self.log_sigma_initializer = check_finite_real(
            log_sigma_initializer, "log_sigma_initializer"
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape):
        rank = len(input_shape)
        axes = tuple(ax % rank if -rank <= ax < rank else None for ax in self.axis)
        if None in axes or 0 in axes or len(set(axes)) != len(axes):
            raise ValueError(
                f"Layer {self.name!r}: axis: expected distinct non-batch axes of a "
                f"rank-{rank} input, got {self.axis!r}"
            )
        if any(input_shape[ax] is None for ax in axes):
            raise ValueError(
                f"Layer {self.name!r}: the input's axes {self.axis} must be known, got "
                f"input shape {tuple(input_shape)}"
            )
        self._axes = tuple(sorted(axes))
        shape = tuple(int(input_shape[ax]) for ax in self._axes)
        self._broadcast_shape = tuple(
            int(input_shape[ax]) if ax in self._axes else 1 for ax in range(rank)
        )
        self.mu = self.add_weight(
            name="mu",
            shape=shape,
            initializer=keras.initializers.Constant(self.mu_initializer),
            constraint=ClipValue(self.log_theta_min, self.log_theta_max),
        )
        self.log_sigma = self.add_weight(
            name="log_sigma",
            shape=shape,
            initializer=keras.initializers.Constant(self.log_sigma_initializer),
        )
        self.input_spec = keras.layers.InputSpec(
            ndim=rank, axes={ax: int(input_shape[ax]) for ax in self._axes}
        )

    def _bounds(self):
        return self.log_theta_min, self.log_theta_max

    def kl_divergence(self):
        """``sum_j KL(q(theta_j) || p(theta_j))``, a scalar."""
        return tf.reduce_sum(truncated_log_normal_kl(self.mu, self.log_sigma, *self._bounds()))

    def mean_and_snr(self):
        """``E[theta]`` and the SNR of every unit, each of the variables' shape."""
        return truncated_log_normal_mean_snr(
            tf.convert_to_tensor(self.mu), tf.convert_to_tensor(self.log_sigma), *self._bounds()
        )

    def unit_scale(self):
        """The deterministic factor of every unit: ``E[theta] * [SNR > snr_threshold]``."""
        mean, snr = self.mean_and_snr()
        return mean * tf.cast(snr > self.snr_threshold, mean.dtype)

    def call(self, inputs, training=False):
        self.add_kl_loss(training)
        # theta in the variable dtype (float32 under a mixed policy: TF has no float16 ndtri),
        # then cast to the compute dtype of the product.
        with variable_dtype_scope(self):
            if training:
                dtype = self.variable_dtype
                noise_shape = tf.concat(
                    [tf.shape(inputs)[:1], tf.constant(self._broadcast_shape[1:], tf.int32)], 0
                )
                uniform = keras.random.uniform(
                    noise_shape,
                    minval=np.finfo(dtype).tiny,
                    maxval=1.0,
                    dtype=dtype,
                    seed=self.seed_generator,
                )
                theta = sample_truncated_log_normal(
                    tf.reshape(self.mu, self._broadcast_shape),
                    tf.reshape(self.log_sigma, self._broadcast_shape),
                    *self._bounds(),
                    uniform,
                )
            else:
                theta = tf.reshape(self.unit_scale(), self._broadcast_shape)
        return inputs * tf.cast(theta, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def sparsity_groups(self):
        """``{'units': (kept, total)}``: units whose SNR exceeds the threshold (sparsity protocol)."""
        kept = tf.convert_to_tensor(self.unit_scale()).numpy() > 0
        return {"units": (int(kept.sum()), int(kept.size))}

    def channel_scale(self):
        """The per-channel factor on the last axis, as NumPy (0 = removed); the sparsity protocol.

        Raises:
          ValueError: if the layer's ``axis`` is not only the last axis.
        """
        if self._axes != (len(self._broadcast_shape) - 1,):
            raise ValueError(
                f"Layer {self.name!r}: only SBPDropout(axis=-1) on channels_last "
                f"tensors can be compressed, this layer has axis={self.axis}"
            )
        return tf.convert_to_tensor(self.unit_scale()).numpy()

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis,
            log_theta_min=self.log_theta_min,
            log_theta_max=self.log_theta_max,
            snr_threshold=self.snr_threshold,
            mu_initializer=self.mu_initializer,
            log_sigma_initializer=self.log_sigma_initializer,
            seed=self.seed,
        )
        return config
