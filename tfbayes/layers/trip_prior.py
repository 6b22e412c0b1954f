"""A trainable TRIP prior as a Keras 3 layer.

The layer owns unconstrained weights and maps them to the parameters of
:class:`tfbayes.distributions.TRIP`:

    locs   = loc_params                    [m, d]
    scales = softplus(scale_params)        [m, d]
    cores  = softplus(core_params)         [m, d, r, r]

so any gradient step keeps the scales positive and the cores non-negative.
Calling the layer on latent codes ``z [..., m]`` returns ``log p(z)`` of shape
``[...]``; :meth:`TRIPPrior.distribution` returns the distribution itself (for
sampling, moments, marginals and conditionals). Gradients reach all three
weights through ``log_prob``.
"""

import keras
import numpy as np
import tensorflow as tf

from tfbayes.distributions.trip import TRIP

__all__ = ["TRIPPrior", "kmeans_1d"]


def _inverse_softplus(y):
    return np.log(np.expm1(y))


def kmeans_1d(values, num_clusters, num_iterations=50):
    """Lloyd's k-means on one coordinate, started at evenly spaced quantiles.

    Args:
      values: 1-D array of ``n >= 1`` finite floats.
      num_clusters: ``d``, a positive int.
      num_iterations: Lloyd steps (each O(n d)).

    Returns:
      ``(centers [d], stds [d], fractions [d])``: sorted cluster centres, the
      within-cluster standard deviations (an empty or single-point cluster gets
      ``std(values) / d``, and every std is at least ``1e-3 * std(values)``), and
      the fraction of points in each cluster.
    """
    values = np.asarray(values, dtype=np.float64)
    spread = max(float(values.std()), 1e-6)
    centers = np.quantile(values, (np.arange(num_clusters) + 0.5) / num_clusters)
    for _ in range(num_iterations):
        assignment = np.argmin(np.abs(values[:, None] - centers[None, :]), axis=1)
        for j in range(num_clusters):
            members = values[assignment == j]
            if members.size:
                centers[j] = members.mean()
    order = np.argsort(centers)
    centers = centers[order]
    assignment = np.argmin(np.abs(values[:, None] - centers[None, :]), axis=1)
    stds = np.full(num_clusters, spread / num_clusters)
    counts = np.bincount(assignment, minlength=num_clusters)
    for j in range(num_clusters):
        if counts[j] > 1:
            stds[j] = values[assignment == j].std()
    return centers, np.maximum(stds, 1e-3 * spread), counts / values.size


