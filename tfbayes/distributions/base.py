"""What the distributions of ``tfbayes.distributions`` share (internal).

* ``sanitize_seed``: the one seed policy of every sampler here, TFP's
  (https://github.com/tensorflow/probability/blob/main/PRNGS.md):

  - ``None`` or a Python ``int`` is a *stateful* seed: each call draws a fresh
    stateless seed from TF's global generator, so two calls with
    ``seed=42`` give different draws, and a program that sets
    ``tf.random.set_seed`` first gives the same sequence of draws at every run;
  - a pair of ints (a ``[2]`` int tensor, tuple, list or array) is a
    *stateless* seed: the same seed gives the same draws at every call,
    eagerly and in ``tf.function`` (under ``jit_compile`` XLA may lower the
    samplers' loops differently: deterministic, equally distributed, but not
    always the same numbers); a scalar int tensor ``s`` is the stateless seed
    ``[0, s]``;
  - anything else raises an error naming ``seed``.
* ``DistributionChecksMixin``: the checks every ``sample`` / ``log_prob`` gets
  (sample shapes that would wrap at 32 bits, negative sample shapes, values
  whose shape does not broadcast with the distribution's);
  ``LogSpaceSampleMixin`` adds ``log_sample``.
* Parameter conversion (``convert_float_parameters``), ``validate_args``
  assertions (``parameter_assertions``, ``mode_where_defined``) and
  ``ParameterProperties`` (``positive_parameter``).
* ``times_exp``, a product that survives the underflow of its factor.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers
from tensorflow_probability.python.internal import tensor_util

__all__ = [
    "sanitize_seed",
    "derive_seed",
    "DistributionChecksMixin",
    "LogSpaceSampleMixin",
    "convert_float_parameters",
    "require_parameters",
    "finite_checks",
    "parameter_assertions",
    "mode_where_defined",
    "positive_parameter",
    "times_exp",
    "MAX_SAMPLE_SIZE",
]

# Sample counts are int32 inside TF's shape arithmetic.
MAX_SAMPLE_SIZE = 2**31 - 1


def sanitize_seed(seed, salt):
    """A ``[2]`` int32 stateless seed from any seed TFP accepts, by TFP's policy.

    Args:
      seed: ``None`` or a Python int (stateful: a fresh seed at every call, see
        the module docstring), or a stateless seed: a ``[2]`` int tensor,
        tuple, list or array, or a scalar int tensor ``s`` (taken as ``[0, s]``).
      salt: a string that makes the seeds of different samplers independent.

    Returns:
      An int32 tensor of shape ``[2]``.

    Raises:
      TypeError: if ``seed`` is not an integer seed (e.g. a float or a string).
      ValueError: if a stateless ``seed`` does not have shape ``[2]`` (or ``[]``).
    """
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return samplers.sanitize_seed(None if seed is None else int(seed), salt=salt)
    if isinstance(seed, bool):
        raise TypeError(f"`seed`: expected None, an int or a [2] int tensor, got {seed!r}.")
    try:
        tensor = tf.convert_to_tensor(seed)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`seed`: expected None, an int or a [2] int tensor, got {seed!r} ({error})."
        ) from None
    if not tensor.dtype.is_integer:
        raise TypeError(
            "`seed`: expected None, an int or a [2] int tensor, got a tensor of "
            f"dtype {tensor.dtype.name}."
        )
    if tensor.shape.rank == 0:
        tensor = tf.stack([tf.zeros([], tf.int32), tf.cast(tensor, tf.int32)])
    elif tensor.shape.rank is None or tensor.shape != [2]:
        raise ValueError(
            "`seed`: expected a stateless seed of shape [2] (or None, or an int), "
            f"got shape {tensor.shape}."
        )
    return samplers.sanitize_seed(tf.cast(tensor, tf.int32), salt=salt)


def derive_seed(seed, index):
    """The ``index``-th child of a ``[2]`` stateless seed (a Philox fold-in)."""
    return tf.random.experimental.stateless_fold_in(seed, index, alg="philox")


def _static_sample_shape(sample_shape):
    """``sample_shape`` as a 1-D int64 NumPy array, or ``None`` if it is not a
    static integer shape (TFP's own conversion then handles it)."""
    value = tf.get_static_value(sample_shape) if tf.is_tensor(sample_shape) else sample_shape
    try:
        value = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if not np.issubdtype(value.dtype, np.integer):
        return None
    return value.astype(np.int64).reshape([-1])


def check_sample_shape(sample_shape):
    """Raises ``ValueError`` for a static ``sample_shape`` that is negative or
    holds ``MAX_SAMPLE_SIZE + 1`` or more draws (which would wrap at 32 bits)."""
    shape = _static_sample_shape(sample_shape)
    if shape is None:
        return
    if np.any(shape < 0):
        raise ValueError(f"`sample_shape`: expected non-negative sizes, got {shape.tolist()}.")
    total = int(np.prod([int(s) for s in shape], dtype=object))
    if total > MAX_SAMPLE_SIZE:
        raise ValueError(
            f"`sample_shape`: expected at most 2**31 - 1 draws in all (TF's shapes "
            f"are int32), got {shape.tolist()} ({total} draws)."
        )


class DistributionChecksMixin:
    """Checks shared by every distribution here.

    ``sample`` refuses static sample shapes that are negative or would wrap
    at 32 bits (``ValueError`` naming ``sample_shape``); ``_check_value``
    refuses a ``value`` whose static shape does not broadcast with
    ``batch_shape + event_shape`` (``ValueError`` naming ``value``).
    """

    def _call_sample_n(self, sample_shape, seed, **kwargs):
        check_sample_shape(sample_shape)
        return super()._call_sample_n(sample_shape, seed, **kwargs)

    def _check_value(self, x):
        """``x`` unchanged, after a static check that its shape broadcasts."""
        expected = self.batch_shape.concatenate(self.event_shape)
        if x.shape.rank is None or expected.rank is None:
            return x
        event_rank = self.event_shape.rank
        try:
            tf.broadcast_static_shape(x.shape, expected)
            if event_rank and x.shape.rank < event_rank:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{type(self).__name__}: `value` of shape {x.shape} does not "
                f"broadcast with the batch and event shape {expected}."
            ) from None
        return x


