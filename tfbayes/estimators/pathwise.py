"""The pathwise (reparameterization) estimator.

For a distribution whose samples are differentiable functions of its
parameters, ``x = g(eps; theta)`` with ``eps`` free of ``theta`` (explicitly,
or implicitly as in ``tfbayes.distributions``' Gamma, Beta, Dirichlet,
VonMises and ``ImplicitReparameterized``),

    grad_theta E_p[f(x)] = E_eps[grad_x f(x) grad_theta x]
                        ~= 1/N sum_s grad_theta f(g(eps_s; theta))

(Mohamed et al. 2020, arXiv 1906.10652, eq. 35). ``f`` must be
differentiable in ``x``.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions.base import sanitize_seed
from tfbayes.estimators.control_variates import surrogate
from tfbayes.estimators.validation import check_distribution, check_num_samples, draw, evaluate

__all__ = ["pathwise"]

_NAME = "pathwise"


def pathwise(
    f,
    dist,
    num_samples,
    seed=None,
    control_variate=None,
    coefficient=1.0,
    num_coefficient_samples=None,
    name=None,
):
    """The pathwise surrogate of ``E_{x~dist}[f(x)]``.

    Args:
      f: callable ``[n] + batch_shape + event_shape -> [n]``, differentiable
        in ``x``; it may use variables of its own.
      dist: a distribution whose ``reparameterization_type`` is
        ``FULLY_REPARAMETERIZED`` (every part of it, for a joint distribution).
      num_samples: Python int ``N >= 1``.
      seed: as TFP's ``sample`` takes it: ``None`` or an int (stateful), or a
        ``[2]`` int tensor (stateless: the same seed gives the same estimate).
      control_variate, coefficient, num_coefficient_samples: as in
        ``score_function``; the control variate's pathwise gradient is taken
        on the same samples.
      name: name scope.

    Returns:
      A scalar: value ``mean_s f(x_s)``; gradient the pathwise estimate with
      respect to the distribution's parameters and ``f``'s variables.

    Raises:
      ValueError: if ``dist`` is not fully reparameterized; bad
        ``num_samples`` or ``f`` output shape.

    Cost: ``N`` evaluations of ``f`` and one backward pass through ``f`` and
    the sampler.
    """
    check_distribution(_NAME, dist)
    types = tf.nest.flatten(dist.reparameterization_type)
    if any(t != tfp.distributions.FULLY_REPARAMETERIZED for t in types):
        raise ValueError(
            f"{_NAME}: `dist`: expected a FULLY_REPARAMETERIZED distribution, got "
            f"{type(dist).__name__} with reparameterization_type {dist.reparameterization_type}. "
            "Use score_function or measure_valued, or wrap a univariate distribution with a "
            "differentiable cdf in tfbayes.distributions.ImplicitReparameterized."
        )
    num_samples = check_num_samples(_NAME, num_samples)
    with tf.name_scope(name or _NAME):
        seed = sanitize_seed(seed, salt="pathwise")

        def core(fn, n, core_seed):
            values = evaluate(_NAME, fn, draw(dist, n, core_seed), n)
            return values, tf.zeros_like(values)

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
