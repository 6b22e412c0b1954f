"""t3f_ext.batch_ops against dense NumPy."""

import numpy as np
import pytest

import t3f_ext as t3f
from tt_reference import DTYPE_MODES, MATRIX_MODES, TENSOR_MODES, make, run, tol


@DTYPE_MODES
def test_gram_and_pairwise_flat_inner(dtype, mode):
    rng = np.random.default_rng(0)
    x, dense_x = make(rng, MATRIX_MODES, [1, 2, 3, 1], dtype, batch=4)
    y, dense_y = make(rng, MATRIX_MODES, [1, 3, 2, 1], dtype, batch=3)
    vec_modes = [(2, 1), (3, 1), (2, 1)]
    u, dense_u = make(rng, vec_modes, [1, 2, 2, 1], dtype, batch=4)
    v, dense_v = make(rng, [(3, 1), (2, 1), (2, 1)], [1, 2, 1, 1], dtype, 2)
    a, dense_a = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    t, dense_t = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=2)
    square, dense_square = make(rng, [(2, 2), (3, 3), (2, 2)], [1, 2, 2, 1], dtype)

    def fn(x, y, u, v, a, t, square):
        return (
            t3f.gram_matrix(x),
            t3f.pairwise_flat_inner(x, y),
            t3f.pairwise_flat_inner(u, v, a),
            t3f.gram_matrix(t),
            t3f.batch_ops.gram_matrix(x, square),
        )

    outs = run(mode, fn, x, y, u, v, a, t, square)
    refs = (
        np.einsum("imn,jmn->ij", dense_x, dense_x),
        np.einsum("imn,jmn->ij", dense_x, dense_y),
        np.einsum("imp,mn,jnp->ij", dense_u, dense_a, dense_v),
        np.einsum("iabc,jabc->ij", dense_t, dense_t),
        np.einsum("imp,mn,jnp->ij", dense_x, dense_square, dense_x),
    )
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out.numpy(), ref, **tol(dtype))


def test_concat_and_multiply_along_batch_dim(dtype):
    rng = np.random.default_rng(1)
    b2, dense_b2 = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=2)
    b3, dense_b3 = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=3)
    one, dense_one = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype)
    cat = t3f.concat_along_batch_dim([b2, one, b3])
    assert cat.batch_size == 6
    np.testing.assert_allclose(
        t3f.full(cat).numpy(), np.concatenate([dense_b2, dense_one[None], dense_b3]), **tol(dtype)
    )
    weights = np.array([2.0, -1.0, 0.5], dtype)
    scaled = t3f.multiply_along_batch_dim(b3, weights)
    np.testing.assert_allclose(
        t3f.full(scaled).numpy(), weights[:, None, None, None] * dense_b3, **tol(dtype)
    )


def test_batch_ops_errors():
    rng = np.random.default_rng(2)
    b2, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32, batch=2)
    other_ranks, _ = make(rng, TENSOR_MODES, [1, 3, 2, 1], np.float32, batch=2)
    other_shape, _ = make(rng, [(3,), (4,), (3,)], [1, 2, 2, 1], np.float32, 2)
    with pytest.raises(ValueError, match="TT-ranks must be equal"):
        t3f.concat_along_batch_dim([b2, other_ranks])
    with pytest.raises(ValueError, match=r"\[3, 4, 2\].*\[3, 4, 3\]"):
        t3f.concat_along_batch_dim([b2, other_shape])
    with pytest.raises(TypeError, match="non-empty list"):
        t3f.concat_along_batch_dim([])
    with pytest.raises(
        ValueError,
        match=r"weights must have shape \[batch_size\]"
        r" = \[2\], got \(3,\)",
    ):
        t3f.multiply_along_batch_dim(b2, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"\[3, 4, 2\].*\[3, 4, 3\]"):
        t3f.pairwise_flat_inner(b2, other_shape)
    with pytest.raises(TypeError, match="tt_1 must be a TensorTrainBatch"):
        t3f.gram_matrix(b2[0])
    x, _ = make(rng, MATRIX_MODES, [1, 2, 2, 1], np.float32, batch=2)
    a, _ = make(rng, [(2, 2), (2, 2), (2, 2)], [1, 2, 2, 1], np.float32)
    with pytest.raises(ValueError, match="shapes do not match for pairwise_flat_inner"):
        t3f.gram_matrix(x, a)
