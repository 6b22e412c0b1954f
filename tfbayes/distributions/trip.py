"""The Tensor Ring Induced Prior (TRIP), a mixture of d^m Gaussians.

Kuznetsov, Polykovskiy, Vetrov, Zhebrak, "A Prior of a Googol Gaussians: a
Tensor Ring Induced Prior for Generative Models", NeurIPS 2019, arXiv 1910.13148.

Each of the ``m`` latent dimensions carries ``d`` one-dimensional Gaussians
``N(mu[k, i], sigma[k, i]^2)``. A multi-index ``s = (s_1, ..., s_m)`` selects one
Gaussian per dimension, and the ``d^m`` lattice components are weighted by a
tensor ring with non-negative cores ``Q_k[i]`` (``r x r`` matrices), eq. (3)-(4)::

    P(s) = Tr(Q_1[s_1] Q_2[s_2] ... Q_m[s_m]) / Z,
    Z    = Tr(S_1 S_2 ... S_m),           S_k = sum_i Q_k[i],
    p(z) = sum_s P(s) prod_k N(z_k | mu[k, s_k], sigma[k, s_k]^2)
         = Tr(prod_k sum_i Q_k[i] N(z_k | mu[k, i], sigma[k, i]^2)) / Z.

Every quantity below is one of these ring contractions, so nothing costs d^m.
One routine, :func:`_log_ring_sum`, computes
``log Tr(prod_k sum_i Q_k[i] exp(w[k, i]))`` for arbitrary log-weights ``w``
with a per-step rescaling that keeps the running product's largest entry at 1
and accumulates the discarded scale in log space. It gives

* the log-normaliser (``w = 0``),
* the log-density (``w = log N(z_k | mu, sigma)``), and
* the cumulant generating function ``K(t) = log E exp(t . z)``
  (``w = t_k mu + t_k^2 sigma^2 / 2``), whose Hessian at 0 is the covariance.
"""

import numpy as np
import tensorflow as tf
from tensorflow_probability.python.bijectors import identity as identity_bijector
from tensorflow_probability.python.bijectors import softplus as softplus_bijector
from tensorflow_probability.python.distributions import distribution
from tensorflow_probability.python.internal import assert_util
from tensorflow_probability.python.internal import dtype_util
from tensorflow_probability.python.internal import parameter_properties
from tensorflow_probability.python.internal import reparameterization
from tensorflow_probability.python.internal import samplers
from tensorflow_probability.python.internal import tensor_util

from tfbayes.distributions.base import (
    DistributionChecksMixin,
    finite_checks,
    parameter_assertions,
    require_parameters,
    sanitize_seed,
)

__all__ = ["TRIP"]

_HALF_LOG_TWO_PI = 0.5 * np.log(2.0 * np.pi)


def _normalize_matrices(matrices, num_axes=2):
    """Divides each block of the last ``num_axes`` axes by its largest entry.

    Returns the rescaled tensor and the log of the (stop-gradient) scales, shape
    ``matrices.shape[:-num_axes]``. A zero block keeps scale 1, so a zero trace
    later gives ``log 0 = -inf`` rather than NaN.
    """
    axes = list(range(-num_axes, 0))
    scale = tf.stop_gradient(tf.reduce_max(matrices, axis=axes, keepdims=True))
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return matrices / scale, tf.math.log(tf.reshape(scale, tf.shape(scale)[:-num_axes]))


def _dims_first(x, event_ndims):
    """Moves the latent-dimension axis (``event_ndims`` from the end) to the front."""
    rank = x.shape.rank
    axis = rank - event_ndims
    return tf.transpose(x, [axis] + [i for i in range(rank) if i != axis])


def _dims_last(x):
    """Inverse of ``_dims_first(x, 1)``: moves the leading axis to the end."""
    rank = x.shape.rank
    return tf.transpose(x, list(range(1, rank)) + [0])


def _shifted_weights(log_weights):
    """``exp(w - c)`` and ``c = max(w)`` over the last axis (``c = 0`` where ``w`` is all -inf)."""
    shift = tf.stop_gradient(tf.reduce_max(log_weights, axis=-1))
    shift = tf.where(tf.math.is_finite(shift), shift, tf.zeros_like(shift))
    return tf.exp(log_weights - shift[..., tf.newaxis]), shift


