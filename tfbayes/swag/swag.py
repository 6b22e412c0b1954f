"""SWA-Gaussian (Maddox, Izmailov, Garipov, Vetrov, Wilson 2019, arXiv 1902.02476).

SWAG fits a Gaussian to the SGD iterates ``w_1 .. w_n`` collected with the SWA
schedule. With the running mean ``mean``, the per-coordinate variance ``sigma^2``
(see :class:`~tfbayes.swag.moments.RunningMoments`) and the deviation matrix ``D``
(``P x K``, columns ``w_i - mean_i`` of the last ``K <= max_rank`` iterates), the
posterior used here is

    N(mean, scale * (diag(sigma^2) + D D^T / (K - 1))),

and a sample is ``mean + sqrt(scale) * sigma * z1 + sqrt(scale / (K - 1)) * D z2`` with
``z1 ~ N(0, I_P)`` and ``z2 ~ N(0, I_K)``. The paper's covariance
``Sigma = (diag(sigma^2) + D D^T / (K - 1)) / 2`` is ``scale = 1/2``; its experiments
sample with ``scale = 0.5``, the default here. ``K - 1`` is replaced by 1 when only
one deviation is held (``K = 1``). SWAG-Diag drops the low-rank part:
``N(mean, scale * diag(sigma^2))``. Costs: memory ``(K + 2) P`` numbers, a sample
O(P K), ``log_prob`` O(P K^2) by the Woodbury identity; no ``P x P`` matrix is formed.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.layers.base import check_finite_real
from tfbayes.swag.averaging import average_predictions
from tfbayes.swag.bn import batch_norm_layers, update_bn
from tfbayes.swag.swa import SWA, _check_int

tfd = tfp.distributions

_VAR_FLOOR = 1e-30


def _check_scale(scale):
    if check_finite_real(scale, "scale") < 0:
        raise ValueError(f"scale: expected a non-negative finite number, got {scale!r}")
    return float(scale)


class SWAG(SWA):
    """Collects SWAG's moments and deviations during ``fit``; samples and averages predictions.

    It is an :class:`SWA` callback (same schedule, collection and arguments; at the end of
    training the model gets the SWA mean unless ``set_weights_at_end=False``) that also
    keeps the per-coordinate variance and the last ``max_rank`` deviations. The paper
    collects once per epoch (the default) with ``max_rank = 20``.

    Args:
      start_epoch: the first (0-based) epoch whose weights are collected (see :class:`SWA`).
      max_rank: ``K``, the number of recent deviations kept, an int >= 1.
      swa_lr: the constant learning rate while collecting, or ``None`` (see :class:`SWA`).
      var_floor: the variance is ``max(M2 / n, var_floor)`` (default 1e-30, as in the
        reference code), so it is never negative and ``log_prob`` stays finite.
      **kwargs: the other arguments of :class:`SWA` (``lr_init``, ``every_n_steps``,
        ``bn_data``, ``bn_batch_size``, ``set_weights_at_end``, ``ramp``).

    Example:
      ```python
      swag = tfbayes.swag.SWAG(start_epoch=10, max_rank=20, swa_lr=0.01, bn_data=x_train)
      model.fit(x_train, y_train, epochs=20, callbacks=[swag])
      probs = swag.predict_bma(x_test, num_samples=30, bn_data=x_train, seed=0)
      ```
    """

    _track_variance = True

    def __init__(self, start_epoch, max_rank=20, swa_lr=None, var_floor=_VAR_FLOOR, **kwargs):
        self.max_rank = _check_int(max_rank, "max_rank", 1)
        if check_finite_real(var_floor, "var_floor") < 0:
            raise ValueError(f"var_floor: expected a non-negative number, got {var_floor!r}")
        self.var_floor = float(var_floor)
        super().__init__(start_epoch, swa_lr=swa_lr, **kwargs)

    def _max_rank(self):
        return self.max_rank

    def get_config(self):
        config = super().get_config()
        config.update(max_rank=self.max_rank, var_floor=self.var_floor)
        return config

    def posterior(self, scale=0.5):
        """The SWAG Gaussian over the flat trainable weights (see the module docstring).

        Args:
          scale: the non-negative factor on the covariance (0.5: the paper's Sigma).

        Returns:
          A ``tfd.MultivariateNormalDiagPlusLowRankCovariance`` (SWAG-Diag: a
          ``tfd.MultivariateNormalDiag``) with event shape ``[P]`` in the weights' dtype,
          offering ``sample``, ``log_prob``, ``mean``, ``stddev``, ``variance``. Sampling
          follows TFP's seed conventions.
        """
        self._require(2)
        scale = _check_scale(scale)
        loc = tf.constant(self.moments.mean)
        variance = self.moments.variance(self.var_floor)
        deviations = self.moments.deviations()
        if not self.max_rank:
            return tfd.MultivariateNormalDiag(
                loc, tf.constant(np.sqrt(scale * variance)), name="SWAGDiag"
            )
        rank = deviations.shape[0]
        factor = deviations.T * np.sqrt(scale / max(rank - 1, 1)).astype(deviations.dtype)
        return tfd.MultivariateNormalDiagPlusLowRankCovariance(
            loc, tf.constant(scale * variance), tf.constant(factor), name="SWAG"
        )

    def sample_weights(self, model=None, scale=0.5, seed=None, bn_data=None):
        """Sets ``model``'s trainable weights to one posterior sample.

        Args:
          model: the model (default: the one trained with this callback).
          scale: the covariance factor (see :meth:`posterior`).
          seed: as for TFP samplers: ``None``, an int, or a stateless ``[2]`` int seed.
          bn_data: if given, BatchNormalization statistics are recomputed over it with
            :func:`update_bn` (needed for a model with BatchNormalization layers).

        Returns:
          The sampled flat weight vector, a NumPy array of shape ``[P]``.
        """
        flat = self._flat(model)
        sample = self.posterior(scale).sample(seed=seed).numpy()
        flat.assign(sample)
        if bn_data is not None:
            update_bn(self.model if model is None else model, bn_data, self.bn_batch_size)
        return sample

    def predict_bma(
        self,
        x,
        num_samples=30,
        scale=0.5,
        bn_data=None,
        seed=None,
        model=None,
        batch_size=None,
        from_logits=False,
    ):
        """Bayesian model averaging: the mean predicted probabilities over posterior samples.

        For each of ``num_samples`` samples the model gets the sampled weights (and, when it
        has BatchNormalization layers, statistics recomputed over ``bn_data``), and
        ``model.predict(x)`` is taken; the probabilities are averaged. The model's weights
        (all of them, BN statistics included) are restored afterwards.

        Args:
          x: inputs, as ``model.predict`` takes them.
          num_samples: the number of posterior samples, an int >= 1 (paper: 30).
          scale: the covariance factor (paper: 0.5).
          bn_data: data for :func:`update_bn`; required if the model has BN layers.
          seed: ``None``, an int or a stateless seed; split into one seed per sample.
          model: the model (default: the one trained with this callback).
          batch_size: passed to ``model.predict``.
          from_logits: whether the model outputs logits (softmax is applied per sample).

        Returns:
          A NumPy array of averaged probabilities, shaped as the model's output.

        Cost: ``num_samples`` times (a sample, an ``update_bn`` pass, a prediction).
        """
        num_samples = _check_int(num_samples, "num_samples", 1)
        _check_scale(scale)
        model = self.model if model is None else model
        self._flat(model)
        if bn_data is None and batch_norm_layers(model):
            raise ValueError(
                "bn_data: the model has BatchNormalization layers, whose statistics "
                "must be recomputed for every sampled weight vector; pass the "
                "training inputs as bn_data, got None"
            )
        seeds = tfp.random.split_seed(seed, n=num_samples)
        setters = (lambda s=s: self.sample_weights(model, scale, s) for s in seeds)
        return average_predictions(
            model, setters, x, bn_data, batch_size, from_logits, self.bn_batch_size
        )


class SWAGDiag(SWAG):
    """SWAG with a diagonal covariance only: ``N(mean, scale * diag(sigma^2))``.

    Memory ``2 P`` numbers; the arguments and methods are those of :class:`SWAG` without
    ``max_rank``.
    """

    def __init__(self, start_epoch, swa_lr=None, var_floor=_VAR_FLOOR, **kwargs):
        super().__init__(start_epoch, max_rank=1, swa_lr=swa_lr, var_floor=var_floor, **kwargs)
        self.max_rank = 0

    def get_config(self):
        config = super().get_config()
        del config["max_rank"]
        return config
