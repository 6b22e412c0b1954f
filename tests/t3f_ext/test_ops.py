"""t3f_ext.ops against dense NumPy, in eager, tf.function and XLA modes."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from tt_reference import (
    DTYPE_MODES,
    MATRIX_MODES,
    TENSOR_MODES,
    make,
    np_full,
    random_cores,
    run,
    tol,
)


@DTYPE_MODES
def test_full(dtype, mode):
    rng = np.random.default_rng(0)
    tensor, dense_tensor = make(rng, TENSOR_MODES, [1, 2, 3, 1], dtype)
    matrix, dense_matrix = make(rng, MATRIX_MODES, [1, 3, 2, 1], dtype)
    batch, dense_batch = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype, batch=3)
    outs = run(mode, lambda a, b, c: (t3f.full(a), t3f.full(b), t3f.full(c)), tensor, matrix, batch)
    for out, ref in zip(outs, (dense_tensor, dense_matrix, dense_batch)):
        assert out.dtype == dtype
        np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))


@DTYPE_MODES
def test_matmul_tt_dense_and_dense_tt(dtype, mode):
    rng = np.random.default_rng(1)
    a, dense_a = make(rng, MATRIX_MODES, [1, 3, 2, 1], dtype)
    x = rng.standard_normal((12, 5)).astype(dtype)
    y = rng.standard_normal((4, 12)).astype(dtype)
    ax, ya = run(mode, lambda a, x, y: (t3f.matmul(a, x), t3f.matmul(y, a)), a, x, y)
    np.testing.assert_allclose(ax.numpy(), dense_a @ x, **tol(dtype))
    np.testing.assert_allclose(ya.numpy(), y @ dense_a, **tol(dtype))


def test_matmul_dense_with_unknown_leading_dims(dtype):
    rng = np.random.default_rng(2)
    a, dense_a = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    y = rng.standard_normal((2, 7, 12)).astype(dtype)
    fn = tf.function(
        lambda a, y: t3f.matmul(y, a),
        input_signature=[tf.type_spec_from_value(a), tf.TensorSpec([None, None, 12], dtype)],
    )
    np.testing.assert_allclose(fn(a, y).numpy(), y @ dense_a, **tol(dtype))


@DTYPE_MODES
def test_matmul_tt_tt_and_batches(dtype, mode):
    rng = np.random.default_rng(3)
    a, dense_a = make(rng, MATRIX_MODES, [1, 3, 2, 1], dtype)
    b, dense_b = make(rng, [(3, 2), (2, 1), (2, 3)], [1, 2, 2, 1], dtype)
    batch_a, dense_batch_a = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype, 3)
    batch_b, dense_batch_b = make(rng, [(3, 2), (2, 1), (2, 3)], [1, 2, 3, 1], dtype, 3)
    x = rng.standard_normal((12, 4)).astype(dtype)

    def fn(a, b, batch_a, batch_b, x):
        return (
            t3f.full(t3f.matmul(a, b)),
            t3f.full(t3f.matmul(batch_a, b)),
            t3f.full(t3f.matmul(a, batch_b)),
            t3f.full(t3f.matmul(batch_a, batch_b)),
            t3f.matmul(batch_a, x),
        )

    outs = run(mode, fn, a, b, batch_a, batch_b, x)
    refs = (
        dense_a @ dense_b,
        dense_batch_a @ dense_b,
        dense_a @ dense_batch_b,
        dense_batch_a @ dense_batch_b,
        dense_batch_a @ x,
    )
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))
    product = t3f.matmul(a, b)
    assert product.get_tt_ranks().as_list() == [1, 6, 4, 1]


@DTYPE_MODES
def test_add_sub_neg_with_broadcasting(dtype, mode):
    rng = np.random.default_rng(4)
    a, dense_a = make(rng, TENSOR_MODES, [1, 2, 3, 1], dtype)
    b, dense_b = make(rng, TENSOR_MODES, [1, 3, 1, 1], dtype)
    m, dense_m = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    batch, dense_batch = make(rng, TENSOR_MODES, [1, 1, 2, 1], dtype, 4)
    one, dense_one = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, 1)

    def fn(a, b, m, batch, one):
        return (
            t3f.full(t3f.add(a, b)),
            t3f.full(a - b),
            t3f.full(-a),
            t3f.full(m + m),
            t3f.full(batch + a),
            t3f.full(a + batch),
            t3f.full(batch + one),
        )

    outs = run(mode, fn, a, b, m, batch, one)
    refs = (
        dense_a + dense_b,
        dense_a - dense_b,
        -dense_a,
        2 * dense_m,
        dense_batch + dense_a,
        dense_a + dense_batch,
        dense_batch + dense_one,
    )
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))
    assert t3f.add(a, b).get_tt_ranks().as_list() == [1, 5, 4, 1]


@DTYPE_MODES
def test_multiply_elementwise_and_scalar(dtype, mode):
    rng = np.random.default_rng(5)
    a, dense_a = make(rng, TENSOR_MODES, [1, 2, 3, 1], dtype)
    b, dense_b = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype)
    m, dense_m = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    batch, dense_batch = make(rng, MATRIX_MODES, [1, 1, 2, 1], dtype, 2)

    def fn(a, b, m, batch, scalar):
        return (
            t3f.full(t3f.multiply(a, b)),
            t3f.full(a * 0.3),
            t3f.full(scalar * a),
            t3f.full(m * m),
            t3f.full(batch * m),
        )

    outs = run(mode, fn, a, b, m, batch, tf.constant(-1.5, dtype))
    refs = (dense_a * dense_b, 0.3 * dense_a, -1.5 * dense_a, dense_m**2, dense_batch * dense_m)
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))


@DTYPE_MODES
def test_flat_inner_all_combinations(dtype, mode):
    rng = np.random.default_rng(6)
    a, dense_a = make(rng, TENSOR_MODES, [1, 2, 3, 1], dtype)
    b, dense_b = make(rng, TENSOR_MODES, [1, 3, 2, 1], dtype)
    m, dense_m = make(rng, MATRIX_MODES, [1, 2, 3, 1], dtype)
    batch, dense_batch = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, 3)
    x = rng.standard_normal((12, 12)).astype(dtype)
    idx = np.array([[0, 1, 1], [2, 3, 0], [1, 0, 1]])
    vals = rng.standard_normal(3).astype(dtype)
    midx = np.array([[0, 11], [5, 3], [11, 0]])

    def fn(a, b, m, batch, x):
        sparse = tf.SparseTensor(idx, vals, [3, 4, 2])
        sparse_m = tf.SparseTensor(midx, vals, [12, 12])
        return (
            t3f.flat_inner(a, b),
            t3f.flat_inner(a, dense_b),
            t3f.flat_inner(dense_b, a),
            t3f.flat_inner(m, m),
            t3f.flat_inner(m, x),
            t3f.flat_inner(batch, a),
            t3f.flat_inner(batch, dense_b),
            t3f.flat_inner(sparse, a),
            t3f.flat_inner(m, sparse_m),
            t3f.flat_inner(batch, sparse),
        )

    outs = run(mode, fn, a, b, m, batch, x)
    sparse_dense = np.zeros((3, 4, 2), dtype)
    sparse_dense[tuple(idx.T)] = vals
    sparse_m_dense = np.zeros((12, 12), dtype)
    sparse_m_dense[tuple(midx.T)] = vals
    refs = (
        np.sum(dense_a * dense_b),
        np.sum(dense_a * dense_b),
        np.sum(dense_a * dense_b),
        np.sum(dense_m**2),
        np.sum(dense_m * x),
        np.sum(dense_batch * dense_a, axis=(1, 2, 3)),
        np.sum(dense_batch * dense_b, axis=(1, 2, 3)),
        np.sum(sparse_dense * dense_a),
        np.sum(sparse_m_dense * dense_m),
        np.sum(dense_batch * sparse_dense, axis=(1, 2, 3)),
    )
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))


@pytest.mark.parametrize("differentiable", [False, True])
@DTYPE_MODES
def test_frobenius_norms(dtype, mode, differentiable):
    rng = np.random.default_rng(7)
    a, dense_a = make(rng, MATRIX_MODES, [1, 2, 3, 1], dtype)
    batch, dense_batch = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, 2)

    def fn(a, batch):
        return (
            t3f.frobenius_norm_squared(a, differentiable),
            t3f.frobenius_norm(a, differentiable=differentiable),
            t3f.frobenius_norm_squared(batch, differentiable),
        )

    sq, norm, batch_sq = run(mode, fn, a, batch)
    ref = np.sum(dense_a**2)
    np.testing.assert_allclose(sq.numpy(), ref, **tol(dtype))
    np.testing.assert_allclose(norm.numpy(), np.sqrt(ref + 1e-5), **tol(dtype))
    np.testing.assert_allclose(
        batch_sq.numpy(), np.sum(dense_batch**2, axis=(1, 2, 3)), **tol(dtype)
    )


def test_differentiable_norm_gradient_is_finite_and_exact():
    # Rank-deficient cores (the middle rank 3 is not needed, the third core is
    # zero in part): QR-based gradients break here, flat_inner's must not.
    rng = np.random.default_rng(8)
    cores = random_cores(rng, TENSOR_MODES, [1, 3, 3, 1], np.float64)
    cores[1][:, :, 1:] = 0.0
    cores[2][1:] = 0.0
    variables = [tf.Variable(c) for c in cores]
    with tf.GradientTape() as tape:
        norm = t3f.frobenius_norm(t3f.TensorTrain(variables), differentiable=True)
    grads = tape.gradient(norm, variables)
    dense = np_full(cores)
    for k, grad in enumerate(grads):
        assert np.all(np.isfinite(grad.numpy()))
        # Central finite differences of the dense norm in a few coordinates.
        for flat in (0, 5, grad.numpy().size - 1):
            idx = np.unravel_index(flat, cores[k].shape)
            step = 1e-6
            shifted = []
            for sign in (1, -1):
                moved = [c.copy() for c in cores]
                moved[k][idx] += sign * step
                shifted.append(np.sqrt(np.sum(np_full(moved) ** 2) + 1e-5))
            fd = (shifted[0] - shifted[1]) / (2 * step)
            np.testing.assert_allclose(grad.numpy()[idx], fd, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(norm.numpy(), np.sqrt(np.sum(dense**2) + 1e-5))


@DTYPE_MODES
def test_transpose_and_bilinear_form(dtype, mode):
    rng = np.random.default_rng(9)
    a, dense_a = make(rng, MATRIX_MODES, [1, 2, 3, 1], dtype)
    b, dense_b = make(rng, [(2, 1), (3, 1), (2, 1)], [1, 2, 2, 1], dtype)
    c, dense_c = make(rng, [(3, 1), (2, 1), (2, 1)], [1, 3, 2, 1], dtype)
    batch_b, dense_batch_b = make(rng, [(2, 1), (3, 1), (2, 1)], [1, 2, 1, 1], dtype, 3)

    def fn(a, b, c, batch_b):
        return (
            t3f.full(t3f.transpose(a)),
            t3f.bilinear_form(a, b, c),
            t3f.quadratic_form(a, batch_b, c),
        )

    at, form, batch_form = run(mode, fn, a, b, c, batch_b)
    np.testing.assert_allclose(at.numpy(), dense_a.T, **tol(dtype))
    np.testing.assert_allclose(form.numpy(), (dense_b.T @ dense_a @ dense_c)[0, 0], **tol(dtype))
    ref = np.einsum("bmi,mn,nj->b", dense_batch_b, dense_a, dense_c)
    np.testing.assert_allclose(batch_form.numpy(), ref, **tol(dtype))


@DTYPE_MODES
def test_gather_nd(dtype, mode):
    rng = np.random.default_rng(10)
    a, dense_a = make(rng, TENSOR_MODES, [1, 2, 3, 1], dtype)
    batch, dense_batch = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, 2)
    idx = np.array([[[0, 1, 1], [2, 3, 0]], [[1, 0, 1], [2, 2, 1]]])
    # For a batch, T3F's convention: the first column is the batch index.
    batch_idx = np.array([[1, 0, 1, 1], [0, 2, 3, 0], [1, 2, 2, 1]])
    out, batch_out = run(
        mode,
        lambda a, b, i, j: (t3f.gather_nd(a, i), t3f.gather_nd(b, j)),
        a,
        batch,
        tf.constant(idx),
        tf.constant(batch_idx),
    )
    assert out.shape == (2, 2) and batch_out.shape == (3,)
    np.testing.assert_allclose(out.numpy(), dense_a[tuple(np.moveaxis(idx, -1, 0))], **tol(dtype))
    np.testing.assert_allclose(batch_out.numpy(), dense_batch[tuple(batch_idx.T)], **tol(dtype))


@DTYPE_MODES
def test_bilinear_form_two_mat(dtype, mode):
    rng = np.random.default_rng(15)
    x, dense_x = make(rng, [(2, 1), (3, 1)], [1, 2, 1], dtype, batch=3)
    a, dense_a = make(rng, [(2, 3), (3, 2)], [1, 3, 1], dtype)
    b, dense_b = make(rng, [(3, 2), (2, 2)], [1, 2, 1], dtype)
    y, dense_y = make(rng, [(2, 1), (2, 1)], [1, 2, 1], dtype)
    out = run(mode, t3f.bilinear_form_two_mat, x, a, b, y)
    ref = np.einsum("bni,nm,mk,kj->b", dense_x, dense_a, dense_b, dense_y)
    np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))
    with pytest.raises(ValueError, match="need x \\[N, 1\\], A \\[N, M\\]"):
        t3f.bilinear_form_two_mat(x, b, a, y)


def test_cast_and_renormalize(dtype):
    rng = np.random.default_rng(11)
    cores = random_cores(rng, TENSOR_MODES, [1, 2, 3, 1], dtype)
    cores[0] *= 1e3
    cores[2] *= 1e-3
    a = t3f.TensorTrain(cores)
    other = np.float64 if dtype == np.float32 else np.float32
    cast = t3f.cast(a, other)
    assert cast.dtype == other
    np.testing.assert_allclose(t3f.full(cast).numpy(), np_full(cores), rtol=1e-5, atol=1e-5)
    renorm = t3f.renormalize_tt_cores(a)
    np.testing.assert_allclose(t3f.full(renorm).numpy(), np_full(cores), **tol(dtype))
    norms = [np.linalg.norm(c.numpy()) for c in renorm.tt_cores]
    np.testing.assert_allclose(norms, norms[0], rtol=1e-5)
    batch = t3f.TensorTrainBatch([c[None] for c in cores])
    np.testing.assert_allclose(
        t3f.full(t3f.renormalize_tt_cores(batch)).numpy()[0], np_full(cores), **tol(dtype)
    )
    with pytest.raises(TypeError, match="dtype must be floating"):
        t3f.cast(a, tf.int32)


def test_shape_mismatch_errors_name_both_shapes():
    rng = np.random.default_rng(12)
    a, _ = make(rng, MATRIX_MODES, [1, 2, 2, 1], np.float32)
    b, _ = make(rng, [(2, 2), (2, 2), (2, 2)], [1, 2, 2, 1], np.float32)
    t, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32)
    u, _ = make(rng, [(3,), (4,), (5,)], [1, 2, 2, 1], np.float32)
    with pytest.raises(
        ValueError,
        match=r"\[2, 3, 2\].*\[3, 2, 2\].*\[2, 2, "
        r"2\]",
    ):
        t3f.matmul(a, b)
    with pytest.raises(
        ValueError,
        match=r"TT-matrix of shape \(12, 12\).*b has "
        r"shape \(10, 3\)",
    ):
        t3f.matmul(a, np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(3, 12\)"):
        t3f.matmul(np.zeros((3, 12), np.float32), b)
    with pytest.raises(
        ValueError,
        match=r"tt_a and tt_b.*\[3, 4, 2\].*\[3, 4, "
        r"5\]",
    ):
        t3f.add(t, u)
    with pytest.raises(
        ValueError,
        match=r"a and b must both be TT-matrices or "
        "both TT-tensors",
    ):
        t3f.flat_inner(t, a)
    with pytest.raises(ValueError, match=r"\[3, 4, 2\].*\(3, 4, 5\)"):
        t3f.flat_inner(t, np.zeros((3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"\[3, 4, 2\].*\[3, 4, 5\]"):
        t3f.multiply(t, u)
    with pytest.raises(ValueError, match="must be a TT-matrix, got a TT-tensor"):
        t3f.matmul(t, t)
    with pytest.raises(TypeError, match="needs a TT-matrix"):
        t3f.matmul(np.eye(2), np.eye(2))


def test_bad_arguments_errors():
    rng = np.random.default_rng(13)
    t, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32)
    m, _ = make(rng, MATRIX_MODES, [1, 2, 2, 1], np.float32)
    b3, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32, 3)
    b4, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32, 4)
    with pytest.raises(ValueError, match="right must be a TT object or a scalar"):
        t3f.multiply(t, np.ones(3))
    with pytest.raises(ValueError, match="batch sizes 3 and 4"):
        t3f.add(b3, b4)
    with pytest.raises(TypeError, match="tt_a and tt_b must have the same dtype"):
        t3f.add(t, t3f.cast(t, tf.float64))
    with pytest.raises(ValueError, match=r"indices must have shape \[..., 3\]"):
        t3f.gather_nd(t, [[0, 1]])
    with pytest.raises(ValueError, match=r"shape \[..., 4\] for a batch"):
        t3f.gather_nd(b3, [[0, 1, 0]])
    with pytest.raises(TypeError, match="indices must be integers"):
        t3f.gather_nd(t, [[0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="tt must be a TT-tensor"):
        t3f.gather_nd(m, [[0, 1, 0]])
    with pytest.raises(ValueError, match="tt_matrix must be a TT-matrix"):
        t3f.transpose(t)
    with pytest.raises(TypeError, match="tt must be a TensorTrain"):
        t3f.full(np.ones((2, 2)))
    with pytest.raises(ValueError, match="c must be a TT-vector"):
        t3f.bilinear_form(
            m, t3f.random_matrix(((2, 3, 2), None)), t3f.random_matrix(((2, 3, 2), None))
        )


def test_ops_with_unknown_batch_size(dtype):
    rng = np.random.default_rng(14)
    batch, dense_batch = make(rng, MATRIX_MODES, [1, 2, 3, 1], dtype, batch=3)
    single, dense_single = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    x = rng.standard_normal((12, 2)).astype(dtype)
    spec = t3f.TensorTrainBatch.Spec(
        tt_cores=tuple(tf.TensorSpec([None] + c.shape[1:], dtype) for c in batch.tt_cores),
        _raw_shape=batch.get_raw_shape(),
        _tt_ranks=batch.get_tt_ranks(),
        _batch_size=None,
    )

    @tf.function(input_signature=[spec, tf.type_spec_from_value(single)])
    def fn(batch, single):
        assert batch.batch_size is None
        return (
            t3f.full(batch + single),
            t3f.full(single - batch),
            t3f.full(batch * single),
            t3f.flat_inner(batch, single),
            t3f.matmul(batch, x),
            t3f.full(t3f.round(batch, max_tt_rank=2)),
        )

    outs = fn(batch, single)
    rounded = t3f.full(t3f.round(batch, max_tt_rank=2)).numpy()
    refs = (
        dense_batch + dense_single,
        dense_single - dense_batch,
        dense_batch * dense_single,
        np.sum(dense_batch * dense_single, axis=(1, 2)),
        dense_batch @ x,
        rounded,
    )
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))