def _log_ring_sum(log_weights, cores):
    """``log Tr(prod_k sum_i Q_k[i] exp(w[k, i]))`` by a sequential, rescaled contraction.

    Step ``k`` forms ``M_k = sum_i Q_k[i] exp(w[k, i] - c_k)`` with
    ``c_k = max_i w[k, i]`` (so ``M_k <= d max(Q_k)`` entrywise), multiplies it
    into the running ``r x r`` product and divides that product by its largest
    entry; the ``c_k`` and the scales are summed in log space, so the result is
    finite for hundreds of dimensions (cores need only be representable). The
    loop is a ``tf.foldl``: XLA compiles it once, whatever ``m`` is.

    Args:
      log_weights: ``[..., m, d]``.
      cores: ``[..., m, d, r, r]``, non-negative; batch dims broadcast with
        ``log_weights``.

    Returns:
      ``[...]``. Cost O(m (d r^2 + r^3)) per batch member; backprop keeps the
      ``m`` running products, so gradient memory is O(m r^2) per member.
    """
    rank = cores.shape[-1]
    batch_shape = tf.broadcast_dynamic_shape(tf.shape(log_weights)[:-2], tf.shape(cores)[:-4])
    identity = tf.eye(rank, batch_shape=batch_shape, dtype=cores.dtype)

    # Unbatched cores make M_k one [batch, d] x [d, r^2] GEMM, and its gradient too.
    equation = "...i,iab->...ab" if cores.shape.rank == 4 else "...i,...iab->...ab"

    def step(carry, elems):
        product, log_total = carry
        step_log_weights, core = elems
        weights, shift = _shifted_weights(step_log_weights)
        product, log_scale = _normalize_matrices(
            tf.matmul(product, tf.einsum(equation, weights, core))
        )
        return product, log_total + shift + log_scale

    product, log_total = tf.foldl(
        step,
        (_dims_first(log_weights, 2), _dims_first(cores, 4)),
        initializer=(identity, tf.zeros(batch_shape, dtype=cores.dtype)),
    )
    return log_total + tf.math.log(tf.linalg.trace(product))


def _weighted_core_sums(log_weights, cores):
    """``M_k = sum_i Q_k[i] exp(w[k, i] - max_i w[k, i])``, ``[..., m, r, r]``; O(m d r^2)."""
    return tf.einsum("...kd,...kdij->...kij", _shifted_weights(log_weights)[0], cores)


def _exclusive_products(matrices, reverse):
    """Rescaled exclusive cumulative products of ``[..., m, r, r]`` matrices.

    ``reverse=False``: ``out[k] ~ M_1 ... M_{k-1}``; ``reverse=True``:
    ``out[k] ~ M_{k+1} ... M_m`` (identity at the ends). Each product is known only
    up to a positive factor (largest entry 1), which is all that ratios of traces
    need. Cost O(m r^3).
    """
    factors = _dims_first(matrices, 3)
    identity = tf.eye(matrices.shape[-1], batch_shape=tf.shape(matrices)[:-3], dtype=matrices.dtype)

    def step(running, factor):
        product = tf.matmul(factor, running) if reverse else tf.matmul(running, factor)
        return _normalize_matrices(product)[0]

    inclusive = tf.scan(step, factors, initializer=identity, reverse=reverse)
    if reverse:
        exclusive = tf.concat([inclusive[1:], identity[tf.newaxis]], axis=0)
    else:
        exclusive = tf.concat([identity[tf.newaxis], inclusive[:-1]], axis=0)
    rank = exclusive.shape.rank
    return tf.transpose(exclusive, list(range(1, rank - 2)) + [0, rank - 2, rank - 1])


def _gaussian_log_densities(x, locs, scales):
    """``log N(x_k | mu[k, i], sigma[k, i]^2)`` of ``x [..., m]`` → ``[..., m, d]``."""
    standardized = (x[..., tf.newaxis] - locs) / scales
    return -0.5 * tf.square(standardized) - tf.math.log(scales) - _HALF_LOG_TWO_PI


def _static_trailing_shape(tensor, ndims, name):
    shape = tensor.shape
    if shape.rank is None or shape.rank < ndims:
        raise ValueError(
            f"TRIP: `{name}` must have rank >= {ndims} with a static trailing shape; "
            f"got shape {shape}."
        )
    trailing = shape[-ndims:].as_list()
    if any(s is None for s in trailing):
        raise ValueError(
            f"TRIP: the last {ndims} dimensions of `{name}` must be known statically; "
            f"got shape {shape}."
        )
    return trailing


