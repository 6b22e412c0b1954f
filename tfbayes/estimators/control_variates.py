"""Control variates, and the assembly of every estimator's surrogate.

A control variate is a function ``h`` whose expectation ``E_p[h]`` is known in
closed form. With the same estimator and the same samples,

    g_cv = g(f) - beta * (g(h) - grad E_p[h])                       (1)

has the expectation of ``g(f)`` for any ``beta`` that does not depend on those
samples, and a smaller variance when ``g(h)`` is correlated with ``g(f)``
(Mohamed et al. 2020, arXiv 1906.10652, Sec. 7.4). The variance-minimizing
coefficient for one parameter ``j`` is

    beta*_j = Cov(g_j(f), g_j(h)) / Var(g_j(h)),                     (2)

estimated here from fresh samples (independent of those of the estimate,
which keeps (1) unbiased) as the ratio of the sample covariance to the
sample variance of the per-sample gradients.

The delta method (``delta_method``) takes for ``h`` the second-order Taylor
expansion of ``f`` around the mean ``mu`` of ``p``:

    h(x) = f(mu) + grad f(mu)^T (x - mu) + 1/2 (x - mu)^T H(mu) (x - mu),
    E_p[h] = f(mu) + grad f(mu)^T (m - mu) + 1/2 tr(H (S + (m - mu)(m - mu)^T)),

where ``m`` and ``S`` are ``dist.mean()`` and its covariance, as
differentiable functions of the parameters, and ``mu`` is ``m`` with its
gradient stopped (so ``grad E_p[h] = grad f(mu)^T dm + 1/2 tr(H dS)``).
"""

import collections

import tensorflow as tf

from tfbayes.distributions.gamma import derive_seed
from tfbayes.estimators.parameters import distribution_parameters
from tfbayes.estimators.validation import check_num_samples, evaluate

__all__ = ["ControlVariate", "delta_method", "surrogate"]

ControlVariate = collections.namedtuple("ControlVariate", ["function", "expectation"])
ControlVariate.__doc__ = """A control variate: ``function(x) -> [n]`` and ``expectation``, the
closed-form scalar ``E_p[function]``, differentiable in the distribution's parameters."""


def delta_method(f, dist):
    """The second-order Taylor expansion of ``f`` around the mean of ``dist``.

    Args:
      f: the callable of the estimator; it must be twice differentiable in ``x``.
      dist: a distribution with a floating dtype, event rank 0 (independent
        batch members, covariance ``diag(dist.variance())``) or 1 (covariance
        ``dist.covariance()`` per batch member).

    Returns:
      ``ControlVariate(h, E_p[h])`` (module docstring). The Taylor
      coefficients are constants (their gradients are stopped).

    Cost: one evaluation of ``f`` at the mean, its gradient and its dense
    Hessian in ``D = size(batch_shape + event_shape)`` dimensions (``O(D)``
    Hessian-vector products, ``O(D^2)`` memory); ``h`` costs ``O(D^2)`` per
    sample.
    """
    dtype = tf.as_dtype(dist.dtype)
    if not dtype.is_floating:
        raise TypeError(
            f"control_variate='delta': `dist`: expected a distribution with a "
            f"floating dtype, got {type(dist).__name__} with dtype {dtype.name}."
        )
    event_rank = dist.event_shape.rank
    if event_rank not in (0, 1):
        raise ValueError(
            f"control_variate='delta': `dist`: expected event rank 0 or 1, got "
            f"event_shape {dist.event_shape} ({type(dist).__name__})."
        )
    shape = tf.concat([dist.batch_shape_tensor(), dist.event_shape_tensor()], 0)
    mean = tf.broadcast_to(dist.mean(), shape)
    center = tf.stop_gradient(mean)
    point = center[tf.newaxis]
    with tf.GradientTape() as outer:
        outer.watch(point)
        with tf.GradientTape() as inner:
            inner.watch(point)
            value = evaluate("control_variate='delta'", f, point, 1)[0]
        gradient = tf.reshape(
            inner.gradient(value, point, unconnected_gradients=tf.UnconnectedGradients.ZERO), [-1]
        )
    size = tf.size(gradient)
    hessian = tf.reshape(
        outer.jacobian(gradient, point, unconnected_gradients=tf.UnconnectedGradients.ZERO),
        [size, size],
    )
    value, gradient, hessian = (tf.stop_gradient(t) for t in (value, gradient, hessian))

    def h(x):
        d = tf.reshape(tf.cast(x, dtype) - center, [tf.shape(x)[0], size])
        return (
            value
            + tf.linalg.matvec(d, gradient)
            + 0.5 * tf.reduce_sum(tf.linalg.matmul(d, hessian) * d, axis=-1)
        )

    shift = tf.reshape(mean - center, [size])
    if event_rank == 0:
        second = tf.reduce_sum(
            tf.linalg.diag_part(hessian)
            * tf.reshape(tf.broadcast_to(dist.variance(), shape), [size])
        )
    else:
        events = tf.shape(mean)[-1]
        batch = size // events
        blocks = tf.reshape(hessian, [batch, events, batch, events])
        blocks = tf.transpose(tf.linalg.diag_part(tf.transpose(blocks, [1, 3, 0, 2])), [2, 0, 1])
        covariance = tf.reshape(dist.covariance(), [batch, events, events])
        second = tf.reduce_sum(blocks * covariance)
    second += tf.reduce_sum(tf.linalg.matvec(hessian, shift) * shift)
    expectation = value + tf.reduce_sum(gradient * shift) + 0.5 * second
    return ControlVariate(h, expectation)


