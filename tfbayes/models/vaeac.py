"""VAEAC: the Variational Autoencoder with Arbitrary Conditioning (Ivanov, Figurnov, Vetrov 2019).

One model learns p(x_b | x_{1-b}, b) for *every* mask b (1 = unobserved), so it imputes any subset of
missing features of a row in one shot, with multiple imputations drawn from the conditional.

The model (arXiv 1806.02382, Section 4):

* a **prior network** p_ψ(z | x_{1-b}, b) and a **proposal network** q_φ(z | x, b), both diagonal
  Gaussians over a latent z of size ``latent_dim``;
* a **generative network** p_θ(x_b | z, x_{1-b}, b), which reads the prior network's hidden states
  through skip connections;
* the variational lower bound, maximised for a fresh mask b per batch (eq. 5 plus the prior's
  regularizer R):

      L(x, b) = E_q[log p_θ(x_b | z, x_{1-b}, b)] − KL(q_φ(z | x, b) ‖ p_ψ(z | x_{1-b}, b)) + R,
      R = −‖μ_ψ‖² / (2 σ_μ²) + σ_σ Σ (log σ_ψ − σ_ψ),

  with the reference's nearly vanishing σ_μ = 1e4, σ_σ = 1e-4. Training minimises −L / D per row,
  or with ``nll_beta = β > 0`` the same with each real feature's log-likelihood term weighted by
  stop_gradient(σ^{2β}) (β-NLL, Seitzer et al. 2022): a learned-variance Gaussian otherwise lowers
  its loss by widening σ on the features it finds hard instead of fitting their means, whose
  gradient (x − μ) / σ² then vanishes.

Training masks are b = max(b_generated, b_missing): features missing in the data (NaN) are always
unobserved and never scored. Real features are standardised with the mean and standard deviation
of their observed values (:meth:`VAEAC.adapt`, stored in the model, so a saved model imputes on the
original scale): each feature with its own by default, all of them with one shared pair for
features on one scale (``normalization="shared"``, e.g. pixels), or not at all
(``normalization="none"``).

Mixed precision and distribution: under a ``keras.mixed_precision`` policy ("mixed_float16",
"mixed_bfloat16") the networks run in the 16-bit compute dtype while the variables, the
normalisation, the Gaussian and categorical distributions, the bound and the loss stay in float32
(float16 cannot even hold raw values above 65,504). Built or compiled under a
``tf.distribute`` strategy scope, ``fit`` averages the replicas' gradients as Keras does, and each
replica draws its own training masks and latent samples.

The networks are fully connected by default, or convolutional for images (``image_shape``, a
U-Net; see :mod:`tfbayes.models.vaeac_networks`).

Cost per row: O(width · (width · depth + D_encoded + latent_dim)) multiply-adds for each fully
connected network pass (convolutional: O(9 · H · W · width² · depth)); :meth:`VAEAC.impute` with
k imputations runs the prior network once and the generative network k times.
"""

import functools

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.models.masks import MCARMask, MaskGenerator
from tfbayes.models.mixed_features import MixedFeatures
from tfbayes.models.vaeac_networks import (
    ConvGenerator,
    MLPGenerator,
    ResidualConvEncoder,
    ResidualMLP,
    dense,
)

tfd = tfp.distributions

NORMALIZATIONS = ("per_feature", "shared", "none")


def _check_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {kind}, got {value!r}")
    return int(value)


