"""Gamma distribution with a stateless, XLA-compilable, log-space sampler.

Samples are drawn as ``log x`` by Marsaglia and Tsang's method (ACM TOMS 26,
2000) with stateless normals and uniforms, the retries on compacted buffers of
the rejected elements (``rejection``); for
``a < 1`` a ``Gamma(a + 1)`` draw is boosted by ``U^(1/a)``, which in log-space
is the addition of ``log(U) / a``. ``log x`` is therefore finite even where
``x`` itself underflows (``a = 1e-3`` gives ``log x`` around ``-1000``, far
below float32's smallest positive number, ``exp(-103)``).

The gradient with respect to the concentration is the implicit one,
``d log x / da = -(dP(a, x)/da) / (x p(x | a))`` (Figurnov et al. 2018, eq. 5),
computed by ``incomplete_gamma.gamma_log_sample_grad`` from ``log x``; the
rate enters as ``log z = log x - log rate`` and is differentiated by autodiff.

This module also holds what ``Beta`` and ``Dirichlet`` share with ``Gamma``:
the parameter conversion with its dtype and shape checks, and the
``log_sample`` method.
"""
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions.incomplete_gamma import gamma_log_sample_grad
from tfbayes.distributions.rejection import rejection_sample

__all__ = ["Gamma", "sample_log_standard_gamma", "sanitize_seed", "derive_seed",
           "LogSpaceSampleMixin"]

MAX_REJECTION_ROUNDS = 50
# Retries on 3 compacted buffers of 1/8 the size each (more than 95% accept).
RETRY_LEVELS, RETRY_SHRINK = 3, 8


def sample_log_standard_gamma(shape, concentration, seed):
    """Draws ``log x`` with ``x ~ Gamma(concentration, 1)``, with implicit gradients.

    Args:
      shape: 1-D int shape of the output; ``concentration`` broadcasts to it.
      concentration: float tensor ``a > 0``.
      seed: stateless seed, an int or a ``[2]`` int tensor
        (``tfp.random.sanitize_seed`` semantics).

    Returns:
      Float tensor of ``shape``: ``log x``. Its gradient with respect to
      ``concentration`` is the exact implicit gradient ``d log x / da``.

    Cost: about ``1.15 prod(shape)`` proposals, each accepted with
    probability above 0.95: one rejection round over all elements, the
    retries on compacted buffers (see ``rejection``; at most
    ``MAX_REJECTION_ROUNDS`` rounds per retry loop, a bound reached with
    probability below ``0.05^50`` per element). The gradient costs what
    ``gamma_log_sample_grad`` costs.
    """
    with tf.name_scope("sample_log_standard_gamma"):
        concentration = tf.broadcast_to(tf.convert_to_tensor(concentration), shape)
        seed = sanitize_seed(seed)
        log_x = _marsaglia_tsang_log_sample(tf.stop_gradient(concentration), seed)
        return _attach_log_gamma_gradient(concentration, log_x)


@tf.custom_gradient
def _attach_log_gamma_gradient(concentration, log_x):
    def grad(upstream):
        return upstream * gamma_log_sample_grad(concentration, log_x), None

    return tf.identity(log_x), grad


def sanitize_seed(seed):
    """A ``[2]`` int32 stateless seed from an int, an int tensor, or ``None``.

    ``None`` draws a fresh seed (stateful, like TFP). An int ``s``, or a
    scalar int tensor, maps to ``[0, s]`` hashed by one Philox fold-in; a
    ``[2]`` int tensor is used as is. A seed gives the same draws eagerly and
    in ``tf.function``; XLA lowers the stateless kernels inside a
    ``while_loop`` differently, so under ``jit_compile`` the draws are
    deterministic and equally distributed but not the same numbers.
    """
    if seed is None:
        return tfp.random.sanitize_seed(None)
    if isinstance(seed, int):
        seed = seed % 2**31
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer or seed.shape.rank not in (0, 1) or (
            seed.shape.rank == 1 and seed.shape != [2]):
        raise ValueError("`seed` must be an int, a scalar int tensor or a [2] int tensor; got "
                         f"{seed!r}.")
    if seed.shape.rank == 0:
        return derive_seed(tf.stack([0, tf.cast(seed, tf.int32)]), 0x7FB0)
    return tf.cast(seed, tf.int32)


def derive_seed(seed, index):
    """The ``index``-th child of a ``[2]`` stateless seed (a Philox fold-in)."""
    return tf.random.experimental.stateless_fold_in(seed, index, alg="philox")


