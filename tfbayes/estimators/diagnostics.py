"""Variance and cost of a gradient estimator, measured by repetition."""

import collections

import tensorflow as tf

from tfbayes.distributions.base import derive_seed, sanitize_seed
from tfbayes.estimators.parameters import distribution_parameters
from tfbayes.estimators.validation import check_num_samples

__all__ = ["GradientStatistics", "gradient_variance"]

GradientStatistics = collections.namedtuple(
    "GradientStatistics", ["mean", "variance", "cost", "estimates"]
)
GradientStatistics.__doc__ = """What ``gradient_variance`` measures.

``mean`` / ``variance``: lists, one tensor per parameter shaped like it: the
mean and the (unbiased, ``ddof=1``) variance over the repeats of the gradient
estimate; ``cost``: Python int, evaluations of ``f`` (points at which ``f`` is
called) per estimate; ``estimates``: list of ``[num_repeats] + shape``
tensors, the raw gradient estimates."""


def gradient_variance(
    estimator,
    f,
    dist,
    num_samples,
    num_repeats,
    seed=None,
    parameters=None,
    jit_compile=False,
    **options,
):
    """Mean and variance over ``num_repeats`` independent runs of an estimator's gradient.

    Args:
      estimator: ``score_function``, ``pathwise``, ``measure_valued`` or any
        function with their signature.
      f, dist, num_samples, **options: passed to ``estimator``.
      num_repeats: Python int ``R >= 2``; the estimates are computed in one
        ``tf.map_fn`` over ``R`` seeds derived from ``seed``.
      seed: as TFP's ``sample`` takes it: ``None`` or an int (stateful), or a
        ``[2]`` int tensor (stateless: the same seed gives the same estimate).
      parameters: list of tensors / variables to differentiate; default the
        float tensors and variables ``dist`` is built from
        (``distribution_parameters``).
      jit_compile: compile the repeats with XLA.

    Returns:
      ``GradientStatistics``. The variance of the mean over repeats is
      ``variance / R``.

    Cost: ``R`` estimates. A stateful baseline (``MovingAverageBaseline``) is
    updated at every repeat, as in ``R`` training steps.
    """
    num_repeats = check_num_samples(
        "gradient_variance", num_repeats, 2, " to estimate a variance", arg="num_repeats"
    )
    if parameters is None:
        parameters = distribution_parameters(dist)
    if not parameters:
        raise ValueError(
            f"gradient_variance: `parameters`: {type(dist).__name__} lists no "
            "float tensors or variables; pass the ones to differentiate."
        )
    cost = [0]

    def counted_f(x):
        cost[0] += x.shape[0]
        return f(x)

    def one(repeat_seed):
        with tf.GradientTape() as tape:
            tape.watch([p for p in parameters if not isinstance(p, tf.Variable)])
            value = estimator(counted_f, dist, num_samples, seed=repeat_seed, **options)
        return tape.gradient(value, parameters, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    @tf.function(jit_compile=jit_compile, autograph=False)
    def repeats(base_seed):
        seeds = tf.map_fn(
            lambda i: derive_seed(base_seed, i), tf.range(num_repeats), fn_output_signature=tf.int32
        )
        return tf.map_fn(one, seeds, fn_output_signature=[p.dtype for p in parameters])

    estimates = repeats(sanitize_seed(seed, salt="gradient_variance"))
    mean = [tf.reduce_mean(e, axis=0) for e in estimates]
    variance = [
        tf.reduce_sum(tf.square(e - m), axis=0) / (num_repeats - 1.0)
        for e, m in zip(estimates, mean)
    ]
    return GradientStatistics(mean, variance, cost[0], list(estimates))
