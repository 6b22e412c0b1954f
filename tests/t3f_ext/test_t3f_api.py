"""T3F 1.2.0's public names and argument orders in t3f_ext, checked against
dense NumPy: variables, the explicit matmul / flat_inner ops (sparse ones
too), value_and_grad, ones_like / zeros_like, utils helpers, TT methods."""

import inspect

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from tt_reference import MATRIX_MODES, TENSOR_MODES, make, tol


def test_positional_arguments_follow_t3f():
    # T3F's positional order; our additions (seed, dtype, conjugate) are
    # keyword-only after it.
    expected = {
        t3f.random_tensor: ["shape", "tt_rank", "mean", "stddev", "dtype", "name"],
        t3f.random_matrix_batch: [
            "shape",
            "tt_rank",
            "batch_size",
            "mean",
            "stddev",
            "dtype",
            "name",
        ],
        t3f.glorot_initializer: ["shape", "tt_rank", "dtype", "name"],
        t3f.gradients: ["func", "x", "name", "runtime_check"],
        t3f.hessian_vector_product: ["func", "x", "vector", "name", "runtime_check"],
        t3f.transpose: ["tt_matrix", "name"],
        t3f.TensorTrain: ["tt_cores", "shape", "tt_ranks", "convert_to_tensors", "name"],
        t3f.TensorTrainBatch: [
            "tt_cores",
            "shape",
            "tt_ranks",
            "batch_size",
            "convert_to_tensors",
            "name",
        ],
        t3f.lazy_shape: ["tt", "name"],
    }
    for fn, names in expected.items():
        params = inspect.signature(fn).parameters.values()
        positional = [p.name for p in params if p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
        assert positional == names, fn
    seeded = [t3f.random_tensor([2, 3], 2, 0.0, 1.0, tf.float64, "x", seed=s) for s in (3, 3)]
    np.testing.assert_array_equal(t3f.full(seeded[0]), t3f.full(seeded[1]))
    assert seeded[0].dtype == tf.float64
    # The name slot takes a string positionally, as in T3F.
    tt = t3f.TensorTrain([np.ones((1, 2, 1))], None, None, True, "named")
    assert t3f.lazy_shape(tt, "name").tolist() == [2]


def test_get_variable_and_assign_write_the_cores(dtype):
    rng = np.random.default_rng(0)
    start, start_dense = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    var = t3f.get_variable("w", initializer=start)
    assert var.is_variable() and not start.is_variable()
    assert all(isinstance(c, tf.Variable) for c in var.tt_cores)
    assert var.get_shape() == start.get_shape()
    assert var.get_tt_ranks() == start.get_tt_ranks()
    np.testing.assert_allclose(t3f.full(var), start_dense, **tol(dtype))
    new, new_dense = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    written = t3f.assign(var, new)
    np.testing.assert_allclose(t3f.full(written), new_dense, **tol(dtype))
    np.testing.assert_allclose(t3f.full(var), new_dense, **tol(dtype))
    # A tf.function reads the current values.
    read = tf.function(t3f.full)
    np.testing.assert_allclose(read(var), new_dense, **tol(dtype))
    var.assign(start)
    np.testing.assert_allclose(read(var), start_dense, **tol(dtype))
    with pytest.raises(ValueError, match="value: expected"):
        t3f.assign(var, make(rng, MATRIX_MODES, [1, 3, 2, 1], dtype)[0])
    with pytest.raises(ValueError, match="initializer"):
        t3f.get_variable("w")
    with pytest.raises(TypeError, match="ref"):
        t3f.assign(start, new)


def test_variable_batch_trains_through_a_tape():
    rng = np.random.default_rng(1)
    batch, dense = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float64, batch=3)
    var = t3f.get_variable(
        "b", initializer=batch, regularizer=lambda tt: tf.reduce_sum(t3f.frobenius_norm_squared(tt))
    )
    assert var.batch_size == 3 and var.get_shape().as_list() == [3, 3, 4, 2]
    np.testing.assert_allclose(var.regularization_loss, np.sum(dense**2), rtol=1e-10)
    np.testing.assert_allclose(t3f.full(var[1]), dense[1], rtol=1e-12)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(t3f.frobenius_norm_squared(var, differentiable=True))
    grads = tape.gradient(loss, var.tt_cores)
    assert all(g is not None for g in grads)
    # d||X||^2/dG_1 = 2 X contracted with the other cores; for the last core
    # of a rank-1 end that is 2 * sum over the other modes.
    for g in grads:
        assert np.all(np.isfinite(g.numpy()))


