"""``chunks.call_in_blocks``: blocks give the single call's results, seeds fold per block."""

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from tests.tf_modes import MODES, run_in_mode
from tfbayes.distributions import chunks
from tfbayes.distributions.gamma import sample_log_standard_gamma
from tfbayes.distributions.incomplete_gamma import gamma_log_sample_grad


@tf.function(jit_compile=True, autograph=False)
def _affine_kernel(x, y, scale):
    return scale * x + y, x - y


@tf.function(jit_compile=True, autograph=False)
def _uniform_kernel(x, seed):
    return x + tf.random.stateless_uniform(tf.shape(x), seed, dtype=x.dtype, alg="philox")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [1, 63, 64, 65, 200, 1000])
def test_blocks_equal_one_call(monkeypatch, mode, size):
    monkeypatch.setattr(chunks, "BLOCK_SIZE", 64)
    x = tf.constant(np.random.default_rng(size).normal(size=size), tf.float32)
    y = tf.range(size, dtype=tf.float32)
    got = run_in_mode(
        lambda x, y: chunks.call_in_blocks(_affine_kernel, (x, y), (0.0, 0.0), 2.0), mode, x, y
    )
    np.testing.assert_array_equal(got[0], 2.0 * x + y)  # exact whether or not XLA fuses
    np.testing.assert_array_equal(got[1], x - y)


@pytest.mark.parametrize("size", [64, 65, 1000])
def test_each_block_gets_its_own_seed(monkeypatch, size):
    monkeypatch.setattr(chunks, "BLOCK_SIZE", 64)
    seed = tf.constant([3, 4])
    x = tf.zeros([size])
    draws = [
        run_in_mode(
            lambda x: chunks.call_in_blocks(_uniform_kernel, (x,), (0.0,), seed=seed), mode, x
        ).numpy()
        for mode in MODES
    ]
    for other in draws[1:]:
        np.testing.assert_array_equal(other, draws[0])
    # One block: the seed itself; several: stateless_fold_in(seed, i) for block i.
    num_blocks = -(-size // 64)
    block = chunks._bucket(-(-size // num_blocks))  # every block but the last is a bucket
    for i, start in enumerate(range(0, size, block)):
        block_seed = (
            seed
            if num_blocks == 1
            else tf.random.experimental.stateless_fold_in(seed, i, alg="philox")
        )
        part = draws[0][start : start + block]
        expected = _uniform_kernel(tf.zeros([chunks._bucket(len(part))]), seed=block_seed)
        np.testing.assert_array_equal(part, expected.numpy()[: len(part)])
    assert len(np.unique(draws[0])) == size


def test_gamma_gradient_in_blocks_equals_small_calls():
    # More than one block at the real BLOCK_SIZE: every element as computed on its own slice.
    size = chunks.BLOCK_SIZE + 5000
    rng = np.random.default_rng(0)
    a = tf.constant(rng.choice([0.01, 0.7, 2.5, 40.0], size), tf.float32)
    log_x = tf.math.log(tf.constant(rng.gamma(a.numpy()), tf.float32) + 1e-30)
    whole = tf.function(gamma_log_sample_grad)(a, log_x).numpy()
    for start in (0, chunks.BLOCK_SIZE // 2 - 3, size - 4000):
        part = gamma_log_sample_grad(a[start : start + 4000], log_x[start : start + 4000])
        np.testing.assert_array_equal(whole[start : start + 4000], part.numpy())


def test_gamma_draws_in_blocks_follow_the_law_in_every_mode():
    # The seed is an argument: TF's graph optimizer would evaluate a kernel of constants with
    # its own (non-XLA) random kernels, which draw other numbers.
    size = chunks.BLOCK_SIZE + 1000
    draws = [
        run_in_mode(
            lambda seed: sample_log_standard_gamma([size], 0.7, seed), mode, tf.constant([5, 6])
        ).numpy()
        for mode in MODES
    ]
    for other in draws[1:]:  # the same draws, up to XLA's fusion of the last operations
        np.testing.assert_allclose(other, draws[0], rtol=1e-6, atol=8 * np.finfo(np.float32).eps)
    # Both blocks (and their seam) follow Gamma(0.7): Kolmogorov-Smirnov at level 1e-3.
    for part in (draws[0][: size // 2], draws[0][size // 2 :]):
        assert (
            scipy.stats.kstest(np.exp(part.astype(np.float64)), scipy.stats.gamma(0.7).cdf).pvalue
            > 1e-3
        )
