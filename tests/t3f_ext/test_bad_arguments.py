"""Inputs that used to give silent wrong results or exhaust memory now raise
an error that names the argument."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from t3f_ext.layers import TTEmbedding


def test_round_refuses_non_finite_epsilon():
    tt = t3f.random_tensor([3, 4, 5], tt_rank=3, seed=0)
    for bad in (float("nan"), float("inf"), -0.1):
        with pytest.raises(ValueError, match="epsilon: expected"):
            t3f.round(tt, epsilon=bad)
        with pytest.raises(ValueError, match="epsilon: expected"):
            t3f.to_tt_tensor(np.ones((2, 3)), epsilon=bad)


def test_frobenius_norm_refuses_bad_epsilon():
    tt = t3f.random_tensor([3, 4], tt_rank=2, seed=0, dtype=tf.float64)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="epsilon: expected"):
            t3f.frobenius_norm(tt, epsilon=bad)
    np.testing.assert_allclose(
        t3f.frobenius_norm(tt, epsilon=0.0), np.linalg.norm(t3f.full(tt)), rtol=1e-12
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda v: t3f.random_tensor([2, 3], stddev=v),
        lambda v: t3f.random_matrix(([2, 3], [2, 2]), mean=v),
        lambda v: t3f.tensor_with_random_cores([2, 3], stddev=v),
    ],
    ids=["random_tensor-stddev", "random_matrix-mean", "random_cores-stddev"],
)
def test_random_initializers_refuse_non_finite_moments(make):
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="(stddev|mean): expected a finite"):
            make(bad)


def test_tt_svd_refuses_empty_arrays():
    for shape in ((0,), (3, 0, 2)):
        with pytest.raises(ValueError, match="tens: expected a non-empty"):
            t3f.to_tt_tensor(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match="mat: expected a non-empty"):
        t3f.to_tt_matrix(np.zeros((0, 4), np.float32), ((1, 1), (2, 2)))


def test_layer_initializers_cap_ranks_others_refuse_huge_cores():
    # The rank of the k-th unfolding of a full [4, 9] matrix with modes
    # (2, 3) x (2, 3) is min(4, 9) = 4: the glorot cores are capped there.
    glorot = t3f.glorot_initializer(([2, 2], [3, 3]), tt_rank=10**6, seed=1)
    assert glorot.get_tt_ranks().as_list() == [1, 6, 1]
    he = t3f.he_initializer(([2, 2, 2], [1, 1, 1]), tt_rank=[1, 9, 9, 1])
    assert he.get_tt_ranks().as_list() == [1, 2, 2, 1]
    # The entries keep the requested variance 2 / (fan_in + fan_out) at the
    # capped ranks: E[x^2] of one entry over seeds, within 4 standard errors.
    squares = np.array(
        [
            t3f.full(
                t3f.glorot_initializer(([2, 2], [3, 3]), tt_rank=50, seed=s, dtype=tf.float64)
            ).numpy()[1, 2]
            ** 2
            for s in range(400)
        ]
    )
    stderr = squares.std() / np.sqrt(squares.size)
    assert abs(squares.mean() - 2.0 / (4 + 9)) < 4 * stderr
    # T3F's random initializers keep over-full ranks (orthogonalization and
    # rounding reduce them) but refuse cores that cannot be allocated.
    assert t3f.random_tensor([2, 3, 4], tt_rank=5).get_tt_ranks().as_list() == [1, 5, 5, 1]
    for make in (
        lambda: t3f.random_tensor([10] * 3, tt_rank=10**6),
        lambda: t3f.random_matrix(([4, 4], [4, 4]), tt_rank=10**9),
        lambda: t3f.tensor_batch_with_random_cores([3, 3], tt_rank=10**10, batch_size=2),
    ):
        with pytest.raises(ValueError, match="tt_rank: TT-cores of shapes"):
            make()


def _layer():
    layer = TTEmbedding(100, 8, tt_rank=2, num_cores=2)
    layer.build()
    return layer


@pytest.mark.parametrize("bad", [100, -1, 10**6, 2**32 + 5])
def test_embedding_refuses_out_of_range_ids_eagerly(bad):
    layer = _layer()
    assert layer.row_dims == (10, 10)
    with pytest.raises(ValueError, match=r"`inputs`: expected ids in \[0, 100\)"):
        layer(tf.constant([3, bad], tf.int64))


def test_embedding_asserts_in_tf_function():
    layer = _layer()
    fn = tf.function(lambda ids: layer(ids))
    np.testing.assert_allclose(fn(tf.constant([0, 99])), layer(tf.constant([0, 99])), rtol=1e-6)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected ids"):
        fn(tf.constant([5, 100]))


def test_embedding_gives_nan_rows_under_xla():
    layer = _layer()
    fn = tf.function(lambda ids: layer(ids), jit_compile=True)
    out = fn(tf.constant([[7, -1], [100, 99]])).numpy()
    assert np.all(np.isnan(out[0, 1])) and np.all(np.isnan(out[1, 0]))
    table = t3f.full(layer.embeddings).numpy()
    np.testing.assert_allclose(out[0, 0], table[7], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1, 1], table[99], rtol=1e-5, atol=1e-6)
