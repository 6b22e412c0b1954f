"""Riemannian automatic differentiation on the manifold of TT tensors.

For ``f`` defined on TT objects, the Riemannian gradient at ``x`` is the
projection ``P_x(grad f(x))`` of the Euclidean gradient onto the tangent
space at ``x`` (see `t3f_ext.riemannian` for the tangent vectors
``dX = sum_k U_{<k} dP_k V_{>k}`` and their deltas ``dP_k``). The Euclidean
gradient has ``prod(n_k)`` entries and is never formed. Instead (Novikov,
Rakhuba, Oseledets, "Automatic differentiation for Riemannian optimization on
low-rank matrix and tensor-train manifolds", arXiv 2103.14974; T3F,
arXiv 1801.01928), ``f`` is evaluated at the tangent vector ``T(dP)`` with
deltas ``dP = (right_1, 0, ..., 0)``, which represents ``x`` itself, and
differentiated with respect to the deltas by ordinary backpropagation:

    d f(T(dP)) / d dP_k = U_{<k}^T grad f(x) V_{>k}^T.

Projecting those onto the gauge conditions, ``(I - U_k U_k^T)`` for
``k < d``, gives exactly the deltas of ``P_x(grad f(x))``. The cost is that of
one evaluation of ``f`` and its backward pass on a TT object of ranks
``2 r``, plus ``O(d n r^3)`` for the orthogonalisation of ``x``.

Second derivatives follow by differentiating
``<d f(T(dP)) / d dP, deltas of P_x(v)>`` once more; that gives
``P_x (Hess f(x)) P_x v``, the Hessian-by-vector product without the
curvature term (as in T3F).

``f`` must depend on its argument only through the tensor it represents
(not through its particular cores), otherwise the Riemannian gradient is not
defined: `runtime_check` compares ``f`` at ``x`` and at ``T(dP)``. Functions
whose own gradient is undefined at rank-deficient cores are fine: the
default ``frobenius_norm`` of t3f_ext gives no NaN here (t3f 1.2.0's did).
"""

import tensorflow as tf

from t3f_ext import ops
from t3f_ext import riemannian
from t3f_ext import utils
from t3f_ext.tensor_train_base import TensorTrainBase

__all__ = ["gradients", "hessian_vector_product"]

# Relative tolerance of the runtime check that f(T(dP)) == f(x).
_CHECK_RTOL = {tf.float16: 1e-2, tf.bfloat16: 1e-2, tf.float32: 1e-3, tf.float64: 1e-6}


def _prepare(func, x, dtype, arg_name="x"):
    """Checks the arguments; returns `x` cast to `dtype` (default: its own)."""
    if not callable(func):
        raise TypeError(
            "func must be a callable that maps a TensorTrain to a "
            "scalar, got %s" % type(func).__name__
        )
    utils.check_single(x, arg_name, "the point of the manifold")
    if dtype is None:
        return x
    dtype = tf.as_dtype(dtype)
    if not dtype.is_floating:
        raise TypeError("dtype must be a floating dtype, got %s" % dtype.name)
    return x if x.dtype == dtype else ops.cast(x, dtype)


def _scalar(value, dtype):
    value = tf.convert_to_tensor(value)
    if value.shape.rank != 0:
        raise ValueError("func must return a scalar, got a tensor of shape %s" % value.shape)
    if value.dtype != dtype:
        raise TypeError(
            "func must return a %s scalar (the dtype of x), got %s" % (dtype.name, value.dtype.name)
        )
    return value


class _TangentParametrization:
    """The map ``dP -> T(dP)`` at a point ``x`` and its base deltas."""

    def __init__(self, x):
        self.x = x
        self.left, self.right = riemannian._frames(x)  # pylint: disable=protected-access

    def base_deltas(self):
        """Deltas ``(right_1, 0, ..., 0)`` with ``T(dP) = x``."""
        zeros = [
            tf.zeros([u.shape[0], u.shape[1], v.shape[-1]], u.dtype)
            for u, v in zip(self.left[1:], self.right[1:])
        ]
        return [self.right[0]] + zeros

    def tangent(self, deltas):
        return riemannian._tangent_tt(
            deltas,
            self.left,
            self.right,
            self.x,  # pylint: disable=protected-access
            batched=False,
        )

    def gauge(self, deltas):
        """Projects deltas onto the gauge conditions: ``(I - U_k U_k^T) dP_k``."""
        gauged = []
        for k, delta in enumerate(deltas):
            if k < len(deltas) - 1:
                u = self.left[k]
                delta -= tf.einsum("aiv,vq->aiq", u, tf.einsum("aiv,aiq->vq", u, delta))
            gauged.append(delta)
        return gauged

    def projection_deltas(self, vector):
        """The deltas of ``P_x(vector)`` in this parametrization's frames."""
        return riemannian._projection_deltas(  # pylint: disable=protected-access
            self.left, self.right, riemannian._Cores(utils.merged_cores(vector))
        )  # pylint: disable=protected-access

    def check_invariance(self, func, value_at_tangent):
        """An assertion that ``f(T(dP)) == f(x)`` (skipped by XLA)."""
        value_at_x = func(self.x)
        rtol = _CHECK_RTOL.get(value_at_x.dtype, 1e-6)
        scale = tf.maximum(tf.abs(value_at_x), tf.abs(value_at_tangent))
        return tf.debugging.Assert(
            tf.abs(value_at_x - value_at_tangent) <= rtol * scale,
            [
                "func gives different values for two TT representations of the same "
                "tensor (x and its tangent-space form), so its Riemannian gradient "
                "is undefined: does it use the TT-cores directly? f(x), f(T(dP)):",
                value_at_x,
                value_at_tangent,
            ],
        )