def test_tt_methods_in_their_tf2_sense():
    tt, _ = make(np.random.default_rng(2), TENSOR_MODES, [1, 2, 2, 1], np.float32)
    assert tt.graph is None and tt.op is None
    cores = tt.eval()
    for a, b in zip(cores, tt.tt_cores):
        np.testing.assert_array_equal(a, b.numpy())
    seen = {}

    @tf.function
    def inside(x):
        seen["graph"] = x.graph
        seen["op"] = x.op
        with pytest.raises(ValueError, match="eval needs eager"):
            x.eval()
        return t3f.full(x)

    inside(tt)
    assert seen["graph"] is not None and seen["op"] is not None
    with pytest.raises(ValueError, match="session"):
        tt.eval(session=object())


def test_explicit_matmul_and_flat_inner_ops(dtype):
    rng = np.random.default_rng(3)
    a, a_dense = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    b, b_dense = make(rng, MATRIX_MODES, [1, 3, 2, 1], dtype)
    x = rng.standard_normal((12, 5)).astype(dtype)
    t = tol(dtype)
    np.testing.assert_allclose(
        t3f.full(t3f.ops.tt_tt_matmul(a, t3f.transpose(b))), a_dense @ b_dense.T, **t
    )
    np.testing.assert_allclose(t3f.ops.tt_dense_matmul(a, x), a_dense @ x, **t)
    np.testing.assert_allclose(t3f.ops.dense_tt_matmul(x.T, a), x.T @ a_dense, **t)
    np.testing.assert_allclose(t3f.ops.tt_tt_flat_inner(a, b), np.sum(a_dense * b_dense), **t)
    np.testing.assert_allclose(
        t3f.ops.tt_dense_flat_inner(a, b_dense), np.sum(a_dense * b_dense), **t
    )
    np.testing.assert_allclose(
        t3f.ops.dense_tt_flat_inner(b_dense, a), np.sum(a_dense * b_dense), **t
    )
    with pytest.raises(TypeError, match="matrix_b: expected a dense"):
        t3f.ops.tt_dense_matmul(a, b)
    with pytest.raises(TypeError, match="tt_matrix_b"):
        t3f.ops.tt_tt_matmul(a, x)


def test_sparse_matmul_and_flat_inner(dtype):
    rng = np.random.default_rng(4)
    a, a_dense = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype)
    indices = np.array([[0, 3], [2, 11], [2, 0], [4, 5], [4, 5]])
    values = rng.standard_normal(len(indices)).astype(dtype)
    dense = np.zeros((5, 12), dtype)
    np.add.at(dense, tuple(indices.T), values)
    sparse = tf.sparse.reorder(tf.SparseTensor(indices, values, [5, 12]))
    t = tol(dtype)
    np.testing.assert_allclose(t3f.ops.sparse_tt_matmul(sparse, a), dense @ a_dense, **t)
    np.testing.assert_allclose(t3f.matmul(sparse, a), dense @ a_dense, **t)
    sparse_t = tf.sparse.transpose(sparse)
    np.testing.assert_allclose(t3f.ops.tt_sparse_matmul(a, sparse_t), a_dense @ dense.T, **t)
    square = tf.SparseTensor([[1, 2], [7, 7]], np.array([2.0, -1.0], dtype), [12, 12])
    expected = 2 * a_dense[1, 2] - a_dense[7, 7]
    np.testing.assert_allclose(t3f.ops.tt_sparse_flat_inner(a, square), expected, **t)
    np.testing.assert_allclose(t3f.ops.sparse_tt_flat_inner(square, a), expected, **t)
    with pytest.raises(ValueError, match="shapes do not match"):
        t3f.ops.sparse_tt_matmul(square, make(rng, [(2, 3)] * 2, [1, 2, 1], dtype)[0])
    with pytest.raises(TypeError, match="sparse_matrix_a"):
        t3f.ops.sparse_tt_matmul(dense, a)


def test_value_and_grad_of_tensors_and_tt_objects():
    x = tf.constant([1.0, 2.0, 3.0], tf.float64)
    value, grad = t3f.autodiff.value_and_grad(lambda v: tf.reduce_sum(v**3), x)
    np.testing.assert_allclose(value, 36.0)
    np.testing.assert_allclose(grad, 3 * x.numpy() ** 2)
    rng = np.random.default_rng(5)
    tt, dense = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float64)
    value, grad = t3f.autodiff.value_and_grad(lambda z: t3f.flat_inner(z, z), tt)
    np.testing.assert_allclose(value, np.sum(dense**2), rtol=1e-12)
    assert isinstance(grad, t3f.TensorTrain)
    # d<X, X>/dG_k = 2 X contracted with every core but G_k: check G_1 by the
    # finite difference of a linear perturbation (exact for a quadratic).
    cores = [c.numpy() for c in tt.tt_cores]
    step = rng.standard_normal(cores[0].shape)
    bumped = t3f.TensorTrain([cores[0] + 1e-6 * step] + cores[1:])
    numeric = (np.sum(t3f.full(bumped).numpy() ** 2) - np.sum(dense**2)) / 1e-6
    np.testing.assert_allclose(np.sum(grad.tt_cores[0].numpy() * step), numeric, rtol=1e-4)