def _resolve(estimator, control_variate, f, dist):
    if control_variate == "delta":
        return delta_method(f, dist)
    if callable(control_variate):
        result = control_variate(f, dist)
        if not isinstance(result, tuple) or len(result) != 2 or not callable(result[0]):
            raise TypeError(
                f"{estimator}: `control_variate`: expected a callable returning "
                f"(h, E[h]) with h callable, got {result!r}."
            )
        return ControlVariate(*result)
    raise ValueError(
        f"{estimator}: `control_variate`: expected None, 'delta' or a callable "
        f"(f, dist) -> (h, E[h]), got {control_variate!r}."
    )


def surrogate(
    estimator,
    core,
    f,
    dist,
    num_samples,
    seed,
    control_variate=None,
    coefficient=1.0,
    num_coefficient_samples=None,
):
    """The surrogate of an estimator, with an optional control variate.

    Args:
      estimator: name for error messages.
      core: ``core(fn, num_samples, seed) -> (values, terms)``,
        both ``[num_samples]``: ``mean(values)`` is the estimate of ``E fn``
        and the gradient of ``values + terms`` at sample ``s`` is that sample's
        gradient estimate (``terms`` has value 0). Same seed, same samples. A
        baseline applies to ``h`` as to ``f``, so that it cancels in ``f - beta h``.
      f, dist, num_samples, seed: as given to the estimator (seed sanitized).
      control_variate: ``None``, ``"delta"`` or a callable
        ``(f, dist) -> (h, E_p[h])``.
      coefficient: a float ``beta`` of eq. (1), or ``"optimal"`` for eq. (2)
        per parameter (parameters as ``distribution_parameters``).
      num_coefficient_samples: fresh samples for ``"optimal"``; default
        ``num_samples``.

    Returns:
      A scalar whose value is ``mean(values)`` (the estimate of ``E f``) and
      whose gradient is the estimator's, eq. (1).
    """
    values, terms = core(f, num_samples, seed)
    result = tf.reduce_mean(values) + tf.reduce_mean(terms)
    if control_variate is None:
        return result

    def excess():
        """``(h, mean_s h(x_s) - E_p[h])``: zero mean; its gradient is ``g(h) - grad E_p[h]``."""
        h, expectation = _resolve(estimator, control_variate, f, dist)
        h_values, h_terms = core(h, num_samples, seed)
        return h, tf.reduce_mean(h_values) + tf.reduce_mean(h_terms) - expectation

    if isinstance(coefficient, str):
        if coefficient != "optimal":
            raise ValueError(
                f"{estimator}: `coefficient`: expected a float or 'optimal', got {coefficient!r}."
            )
        params = distribution_parameters(dist)
        if not params:
            raise ValueError(
                f"{estimator}: coefficient='optimal' needs the parameters of "
                f"`dist`, and {type(dist).__name__} lists none (it is not a "
                "composite tensor)."
            )
        with tf.GradientTape() as tape:
            tape.watch([p for p in params if not isinstance(p, tf.Variable)])
            h, h_excess = excess()
        gradients = tape.gradient(
            h_excess, params, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        fresh = check_num_samples(
            estimator,
            num_samples if num_coefficient_samples is None else num_coefficient_samples,
            2,
            " to estimate the optimal coefficient",
            arg="num_coefficient_samples",
        )
        betas = optimal_coefficients(core, f, h, params, fresh, derive_seed(seed, 1))
        for param, beta, gradient in zip(params, betas, gradients):
            delta = tf.stop_gradient(-beta * gradient)
            result += tf.reduce_sum((param - tf.stop_gradient(param)) * tf.cast(delta, param.dtype))
        return result
    if isinstance(coefficient, bool) or not isinstance(
        coefficient, (int, float, tf.Tensor, tf.Variable)
    ):
        raise TypeError(
            f"{estimator}: `coefficient`: expected a float or 'optimal', got {coefficient!r}."
        )
    _, h_excess = excess()
    beta = tf.cast(coefficient, result.dtype)
    return result - beta * (h_excess - tf.stop_gradient(h_excess))


def optimal_coefficients(core, f, h, params, num_samples, seed):
    """Eq. (2) per element of each parameter, from ``num_samples`` fresh samples.

    Returns a list of tensors shaped like ``params`` (0 where ``g(h)`` has no
    variance). Cost: ``2 num_samples`` per-sample gradients (a Jacobian).
    """
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([p for p in params if not isinstance(p, tf.Variable)])
        f_values, f_terms = core(f, num_samples, seed)
        h_values, h_terms = core(h, num_samples, seed)
        per_f, per_h = f_values + f_terms, h_values + h_terms
    jac_f = tape.jacobian(per_f, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    jac_h = tape.jacobian(per_h, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    del tape
    betas = []
    for jf, jh in zip(jac_f, jac_h):
        jf = jf - tf.reduce_mean(jf, axis=0)
        jh = jh - tf.reduce_mean(jh, axis=0)
        covariance = tf.reduce_sum(jf * jh, axis=0)
        variance = tf.reduce_sum(jh * jh, axis=0)
        betas.append(tf.math.divide_no_nan(covariance, variance))
    return betas