def _value_and_delta_gradients(func, param, deltas):
    with tf.GradientTape() as tape:
        tape.watch(deltas)
        value = _scalar(func(param.tangent(deltas)), param.x.dtype)
    grads = tape.gradient(value, deltas, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return value, grads


def value_and_grad(f, x):
    """``(f(x), df/dx)``: the value and the Euclidean gradient, by a tape.

    Args:
      f: a function of ``x`` returning a scalar tensor.
      x: a tensor, a (nested) list of tensors, or a TT object; for a TT object
        the gradient is taken with respect to its cores and returned as a TT
        object of the same kind (its cores are ``df/dG_k``).

    Returns:
      ``(value, gradient)``. Cost: one forward and one backward pass of f.
    """
    is_tt = isinstance(x, TensorTrainBase)
    sources = list(x.tt_cores) if is_tt else x
    with tf.GradientTape() as tape:
        tape.watch(sources)
        value = f(x)
    grads = tape.gradient(value, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if is_tt:
        grads = utils.wrap(grads, utils.batch_dims(x))
    return value, grads


def gradients(func, x, name="t3f_gradients", runtime_check=True, *, dtype=None):
    """Riemannian gradient ``P_x(grad f(x))`` by automatic differentiation.

    Example:
      >>> import t3f_ext as t3f
      >>> t = t3f.random_tensor([3, 4, 5], tt_rank=2, dtype=tf.float64)
      >>> x = t3f.random_tensor([3, 4, 5], tt_rank=3, dtype=tf.float64)
      >>> f = lambda x: 0.5 * t3f.flat_inner(x, t) ** 2
      >>> riemannian_grad = t3f.gradients(f, x)
      >>> expected = t3f.project(t3f.flat_inner(x, t) * t, x)
      >>> diff = riemannian_grad - expected
      >>> bool(t3f.frobenius_norm_squared(diff) < 1e-20 * t3f.frobenius_norm_squared(expected))
      True

    Args:
      func: a function from a TensorTrain (the shape of `x`) to a scalar that
        depends only on the tensor represented, e.g. built from t3f_ext ops.
      x: TensorTrain, TT-tensor or TT-matrix with TT-ranks ``r``.
      dtype: optional floating dtype; `x` is cast to it first (e.g. tf.float64
        for an accurate gradient at a float32 point). Default: that of `x`.
      runtime_check: if True, also evaluate ``func(x)`` and assert that it
        equals ``func`` at the tangent-space form of `x` (relative tolerance
        1e-3 in float32, 1e-6 in float64). Costs one more evaluation; XLA
        (``jit_compile=True``) drops the assertion.
      name: name scope.

    Returns:
      TensorTrain with TT-ranks ``2 r``: the projection of ``grad f(x)`` onto
      the tangent space at `x`, in the representation of `t3f_ext.project`.

    Cost: one forward and backward pass of `func` on a TT object of ranks
    ``2 r``, plus ``O(d n r^3)``.
    """
    x = _prepare(func, x, dtype)
    with tf.name_scope(name):
        param = _TangentParametrization(x)
        value, grads = _value_and_delta_gradients(func, param, param.base_deltas())
        checks = [param.check_invariance(func, value)] if runtime_check else []
        with tf.control_dependencies(checks):
            return param.tangent(param.gauge(grads))


def hessian_vector_product(
    func, x, vector, name="t3f_hessian_vector_product", runtime_check=True, *, dtype=None
):
    """``P_x (Hess f(x)) P_x vector``: the Riemannian Hessian-by-vector product
    without the curvature term, as in T3F.

    Example:
      >>> import t3f_ext as t3f
      >>> B = t3f.random_matrix(((3, 4), (3, 4)), tt_rank=2, dtype=tf.float64)
      >>> A = t3f.matmul(t3f.transpose(B), B)             # symmetric
      >>> x = t3f.random_matrix(((3, 4), None), tt_rank=2, dtype=tf.float64)
      >>> v = t3f.random_matrix(((3, 4), None), tt_rank=2, dtype=tf.float64)
      >>> f = lambda x: 0.5 * t3f.bilinear_form(A, x, x)
      >>> hv = t3f.hessian_vector_product(f, x, v)
      >>> expected = t3f.project(t3f.matmul(A, t3f.project(v, x)), x)
      >>> bool(t3f.frobenius_norm_squared(hv - expected) < 1e-20 * t3f.frobenius_norm_squared(expected))
      True

    Args:
      func: as in `gradients`.
      x: TensorTrain with TT-ranks ``r``.
      vector: TensorTrain of the shape of `x` (any TT-ranks; it is projected
        onto the tangent space at `x` first).
      dtype: optional floating dtype to cast `x` and `vector` to.
      runtime_check: as in `gradients`.
      name: name scope.

    Returns:
      TensorTrain with TT-ranks ``2 r``.

    Cost: about twice that of `gradients` (a double backward pass), plus the
    projection of `vector`.
    """
    x = _prepare(func, x, dtype)
    utils.check_single(vector, "vector", "the direction")
    if vector.dtype != x.dtype and dtype is not None:
        vector = ops.cast(vector, x.dtype)
    utils.check_same_raw_shape(vector, x, "vector", "x")
    utils.check_same_dtype(vector, x, "vector", "x")
    with tf.name_scope(name):
        param = _TangentParametrization(x)
        vector_deltas = param.projection_deltas(vector)
        deltas = param.base_deltas()
        with tf.GradientTape() as outer:
            outer.watch(deltas)
            value, grads = _value_and_delta_gradients(func, param, deltas)
            directional = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector_deltas)])
        second = outer.gradient(
            directional, deltas, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        checks = [param.check_invariance(func, value)] if runtime_check else []
        with tf.control_dependencies(checks):
            return param.tangent(param.gauge(second))
