"""TTDense against a dense NumPy product with the full kernel, plus its shape logic."""

import itertools
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import t3f_ext
from t3f_ext.layers import TTDense
from t3f_ext.layers import factorization
from t3f_ext.layers.contraction import dense_tt_matmul
from t3f_ext.layers.cores import core_stddev

MODES = ["eager", "function", "jit"]


def run(fn, mode, *args):
    if mode == "function":
        fn = tf.function(fn)
    elif mode == "jit":
        fn = tf.function(fn, jit_compile=True)
    return fn(*args)


def dense_from_cores(cores):
    """Independent NumPy reconstruction of a TT-matrix [r, m, n, r'] list."""
    full = np.ones((1, 1, 1))
    for core in cores:
        full = np.einsum("abr,rmns->ambns", full, core)
        full = full.reshape(full.shape[0] * full.shape[1], full.shape[2] * full.shape[3], -1)
    return full[:, :, 0]


def randomize_bias(layer, rng):
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype(layer.bias.dtype))


@pytest.mark.parametrize("right_to_left", [True, False])
def test_contraction_matches_numpy_in_both_orders(dtype, right_to_left):
    rng = np.random.default_rng(0)
    rows, cols, ranks = (3, 4, 2), (2, 5, 3), (1, 3, 4, 1)
    cores = [
        rng.normal(size=(ranks[k], rows[k], cols[k], ranks[k + 1])).astype(dtype) for k in range(3)
    ]
    x = rng.normal(size=(7, 24)).astype(dtype)
    out = dense_tt_matmul(
        tf.constant(x), [tf.constant(c) for c in cores], rows, cols, right_to_left
    )
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), x @ dense_from_cores(cores), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("input_shape", [(5, 24), (2, 3, 24)], ids=["2d", "3d"])
def test_equals_dense_layer_with_full_kernel(dtype, mode, input_shape):
    rng = np.random.default_rng(1)
    layer = TTDense(30, tt_rank=3, activation="tanh", dtype=np.dtype(dtype).name)
    layer.build((None, 24))
    randomize_bias(layer, rng)
    x = rng.normal(size=input_shape).astype(dtype)
    kernel = t3f_ext.full(layer.kernel).numpy()
    np.testing.assert_allclose(
        kernel, dense_from_cores([c.numpy() for c in layer.cores]), rtol=1e-5, atol=1e-6
    )
    dense = keras.layers.Dense(30, activation="tanh", dtype=np.dtype(dtype).name)
    dense.build((None, 24))
    dense.set_weights([kernel, layer.bias.numpy()])
    out = run(lambda v: layer(v), mode, tf.constant(x))
    assert out.dtype == dtype and out.shape == input_shape[:-1] + (30,)
    expected = np.tanh(x @ kernel + layer.bias.numpy())
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(out.numpy(), dense(x).numpy(), rtol=tol, atol=tol)


def test_given_factorization_and_per_core_ranks_are_used():
    layer = TTDense(
        units=None,
        output_factorization=[2, 3, 5],
        input_factorization=[4, 2, 3],
        tt_rank=[1, 2, 3, 1],
    )
    layer.build((None, 24))
    assert layer.units == 30
    assert (layer.row_dims, layer.col_dims, layer.tt_ranks) == ((4, 2, 3), (2, 3, 5), [1, 2, 3, 1])
    assert [tuple(c.shape) for c in layer.cores] == [(1, 4, 2, 2), (2, 2, 3, 3), (3, 3, 5, 1)]


def test_ranks_are_capped_at_the_largest_useful_rank():
    layer = TTDense(6, tt_rank=100, input_factorization=[2, 3], output_factorization=[3, 2])
    layer.build((None, 6))
    assert layer.tt_ranks == [1, 6, 1]  # min(2*3, 3*2)
    assert factorization.normalize_tt_ranks([2, 50, 2], (2, 2, 2, 2), (2, 2, 2, 2)) == [
        1,
        2,
        8,
        2,
        1,
    ]


def test_auto_shape_is_balanced_and_flop_optimal_among_orderings():
    rows, cols, ranks, right_to_left = factorization.choose_tt_matrix_shape(784, 1024, 8)
    assert sorted(rows) == [4, 4, 7, 7] and sorted(cols) == [4, 4, 8, 8]
    chosen = factorization.tt_matmul_flops(rows, cols, ranks, right_to_left)
    # Brute force over every ordering of both factor multisets and both orders.
    best = min(
        factorization.tt_matmul_flops(r, c, factorization.normalize_tt_ranks(8, r, c), rtl)
        for r in set(itertools.permutations(rows))
        for c in set(itertools.permutations(cols))
        for rtl in (True, False)
    )
    assert chosen == best
    assert factorization.default_num_cores(4096, 4096) == 4
    assert factorization.balanced_factorizations(25088, 5) == [(7, 7, 8, 8, 8)]


