"""The measure-valued gradient estimator.

With a weak derivative ``d p(x; theta_i)/d theta_i = c_i (p+_i(x) - p-_i(x))``
of each parameter element ``theta_i`` (``weak_derivatives``),

    d/d theta_i E_p[f(x)] = c_i (E_{p+_i}[f] - E_{p-_i}[f])
                         ~= c_i/N sum_s (f(x+_{i,s}) - f(x-_{i,s}))

(Mohamed et al. 2020, arXiv 1906.10652, Sec. 6), where ``x+_{i,s}`` is the
joint draw ``x_s ~ p`` with the batch member that ``theta_i`` governs
replaced by a draw of ``p+_i`` (and likewise ``x-``). The surrogate carries
it as ``sum_i (theta_i - stop_gradient(theta_i)) * stop_gradient(estimate_i)``,
so autodiff takes it to whatever ``theta`` was computed from (logits,
log-rates, variables behind ``TransformedVariable``...).

Cost: ``N (1 + 2 D)`` evaluations of ``f`` for ``D`` parameter elements in
all (for Normal, ``D = 2 B`` with ``B`` batch members; for Categorical with
``K`` classes, ``D = K B``), in one batched call of ``f`` on ``2 D N`` points,
and ``O(D N B)`` memory for those points. ``f`` need not be differentiable, and
discrete distributions are supported.
"""

import tensorflow as tf

from tfbayes.distributions.base import derive_seed, sanitize_seed
from tfbayes.estimators.control_variates import surrogate
from tfbayes.estimators.validation import check_distribution, check_num_samples, draw, evaluate
from tfbayes.estimators.weak_derivatives import weak_derivatives

__all__ = ["measure_valued"]

_NAME = "measure_valued"


def measure_valued(
    f,
    dist,
    num_samples,
    seed=None,
    coupled=True,
    control_variate=None,
    coefficient=1.0,
    num_coefficient_samples=None,
    name=None,
):
    """The measure-valued surrogate of ``E_{x~dist}[f(x)]``.

    Args:
      f: callable ``[n] + batch_shape -> [n]`` (it is called once with
        ``n = N`` and once with ``n = 2 D N``); it may use variables of its own.
      dist: one of the families of ``weak_derivatives.SUPPORTED`` (TFP's or
        ``tfbayes.distributions.Gamma``), any batch shape, scalar events.
      num_samples: Python int ``N >= 1``.
      seed: as TFP's ``sample`` takes it: ``None`` or an int (stateful), or a
        ``[2]`` int tensor (stateless: the same seed gives the same estimate).
      coupled: if True, the positive and negative draws share their random
        numbers (common random numbers; ``weak_derivatives`` says how per
        family), which usually lowers the variance.
      control_variate, coefficient, num_coefficient_samples: as in
        ``score_function``.
      name: name scope.

    Returns:
      A scalar: value ``mean_s f(x_s)``; gradient the measure-valued estimate
      with respect to the distribution's parameters, and the average gradient
      with respect to ``f``'s variables.

    Raises:
      ValueError: unsupported family; bad ``num_samples`` or ``f`` output shape.
    """
    check_distribution(_NAME, dist)
    num_samples = check_num_samples(_NAME, num_samples)
    if dist.event_shape.rank != 0 or not dist.batch_shape.is_fully_defined():
        raise ValueError(
            f"{_NAME}: `dist`: expected scalar events and a static batch shape, "
            f"got event_shape {dist.event_shape}, batch_shape {dist.batch_shape}."
        )
    with tf.name_scope(name or _NAME):
        seed = sanitize_seed(seed, salt="measure_valued")

        def core(fn, n, core_seed):
            return _measure_valued_core(fn, dist, n, core_seed, coupled)

        return surrogate(
            _NAME,
            core,
            f,
            dist,
            num_samples,
            seed,
            control_variate,
            coefficient,
            num_coefficient_samples,
        )


def _measure_valued_core(fn, dist, n, seed, coupled):
    """``(values, terms)`` of ``control_variates.surrogate`` for the measure-valued estimator."""
    batch_shape = dist.batch_shape.as_list()
    size = dist.batch_shape.num_elements()
    x = tf.stop_gradient(draw(dist, n, derive_seed(seed, 0)))
    flat_x = tf.reshape(x, [1, 1, n, size])
    parts = weak_derivatives(_NAME, dist, n, derive_seed(seed, 1), coupled)
    # For each parameter element (i, k): the joint draws with member i replaced,
    # shape [2, size, K, n, size], flattened into one call of f.
    points, counts = [], []
    for part in parts:
        extra = part.parameter.shape[len(batch_shape) :].num_elements()
        counts.append(size * extra)
        for draws in (part.positive, part.negative):
            draws = tf.transpose(tf.reshape(draws, [n, size, extra]), [1, 2, 0])
            member = tf.reshape(tf.eye(size, dtype=tf.bool), [size, 1, 1, size])
            replaced = tf.where(member, tf.cast(draws, x.dtype)[..., tf.newaxis], flat_x)
            points.append(tf.reshape(replaced, [size * extra * n] + batch_shape))
    total = 2 * sum(counts) * n
    values = evaluate(_NAME, fn, tf.concat(points, 0), total)
    base = evaluate(_NAME, fn, x, n)
    terms, offset = tf.zeros_like(base), 0
    for part, count in zip(parts, counts):
        plus = tf.reshape(values[offset : offset + count * n], [count, n])
        minus = tf.reshape(values[offset + count * n : offset + 2 * count * n], [count, n])
        offset += 2 * count * n
        constant = tf.cast(tf.reshape(part.constant, [count, 1]), base.dtype)
        per_sample = tf.stop_gradient(constant * (plus - minus))
        parameter = tf.cast(tf.reshape(part.parameter, [count, 1]), base.dtype)
        terms += tf.reduce_sum((parameter - tf.stop_gradient(parameter)) * per_sample, axis=0)
    return base, terms