class LogSpaceSampleMixin(DistributionChecksMixin):
    """``DistributionChecksMixin`` plus ``log_sample``, for a distribution that
    implements ``_log_sample_n``; ``_sample_n`` is ``exp`` of it, so ``sample``
    and ``log_sample`` with the same stateless seed give the same draws."""

    # Plain TF ops: autograph need not convert it (converted, it was seen to pass
    # the wrong arguments to ``_event_shape_tensor`` inside ``tf.function``).
    @tf.autograph.experimental.do_not_convert
    def log_sample(self, sample_shape=(), seed=None, name="log_sample"):
        """Draws ``log`` of samples, finite even where the samples underflow.

        Args:
          sample_shape: int or 1-D int shape prepended to
            ``batch_shape + event_shape``.
          seed: as for ``sample`` (see ``sanitize_seed`` for the policy).
          name: name scope.

        Returns:
          Float tensor of shape ``sample_shape + batch_shape + event_shape``,
          equal to ``log(self.sample(sample_shape, seed))`` for the same
          stateless seed wherever that is finite, and carrying the same
          implicit gradients.
        """
        check_sample_shape(sample_shape)
        with self._name_and_control_scope(name):
            sample_shape = tf.reshape(tf.convert_to_tensor(sample_shape, tf.int32), [-1])
            log_x = self._log_sample_n(tf.reduce_prod(sample_shape), seed)
            return tf.reshape(log_x, tf.concat([sample_shape, tf.shape(log_x)[1:]], 0))

    def _sample_n(self, n, seed=None):
        return tf.exp(self._log_sample_n(n, seed))


