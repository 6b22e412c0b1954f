"""TensorTrain / TensorTrainBatch: construction, validation, metadata,
indexing, operators, tf.function boundaries, XLA, and t3f_ext.shapes."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from tt_reference import MATRIX_MODES, TENSOR_MODES, make, np_full, random_cores, tol


def test_metadata_of_tensor_matrix_and_batch(dtype):
    rng = np.random.default_rng(0)
    tensor, _ = make(rng, TENSOR_MODES, [1, 2, 3, 1], dtype)
    assert tensor.get_shape().as_list() == [3, 4, 2]
    assert [s.as_list() for s in tensor.get_raw_shape()] == [[3, 4, 2]]
    assert tensor.get_tt_ranks().as_list() == [1, 2, 3, 1]
    assert tensor.ndims() == 3 and not tensor.is_tt_matrix()
    assert (tensor.left_tt_rank_dim, tensor.right_tt_rank_dim) == (0, 2)
    assert tensor.dtype == dtype
    matrix, _ = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    assert matrix.get_shape().as_list() == [12, 12]
    assert [s.as_list() for s in matrix.get_raw_shape()] == [[2, 3, 2], [3, 2, 2]]
    assert matrix.is_tt_matrix() and matrix.right_tt_rank_dim == 3
    batch, _ = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype, batch=5)
    assert batch.batch_size == 5
    assert batch.get_shape().as_list() == [5, 12, 12]
    assert (batch.left_tt_rank_dim, batch.right_tt_rank_dim) == (1, 4)
    assert "TT-matrix of shape [12, 12]" in str(matrix)
    assert "batch of 5" in str(batch)
    np.testing.assert_array_equal(t3f.lazy_tt_ranks(tensor), [1, 2, 3, 1])
    np.testing.assert_array_equal(t3f.tt_ranks(tensor).numpy(), [1, 2, 3, 1])
    np.testing.assert_array_equal(t3f.lazy_raw_shape(matrix), [[2, 3, 2], [3, 2, 2]])
    np.testing.assert_array_equal(t3f.raw_shape(matrix).numpy(), [[2, 3, 2], [3, 2, 2]])
    np.testing.assert_array_equal(t3f.shape(batch).numpy(), [5, 12, 12])
    np.testing.assert_array_equal(t3f.lazy_shape(tensor), [3, 4, 2])
    assert t3f.lazy_batch_size(batch) == 5
    assert int(t3f.batch_size(batch)) == 5


def test_constructor_accepts_shape_ranks_and_variables():
    rng = np.random.default_rng(1)
    cores = random_cores(rng, MATRIX_MODES, [1, 2, 2, 1], np.float32)
    tt = t3f.TensorTrain(cores, shape=((2, 3, 2), (3, 2, 2)), tt_ranks=[1, 2, 2, 1])
    np.testing.assert_allclose(t3f.full(tt).numpy(), np_full(cores), rtol=1e-5)
    variables = [tf.Variable(c) for c in cores]
    from_vars = t3f.TensorTrain(variables, convert_to_tensors=False)
    np.testing.assert_allclose(t3f.full(from_vars).numpy(), np_full(cores), rtol=1e-5)
    batch = t3f.TensorTrainBatch([c[None] for c in cores], batch_size=1)
    assert batch.batch_size == 1


@pytest.mark.parametrize(
    "cores,kwargs,error,match",
    [
        (
            [np.ones((1, 2, 2)), np.ones((3, 2, 1))],
            {},
            ValueError,
            r"TT-ranks of neighbouring cores differ: tt_cores\[0\] has shape "
            r"\(1, 2, 2\) and tt_cores\[1\] has shape \(3, 2, 1\)",
        ),
        ([np.ones((2, 2, 1))], {}, ValueError, "first and last TT-ranks must be 1"),
        ([np.ones((1, 2, 1)), np.ones((1, 2, 2, 1))], {}, ValueError, r"tt_cores\[1\] has shape"),
        ([np.ones((1, 2))], {}, ValueError, "must have 3 dims"),
        ([np.ones((1, 2, 1), np.float32), np.ones((1, 2, 1))], {}, TypeError, "same dtype"),
        ([np.ones((1, 2, 1), bool)], {}, TypeError, "floating, complex or integer"),
        ([], {}, ValueError, "at least one core"),
        (np.ones((1, 2, 1)), {}, TypeError, "list or tuple"),
        ([np.ones((1, 2, 1))], {"shape": [3]}, ValueError, r"shape \[\[3\]\] does not match"),
        ([np.ones((1, 2, 1))], {"tt_ranks": [1, 2]}, ValueError, "tt_ranks .* do not match"),
        (
            [np.ones((1, 2, 1))],
            {"convert_to_tensors": False},
            TypeError,
            "convert_to_tensors=False",
        ),
    ],
)
def test_constructor_errors(cores, kwargs, error, match):
    with pytest.raises(error, match=match):
        t3f.TensorTrain(cores, **kwargs)


def test_batch_constructor_errors():
    with pytest.raises(ValueError, match=r"batch size 3; tt_cores\[0\] has shape \(2,"):
        t3f.TensorTrainBatch([np.ones((2, 1, 2, 1))], batch_size=3)
    with pytest.raises(ValueError, match="batch size"):
        t3f.TensorTrainBatch([np.ones((2, 1, 2, 2)), np.ones((3, 2, 2, 1))])
    with pytest.raises(ValueError, match="batch_size must be"):
        t3f.TensorTrainBatch([np.ones((2, 1, 2, 1))], batch_size=-1)


def test_tensor_indexing_matches_numpy(dtype):
    rng = np.random.default_rng(2)
    tt, dense = make(rng, [(3,), (4,), (5,), (2,)], [1, 2, 3, 2, 1], dtype)
    for spec in [
        (1, slice(None), slice(2, 4), 0),
        (slice(None), 2, 3, slice(None)),
        (0, 1, slice(1, 3), slice(None)),
        (slice(0, 2),) + (slice(None),) * 3,
    ]:
        np.testing.assert_allclose(t3f.full(tt[spec]).numpy(), dense[spec], **tol(dtype))
    np.testing.assert_allclose(tt[2, 3, 4, 1].numpy(), dense[2, 3, 4, 1], **tol(dtype))
    with pytest.raises(ValueError, match="needs 4 indices, got 2"):
        tt[0, 1]  # pylint: disable=pointless-statement
    matrix, _ = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    with pytest.raises(TypeError, match="TT-tensors only"):
        matrix[0, 0, 0]  # pylint: disable=pointless-statement


def test_batch_indexing_matches_numpy(dtype):
    rng = np.random.default_rng(3)
    batch, dense = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=4)
    one = batch[2]
    assert isinstance(one, t3f.TensorTrain)
    np.testing.assert_allclose(t3f.full(one).numpy(), dense[2], **tol(dtype))
    part = batch[1:3]
    assert isinstance(part, t3f.TensorTrainBatch) and part.batch_size == 2
    np.testing.assert_allclose(t3f.full(part).numpy(), dense[1:3], **tol(dtype))
    np.testing.assert_allclose(
        t3f.full(batch[1:3, 0, :, 1]).numpy(), dense[1:3, 0, :, 1], **tol(dtype)
    )
    np.testing.assert_allclose(
        t3f.full(batch[3, :, 1:3, :]).numpy(), dense[3, :, 1:3, :], **tol(dtype)
    )
    np.testing.assert_allclose(batch[:, 1, 2, 0].numpy(), dense[:, 1, 2, 0], **tol(dtype))


def test_crosses_tf_function_boundaries_and_xla(dtype):
    rng = np.random.default_rng(4)
    matrix, dense = make(rng, MATRIX_MODES, [1, 2, 3, 1], dtype)
    batch, dense_batch = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype, batch=2)
    traces = []

    @tf.function(jit_compile=True)
    def double(tt, batch):
        traces.append(1)
        return tt + tt, batch * 2.0

    @tf.function
    def densify(tt, batch):
        return t3f.full(tt), t3f.full(batch)

    doubled, doubled_batch = double(matrix, batch)
    assert isinstance(doubled, t3f.TensorTrain)
    assert isinstance(doubled_batch, t3f.TensorTrainBatch)
    assert doubled.get_tt_ranks().as_list() == [1, 4, 6, 1]
    full, full_batch = densify(doubled, doubled_batch)
    np.testing.assert_allclose(full.numpy(), 2 * dense, **tol(dtype))
    np.testing.assert_allclose(full_batch.numpy(), 2 * dense_batch, **tol(dtype))
    # Same shapes and ranks: the TypeSpec matches and no retrace happens.
    other, _ = make(rng, MATRIX_MODES, [1, 2, 3, 1], dtype)
    double(other, batch)
    assert len(traces) == 1
    spec = tf.type_spec_from_value(matrix)
    assert spec == tf.type_spec_from_value(other)
    # Unknown batch size in a signature.
    batch_spec = t3f.TensorTrainBatch.Spec(
        tt_cores=tuple(tf.TensorSpec([None] + c.shape[1:], dtype) for c in batch.tt_cores),
        _raw_shape=batch.get_raw_shape(),
        _tt_ranks=batch.get_tt_ranks(),
        _batch_size=None,
    )
    norms = tf.function(t3f.frobenius_norm_squared, input_signature=[batch_spec])(batch)
    np.testing.assert_allclose(norms.numpy(), np.sum(dense_batch**2, (1, 2)), **tol(dtype))


def test_gradient_through_cores_of_variables():
    rng = np.random.default_rng(5)
    cores = random_cores(rng, TENSOR_MODES, [1, 2, 2, 1], np.float64)
    variables = [tf.Variable(c) for c in cores]
    target = rng.standard_normal((3, 4, 2))
    with tf.GradientTape() as tape:
        loss = t3f.flat_inner(t3f.TensorTrain(variables), target)
    grads = tape.gradient(loss, variables)
    # d<A, T>/dG_1 = sum over the other cores: compare with the dense chain.
    ref = np.einsum("ijk,ajb,bkc->ia", target, cores[1], cores[2])
    np.testing.assert_allclose(grads[0].numpy()[0], ref, rtol=1e-10)


def test_immutability():
    tt = t3f.TensorTrain([np.ones((1, 2, 1))])
    with pytest.raises(AttributeError):
        tt.tt_cores = ()


def test_batch_dim_helpers(dtype):
    rng = np.random.default_rng(6)
    tt, dense = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype)
    expanded = t3f.expand_batch_dim(tt)
    assert isinstance(expanded, t3f.TensorTrainBatch)
    assert expanded.batch_size == 1
    squeezed = t3f.squeeze_batch_dim(expanded)
    assert isinstance(squeezed, t3f.TensorTrain)
    np.testing.assert_allclose(t3f.full(squeezed).numpy(), dense, **tol(dtype))
    b2, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=2)
    b3, _ = make(rng, TENSOR_MODES, [1, 2, 2, 1], dtype, batch=3)
    assert t3f.is_batch_broadcasting_possible(b2, expanded)
    assert t3f.is_batch_broadcasting_possible(b2, tt)
    assert not t3f.is_batch_broadcasting_possible(b2, b3)
    with pytest.raises(TypeError, match="TensorTrainBatch"):
        t3f.batch_size(tt)
    assert [s.as_list() for s in t3f.clean_raw_shape(((2, 3), (4, 5)))] == [[2, 3], [4, 5]]
    assert t3f.clean_raw_shape(None) is None