def test_flop_count_matches_the_matmuls_of_the_contraction():
    rows, cols, ranks = (3, 4, 2), (2, 5, 3), [1, 3, 4, 1]
    # Right to left, step k multiplies [X M_{<k} N_{>k}, m_k r_k] by [m_k r_k, r_{k-1} n_k].
    expected = sum(
        2
        * math.prod(rows[:k])
        * math.prod(cols[k + 1 :])
        * rows[k]
        * ranks[k + 1]
        * ranks[k]
        * cols[k]
        for k in range(3)
    )
    assert factorization.tt_matmul_flops(rows, cols, ranks, True) == expected
    assert factorization.tt_matmul_flops((6,), (5,), [1, 1], True) == 2 * 6 * 5
    assert factorization.tt_matmul_flops(rows, cols, ranks, False) == factorization.tt_matmul_flops(
        rows[::-1], cols[::-1], ranks[::-1], True
    )


@pytest.mark.parametrize(
    "initializer, variance",
    [("glorot", 2 / (12 + 20)), ("he", 2 / 12), ("lecun", 1 / 12), (0.3, 0.09)],
)
def test_initializer_gives_the_target_variance_of_the_full_matrix(initializer, variance):
    rows, cols, ranks = (3, 4), (5, 4), [1, 3, 1]
    layer = TTDense(
        20,
        tt_rank=3,
        input_factorization=rows,
        output_factorization=cols,
        kernel_initializer=initializer,
    )
    layer.build((None, 12))
    stddev = core_stddev(layer.kernel_initializer, 12, 20, ranks)
    core_values = np.concatenate([c.numpy().ravel() for c in layer.cores])
    assert abs(core_values.std() - stddev) < 4 * stddev / np.sqrt(2 * core_values.size)
    # Monte Carlo over independent cores: the full entries' variance.
    rng = np.random.default_rng(2)
    samples = 20000
    first = rng.normal(0, stddev, size=(samples, 3))
    second = rng.normal(0, stddev, size=(samples, 3))
    entries = (first * second).sum(axis=1)  # W[0, 0] = sum_a G1[0,0,0,a] G2[a,0,0,0]
    estimate = entries.var()
    standard_error = np.sqrt((np.mean(entries**4) - estimate**2) / samples)
    assert abs(estimate - variance) < 5 * standard_error


def test_every_core_is_a_trainable_weight_counted_by_summary():
    layer = TTDense(64, tt_rank=4)
    model = keras.Sequential([keras.Input((48,)), layer])
    cores = [v for v in model.trainable_weights if "core" in v.path]
    assert len(cores) == len(layer.row_dims) and len(model.trainable_weights) == len(cores) + 1
    expected = sum(int(np.prod(c.shape)) for c in layer.cores) + 64
    assert model.count_params() == expected < 48 * 64


def test_fit_with_jit_changes_every_core():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 24)).astype("float32")
    y = rng.normal(size=(64, 30)).astype("float32")
    layer = TTDense(30, tt_rank=3)
    model = keras.Sequential([keras.Input((24,)), layer])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=True)
    before = [c.numpy().copy() for c in layer.cores]
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    assert all(np.abs(c.numpy() - b).max() > 1e-4 for c, b in zip(layer.cores, before))
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_get_config_round_trips_and_keras_file_reproduces_outputs(tmp_path):
    inputs = keras.Input((5, 24))
    layer = TTDense(
        30,
        tt_rank=[2, 3],
        num_cores=3,
        activation="relu",
        kernel_regularizer=keras.regularizers.L2(1e-3),
    )
    model = keras.Model(inputs, layer(inputs))
    config = layer.get_config()
    clone = TTDense.from_config(config)
    clone.build((None, 24))
    assert clone.get_config() == config
    x = np.random.default_rng(4).normal(size=(3, 5, 24)).astype("float32")
    path = str(tmp_path / "tt_dense.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
    assert isinstance(loaded.layers[-1], TTDense)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"units": 30, "input_factorization": [5, 6]},
            ValueError,
            r"product 30, but the dimension is 24",
        ),
        (
            {"units": 30, "output_factorization": [4, 4]},
            ValueError,
            r"product 16, but the dimension is 30",
        ),
        ({"units": 30, "tt_rank": 0}, ValueError, r"`tt_rank` must be positive, got 0"),
        ({"units": 30, "tt_rank": "8"}, TypeError, r"`tt_rank` must be a positive int"),
        (
            {"units": 30, "tt_rank": [2, 2, 2, 2], "num_cores": 2},
            ValueError,
            r"1 internal ranks .* got 4",
        ),
        (
            {"units": 30, "tt_rank": [2, 3, 1], "num_cores": 2},
            ValueError,
            r"must start and end with 1",
        ),
        ({"units": 0}, ValueError, r"`units` must be a positive int"),
        (
            {"units": 30, "kernel_initializer": "uniform"},
            ValueError,
            r"`kernel_initializer` must be one of",
        ),
        (
            {"units": 30, "num_cores": 3, "input_factorization": [4, 6]},
            ValueError,
            r"same number of factors",
        ),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        layer = TTDense(**kwargs)
        layer.build((None, 24))
