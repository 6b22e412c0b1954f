"""Argument checks, the draws and the evaluation of ``f`` shared by every estimator."""

import numbers

import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["check_num_samples", "check_distribution", "draw", "evaluate", "joint_log_prob"]


def check_num_samples(estimator, num_samples, minimum=1, reason="", arg="num_samples"):
    """Returns ``num_samples`` as a Python int, or raises naming the estimator.

    Args:
      estimator: name used in the message, e.g. ``"score_function"``.
      num_samples: the number of Monte Carlo samples; a Python int (or a NumPy
        integer), since it fixes the static shape of every sample tensor.
      minimum: the smallest number accepted.
      reason: appended to the message when ``num_samples < minimum``.
      arg: the argument's name in the message.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, numbers.Integral):
        raise TypeError(
            f"{estimator}: `{arg}`: expected a Python int, got "
            f"{type(num_samples).__name__} {num_samples!r}."
        )
    if num_samples < minimum:
        raise ValueError(
            f"{estimator}: `{arg}`: expected an int >= {minimum}{reason}, got {num_samples}."
        )
    return int(num_samples)


def check_distribution(estimator, dist):
    """Raises a ``TypeError`` unless ``dist`` is a TFP distribution."""
    if not isinstance(dist, tfp.distributions.Distribution):
        raise TypeError(
            f"{estimator}: `dist`: expected a tfp.distributions.Distribution, got "
            f"{type(dist).__name__}."
        )


def draw(dist, num_samples, seed):
    """``num_samples`` draws of ``dist`` from the stateless ``seed``: ``[n] + batch + event``.

    The sampler gets a split of ``seed`` (``tf.random.experimental.stateless_split``), not
    ``seed`` itself. Under XLA on CPU, a sampler whose seed is an input of the compiled
    function or a cheap function of one (a salt, a fold-in) has the derivation of its Philox
    key and counter from that seed fused into the loop that generates the random bits, which
    recomputes it for every block of four 32-bit numbers; from a split's output, which XLA
    computes once, the loop runs Philox on the counter alone. The split costs one small
    random-number op; the draws are as random as before.
    """
    return dist.sample(num_samples, seed=tf.random.experimental.stateless_split(seed, 1)[0])


def joint_log_prob(dist, x):
    """``log p(x)`` summed over the batch dimensions: shape ``[num_samples]``.

    The batch members of ``dist`` are independent, so the joint log-density of
    one draw is the sum of theirs.
    """
    log_prob = dist.log_prob(x)
    return tf.reduce_sum(log_prob, axis=tf.range(1, tf.rank(log_prob)))


def evaluate(estimator, f, x, num_points):
    """``f(x)`` for ``num_points`` draws stacked along axis 0, checked to be ``[num_points]``.

    Raises:
      ValueError: if ``f`` returns a tensor whose static shape is not
        ``[num_points]`` (one value per draw), or a non-floating tensor.
    """
    value = tf.convert_to_tensor(f(x))
    if not value.dtype.is_floating:
        raise TypeError(
            f"{estimator}: `f`: expected a floating-point output, got dtype {value.dtype.name}."
        )
    if not value.shape.is_compatible_with([num_points]):
        raise ValueError(
            f"{estimator}: `f`: expected an output of shape [{num_points}] (one value per draw "
            f"of the {num_points} stacked along axis 0 of its input, whose shape is "
            f"{x.shape}), got shape {value.shape}."
        )
    return tf.ensure_shape(value, [num_points])
