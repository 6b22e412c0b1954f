"""Baselines for the score-function estimator.

A baseline ``b`` replaces ``f(x)`` by ``f(x) - b`` in the score-function
estimator ``mean_s f(x_s) grad log p(x_s)``. Since ``E[grad log p(x)] = 0``,
any ``b`` that does not depend on the sample it multiplies leaves the estimator
unbiased (Mohamed et al. 2020, arXiv 1906.10652, Sec. 7.3); a ``b`` close to
``E f`` removes most of its variance.

* ``MovingAverageBaseline``: an exponential moving average of past estimates
  of ``E f``, kept in a variable across training steps.
* ``leave_one_out``: ``b_s = mean_{t != s} f(x_t)``, from the other samples of
  the same batch (needs ``num_samples >= 2``).
* any callable ``b()`` returning a scalar or ``[num_samples]`` tensor that does
  not depend on the samples, e.g. a small network of the observed data.
"""

import numbers

import tensorflow as tf

__all__ = ["MovingAverageBaseline", "leave_one_out"]


class MovingAverageBaseline(tf.Module):
    """An exponential moving average of ``E f``, updated at every estimator call.

    At step ``t`` the baseline is the bias-corrected average of the estimates
    of steps ``1 .. t-1`` (as in Adam: ``m_t / (1 - decay^t)``), and ``0`` at the
    first step; the current estimate enters the average only after it is used,
    so the baseline never depends on the samples it multiplies.

    Args:
      decay: float in ``[0, 1)``; the weight of the past.
      dtype: dtype of the stored average (the estimate is cast to it).
      name: module name.

    Example:
      ```python
      baseline = tfbayes.estimators.MovingAverageBaseline(decay=0.9)
      for step in range(100):
          with tf.GradientTape() as tape:
              loss = score_function(f, tfd.Normal(loc, 1.0), 10, seed=step,
                                    baseline=baseline)
          ...
      ```
    """

    def __init__(self, decay=0.9, dtype=tf.float32, name=None):
        super().__init__(name=name or "moving_average_baseline")
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 <= decay < 1:
            raise ValueError(
                f"MovingAverageBaseline: `decay`: expected a float in [0, 1), got {decay!r}."
            )
        self.decay = float(decay)
        dtype = tf.as_dtype(dtype)
        if not dtype.is_floating:
            raise TypeError(
                f"MovingAverageBaseline: `dtype`: expected a floating dtype, got {dtype.name}."
            )
        with self.name_scope:
            self.average = tf.Variable(tf.zeros([], dtype), trainable=False, name="average")
            self.count = tf.Variable(tf.zeros([], dtype), trainable=False, name="count")

    def value(self):
        """The bias-corrected average of past estimates; ``0`` before the first update."""
        correction = 1.0 - tf.pow(tf.constant(self.decay, self.average.dtype), self.count)
        return tf.where(
            self.count > 0,
            self.average / tf.maximum(correction, 1e-30),
            tf.zeros_like(self.average),
        )

    def update(self, estimate):
        """Folds ``estimate`` (a scalar) into the average."""
        estimate = tf.cast(tf.stop_gradient(estimate), self.average.dtype)
        self.average.assign(self.decay * self.average + (1.0 - self.decay) * estimate)
        self.count.assign_add(tf.ones_like(self.count))

    def get_config(self):
        return {"decay": self.decay, "dtype": self.average.dtype.name}


def leave_one_out(values):
    """``b_s = (sum_t values_t - values_s) / (n - 1)``: the mean of the other samples.

    Args:
      values: ``[n]`` tensor, ``n >= 2``.
    """
    n = tf.cast(tf.shape(values)[0], values.dtype)
    return (tf.reduce_sum(values) - values) / (n - 1.0)