@keras.saving.register_keras_serializable(package="tfbayes")
class TRIPPrior(keras.layers.Layer):
    """A trainable TRIP prior over ``m``-dimensional latent codes.

    ``m`` is taken from the last input dimension at build time. The layer
    holds ``m d (r^2 + 2)`` weights; a call costs O(B m (d r^2 + r^3)).

    Args:
      num_components: ``d``, Gaussians per latent dimension (int >= 1).
      rank: ``r``, the tensor-ring rank (int >= 1).
      loc_initializer: initializer of ``locs [m, d]``.
      scale_initializer: initializer of ``scale_params``; the default gives
        ``scales = 1``.
      core_initializer: initializer of ``core_params``; the default (normal,
        std 1) gives ``cores = softplus(N(0, 1))``, as the authors' code does.
      **kwargs: standard layer arguments (``name``, ``dtype``, ...).

    Call arguments:
      z: ``[..., m]`` latent codes.
      training: unused; the prior behaves the same in training and inference.

    Returns:
      ``log p(z)``, shape ``[...]``.

    Example:

    >>> codes = np.random.default_rng(0).normal(size=(200, 6)).astype("float32")  # [n, m]
    >>> prior = TRIPPrior(num_components=5, rank=4)
    >>> prior.initialize_from_data(codes)
    >>> prior(codes[:8]).shape                    # log p(z) per code
    TensorShape([8])
    >>> prior.distribution().sample(16, seed=[0, 1]).shape
    TensorShape([16, 6])
    """

    def __init__(
        self,
        num_components,
        rank,
        loc_initializer="random_normal",
        scale_initializer=None,
        core_initializer="random_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_components", num_components), ("rank", rank)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"TRIPPrior: `{name}` must be a positive int; got {value!r}.")
        self.num_components = int(num_components)
        self.rank = int(rank)
        if scale_initializer is None:
            scale_initializer = keras.initializers.Constant(float(_inverse_softplus(1.0)))
        self.loc_initializer = keras.initializers.get(loc_initializer)
        self.scale_initializer = keras.initializers.get(scale_initializer)
        self.core_initializer = keras.initializers.get(core_initializer)

    def build(self, input_shape):
        if len(input_shape) == 0:
            raise ValueError(
                "TRIPPrior: expected latent codes of shape [..., m] (at least one axis); got "
                f"input shape {tuple(input_shape)}."
            )
        num_dims = input_shape[-1]
        if num_dims is None:
            raise ValueError(
                f"TRIPPrior: the last input dimension (m) must be known; got input shape "
                f"{input_shape}."
            )
        d, r = self.num_components, self.rank
        self.loc_params = self.add_weight(
            shape=(num_dims, d), initializer=self.loc_initializer, name="loc_params"
        )
        self.scale_params = self.add_weight(
            shape=(num_dims, d), initializer=self.scale_initializer, name="scale_params"
        )
        self.core_params = self.add_weight(
            shape=(num_dims, d, r, r), initializer=self.core_initializer, name="core_params"
        )

    @property
    def num_dims(self):
        """``m``, known once the layer is built."""
        return self.loc_params.shape[0]

    def distribution(self):
        """The current :class:`TRIP` (differentiable in the layer's weights)."""
        return TRIP(
            locs=tf.convert_to_tensor(self.loc_params),
            scales=tf.nn.softplus(self.scale_params),
            cores=tf.nn.softplus(self.core_params),
        )

    def call(self, z, training=None):
        return self.distribution().log_prob(tf.cast(z, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def initialize_from_data(self, codes, core_noise=0.1, seed=0):
        """Sets the Gaussians by 1-D k-means per latent dimension, as the reference does.

        Dimension ``k``'s ``d`` Gaussians get the cluster centres and
        within-cluster stds of ``codes[:, k]``; the cores become
        ``fraction[k, i] * exp(core_noise * N(0, 1))``, so at ``core_noise=0``
        the prior is the product of the per-dimension k-means mixtures, and the
        noise breaks the symmetry of the ring. Cost O(n m d) per Lloyd step.

        Args:
          codes: ``[n, m]`` array-like of finite latent codes (e.g. encoder means).
          core_noise: non-negative float, log-normal jitter of the cores.
          seed: seed of that jitter.
        """
        codes = np.asarray(codes, dtype=np.float64)
        if not self.built:
            self.build(codes.shape)
        if codes.ndim != 2 or codes.shape[1] != self.num_dims or codes.shape[0] < 1:
            raise ValueError(
                f"TRIPPrior.initialize_from_data: `codes` must have shape [n, {self.num_dims}] "
                f"with n >= 1; got shape {list(codes.shape)}."
            )
        if not np.all(np.isfinite(codes)):
            raise ValueError(
                "TRIPPrior.initialize_from_data: `codes` must be finite; got "
                f"{int(np.sum(~np.isfinite(codes)))} NaN or inf entries."
            )
        if core_noise < 0:
            raise ValueError(
                f"TRIPPrior.initialize_from_data: `core_noise` must be >= 0; got {core_noise!r}."
            )
        fits = [kmeans_1d(codes[:, k], self.num_components) for k in range(self.num_dims)]
        centers, stds, fractions = (np.stack(parts) for parts in zip(*fits))
        rng = np.random.default_rng(seed)
        noise = np.exp(core_noise * rng.standard_normal(self.core_params.shape))
        cores = np.maximum(fractions, 1e-3)[:, :, None, None] * noise
        self.loc_params.assign(centers.astype(self.variable_dtype))
        self.scale_params.assign(_inverse_softplus(stds).astype(self.variable_dtype))
        self.core_params.assign(_inverse_softplus(cores).astype(self.variable_dtype))

    def get_config(self):
        config = super().get_config()
        config.update(
            num_components=self.num_components,
            rank=self.rank,
            loc_initializer=keras.initializers.serialize(self.loc_initializer),
            scale_initializer=keras.initializers.serialize(self.scale_initializer),
            core_initializer=keras.initializers.serialize(self.core_initializer),
        )
        return config