def _marsaglia_tsang_log_sample(concentration, seed):
    """Marsaglia-Tsang rejection sampler returning ``log x``; no gradients.

    The retries run on compacted buffers (``rejection.rejection_sample``):
    rounds over the whole array until its last element accepts (4-5 for 1e6
    elements) cost 1.5x (TF ops) to 2x (XLA) more, measured.
    """
    dtype = concentration.dtype
    shape = tf.shape(concentration)
    concentration = tf.reshape(concentration, [-1])
    boost = concentration < 1.0
    d = tf.where(boost, concentration + 1.0, concentration) - 1.0 / 3.0
    proposal_seed, boost_seed = derive_seed(seed, 0), derive_seed(seed, 1)
    log_v = rejection_sample(_marsaglia_tsang_proposal, (d,), proposal_seed,
                             levels=RETRY_LEVELS, shrink=RETRY_SHRINK,
                             max_rounds=MAX_REJECTION_ROUNDS)
    log_x = tf.math.log(d) + log_v
    u = tf.random.stateless_uniform(tf.shape(d), boost_seed, dtype=dtype, alg="philox")
    log_u = tf.math.log1p(-u)  # log of a uniform in (0, 1]
    return tf.reshape(tf.where(boost, log_x + log_u / concentration, log_x), shape)


def _marsaglia_tsang_proposal(params, seed):
    """One proposal per element of ``d = alpha - 1/3``: ``(log v, accepted)``."""
    d, = params
    c = tf.math.rsqrt(9.0 * d)
    normal_seed, uniform_seed = derive_seed(seed, 0), derive_seed(seed, 1)
    z = tf.random.stateless_normal(tf.shape(d), normal_seed, dtype=d.dtype, alg="philox")
    u = tf.random.stateless_uniform(tf.shape(d), uniform_seed, dtype=d.dtype, alg="philox")
    cube_root = 1.0 + c * z
    positive = cube_root > 0.0
    safe_cube_root = tf.where(positive, cube_root, tf.ones_like(cube_root))
    log_v = 3.0 * tf.math.log(safe_cube_root)
    # Accept if log U < z^2/2 + d - d v + d log v, with v = (1 + c z)^3.
    accept = positive & (tf.math.log1p(-u) < 0.5 * tf.square(z) + d
                         - d * safe_cube_root * tf.square(safe_cube_root) + d * log_v)
    return log_v, accept


def convert_float_parameters(class_name, **params):
    """Converts named parameters to one float dtype, refusing integer tensors.

    Returns ``(dtype, {name: tensor})``; ``None`` values pass through and
    variables (anything with ``dtype`` that is not a plain tensor, e.g.
    ``tf.Variable`` or ``tfp.util.TransformedVariable``) are kept as references
    so that they are read, and differentiated, at each use. Python numbers and
    lists are accepted, as in TFP; arrays, tensors and variables with an
    integer dtype raise a ``TypeError`` naming the parameter, and so do
    parameters of different float dtypes. Incompatible static shapes raise a
    ``ValueError`` naming the parameters.
    """
    dtypes = {}
    for name, value in params.items():
        value_dtype = getattr(value, "dtype", None)
        if value is None or value_dtype is None:
            continue
        value_dtype = tf.as_dtype(value_dtype)
        if not value_dtype.is_floating:
            raise TypeError(
                f"{class_name}: `{name}` must be a floating-point tensor (float32 or float64), "
                f"got dtype {value_dtype.name}. Cast it first, e.g. tf.cast({name}, tf.float32).")
        dtypes[name] = value_dtype
    if len(set(dtypes.values())) > 1:
        given = ", ".join(f"`{n}`: {d.name}" for n, d in dtypes.items())
        raise TypeError(f"{class_name}: parameters must share one float dtype; got {given}.")
    dtype = next(iter(dtypes.values()), tf.float32)
    converted = {}
    for name, value in params.items():
        if value is None or isinstance(value, (tf.Variable, tf.Module)):
            converted[name] = value
        else:
            converted[name] = tf.convert_to_tensor(value, dtype=dtype, name=name)
    _check_broadcastable(class_name, {n: v for n, v in converted.items() if v is not None})
    return dtype, converted


def _check_broadcastable(class_name, params):
    shapes = {name: tf.TensorShape(value.shape) for name, value in params.items()}
    shape = tf.TensorShape([])
    for name, param_shape in shapes.items():
        try:
            shape = tf.broadcast_static_shape(shape, param_shape)
        except ValueError:
            given = ", ".join(f"`{n}`: {s}" for n, s in shapes.items())
            raise ValueError(f"{class_name}: parameter shapes must broadcast against each "
                             f"other; got {given}.") from None