def test_ones_like_zeros_like_and_utils():
    rng = np.random.default_rng(6)
    batch, _ = make(rng, MATRIX_MODES, [1, 2, 2, 1], np.float64, batch=2)
    np.testing.assert_array_equal(t3f.full(t3f.ones_like(batch)), np.ones((2, 12, 12)))
    np.testing.assert_array_equal(t3f.full(t3f.zeros_like(batch)), np.zeros((2, 12, 12)))
    assert t3f.ones_like_tt is t3f.ones_like
    with pytest.raises(ValueError, match="tt: expected a TensorTrain"):
        t3f.ones_like(np.ones(3))
    flat = [0, 5, 23, 17]
    np.testing.assert_array_equal(
        t3f.utils.unravel_index(flat, (2, 3, 4)),
        np.stack(np.unravel_index(flat, (2, 3, 4)), axis=1),
    )
    assert t3f.utils.in_eager_mode()
    assert not bool(tf.function(t3f.utils.in_eager_mode)())


def test_replace_tf_svd_with_np_svd(monkeypatch):
    monkeypatch.setattr(tf.linalg, "svd", tf.linalg.svd)  # restored afterwards
    t3f.utils.replace_tf_svd_with_np_svd()
    t3f.utils.replace_tf_svd_with_np_svd()  # a second call changes nothing
    assert tf.linalg.svd.original is not None
    mat = np.random.default_rng(7).standard_normal((5, 3))
    s, u, v = tf.function(tf.linalg.svd)(tf.constant(mat))
    assert s.shape == (3,) and u.shape == (5, 3) and v.shape == (3, 3)
    np.testing.assert_allclose((u * s) @ tf.transpose(v), mat, atol=1e-12)
    np.testing.assert_allclose(s, np.linalg.svd(mat, compute_uv=False))
    # t3f_ext's TT-SVD runs through it.
    tt = t3f.to_tt_matrix(mat.reshape(15, 1), ((3, 5), (1, 1)), max_tt_rank=3)
    np.testing.assert_allclose(t3f.full(tt), mat.reshape(15, 1), atol=1e-12)


def test_concat_of_one_batch_cast_of_int_cores_and_extra_ranks():
    rng = np.random.default_rng(8)
    batch, dense = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32, batch=2)
    assert t3f.concat_along_batch_dim(batch) is batch
    single, single_dense = make(rng, TENSOR_MODES, [1, 2, 2, 1], np.float32)
    np.testing.assert_allclose(
        t3f.full(t3f.concat_along_batch_dim(single)), single_dense[None], rtol=1e-6
    )
    int_cores = [rng.integers(-5, 5, (1, 3, 2)), rng.integers(-5, 5, (2, 4, 1))]
    as_float = t3f.cast(t3f.TensorTrain(int_cores), tf.float64)
    np.testing.assert_array_equal(t3f.full(as_float), np.einsum("aib,bjc->ij", *int_cores))
    # T3F reads the first d + 1 TT-ranks: trailing 1s are tolerated, others
    # still refused.
    t3f.TensorTrain(int_cores, tt_ranks=[1, 2, 1, 1, 1])
    with pytest.raises(ValueError, match="tt_ranks"):
        t3f.TensorTrain(int_cores, tt_ranks=[1, 2, 1, 2])
    for bad in ([[2, 3]], [[2], [3]]):
        with pytest.raises(ValueError, match="shape"):
            t3f.eye(bad)
        with pytest.raises(ValueError, match="shape"):
            t3f.random_tensor(bad)
    del dense


def test_keras_dense_trains_saves_and_loads(tmp_path):
    import keras

    layer = t3f.nn.KerasDense(
        input_dims=[2, 3], output_dims=[2, 2], tt_rank=2, activation="relu", bias_initializer=0.25
    )
    assert isinstance(layer, t3f.layers.TTDense)
    x = np.random.default_rng(9).standard_normal((16, 6)).astype(np.float32)
    model = keras.Sequential([keras.Input((6,)), layer])
    np.testing.assert_allclose(layer.b.numpy(), 0.25)
    kernel = t3f.full(layer.matrix).numpy()
    np.testing.assert_allclose(model(x), np.maximum(x @ kernel + 0.25, 0), rtol=1e-5, atol=1e-6)
    before = [w.numpy().copy() for w in layer.cores]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, np.ones((16, 4), np.float32), epochs=1, verbose=0)
    assert any(not np.allclose(b, w.numpy()) for b, w in zip(before, layer.cores))
    path = str(tmp_path / "kd.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.layers[0], t3f.nn.KerasDense)
    assert loaded.layers[0].tt_shape == [[2, 3], [2, 2]]
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)
    with pytest.raises(ValueError, match="output_dims"):
        t3f.nn.KerasDense([2, 3], [4])
