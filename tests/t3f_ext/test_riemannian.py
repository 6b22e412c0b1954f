"""t3f_ext.riemannian against a dense NumPy tangent-space projector.

The reference projector is the orthogonal projector onto the range of the
Jacobian of ``cores -> full(cores)`` (see riemannian_dense_reference.py), so
it shares no code or formula with the library.
"""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from riemannian_dense_reference import dense_of
from riemannian_dense_reference import random_tt
from riemannian_dense_reference import tangent_projector

TENSOR = ((3, 4, 5),)
TENSOR_RANKS = (1, 2, 3, 1)
MATRIX = ((2, 3, 2), (3, 2, 2))
MATRIX_RANKS = (1, 2, 2, 1)
SHAPES = {"tensor": (TENSOR, TENSOR_RANKS), "matrix": (MATRIX, MATRIX_RANKS)}


def _tol(dtype):
    return 2e-4 if dtype == np.float32 else 1e-10


def _assert_close(actual, expected, dtype):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(actual, expected, rtol=0, atol=_tol(dtype) * scale)


@pytest.fixture(params=sorted(SHAPES))
def kind(request):
    return request.param


def _point_and_projector(rng, kind, dtype):
    raw_shape, ranks = SHAPES[kind]
    where = random_tt(rng, raw_shape, ranks, dtype)
    return where, tangent_projector(where)


def test_project_matches_dense_projector(kind, dtype):
    rng = np.random.default_rng(0)
    raw_shape, _ = SHAPES[kind]
    where, proj = _point_and_projector(rng, kind, dtype)
    what = random_tt(rng, raw_shape, (1, 3, 2, 1), dtype)
    res = t3f.project(what, where)
    assert isinstance(res, t3f.TensorTrain)
    assert res.get_raw_shape() == where.get_raw_shape()
    assert res.get_tt_ranks().as_list() == [1] + [
        2 * r for r in where.get_tt_ranks().as_list()[1:-1]
    ] + [1]
    expected = (proj @ dense_of(what).ravel()).reshape(dense_of(where).shape)
    _assert_close(dense_of(res), expected, dtype)


def test_projection_is_idempotent_and_fixes_tangent_vectors(kind, dtype):
    rng = np.random.default_rng(1)
    raw_shape, _ = SHAPES[kind]
    where, proj = _point_and_projector(rng, kind, dtype)
    what = random_tt(rng, raw_shape, (1, 2, 2, 1), dtype)
    once = t3f.project(what, where)
    twice = t3f.project(once, where)
    _assert_close(dense_of(twice), dense_of(once), dtype)
    # The point itself lies in its tangent space.
    _assert_close(dense_of(t3f.project(where, where)), dense_of(where), dtype)
    # Any deltas, gauged or not, give a tangent vector: P fixes it.
    deltas = [rng.standard_normal(d.shape).astype(dtype) for d in t3f.tangent_space_to_deltas(once)]
    tangent = t3f.deltas_to_tangent_space(deltas, where)
    flat = dense_of(tangent).ravel()
    _assert_close(proj @ flat, flat, dtype)
    _assert_close(dense_of(t3f.project(tangent, where)), dense_of(tangent), dtype)


def test_project_batch(kind, dtype):
    rng = np.random.default_rng(2)
    raw_shape, _ = SHAPES[kind]
    where, proj = _point_and_projector(rng, kind, dtype)
    what = random_tt(rng, raw_shape, (1, 2, 3, 1), dtype, batch_size=3)
    res = t3f.project(what, where)
    assert isinstance(res, t3f.TensorTrainBatch) and res.batch_size == 3
    for got, z in zip(dense_of(res), dense_of(what)):
        _assert_close(got.ravel(), proj @ z.ravel(), dtype)


def test_project_sum_with_weights(kind, dtype):
    rng = np.random.default_rng(3)
    raw_shape, _ = SHAPES[kind]
    where, proj = _point_and_projector(rng, kind, dtype)
    what = random_tt(rng, raw_shape, (1, 2, 2, 1), dtype, batch_size=4)
    zs = np.stack([z.ravel() for z in dense_of(what)])  # [B, N]
    res = t3f.project_sum(what, where)
    assert isinstance(res, t3f.TensorTrain)
    _assert_close(dense_of(res).ravel(), proj @ zs.sum(0), dtype)
    w = rng.standard_normal(4)
    res = t3f.project_sum(what, where, w)
    _assert_close(dense_of(res).ravel(), proj @ (w @ zs), dtype)
    w2 = rng.standard_normal((4, 2))
    res = t3f.project_sum(what, where, w2)
    assert isinstance(res, t3f.TensorTrainBatch) and res.batch_size == 2
    for o, got in enumerate(dense_of(res)):
        _assert_close(got.ravel(), proj @ (w2[:, o] @ zs), dtype)


@pytest.mark.parametrize("columns", [(1, 1, 1), (2, 1, 2)], ids=["matvec", "matmat"])
def test_project_matmul_matches_dense(dtype, columns):
    rng = np.random.default_rng(4)
    vec_shape = ((2, 3, 2), columns)
    where = random_tt(rng, vec_shape, (1, 2, 2, 1), dtype)
    proj = tangent_projector(where)
    matrix = random_tt(rng, ((2, 3, 2), (2, 3, 2)), (1, 2, 3, 1), dtype)
    what = random_tt(rng, vec_shape, (1, 3, 2, 1), dtype, batch_size=2)
    res = t3f.project_matmul(what, where, matrix)
    assert isinstance(res, t3f.TensorTrainBatch)
    for got, z in zip(dense_of(res), dense_of(what)):
        _assert_close(got.ravel(), proj @ (dense_of(matrix) @ z).ravel(), dtype)
    single = t3f.project_matmul(what[0], where, matrix)
    _assert_close(
        dense_of(single).ravel(), proj @ (dense_of(matrix) @ dense_of(what)[0]).ravel(), dtype
    )