class TRIP(DistributionChecksMixin, distribution.AutoCompositeTensorDistribution):
    """Tensor Ring Induced Prior: a tensor-ring-weighted mixture of d^m Gaussians.

    Event shape ``[m]``. The batch shape is the broadcast of the leading
    dimensions of ``locs [..., m, d]``, ``scales [..., m, d]`` and
    ``cores [..., m, d, r, r]``; :meth:`conditional` on a batch of observations
    returns a batched TRIP.

    Parameterisation: ``cores`` are taken as they are and must be non-negative
    (``validate_args=True`` asserts it); ``scales`` must be positive. For
    training, keep unconstrained variables and map them through a softplus;
    :class:`tfbayes.layers.TRIPPrior` does exactly that.

    Costs (per batch member, ``B`` points):

    * ``log_prob``: O(B m (d r^2 + r^3)) time, O(m r^2) backprop memory per
      point (sequential ring contraction with per-step rescaling, stable for
      hundreds of dimensions);
    * ``sample``: exact ancestral sampling, P(s_k | s_<k) from the prefix
      product ``Q_1[s_1] ... Q_{k-1}[s_{k-1}]`` and the suffix product
      ``S_{k+1} ... S_m``: O(n m (d r^2 + r^3));
    * ``mean``/``variance``: O(m r^3) via the per-dimension component
      marginals; ``covariance``: Hessian of the cumulant generating function,
      O(m^2 (d r^2 + r^3)).

    Args:
      locs: float ``[..., m, d]``, Gaussian means ``mu[k, i]``.
      scales: float ``[..., m, d]``, positive standard deviations.
      cores: float ``[..., m, d, r, r]``, non-negative tensor-ring cores.
      validate_args: if True, assert finite parameters, positive scales,
        non-negative cores and a positive normaliser ``Z`` (cores that are
        all zero, or that multiply to a zero ring, give no distribution).
      allow_nan_stats: standard TFP flag.
      name: name scope.

    Seeds follow TFP's policy (``base.sanitize_seed``): ``None`` or an int is
    stateful (fresh draws at each call), a ``[2]`` int tensor or pair is
    stateless (the same draws at each call).

    Raises:
      TypeError: if a parameter is ``None``.
      ValueError: if the shapes do not match, or ``m``, ``d`` or ``r`` is 0.

    Example:

    >>> m, d, r = 4, 3, 2
    >>> rng = np.random.default_rng(0)
    >>> trip = TRIP(locs=rng.normal(size=(m, d)), scales=np.full((m, d), 0.5),
    ...             cores=rng.uniform(size=(m, d, r, r)))
    >>> z = trip.sample(5, seed=[1, 2])            # [5, 4]
    >>> trip.log_prob(z).shape
    TensorShape([5])
    >>> trip.conditional(z[0], observed_mask=[True, False, True, False]).event_shape
    TensorShape([2])
    """

    def __init__(self, locs, scales, cores, validate_args=False, allow_nan_stats=True, name="TRIP"):
        parameters = dict(locals())
        require_parameters("TRIP", locs=locs, scales=scales, cores=cores)
        with tf.name_scope(name) as name:
            dtype = dtype_util.common_dtype([locs, scales, cores], dtype_hint=tf.float32)
            self._locs = tensor_util.convert_nonref_to_tensor(locs, dtype=dtype, name="locs")
            self._scales = tensor_util.convert_nonref_to_tensor(scales, dtype=dtype, name="scales")
            self._cores = tensor_util.convert_nonref_to_tensor(cores, dtype=dtype, name="cores")
            m, d = _static_trailing_shape(self._locs, 2, "locs")
            scales_md = _static_trailing_shape(self._scales, 2, "scales")
            cores_mdrr = _static_trailing_shape(self._cores, 4, "cores")
            if scales_md != [m, d] or cores_mdrr[:2] != [m, d] or cores_mdrr[2] != cores_mdrr[3]:
                raise ValueError(
                    "TRIP: expected locs [..., m, d], scales [..., m, d] and cores "
                    f"[..., m, d, r, r]; got locs {self._locs.shape}, scales "
                    f"{self._scales.shape}, cores {self._cores.shape}."
                )
            self._num_dims, self._num_components, self._rank = m, d, cores_mdrr[2]
            if min(m, d, cores_mdrr[2]) < 1:
                raise ValueError(
                    "TRIP: expected m >= 1 dimensions, d >= 1 components and rank r >= 1; "
                    f"got m={m}, d={d}, r={cores_mdrr[2]} (cores of shape {self._cores.shape})."
                )
            super().__init__(
                dtype=dtype,
                reparameterization_type=reparameterization.NOT_REPARAMETERIZED,
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        positive = lambda: softplus_bijector.Softplus(low=dtype_util.eps(dtype))  # noqa: E731
        return dict(
            locs=parameter_properties.ParameterProperties(event_ndims=2),
            scales=parameter_properties.ParameterProperties(
                event_ndims=2, default_constraining_bijector_fn=positive
            ),
            cores=parameter_properties.ParameterProperties(
                event_ndims=4, default_constraining_bijector_fn=softplus_bijector.Softplus
            ),
        )

    @property
    def locs(self):
        """Gaussian means ``[..., m, d]``."""
        return self._locs

    @property
    def scales(self):
        """Gaussian standard deviations ``[..., m, d]``."""
        return self._scales

    @property
    def cores(self):
        """Non-negative tensor-ring cores ``[..., m, d, r, r]``."""
        return self._cores

    @property
    def num_dims(self):
        """``m``, the number of latent dimensions (static int)."""
        return self._num_dims

    @property
    def num_components(self):
        """``d``, the number of Gaussians per dimension (static int)."""
        return self._num_components

    @property
    def rank(self):
        """``r``, the tensor-ring rank (static int)."""
        return self._rank

    def _event_shape(self):
        return tf.TensorShape([self._num_dims])

    def _event_shape_tensor(self):
        return tf.constant([self._num_dims], dtype=tf.int32)

    def _default_event_space_bijector(self):
        return identity_bijector.Identity(validate_args=self.validate_args)

    def _parameter_control_dependencies(self, is_init):
        assertions = parameter_assertions(
            self.validate_args,
            is_init,
            [
                (self._scales, "positive", "TRIP: argument `scales` must be positive."),
                (self._cores, "non_negative", "TRIP: argument `cores` must be non-negative."),
            ]
            + finite_checks("TRIP", locs=self._locs, scales=self._scales, cores=self._cores),
        )
        if self.validate_args and is_init != tensor_util.is_ref(self._cores):
            with tf.control_dependencies(assertions):
                assertions.append(
                    assert_util.assert_less(
                        tf.constant(-np.inf, self.dtype),
                        self.log_normalizer(),
                        message="TRIP: argument `cores` must give a positive normaliser "
                        "Z = Tr(S_1 ... S_m) (all-zero cores give none).",
                    )
                )
        return assertions

    def _check_values(self, x, name):
        if x.shape.rank is not None and (
            x.shape.rank == 0 or (x.shape[-1] is not None and x.shape[-1] != self._num_dims)
        ):
            raise ValueError(
                f"TRIP: `{name}` must have shape [..., {self._num_dims}] (the event "
                f"shape); got shape {x.shape}."
            )

    def log_normalizer(self):
        """``log Z = log Tr(S_1 ... S_m)``, shape = batch shape; O(m (d r^2 + r^3))."""
        return _log_ring_sum(tf.zeros_like(self._locs), self._cores)

    def _log_prob(self, x):
        self._check_values(x, "value")
        log_densities = _gaussian_log_densities(x, self._locs, self._scales)
        return _log_ring_sum(log_densities, self._cores) - self.log_normalizer()

    def _sample_n(self, n, seed=None):
        """Exact ancestral sampling; see the class docstring for the cost."""
        uniform_seed, normal_seed = samplers.split_seed(sanitize_seed(seed, salt="tfbayes_trip"))
        batch_shape = self.batch_shape_tensor()
        locs = tf.broadcast_to(self._locs, tf.concat([batch_shape, tf.shape(self._locs)[-2:]], 0))
        scales = tf.broadcast_to(
            self._scales, tf.concat([batch_shape, tf.shape(self._scales)[-2:]], 0)
        )
        cores = tf.broadcast_to(
            self._cores, tf.concat([batch_shape, tf.shape(self._cores)[-4:]], 0)
        )
        cores = tf.stop_gradient(cores)
        sample_shape = tf.concat([[n], batch_shape, [self._num_dims]], 0)
        # 1 - U(0, 1) lies in (0, 1], so a zero-weight component is never chosen.
        uniforms = 1.0 - samplers.uniform(sample_shape, seed=uniform_seed, dtype=self.dtype)
        noise = samplers.normal(sample_shape, seed=normal_seed, dtype=self.dtype)
        suffixes = _exclusive_products(tf.reduce_sum(cores, axis=-3), reverse=True)
        num_components = self._num_components

        def step(prefix, elems):
            core, suffix, uniform, loc, scale, eps = elems
            # weight[i] = Tr(prefix Q_k[i] suffix_k) = sum_ab Q_k[i]_ab (suffix_k prefix)_ba
            weights = tf.nn.relu(tf.einsum("...iab,...ba->...i", core, tf.matmul(suffix, prefix)))
            cumulative = tf.cumsum(weights, axis=-1)
            index = tf.reduce_sum(
                tf.cast(cumulative < uniform[..., tf.newaxis] * cumulative[..., -1:], tf.int32),
                axis=-1,
            )
            one_hot = tf.one_hot(
                tf.minimum(index, num_components - 1), num_components, dtype=core.dtype
            )
            prefix, _ = _normalize_matrices(
                tf.matmul(prefix, tf.einsum("...i,...iab->...ab", one_hot, core))
            )
            value = (
                tf.reduce_sum(one_hot * loc, axis=-1)
                + tf.reduce_sum(one_hot * scale, axis=-1) * eps
            )
            return prefix, value

        prefix = tf.eye(self._rank, batch_shape=tf.shape(uniforms)[:-1], dtype=self.dtype)
        _, values = tf.scan(
            lambda carry, elems: step(carry[0], elems),
            (
                _dims_first(cores, 4),
                _dims_first(suffixes, 3),
                _dims_first(uniforms, 1),
                _dims_first(locs, 2),
                _dims_first(scales, 2),
                _dims_first(noise, 1),
            ),
            initializer=(prefix, tf.zeros(tf.shape(uniforms)[:-1], dtype=self.dtype)),
        )
        return _dims_last(values)

    def component_probs(self):
        """Marginal mixture weights ``P(s_k = i)``, shape ``[..., m, d]``.

        ``P(s_k = i) = Tr(Q_k[i] S_{k+1} ... S_m S_1 ... S_{k-1}) / Z``, from one
        prefix and one suffix sweep: O(m (d r^2 + r^3)). Dimension ``k`` of the
        distribution is marginally the 1-D Gaussian mixture with these weights.
        """
        sums = tf.reduce_sum(self._cores, axis=-3)
        rest = tf.matmul(
            _exclusive_products(sums, reverse=True), _exclusive_products(sums, reverse=False)
        )
        weights = tf.nn.relu(tf.einsum("...kiab,...kba->...ki", self._cores, rest))
        return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)

    def _mean(self):
        return tf.reduce_sum(self.component_probs() * self._locs, axis=-1)

    def _variance(self):
        probs = self.component_probs()
        mean = tf.reduce_sum(probs * self._locs, axis=-1)
        second_moment = tf.reduce_sum(
            probs * (tf.square(self._locs) + tf.square(self._scales)), axis=-1
        )
        return second_moment - tf.square(mean)

    def _covariance(self):
        """Hessian at ``t = 0`` of ``K(t) = log Tr(prod_k sum_i Q_k[i] e^{t_k mu + t_k^2 sigma^2/2})``.

        ``K`` is the cumulant generating function up to the constant ``log Z``,
        so its Hessian is exactly the covariance. Cost O(m^2 (d r^2 + r^3)).
        """
        batch_shape = self.batch_shape_tensor()
        num_batch = tf.reduce_prod(batch_shape)
        t_flat = tf.zeros(tf.stack([num_batch, self._num_dims]), dtype=self.dtype)
        with tf.GradientTape(persistent=True) as outer:
            outer.watch(t_flat)
            with tf.GradientTape() as inner:
                inner.watch(t_flat)
                t = tf.reshape(t_flat, tf.concat([batch_shape, [self._num_dims]], 0))
                t = t[..., tf.newaxis]
                log_weights = t * self._locs + 0.5 * tf.square(t * self._scales)
                cumulant = tf.reduce_sum(_log_ring_sum(log_weights, self._cores))
            gradient = inner.gradient(cumulant, t_flat)
        hessian = outer.batch_jacobian(gradient, t_flat, experimental_use_pfor=False)
        return tf.reshape(hessian, tf.concat([batch_shape, [self._num_dims] * 2], 0))

    def marginal(self, dims, name=None):
        """The marginal distribution of ``z[..., dims]``, again a TRIP.

        Each summed-out dimension contributes ``S_k = sum_i Q_k[i]``, which is
        multiplied into the preceding kept core (cyclically), so the result is a
        TRIP over ``len(dims)`` dimensions with the same rank. O(m d r^3).

        Args:
          dims: non-empty sequence of distinct Python ints in ``[0, m)``; the
            result's dimensions follow the sorted order of ``dims``.
        """
        dims = self._check_dims(dims)
        keep = np.zeros(self._num_dims, dtype=bool)
        keep[dims] = True
        return self._reduced(tf.reduce_sum(self._cores, axis=-3), keep, name or "marginal")

    def conditional(self, observed_values, observed_mask, name=None):
        """``p(z_unobserved | z_observed)``, a TRIP over the unobserved dimensions.

        Observed dimension ``k`` contributes the matrix
        ``sum_i Q_k[i] N(x_k | mu[k, i], sigma[k, i]^2)``, multiplied into the
        preceding unobserved core (cyclically); the unobserved dimensions keep
        their Gaussians. Conditions that are missing (``observed_mask`` False) are
        thereby marginalised, as in the paper: the result is the exact
        conditional given only the observed coordinates. O(B m d r^3).

        Args:
          observed_values: ``[..., m]``; entries where the mask is False are ignored.
            Its leading dims broadcast with the batch shape.
          observed_mask: static boolean sequence of length ``m`` with at least one
            False entry.

        Returns:
          A TRIP with event shape ``[m - sum(observed_mask)]``; its dimensions are
          the unobserved ones in increasing order.
        """
        mask = np.asarray(observed_mask)
        if mask.dtype != bool or mask.shape != (self._num_dims,):
            raise ValueError(
                f"TRIP.conditional: `observed_mask` must be a boolean sequence of shape "
                f"[{self._num_dims}]; got dtype {mask.dtype} and shape {list(mask.shape)}."
            )
        if mask.all():
            raise ValueError(
                "TRIP.conditional: `observed_mask` observes every dimension; "
                "at least one must be unobserved."
            )
        observed_values = tf.convert_to_tensor(
            observed_values, dtype=self.dtype, name="observed_values"
        )
        self._check_values(observed_values, "observed_values")
        log_densities = _gaussian_log_densities(observed_values, self._locs, self._scales)
        fixed = _weighted_core_sums(log_densities, self._cores)
        return self._reduced(fixed, ~mask, name or "conditional")

    def _check_dims(self, dims):
        dims_array = np.asarray(dims)
        if (
            dims_array.ndim != 1
            or dims_array.size == 0
            or not np.issubdtype(dims_array.dtype, np.integer)
            or len(set(dims_array.tolist())) != dims_array.size
            or dims_array.min() < 0
            or dims_array.max() >= self._num_dims
        ):
            raise ValueError(
                "TRIP.marginal: `dims` must be a non-empty sequence of distinct ints in "
                f"[0, {self._num_dims}); got {dims!r}."
            )
        return np.sort(dims_array)

    def _reduced(self, fixed, keep, name):
        """TRIP over the ``keep`` dims; the others' matrices ``fixed [..., m, r, r]``
        are absorbed into the preceding kept core. Scales cancel in ``P(s)``."""
        kept = np.flatnonzero(keep)
        fixed, _ = _normalize_matrices(fixed)
        new_cores = []
        for j, k in enumerate(kept):
            core = self._cores[..., k, :, :, :]
            following = kept[(j + 1) % len(kept)]
            # The dims strictly between k and the next kept dim, cyclically.
            for step in range(1, (following - k - 1) % self._num_dims + 1):
                other = (k + step) % self._num_dims
                core, _ = _normalize_matrices(
                    tf.matmul(core, fixed[..., other, tf.newaxis, :, :]), num_axes=3
                )
            new_cores.append(core)
        batch_shape = tf.broadcast_dynamic_shape(tf.shape(fixed)[:-3], tf.shape(self._cores)[:-4])
        new_cores = tf.stack(
            [tf.broadcast_to(c, tf.concat([batch_shape, tf.shape(c)[-3:]], 0)) for c in new_cores],
            axis=-4,
        )
        return TRIP(
            locs=tf.gather(self._locs, kept, axis=-2),
            scales=tf.gather(self._scales, kept, axis=-2),
            cores=new_cores,
            validate_args=self.validate_args,
            allow_nan_stats=self.allow_nan_stats,
            name=name,
        )
