"""Implicit reparameterization for any univariate TFP distribution with a CDF.

``ImplicitReparameterized(distribution)`` draws with the wrapped distribution's
own sampler, without gradients, and attaches the implicit gradient
(Figurnov, Mohamed, Mnih 2018, arXiv 1805.08498, eq. 5)

    dz/dtheta = -(dF(z | theta)/dtheta) / p(z | theta)

with respect to every floating-point tensor (or variable) the distribution is
built from, including those of nested distributions (for example the logits
and component parameters of a ``MixtureSameFamily``). The parameters are found
by flattening the distribution as a composite tensor, and ``F`` and ``p`` are
evaluated on a copy rebuilt from them, so only ``cdf`` and ``prob`` need to be
differentiable. Everything else (``log_prob``, ``cdf``, moments, ...) is the
wrapped distribution's.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions.implicit import implicit_reparameterization

__all__ = ["ImplicitReparameterized"]

_PASSED_THROUGH = (
    "_log_prob",
    "_prob",
    "_cdf",
    "_log_cdf",
    "_survival_function",
    "_log_survival_function",
    "_quantile",
    "_mean",
    "_variance",
    "_stddev",
    "_mode",
    "_entropy",
)


class ImplicitReparameterized(tfp.distributions.Distribution):
    """Makes a univariate, continuous TFP distribution fully reparameterized.

    ``sample`` returns the wrapped distribution's draws (same seed, same values)
    whose gradients with respect to the wrapped distribution's parameters are
    the implicit ones, ``dz/dtheta = -(dF/dtheta) / p``. Use it for the TFP
    distributions whose ``reparameterization_type`` is ``NOT_REPARAMETERIZED``
    but whose ``cdf`` is differentiable, e.g. ``TruncatedCauchy``,
    ``MixtureSameFamily`` over a univariate family, ``NoncentralChi2``, ``Bates``.

    Args:
      distribution: a continuous ``tfp.distributions.Distribution`` with scalar
        events, a floating dtype and a ``cdf``, differentiable in its parameters.
        It must be a composite tensor (TFP's distributions are), so that its
        parameters can be found. (A discrete law has no density to divide by;
        TFP gives them float dtypes, so this cannot be checked.)
      validate_args: passed to the base class; the wrapped distribution keeps
        its own.
      name: name scope; default ``"ImplicitReparameterized" + distribution.name``.

    Raises:
      TypeError: if ``distribution`` is not a TFP distribution or not of a
        floating dtype.
      ValueError: if it has a non-scalar event, has no ``cdf``, or has no
        floating-point parameter to differentiate.

    Example:
      ```python
      tfd = tfp.distributions
      loc = tf.Variable([-1.0, 2.0])
      mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=[0.0, 1.0]),
                                      tfd.Normal(loc, 0.5))
      with tf.GradientTape() as tape:
          z = ImplicitReparameterized(mixture).sample(10000, seed=1)
          loss = tf.reduce_mean(z)            # E z = sum_i w_i loc_i
      tape.gradient(loss, loc)                # ~ softmax([0, 1]) = [0.27, 0.73]
      ```

    Cost: sampling costs the wrapped sampler; the backward pass evaluates the
    wrapped ``cdf`` once under a tape (one vector-Jacobian product) and ``prob``
    once, per sample.
    """

    def __init__(self, distribution, validate_args=False, name=None):
        parameters = dict(locals())
        _check_distribution(distribution)
        self._distribution = distribution
        with tf.name_scope(name or "ImplicitReparameterized" + distribution.name) as name:
            super().__init__(
                dtype=distribution.dtype,
                validate_args=validate_args,
                allow_nan_stats=distribution.allow_nan_stats,
                reparameterization_type=tfp.distributions.FULLY_REPARAMETERIZED,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(distribution=tfp.util.BatchedComponentProperties())

    @property
    def distribution(self):
        """The wrapped distribution."""
        return self._distribution

    def _batch_shape(self):
        return self._distribution.batch_shape

    def _batch_shape_tensor(self):
        return self._distribution.batch_shape_tensor()

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _sample_n(self, n, seed=None):
        flat = tf.nest.flatten(self._distribution, expand_composites=True)
        positions = [i for i, part in enumerate(flat) if _is_float_tensor(part)]

        def rebuilt(params):
            parts = list(flat)
            for i, param in zip(positions, params):
                parts[i] = param
            return tf.nest.pack_sequence_as(self._distribution, parts, expand_composites=True)

        sample = self._distribution.sample(n, seed=seed)
        return implicit_reparameterization(
            sample,
            [flat[i] for i in positions],
            cdf=lambda z, *params: rebuilt(params).cdf(z),
            prob=lambda z, *params: rebuilt(params).prob(z),
        )

    def _default_event_space_bijector(self):
        return self._distribution.experimental_default_event_space_bijector()


def _pass_through(method_name):
    def method(self, *args, **kwargs):
        return getattr(self._distribution, method_name[1:])(*args, **kwargs)

    method.__name__ = method_name
    method.__doc__ = f"The wrapped distribution's ``{method_name[1:]}``."
    return method


for _method_name in _PASSED_THROUGH:
    setattr(ImplicitReparameterized, _method_name, _pass_through(_method_name))


def _is_float_tensor(part):
    return isinstance(part, (tf.Tensor, tf.Variable)) and part.dtype.is_floating


def _check_distribution(distribution):
    if not isinstance(distribution, tfp.distributions.Distribution):
        raise TypeError(
            "ImplicitReparameterized: `distribution` must be a "
            f"tfp.distributions.Distribution, got {type(distribution).__name__}."
        )
    name = type(distribution).__name__
    if not tf.as_dtype(distribution.dtype).is_floating:
        raise TypeError(
            f"ImplicitReparameterized: `distribution` must have a floating dtype; "
            f"{name} has dtype {tf.as_dtype(distribution.dtype).name}."
        )
    if distribution.event_shape.rank != 0:
        raise ValueError(
            f"ImplicitReparameterized: `distribution` must be univariate (scalar "
            f"events); {name} has event shape {distribution.event_shape}."
        )
    if not any(hasattr(distribution, m) for m in ("_cdf", "_log_cdf")):
        raise ValueError(
            f"ImplicitReparameterized: `distribution` must implement `cdf`; {name} does not."
        )
    if not any(
        _is_float_tensor(part) for part in tf.nest.flatten(distribution, expand_composites=True)
    ):
        raise ValueError(
            f"ImplicitReparameterized: {name} has no floating-point parameter "
            "tensor to differentiate (is it a composite tensor?)."
        )