def test_deltas_round_trip_and_inner_products(kind, dtype):
    rng = np.random.default_rng(5)
    raw_shape, _ = SHAPES[kind]
    where, _ = _point_and_projector(rng, kind, dtype)
    batch_1 = t3f.project(random_tt(rng, raw_shape, (1, 2, 2, 1), dtype, 3), where)
    batch_2 = t3f.project(random_tt(rng, raw_shape, (1, 3, 2, 1), dtype, 2), where)
    deltas = t3f.tangent_space_to_deltas(batch_1)
    assert len(deltas) == 3 and deltas[0].shape[0] == 3
    rebuilt = t3f.deltas_to_tangent_space(deltas, where)
    for a, b in zip(dense_of(rebuilt), dense_of(batch_1)):
        _assert_close(a, b, dtype)
    flat_1 = np.stack([z.ravel() for z in dense_of(batch_1)])
    flat_2 = np.stack([z.ravel() for z in dense_of(batch_2)])
    gram = t3f.pairwise_flat_inner_projected(batch_1, batch_2)
    assert gram.shape == (3, 2)
    _assert_close(gram, flat_1 @ flat_2.T, dtype)


def test_add_n_projected(kind, dtype):
    rng = np.random.default_rng(6)
    raw_shape, _ = SHAPES[kind]
    where, _ = _point_and_projector(rng, kind, dtype)
    vectors = [t3f.project(random_tt(rng, raw_shape, (1, 2, 2, 1), dtype), where) for _ in range(3)]
    coef = [0.5, -2.0, 1.5]
    res = t3f.add_n_projected(vectors, coef=coef)
    assert res.get_tt_ranks() == vectors[0].get_tt_ranks()
    expected = sum(c * dense_of(v) for c, v in zip(coef, vectors))
    _assert_close(dense_of(res), expected, dtype)
    batches = [
        t3f.project(random_tt(rng, raw_shape, (1, 2, 2, 1), dtype, 2), where) for _ in range(2)
    ]
    coef = np.array([[1.0, 2.0], [-1.0, 0.5]])
    res = t3f.add_n_projected(batches, coef=coef)
    for b, got in enumerate(dense_of(res)):
        expected = sum(coef[i, b] * dense_of(batches[i])[b] for i in range(2))
        _assert_close(got, expected, dtype)


# XLA compilation takes seconds: one kind each.
@pytest.mark.parametrize(
    "kind,jit_compile", [("tensor", False), ("matrix", True)], ids=["tensor-graph", "matrix-xla"]
)
def test_compiled_matches_eager(kind, jit_compile):
    rng = np.random.default_rng(7)
    raw_shape, ranks = SHAPES[kind]
    where = random_tt(rng, raw_shape, ranks, np.float64)
    what = random_tt(rng, raw_shape, (1, 2, 2, 1), np.float64, batch_size=2)

    def all_ops(what, where):
        projected = t3f.project(what, where)
        summed = t3f.project_sum(what, where, [1.0, -1.0])
        gram = t3f.pairwise_flat_inner_projected(projected, projected)
        total = t3f.add_n_projected([summed, summed], coef=[2.0, 1.0])
        if not where.is_tt_matrix():
            return projected, total, gram
        rows = where.get_raw_shape()[0].as_list()
        matrix = t3f.TensorTrain(
            [tf.ones([r0, m, m, r1], where.dtype) for r0, m, r1 in zip([1, 2, 2], rows, [2, 2, 1])]
        )
        return projected, total, gram, t3f.project_matmul(what, where, matrix)

    compiled = tf.function(all_ops, jit_compile=jit_compile)
    for got, expected in zip(compiled(what, where), all_ops(what, where)):
        if isinstance(expected, tf.Tensor):
            np.testing.assert_allclose(got, expected, atol=1e-10)
        else:
            for a, b in zip(np.ravel(dense_of(got)), np.ravel(dense_of(expected))):
                np.testing.assert_allclose(a, b, atol=1e-10)


def test_bad_arguments_raise_clear_errors():
    rng = np.random.default_rng(8)
    where = random_tt(rng, TENSOR, TENSOR_RANKS, np.float64)
    other = random_tt(rng, ((3, 4, 6),), TENSOR_RANKS, np.float64)
    batch = random_tt(rng, TENSOR, TENSOR_RANKS, np.float64, batch_size=2)
    with pytest.raises(TypeError, match="where must be a TensorTrain"):
        t3f.project(where, batch)
    with pytest.raises(TypeError, match="what must be a TensorTrain"):
        t3f.project(np.zeros((3, 4, 5)), where)
    with pytest.raises(ValueError, match=r"same shape.*\[3, 4, 6\].*\[3, 4, 5\]"):
        t3f.project(other, where)
    with pytest.raises(TypeError, match="same dtype.*float32.*float64"):
        t3f.project(random_tt(rng, TENSOR, TENSOR_RANKS, np.float32), where)
    with pytest.raises(ValueError, match=r"weights must have shape.*B = 2"):
        t3f.project_sum(batch, where, weights=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="tangent-space vector.*TT-ranks"):
        t3f.tangent_space_to_deltas(where)
    tangent = t3f.project(where, where)
    with pytest.raises(ValueError, match="deltas must be a list of 3"):
        t3f.deltas_to_tangent_space(t3f.tangent_space_to_deltas(tangent)[:2], where)
    with pytest.raises(ValueError, match=r"coef must have shape"):
        t3f.add_n_projected([tangent, tangent], coef=[1.0])
    with pytest.raises(ValueError, match="TT-matrix"):
        t3f.project_matmul(where, where, where)
