"""t3f_ext.gradients / hessian_vector_product against dense NumPy.

The dense Euclidean gradients and Hessians are written out by hand, and the
tangent-space projector is the Jacobian-range projector of
riemannian_dense_reference.py.
"""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from riemannian_dense_reference import dense_of
from riemannian_dense_reference import random_tt
from riemannian_dense_reference import tangent_projector

SHAPES = {"tensor": (((3, 4, 5),), (1, 2, 3, 1)), "matrix": (((2, 3, 2), (3, 2, 2)), (1, 2, 2, 1))}


def _tol(dtype):
    return 5e-4 if dtype == np.float32 else 1e-9


def _assert_close(actual, expected, dtype):
    actual, expected = np.ravel(actual), np.ravel(expected)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0, atol=_tol(dtype) * scale)


@pytest.fixture(params=sorted(SHAPES))
def kind(request):
    return request.param


def _quartic(tt):
    """f(x) = <x, t>^2 / 2 + ||x||^4 / 4 for the TT object t."""
    return lambda x: 0.5 * t3f.flat_inner(x, tt) ** 2 + 0.25 * t3f.flat_inner(x, x) ** 2


def _quartic_dense(tt):
    """The dense gradient and Hessian of `_quartic(tt)` as functions of x."""
    t = dense_of(tt).ravel()

    def grad(x):
        return (x @ t) * t + (x @ x) * x

    def hessian(x):
        return np.outer(t, t) + (x @ x) * np.eye(x.size) + 2 * np.outer(x, x)

    return grad, hessian


def _problem(kind, dtype, seed):
    rng = np.random.default_rng(seed)
    raw_shape, ranks = SHAPES[kind]
    x = random_tt(rng, raw_shape, ranks, dtype)
    t = random_tt(rng, raw_shape, (1, 2, 2, 1), dtype)
    return rng, x, t


def test_gradients_equal_projected_dense_gradient(kind, dtype):
    _, x, t = _problem(kind, dtype, 0)
    dense_grad, _ = _quartic_dense(t)
    res = t3f.gradients(_quartic(t), x)
    assert isinstance(res, t3f.TensorTrain) and res.dtype == x.dtype
    assert res.get_tt_ranks().as_list() == [1] + [
        2 * r for r in x.get_tt_ranks().as_list()[1:-1]
    ] + [1]
    expected = tangent_projector(x) @ dense_grad(dense_of(x).ravel())
    _assert_close(dense_of(res), expected, dtype)
    # The same thing through project(): grad f(x) = <x,t> t + ||x||^2 x.
    coef_t = t3f.flat_inner(x, t)
    coef_x = t3f.flat_inner(x, x)
    via_project = t3f.project(coef_t * t + coef_x * x, x)
    _assert_close(dense_of(res), dense_of(via_project), dtype)


def test_hessian_vector_product_matches_dense(kind, dtype):
    rng, x, t = _problem(kind, dtype, 1)
    raw_shape, _ = SHAPES[kind]
    vector = random_tt(rng, raw_shape, (1, 3, 2, 1), dtype)
    _, dense_hessian = _quartic_dense(t)
    res = t3f.hessian_vector_product(_quartic(t), x, vector)
    proj = tangent_projector(x)
    expected = proj @ dense_hessian(dense_of(x).ravel()) @ proj @ dense_of(vector).ravel()
    _assert_close(dense_of(res), expected, dtype)


def test_hessian_vector_product_of_a_quadratic_form(dtype):
    # T3F's documented example: f(x) = <x, A x> / 2 with a TT-matrix A, whose
    # Hessian is (A + A^T) / 2.
    rng = np.random.default_rng(2)
    vec_shape = ((2, 3, 2), (1, 1, 1))
    x = random_tt(rng, vec_shape, (1, 2, 2, 1), dtype)
    v = random_tt(rng, vec_shape, (1, 2, 3, 1), dtype)
    a = random_tt(rng, ((2, 3, 2), (2, 3, 2)), (1, 2, 2, 1), dtype)
    res = t3f.hessian_vector_product(lambda z: 0.5 * t3f.bilinear_form(a, z, z), x, v)
    dense_a = dense_of(a)
    proj = tangent_projector(x)
    expected = proj @ (0.5 * (dense_a + dense_a.T)) @ proj @ dense_of(v).ravel()
    _assert_close(dense_of(res), expected, dtype)


