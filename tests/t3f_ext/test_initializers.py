"""t3f_ext.initializers: exact constants against NumPy, random ones by Monte
Carlo with tolerances from the standard error."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f


def test_constant_initializers(dtype):
    full = lambda tt: t3f.full(tt).numpy()  # noqa: E731
    np.testing.assert_array_equal(full(t3f.tensor_ones([3, 4, 2], dtype)), np.ones((3, 4, 2)))
    np.testing.assert_array_equal(full(t3f.tensor_zeros([3, 4], dtype)), np.zeros((3, 4)))
    np.testing.assert_array_equal(full(t3f.matrix_ones(((2, 3), (4, 1)), dtype)), np.ones((6, 4)))
    np.testing.assert_array_equal(full(t3f.matrix_zeros(((2, 3), None), dtype)), np.zeros((6, 1)))
    eye = t3f.eye([2, 3, 2], dtype)
    assert eye.dtype == dtype and eye.get_tt_ranks().as_list() == [1, 1, 1, 1]
    np.testing.assert_array_equal(full(eye), np.eye(12))
    batch = t3f.random_matrix_batch(((2, 3), (2, 2)), tt_rank=3, batch_size=2, dtype=dtype, seed=0)
    ones = t3f.ones_like_tt(batch)
    assert ones.batch_size == 2 and ones.dtype == dtype
    np.testing.assert_array_equal(full(ones), np.ones((2, 6, 4)))
    np.testing.assert_array_equal(full(t3f.zeros_like_tt(batch[0])), np.zeros((6, 4)))


def test_ranks_as_int_or_list_and_seeds():
    tt = t3f.random_tensor([3, 4, 5, 2], tt_rank=[1, 2, 4, 3, 1], seed=1)
    assert tt.get_tt_ranks().as_list() == [1, 2, 4, 3, 1]
    tt = t3f.random_matrix(((2, 2, 2), (3, 3, 3)), tt_rank=5, seed=1)
    assert tt.get_tt_ranks().as_list() == [1, 5, 5, 1]
    again = t3f.random_matrix(((2, 2, 2), (3, 3, 3)), tt_rank=5, seed=1)
    other = t3f.random_matrix(((2, 2, 2), (3, 3, 3)), tt_rank=5, seed=2)
    np.testing.assert_array_equal(t3f.full(tt).numpy(), t3f.full(again).numpy())
    assert not np.allclose(t3f.full(tt).numpy(), t3f.full(other).numpy())
    compiled = tf.function(
        lambda: t3f.full(t3f.glorot_initializer(((2, 2, 2), (3, 3, 3)), tt_rank=5, seed=7)),
        jit_compile=True,
    )()
    np.testing.assert_allclose(
        compiled.numpy(),
        t3f.full(t3f.glorot_initializer(((2, 2, 2), (3, 3, 3)), tt_rank=5, seed=7)).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    unseeded = t3f.tensor_with_random_cores([3, 4], tt_rank=2)
    assert unseeded.get_tt_ranks().as_list() == [1, 2, 1]


def assert_mean_square(samples, expected, n_se=5.0):
    """Checks E[x^2] over independent samples (axis 0) against ``expected``."""
    per_sample = np.mean(samples.reshape(samples.shape[0], -1) ** 2, axis=1)
    se = per_sample.std(ddof=1) / np.sqrt(per_sample.size)
    assert abs(per_sample.mean() - expected) < n_se * se, (per_sample.mean(), expected, se)


@pytest.mark.parametrize("tt_rank", [1, 3, [1, 2, 5, 1]])
def test_random_tensor_entry_statistics(dtype, tt_rank):
    batch = t3f.random_tensor_batch(
        [3, 4, 2], tt_rank=tt_rank, batch_size=2000, stddev=2.0, dtype=dtype, seed=3
    )
    samples = t3f.full(batch).numpy().astype(np.float64)
    assert_mean_square(samples, 4.0)
    shifted = t3f.random_tensor_batch(
        [3, 4, 2], tt_rank=tt_rank, batch_size=2000, mean=1.5, stddev=2.0, dtype=dtype, seed=4
    )
    values = t3f.full(shifted).numpy().astype(np.float64)
    per_sample = values.reshape(2000, -1).mean(axis=1)
    se = per_sample.std(ddof=1) / np.sqrt(2000)
    assert abs(per_sample.mean() - 1.5) < 5 * se
    assert_mean_square(values - 1.5, 4.0)


def test_random_matrix_and_fan_initializers():
    shape = ((2, 3, 2), (4, 1, 2))  # fan_in 12, fan_out 8
    batch = t3f.random_matrix_batch(
        shape, tt_rank=3, batch_size=2000, stddev=0.5, dtype=tf.float64, seed=5
    )
    assert_mean_square(t3f.full(batch).numpy(), 0.25)
    for init, variance in (
        (t3f.glorot_initializer, 2.0 / 20),
        (t3f.he_initializer, 2.0 / 12),
        (t3f.lecun_initializer, 1.0 / 12),
    ):
        samples = np.stack(
            [t3f.full(init(shape, tt_rank=2, dtype=tf.float64, seed=s)).numpy() for s in range(80)]
        )
        assert_mean_square(samples, variance)


def test_random_cores_statistics():
    tt = t3f.tensor_with_random_cores([50, 50], tt_rank=40, mean=1.0, stddev=3.0, seed=6)
    values = np.concatenate([c.numpy().ravel() for c in tt.tt_cores])
    assert abs(values.mean() - 1.0) < 5 * 3.0 / np.sqrt(values.size)
    assert abs(values.std() - 3.0) < 5 * 3.0 / np.sqrt(2 * values.size)
    batch = t3f.matrix_batch_with_random_cores(((2, 3), (2, 2)), tt_rank=2, batch_size=3, seed=1)
    assert batch.batch_size == 3 and batch.get_tt_ranks().as_list() == [1, 2, 1]
    batch = t3f.tensor_batch_with_random_cores([2, 3], batch_size=4)
    assert batch.batch_size == 4


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: t3f.random_tensor([3, 4], tt_rank=0), "tt_rank must be a positive"),
        (lambda: t3f.random_tensor([3, 4], tt_rank=[1, 2]), "tt_rank as a list must have 3"),
        (lambda: t3f.random_tensor([3, 4], tt_rank=[2, 2, 1]), "starting and ending with 1"),
        (lambda: t3f.random_tensor([3, 0]), "shape must be a non-empty list of positive ints"),
        (lambda: t3f.random_tensor([3, 4], stddev=-1.0), "stddev: expected a non-negative"),
        (
            lambda: t3f.random_tensor_batch([3, 4], batch_size=0),
            "batch_size must be a positive int",
        ),
        (lambda: t3f.random_matrix(((2, 3), (2,))), "two lists of equal length"),
        (lambda: t3f.glorot_initializer([2, 3]), "shape must be a pair"),
        (lambda: t3f.eye([2.5, 3]), "positive ints"),
    ],
)
def test_initializer_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
