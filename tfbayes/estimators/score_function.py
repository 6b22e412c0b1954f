"""The score-function (REINFORCE, likelihood-ratio) estimator.

    grad_theta E_p[f(x)] = E_p[f(x) grad_theta log p(x; theta)]
                        ~= 1/N sum_s (f(x_s) - b_s) grad_theta log p(x_s; theta)

(Mohamed et al. 2020, arXiv 1906.10652, eq. 13), with ``x_s ~ p`` drawn
without gradients and ``b_s`` a baseline (``baselines``). It applies to any
distribution with a differentiable ``log_prob``, discrete ones included, and
needs nothing of ``f`` but its values.
"""

import tensorflow as tf

from tfbayes.distributions.base import sanitize_seed
from tfbayes.estimators import baselines as baselines_lib
from tfbayes.estimators.control_variates import surrogate
from tfbayes.estimators.validation import (
    check_distribution,
    check_num_samples,
    draw,
    evaluate,
    joint_log_prob,
)

__all__ = ["score_function"]

_NAME = "score_function"


def score_function(
    f,
    dist,
    num_samples,
    seed=None,
    baseline=None,
    control_variate=None,
    coefficient=1.0,
    num_coefficient_samples=None,
    name=None,
):
    """The score-function surrogate of ``E_{x~dist}[f(x)]``.

    Args:
      f: callable; ``f(x)`` maps ``x`` of shape ``[n] + batch_shape +
        event_shape`` (``n`` draws of ``dist``, whose batch members are
        independent and form one joint draw) to a float tensor of shape
        ``[n]``. It may use variables of its own; their gradient is the
        average of ``grad f(x_s)``.
      dist: a ``tfp.distributions.Distribution`` (ours included) with a
        ``log_prob`` differentiable in its parameters.
      num_samples: Python int ``N >= 1`` (``>= 2`` for the leave-one-out
        baseline).
      seed: as TFP's ``sample`` takes it: ``None`` or an int (stateful), or a
        ``[2]`` int tensor (stateless: the same seed gives the same estimate).
      baseline: ``None``; ``"leave_one_out"``; a ``MovingAverageBaseline``,
        read before and updated after this estimate; or a callable ``b()``
        returning a scalar or ``[N]`` tensor that must not depend on the
        samples (e.g. a network of the observed data; it is not trained by
        this estimator: fit it with its own loss, such as
        ``(stop_gradient(f) - b)^2``).
      control_variate: ``None``, ``"delta"`` (``control_variates.delta_method``)
        or a callable ``(f, dist) -> (h, E_p[h])``.
      coefficient: float ``beta`` multiplying the control variate, or
        ``"optimal"`` (per parameter, from ``num_coefficient_samples`` fresh
        samples; ``control_variates`` eq. 2).
      num_coefficient_samples: int; default ``num_samples``.
      name: name scope.

    Returns:
      A scalar tensor: its value is ``mean_s f(x_s)``, the Monte Carlo
      estimate of ``E f``; its gradient with respect to the distribution's
      parameters (the tensors and variables ``dist`` was built from) is the
      score-function estimate, and with respect to ``f``'s own variables the
      average of their gradients.

    Raises:
      TypeError / ValueError: bad ``dist``, ``num_samples``, ``baseline``,
        ``control_variate`` or ``f`` output shape.

    Cost: ``N`` evaluations of ``f`` and ``N`` of ``log_prob``; with a
    control variate, those of ``h`` too, and ``num_coefficient_samples``
    per-sample gradients for ``"optimal"``.
    """
    check_distribution(_NAME, dist)
    loo = isinstance(baseline, str) and baseline == "leave_one_out"
    num_samples = check_num_samples(
        _NAME, num_samples, 2 if loo else 1, " for baseline='leave_one_out'" if loo else ""
    )
    baseline_fn = _baseline_function(baseline)
    with tf.name_scope(name or _NAME):
        seed = sanitize_seed(seed, salt="score_function")

        def core(fn, n, core_seed):
            x = tf.stop_gradient(draw(dist, n, core_seed))
            values = evaluate(_NAME, fn, x, n)
            log_prob = tf.cast(joint_log_prob(dist, x), values.dtype)
            weights = values
            if baseline_fn is not None:
                weights = values - tf.broadcast_to(tf.cast(baseline_fn(values), values.dtype), [n])
            terms = tf.stop_gradient(weights) * (log_prob - tf.stop_gradient(log_prob))
            return values, terms

        result = surrogate(
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
        if isinstance(baseline, baselines_lib.MovingAverageBaseline):
            baseline.update(result)
        return result


def _baseline_function(baseline):
    """``values -> b`` for each kind of baseline; ``None`` for no baseline."""
    if baseline is None:
        return None
    if isinstance(baseline, str):
        if baseline != "leave_one_out":
            raise ValueError(
                f"{_NAME}: `baseline`: expected None, 'leave_one_out', a "
                f"MovingAverageBaseline or a callable, got {baseline!r}."
            )
        return baselines_lib.leave_one_out
    if isinstance(baseline, baselines_lib.MovingAverageBaseline):
        return lambda values: baseline.value()
    if callable(baseline):
        return lambda values: baseline()
    raise TypeError(
        f"{_NAME}: `baseline`: expected None, 'leave_one_out', a "
        f"MovingAverageBaseline or a callable, got {type(baseline).__name__}."
    )
