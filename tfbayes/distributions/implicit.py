"""Implicit reparameterization gradients (Figurnov, Mohamed, Mnih 2018).

A sample ``z ~ q(z | theta)`` drawn by any procedure (rejection sampling,
inverse-CDF tables, a TF kernel without gradients) can still be differentiated
with respect to ``theta``: if a standardization function ``S(z; theta) = eps``
maps ``z`` to noise whose law does not depend on ``theta``, then holding
``eps`` fixed gives (arXiv 1805.08498, eq. 5 and its multivariate form, eq. 6)

    dz/dtheta = -(dS/dz)^{-1} dS/dtheta.

For a univariate distribution the CDF is such a function, ``S = F``, and
``dS/dz`` is the density ``q``, so

    dz/dtheta = -(dF(z | theta)/dtheta) / q(z | theta).

``implicit_reparameterization`` attaches exactly this gradient to a sample that
was drawn without gradients. Only the vector-Jacobian product is ever formed:
for an upstream gradient ``g = dL/dz`` it returns

    dL/dtheta = -sum_z (g / q) * dF/dtheta          (univariate, one VJP of F), or
    dL/dtheta = -v^T dS/dtheta,  (dS/dz)^T v = g     (multivariate).
"""

import tensorflow as tf

__all__ = ["implicit_reparameterization"]


def implicit_reparameterization(sample, params, cdf=None, prob=None, standardize=None, name=None):
    """Returns ``sample`` carrying implicit reparameterization gradients.

    The returned tensor has the value of ``sample``; its gradient with respect
    to each tensor in ``params`` is the implicit gradient of Figurnov et al.
    2018 (eq. 5). Gradients with respect to ``sample`` itself are not
    propagated: ``sample`` is treated as drawn without gradients.

    Exactly one of ``cdf`` and ``standardize`` must be given.

    * Univariate (``cdf``): ``cdf(z, *params)`` is the CDF ``F(z | theta)``,
      differentiable in ``z`` and in every parameter, applied elementwise:
      ``F[i]`` depends on ``z[i]`` and on the (broadcast) parameters at ``i``
      only. The density is ``prob(z, *params)`` if given, otherwise
      ``dF/dz`` by autodiff; pass ``prob`` when the CDF saturates (``F`` close
      to 1 loses the density to rounding).
      Gradient: ``dz/dtheta = -(dF/dtheta) / q``.
    * Multivariate (``standardize``): ``standardize(z, *params)`` maps a sample
      with event shape ``[d]`` (the last axis) to noise ``eps`` of the same
      shape whose law is free of ``params``, each event independently of the
      others, e.g. ``L^{-1} (z - mu)`` for a Gaussian or the chain of
      conditional CDFs (the distributional transform).
      Gradient: ``dz/dtheta = -(dS/dz)^{-1} dS/dtheta``.

    Args:
      sample: float tensor ``z`` of shape ``sample_shape + batch_shape`` (with
        ``cdf``) or ``sample_shape + batch_shape + [d]`` (with ``standardize``),
        drawn without gradients.
      params: list or tuple of float tensors (or variables), the parameters
        ``theta``; each must broadcast against ``sample`` inside ``cdf`` /
        ``standardize``. Gradients are summed over broadcast axes as usual.
      cdf: callable ``(z, *params) -> F`` with ``F.shape == z.shape``.
      prob: optional callable ``(z, *params) -> q`` with ``q.shape == z.shape``,
        the density matching ``cdf``; only with ``cdf`` (with ``standardize``
        the Jacobian ``dS/dz`` plays its part, and passing ``prob`` is an error).
      standardize: callable ``(z, *params) -> eps`` with ``eps.shape == z.shape``.
      name: optional name scope.

    Returns:
      A tensor equal to ``sample`` (same shape and dtype) whose gradient with
      respect to ``params`` is the implicit one.

    Raises:
      ValueError: if not exactly one of ``cdf`` / ``standardize`` is given, if
        ``prob`` is given with ``standardize``, if ``params`` is empty, or if a function returns a tensor of the wrong
        shape.
      TypeError: if ``sample`` is not floating point, ``params`` is not a list
        or tuple, a parameter's dtype differs from the sample's, or
        ``cdf``/``prob``/``standardize`` is not callable.

    Cost: the forward pass is free. The backward pass evaluates ``cdf`` (or
    ``standardize``) once more with a tape: one VJP, plus one gradient for the
    density when ``prob`` is omitted. With ``standardize`` it also forms the
    ``[d, d]`` Jacobian of every event (``d`` extra backward passes) and solves
    it: ``O(N d^3)`` for ``N`` events.
    """
    if (cdf is None) == (standardize is None):
        raise ValueError(
            "implicit_reparameterization: pass exactly one of `cdf` (univariate) and "
            f"`standardize` (multivariate); got cdf={cdf!r}, standardize={standardize!r}."
        )
    if standardize is not None and prob is not None:
        raise ValueError(
            "implicit_reparameterization: `prob` is used only with `cdf`; with `standardize` "
            "the Jacobian dS/dz takes its place, so pass prob=None; got "
            f"prob={prob!r}."
        )
    for arg_name, fn in (("cdf", cdf), ("prob", prob), ("standardize", standardize)):
        if fn is not None and not callable(fn):
            raise TypeError(
                f"implicit_reparameterization: `{arg_name}` must be callable, "
                f"got {type(fn).__name__}."
            )
    if not isinstance(params, (list, tuple)):
        raise TypeError(
            "implicit_reparameterization: `params` must be a list or tuple of "
            f"tensors, got {type(params).__name__}."
        )
    if not params:
        raise ValueError(
            "implicit_reparameterization: `params` is empty; there is nothing "
            "to differentiate with respect to."
        )
    with tf.name_scope(name or "implicit_reparameterization"):
        sample = tf.convert_to_tensor(sample)
        if not sample.dtype.is_floating:
            raise TypeError(
                "implicit_reparameterization: `sample` must be a float tensor, "
                f"got dtype {sample.dtype.name}."
            )
        params = [_as_float_tensor(p, sample.dtype, i) for i, p in enumerate(params)]
        sample = tf.stop_gradient(sample)
        if cdf is not None:
            return _attach_gradient(sample, params, _univariate_vjp(sample, cdf, prob))
        if sample.shape.rank == 0:
            raise ValueError(
                "implicit_reparameterization: with `standardize`, `sample` needs "
                "an event axis (its last axis); got a scalar."
            )
        return _attach_gradient(sample, params, _multivariate_vjp(sample, standardize))