@pytest.mark.parametrize("ranks", [(1, 2, 3, 1), (1, 3, 5, 1)], ids=["full-rank", "over-ranked"])
def test_default_norm_gradient_has_no_nan(dtype, ranks):
    # t3f 1.2.0 returned NaN here; f(x) = sqrt(||x||^2 + eps) has the
    # gradient x / f(x), which lies in the tangent space at x.
    rng = np.random.default_rng(3)
    x = random_tt(rng, ((3, 4, 2),), ranks, dtype)
    res = dense_of(t3f.gradients(t3f.frobenius_norm, x))
    assert np.all(np.isfinite(res))
    full_x = dense_of(x)
    _assert_close(res, full_x / np.sqrt(np.sum(full_x**2) + 1e-5), dtype)
    res = dense_of(t3f.gradients(t3f.frobenius_norm_squared, x))
    _assert_close(res, 2 * full_x, dtype)
    # Second order through the norm: the Hessian of ||x||^2 is 2 I.
    v = random_tt(rng, ((3, 4, 2),), (1, 2, 2, 1), dtype)
    res = dense_of(t3f.hessian_vector_product(t3f.frobenius_norm_squared, x, v))
    assert np.all(np.isfinite(res))
    _assert_close(res, dense_of(t3f.project(2.0 * v, x)), dtype)


def test_dtype_argument_casts_the_point():
    _, x, t = _problem("tensor", np.float32, 4)
    dense_grad, _ = _quartic_dense(t)
    res = t3f.gradients(_quartic(t3f.cast(t, tf.float64)), x, dtype=tf.float64)
    assert res.dtype == tf.float64
    expected = tangent_projector(x) @ dense_grad(dense_of(x).ravel())
    _assert_close(dense_of(res), expected, np.float64)


# XLA compilation of the double backward pass takes seconds: one kind each.
@pytest.mark.parametrize(
    "kind,jit_compile", [("matrix", False), ("tensor", True)], ids=["matrix-graph", "tensor-xla"]
)
def test_compiled_matches_eager(kind, jit_compile):
    rng, x, t = _problem(kind, np.float64, 5)
    raw_shape, _ = SHAPES[kind]
    vector = random_tt(rng, raw_shape, (1, 2, 2, 1), np.float64)

    def both(x, t, vector):
        f = _quartic(t)
        return t3f.gradients(f, x), t3f.hessian_vector_product(f, x, vector)

    compiled = tf.function(both, jit_compile=jit_compile)
    for got, expected in zip(compiled(x, t, vector), both(x, t, vector)):
        np.testing.assert_allclose(dense_of(got), dense_of(expected), atol=1e-10)


def test_runtime_check_catches_representation_dependent_functions():
    _, x, _ = _problem("tensor", np.float64, 6)

    def core_sum(z):
        return tf.reduce_sum(z.tt_cores[0])

    with pytest.raises(
        tf.errors.InvalidArgumentError, match="different values for two TT representations"
    ):
        t3f.gradients(core_sum, x)
    # Without the check, the caller gets what they asked for.
    assert t3f.gradients(core_sum, x, runtime_check=False).ndims() == 3


def test_bad_arguments_raise_clear_errors():
    rng, x, t = _problem("tensor", np.float64, 7)
    batch = random_tt(rng, ((3, 4, 5),), (1, 2, 2, 1), np.float64, batch_size=2)
    norm = t3f.frobenius_norm
    with pytest.raises(TypeError, match="func must be a callable"):
        t3f.gradients(x, norm)
    with pytest.raises(TypeError, match="x must be a TensorTrain"):
        t3f.gradients(norm, batch)
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        t3f.gradients(norm, x, dtype=tf.int32)
    with pytest.raises(ValueError, match=r"func must return a scalar.*\(3, 4, 5\)"):
        t3f.gradients(t3f.full, x, runtime_check=False)
    other = random_tt(rng, ((3, 4, 6),), (1, 2, 2, 1), np.float64)
    with pytest.raises(ValueError, match="same shape"):
        t3f.hessian_vector_product(norm, x, other)
    with pytest.raises(TypeError, match="vector must be a TensorTrain"):
        t3f.hessian_vector_product(norm, x, batch)