class LogSpaceSampleMixin:
    """Adds ``log_sample`` to a distribution that implements ``_log_sample_n``.

    ``_sample_n`` is then ``exp`` of it, so ``sample`` and ``log_sample`` with
    the same seed give the same draws.
    """

    def log_sample(self, sample_shape=(), seed=None, name="log_sample"):
        """Draws ``log`` of samples, finite even where the samples underflow.

        Args:
          sample_shape: int or 1-D int shape prepended to
            ``batch_shape + event_shape``.
          seed: stateless seed (int or ``[2]`` int tensor), as for ``sample``.
          name: name scope.

        Returns:
          Float tensor of shape ``sample_shape + batch_shape + event_shape``,
          equal to ``log(self.sample(sample_shape, seed))`` wherever that is
          finite, and carrying the same implicit gradients.
        """
        with self._name_and_control_scope(name):
            sample_shape = tf.reshape(tf.convert_to_tensor(sample_shape, tf.int32), [-1])
            log_x = self._log_sample_n(tf.reduce_prod(sample_shape), seed)
            return tf.reshape(log_x, tf.concat([sample_shape, tf.shape(log_x)[1:]], 0))

    def _sample_n(self, n, seed=None):
        return tf.exp(self._log_sample_n(n, seed))


def positive_parameter(dtype, event_ndims=0, is_preferred=True):
    """``ParameterProperties`` of a positive parameter: softplus-constrained above eps."""
    eps = float(np.finfo(tf.as_dtype(dtype).as_numpy_dtype).eps)
    return tfp.util.ParameterProperties(
        event_ndims=event_ndims, is_preferred=is_preferred,
        default_constraining_bijector_fn=lambda: tfp.bijectors.Softplus(low=eps))


def assert_positive(validate_args, is_init, params):
    """``validate_args`` assertions that each named parameter is positive."""
    if not validate_args:
        return []
    return [tf.debugging.assert_positive(value, message=f"Argument `{name}` must be positive.")
            for name, value in params.items()
            if value is not None and is_init != isinstance(value, (tf.Variable, tf.Module))]