def _as_float_tensor(param, dtype, index):
    """Converts ``params[index]`` to a tensor of ``dtype``, refusing silent casts."""
    param_dtype = getattr(param, "dtype", None)
    if param_dtype is not None and tf.as_dtype(param_dtype) != dtype:
        raise TypeError(
            f"implicit_reparameterization: `params[{index}]` has dtype "
            f"{tf.as_dtype(param_dtype).name}, expected the sample's dtype "
            f"{dtype.name}."
        )
    return tf.convert_to_tensor(param, dtype=dtype)


def _attach_gradient(sample, params, vjp):
    """Identity in ``params`` -> ``sample`` whose backward pass is ``vjp``."""

    @tf.custom_gradient
    def reparameterized(*theta):
        def grad(upstream):
            return vjp(theta, upstream)

        return tf.identity(sample), grad

    return reparameterized(*params)


def _check_same_shape(value, sample, fn_name):
    if (
        value.shape.is_fully_defined()
        and sample.shape.is_fully_defined()
        and value.shape != sample.shape
    ):
        raise ValueError(
            f"implicit_reparameterization: `{fn_name}(z, *params)` must return "
            f"the shape of z, {sample.shape}; got {value.shape}."
        )


def _univariate_vjp(sample, cdf, prob):
    """Backward pass ``g -> -VJP_theta(F, g / q)`` of the univariate case."""

    def vjp(theta, upstream):
        with tf.GradientTape(persistent=prob is None) as tape:
            tape.watch(theta)
            tape.watch(sample)
            value = cdf(sample, *theta)
        _check_same_shape(value, sample, "cdf")
        if prob is None:
            density = tape.gradient(value, sample)
        else:
            density = prob(sample, *theta)
            _check_same_shape(density, sample, "prob")
        cotangent = -upstream / density
        grads = tape.gradient(value, list(theta), output_gradients=cotangent)
        del tape
        return _zeros_for_none(grads, theta)

    return vjp


def _multivariate_vjp(sample, standardize):
    """Backward pass ``g -> -VJP_theta(S, v)``, ``(dS/dz)^T v = g``, per event."""

    def vjp(theta, upstream):
        event_size = tf.shape(sample)[-1]
        flat_sample = tf.reshape(sample, [-1, event_size])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(theta)
            tape.watch(flat_sample)
            value = standardize(tf.reshape(flat_sample, tf.shape(sample)), *theta)
            flat_value = tf.reshape(value, [-1, event_size])
        _check_same_shape(value, sample, "standardize")
        jacobian = tape.batch_jacobian(flat_value, flat_sample)  # [N, d, d]: dS_i/dz_j
        flat_upstream = tf.reshape(upstream, [-1, event_size, 1])
        v = tf.linalg.solve(tf.linalg.matrix_transpose(jacobian), flat_upstream)
        cotangent = -tf.reshape(v, tf.shape(sample))
        grads = tape.gradient(value, list(theta), output_gradients=cotangent)
        del tape
        return _zeros_for_none(grads, theta)

    return vjp


def _zeros_for_none(grads, theta):
    return [tf.zeros_like(t) if g is None else g for g, t in zip(grads, theta)]
