"""Rows of mixed real and categorical features: encoding, likelihood and sampling.

A row has ``D = len(one_hot_max_sizes)`` features. Feature ``j`` is real-valued when
``one_hot_max_sizes[j]`` is 0 or 1, and categorical with values ``0 .. k - 1`` when it is
``k >= 2`` (the convention of the VAEAC reference code). Missing entries are NaN.

* :meth:`MixedFeatures.encode` turns a row into a network input: the real values as they are and
  each categorical value as a one-hot vector, with missing entries as zeros.
* A generative network outputs ``param_width`` numbers per row: a mean and a raw scale for each
  real feature, then ``k`` logits for each categorical one. :meth:`MixedFeatures.log_prob` gives
  ``sum_j w_j log p(x_j)`` with p(x_j) = N(x_j; μ_j, σ_j²), σ_j = max(softplus(raw_j), min_scale),
  or Categorical(x_j; softmax(logits_j)), optionally with the β-NLL weights of real features;
  :meth:`MixedFeatures.sample` draws from it or takes the most probable value. Costs are O(B · param_width) per batch of B rows.
"""

import numpy as np
import tensorflow as tf


class MixedFeatures:
    """The static layout of a row of mixed features.

    Args:
      one_hot_max_sizes: a list of non-negative ints, one per feature: 0 or 1 for a real feature,
        the number of categories k >= 2 for a categorical one.
      min_scale: the smallest standard deviation of a real feature's Gaussian, > 0.
    """

    def __init__(self, one_hot_max_sizes, min_scale=1e-2):
        sizes = (
            list(one_hot_max_sizes)
            if isinstance(one_hot_max_sizes, (list, tuple, np.ndarray))
            else None
        )
        if not sizes or not all(
            isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0 for k in sizes
        ):
            raise ValueError(
                "one_hot_max_sizes: expected a non-empty list of non-negative ints "
                f"(0 or 1: real feature, k >= 2: k categories), got "
                f"{one_hot_max_sizes!r}"
            )
        self.sizes = [int(k) for k in sizes]
        self.min_scale = float(min_scale)
        self.real_columns = np.array([j for j, k in enumerate(self.sizes) if k <= 1], np.int32)
        self.categorical = [(j, k) for j, k in enumerate(self.sizes) if k >= 2]
        self.num_features = len(self.sizes)
        self.num_real = len(self.real_columns)
        self.encoded_width = self.num_real + sum(k for _, k in self.categorical)
        self.param_width = 2 * self.num_real + sum(k for _, k in self.categorical)
        # Where each categorical feature's logits start in the parameter vector.
        starts = 2 * self.num_real + np.cumsum([0] + [k for _, k in self.categorical])
        self._logit_slices = [(j, k, int(s)) for (j, k), s in zip(self.categorical, starts)]

    def check_values(self, x):
        """Raises ``ValueError`` if a categorical entry of the NumPy array ``x`` ``[n, D]`` is not
        NaN or an integer in ``[0, k)``."""
        for j, k in self.categorical:
            column = x[:, j]
            present = column[~np.isnan(column)]
            bad = present[(present < 0) | (present >= k) | (present != np.round(present))]
            if bad.size:
                raise ValueError(
                    f"x: column {j} is categorical with {k} categories; expected "
                    f"NaN or an integer in [0, {k}), got {bad[0]!r}"
                )

    def encode(self, x):
        """``[B, encoded_width]``: real values, then one-hot categories; NaN entries become 0."""
        missing = tf.math.is_nan(x)
        x0 = tf.where(missing, tf.zeros_like(x), x)
        parts = [tf.gather(x0, self.real_columns, axis=1)] if self.num_real else []
        for j, k in self.categorical:
            parts.append(
                tf.one_hot(tf.cast(x0[:, j], tf.int32), k, dtype=x.dtype)
                * tf.cast(~missing[:, j : j + 1], x.dtype)
            )
        return tf.concat(parts, axis=1)

    def _real_params(self, params):
        mean = params[:, : self.num_real]
        scale = tf.maximum(
            tf.math.softplus(params[:, self.num_real : 2 * self.num_real]),
            tf.cast(self.min_scale, params.dtype),
        )
        return mean, scale

    def _scatter(self, columns, values, like):
        """Places ``values`` ``[B, len(columns)]`` at ``columns`` of a ``[B, D]`` tensor of zeros."""
        index = tf.constant(np.asarray(columns, np.int32)[:, None])
        return tf.transpose(
            tf.scatter_nd(index, tf.transpose(values), [self.num_features, tf.shape(like)[0]])
        )

    def log_prob(self, x, params, weight, beta=0.0):
        """``[B]``: ``sum_j weight_j log p(x_j | params)``; NaN entries of ``x`` count 0.

        Args:
          x: ``[B, D]`` rows (normalized real features, categorical indices), NaN where missing.
          params: ``[B, param_width]`` generative network outputs.
          weight: ``[B, D]`` 0/1 weights (the features to score).
          beta: β of the β-NLL (Seitzer et al. 2022, eq. 5), in [0, 1]: each real feature's term
            is multiplied by stop_gradient(σ_j^{2β}). β = 0 is the log-likelihood; for β > 0
            the sum is a training objective, not a log-likelihood: its gradient in μ_j is
            (x_j − μ_j) / σ_j^{2 − 2β}, so features the network finds hard (large σ_j) still
            pull their means towards the data (β = 1: as the squared error does).
        """
        present = ~tf.math.is_nan(x)
        x0 = tf.where(present, x, tf.zeros_like(x))
        weight = weight * tf.cast(present, x.dtype)
        per_feature = []
        if self.num_real:
            mean, scale = self._real_params(params)
            z = (tf.gather(x0, self.real_columns, axis=1) - mean) / scale
            real = -0.5 * tf.square(z) - tf.math.log(scale) - 0.5 * np.log(2 * np.pi)
            if beta:
                real = real * tf.stop_gradient(scale ** (2.0 * beta))
            per_feature.append(self._scatter(self.real_columns, real, x))
        for j, k, start in self._logit_slices:
            log_p = tf.nn.log_softmax(params[:, start : start + k])
            chosen = tf.gather(log_p, tf.cast(x0[:, j], tf.int32), axis=1, batch_dims=1)
            per_feature.append(self._scatter([j], chosen[:, None], x))
        return tf.reduce_sum(tf.add_n(per_feature) * weight, axis=1)

    def sample(self, params, seed, most_probable=False):
        """``[B, D]`` draws from p(x | params) (categories as float indices), or with
        ``most_probable=True`` the means and the most probable categories."""
        seeds = tf.random.experimental.stateless_split(seed, 2)
        parts = []
        if self.num_real:
            mean, scale = self._real_params(params)
            if not most_probable:
                mean = mean + scale * tf.random.stateless_normal(
                    tf.shape(mean), seeds[0], dtype=mean.dtype
                )
            parts.append(self._scatter(self.real_columns, mean, params))
        for i, (j, k, start) in enumerate(self._logit_slices):
            logits = params[:, start : start + k]
            if most_probable:
                value = tf.argmax(logits, axis=1)
            else:
                value = tf.random.stateless_categorical(
                    logits, 1, tf.random.experimental.stateless_fold_in(seeds[1], i)
                )[:, 0]
            parts.append(self._scatter([j], tf.cast(value, params.dtype)[:, None], params))
        return tf.add_n(parts)
