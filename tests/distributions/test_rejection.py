"""rejection_sample: every element gets an accepted draw from the right law, in every mode."""

import numpy as np
import pytest
import scipy.stats as st
import tensorflow as tf

from tfbayes.distributions.rejection import rejection_sample


def _uniform_below(params, seed):
    """Proposes U(0, 1) and accepts it below ``p``: accepted draws are U(0, p)."""
    (p,) = params
    value = tf.random.stateless_uniform(tf.shape(p), seed, dtype=p.dtype, alg="philox")
    return value, value < p


@pytest.mark.parametrize("mode", ["eager", "function", "jit"])
@pytest.mark.parametrize("levels, shrink", [(0, 2), (3, 2), (2, 1000)])
def test_accepted_draws_follow_the_law(mode, levels, shrink):
    # (2, 1000): buffers far too small for 60-90% rejected, so the overflow path runs.
    p = tf.constant(np.repeat([0.1, 0.4, 0.95], 4000), tf.float64)

    def draw():
        return rejection_sample(
            _uniform_below, (p,), tf.constant([3, 4]), levels=levels, shrink=shrink, max_rounds=1000
        )

    fn = draw if mode == "eager" else tf.function(draw, jit_compile=(mode == "jit"))
    value = fn().numpy()
    np.testing.assert_array_equal(value, fn().numpy())
    assert np.all(value < p.numpy())
    for j, bound in enumerate([0.1, 0.4, 0.95]):
        assert st.kstest(value[4000 * j : 4000 * (j + 1)] / bound, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("size", [0, 1, 5])
def test_small_sizes(size):
    p = tf.fill([size], tf.constant(0.5, tf.float32))
    for jit in (False, True):
        value = tf.function(
            lambda: rejection_sample(
                _uniform_below, (p,), tf.constant([1, 2]), levels=3, shrink=2, max_rounds=1000
            ),
            jit_compile=jit,
        )().numpy()
        assert value.shape == (size,) and np.all(value < 0.5)