def _stateless_seed(seed):
    """A stateless seed ``[2]`` from None (fresh), an int, or a pair of ints."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return tf.constant([int(seed), 0], tf.int32)
    seed = tf.convert_to_tensor(seed)
    if seed.shape != (2,) or not seed.dtype.is_integer:
        raise ValueError(f"seed: expected None, an int or a pair of ints, got {seed!r}")
    return seed


def _gaussian(params, min_scale=1e-3):
    """A diagonal Gaussian from ``[..., 2 L]``: means, then softplus scales clipped at min_scale."""
    mean, raw = tf.split(params, 2, axis=-1)
    scale = tf.maximum(tf.math.softplus(raw), tf.cast(min_scale, params.dtype))
    return tfd.Independent(tfd.Normal(mean, scale), reinterpreted_batch_ndims=1)


@keras.saving.register_keras_serializable(package="tfbayes")
class VAEAC(keras.Model):
    """The Variational Autoencoder with Arbitrary Conditioning, for imputation and inpainting.

    Train it with ``compile(optimizer)`` and ``fit(x)`` on rows with NaN where values are missing;
    calling the model on ``x`` returns the per-row lower bound L(x, b) under a fresh mask and adds
    −mean(L) / D to the model's losses. Then :meth:`impute` fills in missing values,
    :meth:`conditional` gives the distribution of the missing part, and :meth:`iwae` scores held-out
    values.

    Args:
      one_hot_max_sizes: one int per feature: 0 or 1 for a real feature, k >= 2 for a categorical
        one with values 0 .. k - 1 (the reference's convention).
      latent_dim: size of z (the reference uses 64).
      width: width of every hidden layer (256 in the reference).
      depth: residual blocks per network (10 in the reference).
      mask_generator: draws the training masks; default ``MCARMask(0.2)``, the reference's for
        tables. See :mod:`tfbayes.models.masks`.
      min_scale: the smallest standard deviation of a real feature's Gaussian, in standardised
        units.
      sigma_mu, sigma_sigma: the strengths σ_μ, σ_σ of the prior network's regularizer.
      nll_beta: β in [0, 1] of the β-NLL training loss for real features (0: the lower bound
        itself; 0.5 is the paper's recommendation). It changes the gradients only: the model,
        :meth:`iwae` and the bound that calling the model returns are unchanged.
      image_shape: None for fully connected networks, or ``(height, width)`` or
        ``(height, width, channels)`` of images given as rows of ``height · width · channels``
        real features (row-major, as ``images.reshape(n, -1)``): the networks are then
        convolutional, with ``width`` channels and ``depth`` residual blocks per resolution.
      normalization: how :meth:`adapt` standardises the real features: ``"per_feature"`` (each
        with the mean and standard deviation of its observed values), ``"shared"`` (all with those
        of every observed real value: one scale, as pixels have) or ``"none"`` (kept as they are;
        no :meth:`adapt` is needed).
      seed: an int for reproducible training masks and latent samples, or None.

    Example:

    ```python
    x = np.random.default_rng(0).normal(size=(1000, 4)).astype("float32")
    x[::3, 1] = np.nan                                   # missing values
    model = VAEAC([0, 0, 0, 0], latent_dim=8, width=64, depth=2)
    model.compile(keras.optimizers.Adam(3e-4))
    model.fit(x, batch_size=64, epochs=2, verbose=0)     # adapts the normalization first
    imputations = model.impute(x[:5], num_imputations=10, seed=0)   # [5, 10, 4]
    ```
    """

    def __init__(
        self,
        one_hot_max_sizes,
        latent_dim=64,
        width=256,
        depth=10,
        mask_generator=None,
        min_scale=1e-2,
        sigma_mu=1e4,
        sigma_sigma=1e-4,
        nll_beta=0.0,
        image_shape=None,
        normalization="per_feature",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if normalization not in NORMALIZATIONS:
            raise ValueError(
                f"normalization: expected one of {NORMALIZATIONS}, got {normalization!r}"
            )
        self.normalization = normalization
        if not (isinstance(min_scale, (int, float)) and np.isfinite(min_scale) and min_scale > 0):
            raise ValueError(f"min_scale: expected a positive number, got {min_scale!r}")
        if isinstance(nll_beta, bool) or not (
            isinstance(nll_beta, (int, float)) and 0 <= nll_beta <= 1
        ):
            raise ValueError(f"nll_beta: expected a number in [0, 1], got {nll_beta!r}")
        self.nll_beta = float(nll_beta)
        self.features = MixedFeatures(one_hot_max_sizes, min_scale)
        self.one_hot_max_sizes = self.features.sizes
        self.latent_dim = _check_int(latent_dim, "latent_dim")
        self.width = _check_int(width, "width")
        self.depth = _check_int(depth, "depth", minimum=0)
        if mask_generator is None:
            mask_generator = MCARMask(0.2)
        if not isinstance(mask_generator, MaskGenerator):
            raise TypeError(
                "mask_generator: expected a tfbayes.models.masks.MaskGenerator, got "
                f"{type(mask_generator).__name__}"
            )
        self.mask_generator = mask_generator
        self.min_scale = float(min_scale)
        self.sigma_mu = float(sigma_mu)
        self.sigma_sigma = float(sigma_sigma)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.image_shape = self._check_image_shape(image_shape)
        policy = self.dtype_policy
        if self.image_shape is None:
            encoder = functools.partial(ResidualMLP, self.width, self.depth, dtype=policy)
            generator = MLPGenerator(
                self.width, self.depth, self.features.param_width, name="generative", dtype=policy
            )
        else:
            encoder = functools.partial(
                ResidualConvEncoder, self.image_shape, self.width, self.depth, dtype=policy
            )
            generator = ConvGenerator(
                self.image_shape, self.width, self.depth, name="generative", dtype=policy
            )
        self.proposal_network = encoder(name="proposal")
        self.proposal_head = dense(2 * latent_dim, "proposal_head", policy)
        self.prior_network = encoder(name="prior")
        self.prior_head = dense(2 * latent_dim, "prior_head", policy)
        self.generative_network = generator

    def _check_image_shape(self, image_shape):
        if image_shape is None:
            return None
        shape = tuple(image_shape) if isinstance(image_shape, (list, tuple)) else ()
        if len(shape) == 2:
            shape = shape + (1,)
        if len(shape) != 3 or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape
        ):
            raise ValueError(
                "image_shape: expected None, (height, width) or (height, width, channels) of "
                f"positive ints, got {image_shape!r}"
            )
        shape = tuple(int(n) for n in shape)
        if int(np.prod(shape)) != self.features.num_features:
            raise ValueError(
                f"image_shape: {shape} holds {int(np.prod(shape))} pixels, but "
                f"one_hot_max_sizes has {self.features.num_features} features"
            )
        if self.features.categorical:
            columns = [j for j, _ in self.features.categorical]
            raise ValueError(
                "image_shape: convolutional networks need real features only, but "
                f"one_hot_max_sizes has categorical ones at {columns}"
            )
        return shape

    def _check_width(self, shape):
        if shape[-1] != self.features.num_features:
            raise ValueError(
                f"x: expected {self.features.num_features} features (the length of "
                f"one_hot_max_sizes), got input shape {tuple(shape)}"
            )

    def build(self, input_shape):
        self._check_width(input_shape)
        d = self.features.num_features
        self.feature_mean = self.add_weight(
            shape=(d,), initializer="zeros", trainable=False, name="feature_mean"
        )
        self.feature_std = self.add_weight(
            shape=(d,), initializer="ones", trainable=False, name="feature_std"
        )
        self.adapted = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="adapted", dtype="float32"
        )
        encoded = self.features.encoded_width
        self.proposal_network.build((None, encoded + 2 * d))
        self.proposal_head.build((None, self.width))
        self.prior_network.build((None, encoded + d))
        self.prior_head.build((None, self.width))
        self.generative_network.build(self.latent_dim, encoded + d)
        self.built = True

    # ----------------------------------------------------------------------------- data handling
    def _as_rows(self, x, name="x"):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.features.num_features:
            raise ValueError(
                f"{name}: expected an array of shape [n, "
                f"{self.features.num_features}], got shape {x.shape}"
            )
        self.features.check_values(x)
        return x

    def adapt(self, x):
        """Stores the mean and standard deviation of the real features' observed values.

        Each real feature gets those of its own values (``normalization="per_feature"``), or
        all get those of every observed real value (``"shared"``); with ``"none"`` they stay
        0 and 1. Categorical features are never normalised.

        Args:
          x: ``[n, D]`` array, NaN where missing.

        Raises:
          ValueError: if a real feature has no observed value, or ``x`` has the wrong shape or
            invalid categories.
        """
        x = self._as_rows(x)
        if not self.built:
            with self.distribute_strategy.scope():  # variables belong to the model's strategy
                self.build((None, x.shape[1]))
        mean = np.zeros(x.shape[1])
        std = np.ones(x.shape[1])
        real = list(self.features.real_columns)
        if self.normalization == "per_feature":
            groups = [([j], f"real column {j} has") for j in real]
        else:
            shared = self.normalization == "shared" and real  # nothing to do without real columns
            groups = [(real, "the real columns have")] if shared else []
        for columns, what in groups:
            observed = x[:, columns][~np.isnan(x[:, columns])]
            if observed.size == 0:
                raise ValueError(f"x: {what} no observed value to normalise with")
            mean[columns] = observed.mean()
            std[columns] = observed.std() if observed.std() > 0 else 1.0
        self.feature_mean.assign(mean.astype(self.feature_mean.dtype))
        self.feature_std.assign(std.astype(self.feature_std.dtype))
        self.adapted.assign(1.0)

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit``; on the first call with an array, :meth:`adapt` runs on it first.
        With a ``tf.data.Dataset`` call :meth:`adapt` yourself beforehand."""
        needs_adapt = self.normalization != "none" and (
            not self.built or not float(self.adapted.numpy())
        )
        if isinstance(x, tf.data.Dataset):
            if needs_adapt:
                raise ValueError(
                    "x: a tf.data.Dataset gives no data to normalise with; call "
                    "model.adapt(rows) before fit"
                )
        elif x is not None and needs_adapt:
            self.adapt(x)
        return super().fit(x, y, **kwargs)

    @property
    def _stat_dtype(self):
        """The dtype of the distributions, likelihoods and sums: float64 under a float64 policy,
        else float32 (also under mixed precision, whose float16 range would overflow them)."""
        return "float64" if self.compute_dtype == "float64" else "float32"

    def _normalize(self, x):
        x = tf.cast(x, self._stat_dtype)
        return (x - tf.cast(self.feature_mean, x.dtype)) / tf.cast(self.feature_std, x.dtype)

    def _denormalize(self, x):
        return x * tf.cast(self.feature_std, x.dtype) + tf.cast(self.feature_mean, x.dtype)

    # ------------------------------------------------------------------------------------ model
    def _distributions(self, x, unobserved):
        """The proposal q(z | x, b), the prior p(z | x_{1-b}, b), and the prior network's input
        and states (the generative network's skip connections). ``x`` is normalised, NaN where
        missing; ``unobserved`` is b, ``[B, D]``. The networks run in the compute dtype, the
        distributions are in ``_stat_dtype``."""
        missing = tf.cast(tf.math.is_nan(x), x.dtype)
        observed_x = tf.where(unobserved > 0, tf.fill(tf.shape(x), tf.constant(np.nan, x.dtype)), x)
        compute = self.compute_dtype
        prior_input = tf.cast(
            tf.concat([self.features.encode(observed_x), unobserved], axis=1), compute
        )
        prior_states = self.prior_network(prior_input)
        prior = _gaussian(tf.cast(self.prior_head(prior_states[-1]), x.dtype))
        proposal_input = tf.cast(
            tf.concat([self.features.encode(x), missing, unobserved], axis=1), compute
        )
        proposal = _gaussian(
            tf.cast(self.proposal_head(self.proposal_network(proposal_input)[-1]), x.dtype)
        )
        return proposal, prior, prior_input, prior_states

    def _generate(self, z, prior_input, prior_states):
        """The generative network's distribution parameters ``[B, param_width]`` for latents
        ``z``, in the dtype of ``z``."""
        params = self.generative_network(tf.cast(z, self.compute_dtype), prior_input, prior_states)
        return tf.cast(params, z.dtype)

    def _seed(self):
        """The next training seed; under a multi-replica strategy each replica gets its own
        (else every replica would draw the same masks for its part of the batch)."""
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            seed = tf.random.experimental.stateless_fold_in(
                seed, tf.cast(context.replica_id_in_sync_group, tf.int32)
            )
        return seed

    def _prior_regularizer(self, prior):
        mean, scale = prior.distribution.loc, prior.distribution.scale
        return -tf.reduce_sum(tf.square(mean), -1) / (
            2 * self.sigma_mu**2
        ) + self.sigma_sigma * tf.reduce_sum(tf.math.log(scale) - scale, -1)

    def call(self, x, training=False):
        """The per-row lower bound L(x, b) ``[B]`` under a fresh mask b from ``mask_generator``;
        adds −mean(L) / D to the model's losses (with the β-NLL weights when ``nll_beta > 0``)."""
        self._check_width(x.shape)
        x = self._normalize(x)
        batch = tf.shape(x)[0]
        generated = tf.cast(
            self.mask_generator(batch, self.features.num_features, self._seed()), x.dtype
        )
        unobserved = tf.maximum(generated, tf.cast(tf.math.is_nan(x), x.dtype))
        proposal, prior, prior_input, prior_states = self._distributions(x, unobserved)
        z = proposal.sample(seed=self._seed())
        params = self._generate(z, prior_input, prior_states)
        regularized_kl = tfd.kl_divergence(proposal, prior) - self._prior_regularizer(prior)
        bound = self.features.log_prob(x, params, unobserved) - regularized_kl
        objective = (
            self.features.log_prob(x, params, unobserved, self.nll_beta) - regularized_kl
            if self.nll_beta
            else bound
        )
        self.add_loss(-tf.reduce_mean(tf.cast(objective, "float32")) / self.features.num_features)
        return bound

    # ---------------------------------------------------------------------------- using a model
    def _check_mask(self, mask, x):
        mask = np.asarray(mask)
        if mask.shape != x.shape:
            raise ValueError(f"mask: expected the shape of x, {x.shape}, got {mask.shape}")
        return mask.astype(bool)

    def iwae(self, x, mask, num_samples=100, seed=None):
        """The importance-weighted bound on log p(x_b | x_{1-b}, b) per row (Burda et al. 2016):

            log (1/K) Σ_k p_θ(x_b | z_k, x_{1-b}, b) p_ψ(z_k | x_{1-b}, b) / q_φ(z_k | x, b),
            z_k ~ q_φ(z | x, b).

        It is at most the model's log-likelihood and tightens as K grows. Real features are scored
        in standardised units (subtract Σ log σ_j over the scored real features for the density on
        the original scale).

        Args:
          x: ``[n, D]`` complete rows (NaN entries are not scored).
          mask: ``[n, D]`` booleans, True for the features to score (b).
          num_samples: K.
          seed: None, an int or a pair of ints.

        Returns:
          ``[n]`` float64 NumPy array. Cost: K passes of the generative network.
        """
        x = self._as_rows(x)
        mask = self._check_mask(mask, x)
        num_samples = _check_int(num_samples, "num_samples")
        return (
            self._iwae(tf.constant(x), tf.constant(mask), num_samples, _stateless_seed(seed))
            .numpy()
            .astype(np.float64)
        )

    @tf.function
    def _iwae(self, x, mask, num_samples, seed):
        x = self._normalize(x)
        unobserved = tf.cast(mask, x.dtype)
        proposal, prior, prior_input, prior_states = self._distributions(x, unobserved)
        z = proposal.sample(num_samples, seed=seed)  # [K, n, L]

        def log_weight(z_k):
            params = self._generate(z_k, prior_input, prior_states)
            return (
                self.features.log_prob(x, params, unobserved)
                + prior.log_prob(z_k)
                - proposal.log_prob(z_k)
            )

        log_w = tf.map_fn(log_weight, z)
        return tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(tf.cast(num_samples, x.dtype))

    def impute(self, x, num_imputations=1, most_probable=False, seed=None):
        """Fills in the NaN entries of ``x`` with draws from p(x_b | x_{1-b}, b), b = isnan(x).

        Each imputation draws z from the prior network and then the missing values from the
        generative network (with ``most_probable=True``: the Gaussian means and the most probable
        categories given z). A row with every feature missing is imputed from the model's
        distribution given no observation at all.

        Args:
          x: ``[n, D]`` rows, NaN where missing.
          num_imputations: k, draws per row.
          most_probable: see above.
          seed: None, an int or a pair of ints; the same seed gives the same imputations.

        Returns:
          ``[n, k, D]`` NumPy array on the original scale; observed entries are copied from ``x``.
        """
        x = self._as_rows(x)
        num_imputations = _check_int(num_imputations, "num_imputations")
        filled = (
            self._impute(
                tf.constant(x), num_imputations, bool(most_probable), _stateless_seed(seed)
            )
            .numpy()
            .astype(np.float64)
        )
        return np.where(np.isnan(x)[:, None, :], filled, x[:, None, :])

    @tf.function
    def _impute(self, x, num_imputations, most_probable, seed):
        x = self._normalize(x)
        unobserved = tf.cast(tf.math.is_nan(x), x.dtype)
        _, prior, prior_input, prior_states = self._distributions(x, unobserved)
        seeds = tf.random.experimental.stateless_split(seed, 2)
        z = prior.sample(num_imputations, seed=seeds[0])  # [k, n, L]
        keys = tf.random.experimental.stateless_split(seeds[1], num_imputations)

        def draw(args):
            z_k, key = args
            params = self._generate(z_k, prior_input, prior_states)
            return self.features.sample(params, key, most_probable)

        values = tf.map_fn(draw, (z, keys), fn_output_signature=x.dtype)  # [k, n, D]
        values = tf.transpose(values, [1, 0, 2])
        real = np.zeros(self.features.num_features, bool)
        real[self.features.real_columns] = True
        return tf.where(real, self._denormalize(values), values)

    def conditional(self, x, mask=None, num_importance_samples=100, seed=None):
        """The distribution of rows given their observed part, p(x_b | x_{1-b}, b).

        Args:
          x: ``[n, D]`` rows; entries where ``mask`` is True (or NaN entries, when ``mask`` is
            None) are the unobserved ones.
          mask: ``[n, D]`` booleans, True where unobserved; default ``isnan(x)``.
          num_importance_samples: K for ``log_prob``, see below.
          seed: None, an int or a pair of ints, fixing ``log_prob``'s importance samples.

        Returns:
          A TFP distribution with batch shape ``[n]`` and event shape ``[D]``: complete rows whose
          observed entries equal ``x``'s. ``sample`` is exact (z from the prior network, then the
          unobserved features from the generative network). ``log_prob(rows)`` is the IWAE estimate
          of log p(rows_b | x_{1-b}, b) with K samples (:meth:`iwae`), a stochastic lower bound,
          with real features scored in standardised units.
        """
        x = self._as_rows(x, "x")
        mask = np.isnan(x) if mask is None else self._check_mask(mask, x)
        return VAEACConditional(
            self,
            np.where(mask, np.nan, x),
            _check_int(num_importance_samples, "num_importance_samples"),
            _stateless_seed(seed),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "one_hot_max_sizes": self.one_hot_max_sizes,
                "latent_dim": self.latent_dim,
                "width": self.width,
                "depth": self.depth,
                "mask_generator": keras.saving.serialize_keras_object(self.mask_generator),
                "min_scale": self.min_scale,
                "sigma_mu": self.sigma_mu,
                "sigma_sigma": self.sigma_sigma,
                "nll_beta": self.nll_beta,
                "image_shape": None if self.image_shape is None else list(self.image_shape),
                "normalization": self.normalization,
                "seed": self.seed,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["mask_generator"] = keras.saving.deserialize_keras_object(config["mask_generator"])
        return cls(**config)


class VAEACConditional(tfd.Distribution):
    """p(x_b | x_{1-b}, b) of a trained :class:`VAEAC`; made by :meth:`VAEAC.conditional`."""

    def __init__(self, model, observed, num_importance_samples, seed, name="VAEACConditional"):
        parameters = dict(locals())
        self._model = model
        self._observed = observed  # [n, D] float64, NaN where unobserved
        self._num_importance_samples = num_importance_samples
        self._seed = seed
        super().__init__(
            dtype=tf.float64,
            reparameterization_type=tfd.NOT_REPARAMETERIZED,
            validate_args=False,
            allow_nan_stats=True,
            parameters=parameters,
            name=name,
        )

    def _batch_shape(self):
        return tf.TensorShape([self._observed.shape[0]])

    def _event_shape(self):
        return tf.TensorShape([self._observed.shape[1]])

    def _sample_n(self, n, seed=None):
        observed = tf.constant(self._observed)
        filled = self._model._impute(observed, n, False, _stateless_seed(seed))  # [rows, n, D]
        filled = tf.cast(tf.transpose(filled, [1, 0, 2]), tf.float64)
        return tf.where(tf.math.is_nan(observed), filled, observed)

    def _log_prob(self, value):
        value = tf.convert_to_tensor(value, tf.float64)
        rows = tf.reshape(value, [-1, self._observed.shape[0], self._observed.shape[1]])
        mask = tf.math.is_nan(tf.constant(self._observed))
        scores = tf.map_fn(
            lambda r: tf.cast(
                self._model._iwae(r, mask, self._num_importance_samples, self._seed), tf.float64
            ),
            rows,
        )
        return tf.reshape(scores, tf.shape(value)[:-1])