class Gamma(LogSpaceSampleMixin, tfp.distributions.AutoCompositeTensorDistribution):
    """Gamma distribution with implicit reparameterization gradients.

    A drop-in for ``tfp.distributions.Gamma``: same parameters, shapes,
    ``log_prob``/``cdf``/moments and KL, but its sampler is stateless,
    compiles under XLA (``jit_compile=True``) and works in log-space, and its
    gradient with respect to ``concentration`` is the implicit one computed to
    float64 relative accuracy ``~1e-14`` for ``a`` in ``[1e-3, 1e3]``.

    Density: ``p(z | a, b) = b^a z^(a-1) e^(-b z) / Gamma(a)``, ``z > 0``.

    Args:
      concentration: float tensor ``a > 0``, shape broadcasting with the rate.
      rate: float tensor ``b > 0``. Exactly one of ``rate`` / ``log_rate``.
      log_rate: float tensor ``log b``.
      validate_args: check that parameters are positive (raising
        ``InvalidArgumentError`` naming the parameter) and that inputs to
        ``log_prob``/``cdf`` are non-negative.
      allow_nan_stats: if ``False``, ``mode`` raises where it is undefined.
      name: name scope.

    ``log_sample(sample_shape, seed)`` returns ``log z`` directly: at tiny
    concentrations the samples underflow (to exactly 0 in float32 below about
    ``exp(-103)``), but their logs, and the gradients of the logs, stay exact.

    Example:
      ```python
      a = tf.Variable([0.5, 2.0])
      with tf.GradientTape() as tape:
          z = Gamma(concentration=a, rate=1.0).sample(1000, seed=42)
          loss = tf.reduce_mean(z)
      tape.gradient(loss, a)  # ~ [1.0, 1.0], since E[z] = a / rate
      ```

    Cost of ``sample(n)``: about ``1.15 n * batch_size`` rejection proposals;
    its gradient adds ``O(n * batch_size * n_terms)`` (see
    ``incomplete_gamma``).
    """

    def __init__(self, concentration, rate=None, log_rate=None, validate_args=False,
                 allow_nan_stats=True, name="Gamma"):
        parameters = dict(locals())
        if (rate is None) == (log_rate is None):
            raise ValueError("Gamma: exactly one of `rate` and `log_rate` must be given; got "
                             f"rate={rate!r}, log_rate={log_rate!r}.")
        with tf.name_scope(name) as name:
            dtype, params = convert_float_parameters(
                "Gamma", concentration=concentration, rate=rate, log_rate=log_rate)
            self._concentration = params["concentration"]
            self._rate = params["rate"]
            self._log_rate = params["log_rate"]
            super().__init__(
                dtype=dtype, validate_args=validate_args, allow_nan_stats=allow_nan_stats,
                reparameterization_type=tfp.distributions.FULLY_REPARAMETERIZED,
                parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            concentration=positive_parameter(dtype),
            rate=positive_parameter(dtype, is_preferred=False),
            log_rate=tfp.util.ParameterProperties())

    @property
    def concentration(self):
        """Concentration (shape) parameter ``a``."""
        return self._concentration

    @property
    def rate(self):
        """Rate (inverse scale) parameter ``b``, or ``None`` if given as ``log_rate``."""
        return self._rate

    @property
    def log_rate(self):
        """``log b``, or ``None`` if given as ``rate``."""
        return self._log_rate

    def _rate_parameter(self):
        if self._rate is None:
            return tf.exp(self._log_rate)
        return tf.convert_to_tensor(self._rate)

    def _log_rate_parameter(self):
        if self._log_rate is None:
            return tf.math.log(self._rate)
        return tf.convert_to_tensor(self._log_rate)

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _event_shape(self):
        return tf.TensorShape([])

    def _log_sample_n(self, n, seed=None):
        concentration = tf.convert_to_tensor(self._concentration)
        log_rate = self._log_rate_parameter()
        shape = tf.concat([[n], self._batch_shape_tensor(concentration=concentration,
                                                         log_rate=log_rate)], 0)
        return sample_log_standard_gamma(shape, concentration, seed) - log_rate

    def _log_prob(self, x):
        concentration = tf.convert_to_tensor(self._concentration)
        log_rate = self._log_rate_parameter()
        return (tf.math.xlogy(concentration - 1.0, x) - tf.exp(log_rate) * x
                + concentration * log_rate - tf.math.lgamma(concentration))

    def _cdf(self, x):
        positive_x = tf.maximum(x, tf.zeros([], self.dtype))
        return tf.math.igamma(self._concentration, self._rate_parameter() * positive_x)

    def _mean(self):
        return self._concentration / self._rate_parameter()

    def _variance(self):
        return self._concentration / tf.square(self._rate_parameter())

    def _stddev(self):
        return tf.sqrt(self._concentration) / self._rate_parameter()

    def _mode(self):
        concentration = tf.convert_to_tensor(self._concentration)
        mode = (concentration - 1.0) / self._rate_parameter()
        return undefined_where(self, concentration <= 1.0, mode,
                                "Gamma mode is undefined where `concentration` <= 1.")

    def _entropy(self):
        concentration = tf.convert_to_tensor(self._concentration)
        return (concentration - self._log_rate_parameter() + tf.math.lgamma(concentration)
                + (1.0 - concentration) * tf.math.digamma(concentration))

    def _default_event_space_bijector(self):
        return tfp.bijectors.Softplus(validate_args=self.validate_args)

    def _parameter_control_dependencies(self, is_init):
        return assert_positive(self.validate_args, is_init,
                               {"concentration": self._concentration, "rate": self._rate})

    def _sample_control_dependencies(self, x):
        if not self.validate_args:
            return []
        return [tf.debugging.assert_non_negative(x, message="Gamma: `x` must be non-negative.")]


def undefined_where(dist, undefined, value, message):
    """NaN where ``undefined`` (or an assertion if ``allow_nan_stats=False``)."""
    if dist.allow_nan_stats:
        return tf.where(undefined, tf.constant(np.nan, value.dtype), value)
    with tf.control_dependencies([tf.debugging.assert_equal(
            tf.reduce_any(undefined), False, message=message)]):
        return tf.identity(value)


@tfp.distributions.RegisterKL(Gamma, Gamma)
def kl_gamma_gamma(p, q, name=None):
    """``KL(p || q)`` of two Gammas, batched.

    ``(a_p - a_q) psi(a_p) - lgamma(a_p) + lgamma(a_q) + a_q (log b_p - log b_q)
    + a_p (b_q - b_p) / b_p``.
    """
    with tf.name_scope(name or "kl_gamma_gamma"):
        a_p, a_q = (tf.convert_to_tensor(d.concentration) for d in (p, q))
        log_b_p, log_b_q = p._log_rate_parameter(), q._log_rate_parameter()
        return ((a_p - a_q) * tf.math.digamma(a_p) - tf.math.lgamma(a_p) + tf.math.lgamma(a_q)
                + a_q * (log_b_p - log_b_q) + a_p * tf.math.expm1(log_b_q - log_b_p))
