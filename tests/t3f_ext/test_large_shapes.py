"""Shapes beyond int64 are exact Python ints, and the dense ops refuse, before
allocating anything, a dense tensor that cannot be indexed or held."""

import math

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from t3f_ext import utils


def test_matrix_shape_is_exact_beyond_int64(dtype):
    modes = [10] * 20
    matrix = t3f.matrix_zeros((modes, modes), dtype=dtype)
    assert matrix.get_shape().as_list() == [10**20, 10**20]
    batch = t3f.random_matrix_batch((modes, [3] * 20), batch_size=5, dtype=dtype)
    assert batch.get_shape().as_list() == [5, 10**20, 3**20]
    lazy = t3f.lazy_shape(batch)
    assert [int(n) for n in lazy] == [5, 10**20, 3**20]
    assert "100000000000000000000" in str(matrix)


def test_dynamic_shape_widens_to_int64_and_refuses_beyond():
    rows = [10] * 12
    small = t3f.matrix_zeros(([10] * 4, [10] * 4))
    assert t3f.shape(small).dtype == tf.int32
    matrix = t3f.random_matrix_batch((rows, [1] * 12), batch_size=3)
    got = t3f.shape(matrix)
    assert got.dtype == tf.int64
    np.testing.assert_array_equal(got.numpy(), [3, 10**12, 1])
    huge = t3f.matrix_zeros(([10] * 20, [1] * 20))
    with pytest.raises(ValueError, match="tt: .*does not fit int64"):
        t3f.shape(huge)


@pytest.mark.parametrize(
    "make",
    [
        lambda: t3f.tensor_ones([10] * 20),
        lambda: t3f.random_matrix(([10] * 12, [10] * 12), tt_rank=3),
        lambda: t3f.random_tensor_batch([10] * 19, tt_rank=2, batch_size=10),
    ],
    ids=["tensor-1e20", "matrix-1e24", "batch-1e20"],
)
def test_full_refuses_sizes_beyond_int64(make):
    with pytest.raises(ValueError, match="tt: full.* more than int64"):
        t3f.full(make())


def test_full_refuses_more_than_memory():
    memory = utils.memory_bytes()
    if memory is None:
        pytest.skip("the OS does not report its memory")
    # The smallest power of 10 whose float32 dense tensor exceeds the memory.
    d = math.ceil(math.log10(memory / 4)) + 1
    with pytest.raises(ValueError, match="tt: full.*bytes of memory"):
        t3f.full(t3f.tensor_ones([10] * d))


def test_full_checks_its_largest_intermediate(monkeypatch):
    # Modes [100, 100, 1], ranks [1, 1, 100, 1]: the result has 1e4 entries,
    # but after the second core the contraction holds 1e4 * 100 numbers.
    cores = [np.ones([1, 100, 1]), np.ones([1, 100, 100]), np.ones([100, 1, 1])]
    tt = t3f.TensorTrain([c.astype(np.float32) for c in cores])
    np.testing.assert_allclose(t3f.full(tt).numpy(), 100 * np.ones([100, 100, 1]))
    monkeypatch.setattr(utils, "memory_bytes", lambda: 4 * 10**5)
    with pytest.raises(ValueError, match="1000000 elements"):
        t3f.full(tt)
    monkeypatch.setattr(utils, "memory_bytes", lambda: 4 * 10**6)
    assert t3f.full(tt).shape == (100, 100, 1)


def test_full_checks_inside_tf_function():
    tensor = t3f.tensor_ones([10] * 20)

    @tf.function
    def dense(tt):
        return t3f.full(tt)

    with pytest.raises(ValueError, match="more than int64"):
        dense(tensor)


def test_matmul_with_dense_refuses_huge_products():
    rows = [10] * 12
    tt = t3f.random_matrix((rows, [10, 10, 10] + [1] * 9), tt_rank=2)
    with pytest.raises(ValueError, match="a: the product.*memory"):
        t3f.matmul(tt, tf.ones([1000, 4]))
    with pytest.raises(ValueError, match="b: the product.*memory"):
        t3f.matmul(tf.ones([4, 1000]), t3f.transpose(tt))


def test_matmul_with_dense_of_ordinary_size_still_matches_numpy():
    rng = np.random.default_rng(0)
    tt = t3f.random_matrix(([2, 3], [4, 2]), tt_rank=2, dtype=tf.float64, seed=0)
    dense = t3f.full(tt).numpy()
    x = rng.normal(size=(8, 5))
    # Sums of a few O(1) products: absolute float64 round-off.
    np.testing.assert_allclose(t3f.matmul(tt, x).numpy(), dense @ x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        t3f.matmul(x.T[:, :6], tt).numpy(), x.T[:, :6] @ dense, rtol=1e-12, atol=1e-12
    )