def convert_float_parameters(class_name, **params):
    """Converts named parameters to one float dtype, refusing integer tensors.

    Returns ``(dtype, {name: tensor})``; variables (anything with ``dtype``
    that is not a plain tensor, e.g. ``tf.Variable``,
    ``tfp.util.TransformedVariable`` or ``tfp.util.DeferredTensor``) are kept
    as references so that they are read, and differentiated, at each use.
    Python numbers and lists are accepted, as in TFP; arrays, tensors and
    variables with an integer dtype raise a ``TypeError`` naming the
    parameter, and so do parameters of different float dtypes. Incompatible
    static shapes raise a ``ValueError`` naming the parameters. A parameter
    passed as ``None`` stays ``None`` (optional parameters); callers refuse it
    where it is required (``require_parameters``).
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
                f"got dtype {value_dtype.name}. Cast it first, e.g. tf.cast({name}, tf.float32)."
            )
        dtypes[name] = value_dtype
    if len(set(dtypes.values())) > 1:
        given = ", ".join(f"`{n}`: {d.name}" for n, d in dtypes.items())
        raise TypeError(f"{class_name}: parameters must share one float dtype; got {given}.")
    dtype = next(iter(dtypes.values()), tf.float32)
    converted = {}
    for name, value in params.items():
        if value is None or tensor_util.is_ref(value):
            converted[name] = value
        else:
            try:
                converted[name] = tf.convert_to_tensor(value, dtype=dtype, name=name)
            except (TypeError, ValueError) as error:
                raise TypeError(
                    f"{class_name}: `{name}` must be a float tensor or a number; "
                    f"got {value!r} ({error})."
                ) from None
    _check_broadcastable(class_name, {n: v for n, v in converted.items() if v is not None})
    return dtype, converted


def require_parameters(class_name, **params):
    """Raises ``TypeError`` naming the first of ``params`` that is ``None``."""
    for name, value in params.items():
        if value is None:
            raise TypeError(f"{class_name}: `{name}` must be a float tensor; got None.")


def _check_broadcastable(class_name, params):
    shapes = {name: tf.TensorShape(value.shape) for name, value in params.items()}
    shape = tf.TensorShape([])
    for name, param_shape in shapes.items():
        try:
            shape = tf.broadcast_static_shape(shape, param_shape)
        except ValueError:
            given = ", ".join(f"`{n}`: {s}" for n, s in shapes.items())
            raise ValueError(
                f"{class_name}: parameter shapes must broadcast against each other; got {given}."
            ) from None


def positive_parameter(dtype, event_ndims=0, is_preferred=True):
    """``ParameterProperties`` of a positive parameter: softplus-constrained above eps."""
    eps = float(np.finfo(tf.as_dtype(dtype).as_numpy_dtype).eps)
    return tfp.util.ParameterProperties(
        event_ndims=event_ndims,
        is_preferred=is_preferred,
        default_constraining_bijector_fn=lambda: tfp.bijectors.Softplus(low=eps),
    )


def _assert_finite(value, message):
    # NaN fails the comparison as well as +-inf.
    return tf.debugging.assert_less(
        tf.abs(value), tf.constant(np.inf, value.dtype), message=message
    )


_ASSERTIONS = {
    "positive": tf.debugging.assert_positive,
    "non_negative": tf.debugging.assert_non_negative,
    "finite": _assert_finite,
}


def parameter_assertions(validate_args, is_init, checks):
    """The ``validate_args`` assertions of ``_parameter_control_dependencies``.

    Args:
      validate_args: the distribution's flag; nothing is checked if False.
      is_init: True in ``__init__`` (check tensors), False at each use (check
        variables, which may have changed since).
      checks: ``(value, kind, message)`` triples, ``kind`` one of
        ``"positive"``, ``"non_negative"``, ``"finite"`` (no NaN, no inf);
        ``None`` values are skipped.

    Returns:
      The list of assertion ops (raising ``InvalidArgumentError`` with
      ``message`` eagerly).
    """
    if not validate_args:
        return []
    return [
        _ASSERTIONS[kind](tf.convert_to_tensor(value), message=message)
        for value, kind, message in checks
        if value is not None and is_init != tensor_util.is_ref(value)
    ]


def finite_checks(class_name, **params):
    """``parameter_assertions`` triples asserting that each parameter is finite."""
    return [
        (value, "finite", f"{class_name}: argument `{name}` must be finite (no NaN or inf).")
        for name, value in params.items()
    ]


def mode_where_defined(dist, mode, defined, lower_bounds):
    """``mode`` where ``defined``, NaN elsewhere; with ``allow_nan_stats=False``
    asserts instead, as TFP does: ``1 < concentration`` for each
    ``(concentration, message)`` of ``lower_bounds``."""
    if dist.allow_nan_stats:
        return tf.where(defined, mode, tf.constant(np.nan, mode.dtype))
    with tf.control_dependencies(
        [
            tf.debugging.assert_less(tf.ones([], mode.dtype), value, message=message)
            for value, message in lower_bounds
        ]
    ):
        return tf.identity(mode)


def times_exp(value, log_factor):
    """``value * exp(log_factor)``, non-zero wherever the product is representable.

    Formed as ``sign(value) exp(log_factor + log|value|)``, so a factor that
    underflows on its own (``exp(log_factor) = 0``) still scales a large
    ``value`` to a finite, non-zero result. Shapes broadcast; ``O(1)`` per element.
    """
    return tf.sign(value) * tf.exp(log_factor + tf.math.log(tf.abs(value)))
