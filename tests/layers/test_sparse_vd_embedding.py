"""SparseVDEmbedding: against keras.layers.Embedding and NumPy, noise sharing, word pruning, I/O."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes import sparsity
from tfbayes.layers import SparseVDDense, SparseVDEmbedding, SparseVDLSTM, set_num_examples
from tf_modes import run_in_mode

THRESHOLD = 3.0


def _numpy_kept(theta, log_sigma2):
    """The inference mask of Sparse VD, computed independently in NumPy (float64)."""
    log_alpha = np.clip(log_sigma2 - np.log(np.asarray(theta, np.float64) ** 2 + 1e-8), -8, 8)
    return log_alpha < THRESHOLD


@pytest.mark.parametrize("vocabulary_pruning", [False, True])
def test_tiny_noise_equals_keras_embedding(dtype, vocabulary_pruning):
    """log sigma^2 -> -inf and word means 1: the same vectors and mask as keras.layers.Embedding."""
    ids = np.array([[0, 3, 7, 3], [9, 0, 1, 2]])
    reference = keras.layers.Embedding(10, 5, mask_zero=True, dtype=dtype)
    ours = SparseVDEmbedding(
        10,
        5,
        mask_zero=True,
        vocabulary_pruning=vocabulary_pruning,
        log_sigma2_initializer=-80.0,
        dtype=dtype,
        num_examples=10,
    )
    reference.build()
    ours.build()
    ours.embeddings.assign(reference.get_weights()[0])
    tol = 1e-6 if dtype == np.float32 else 1e-13
    for training in (False, True):
        np.testing.assert_allclose(
            np.asarray(ours(ids, training=training)), np.asarray(reference(ids)), atol=tol, rtol=tol
        )
    np.testing.assert_array_equal(
        np.asarray(ours.compute_mask(ids)), np.asarray(reference.compute_mask(ids))
    )


@pytest.mark.parametrize("mode", ["eager", "function", "jit"])
def test_inference_equals_numpy_with_pruned_weights_and_words(dtype, mode):
    rng = np.random.default_rng(0)
    layer = SparseVDEmbedding(12, 4, vocabulary_pruning=True, dtype=dtype)
    layer.build()
    theta, log_sigma2 = rng.normal(size=(12, 4)), rng.uniform(-10, 5, size=(12, 4))
    words, words_log_sigma2 = rng.uniform(0.5, 1.5, size=12), rng.uniform(-10, 6, size=12)
    for variable, value in [
        (layer.embeddings, theta),
        (layer.embeddings_log_sigma2, log_sigma2),
        (layer.vocabulary_group, words),
        (layer.vocabulary_group_log_sigma2, words_log_sigma2),
    ]:
        variable.assign(value.astype(dtype))
    word_kept = _numpy_kept(words, words_log_sigma2)
    assert 0 < word_kept.sum() < 12
    table = theta * _numpy_kept(theta, log_sigma2) * (words * word_kept)[:, None]
    ids = rng.integers(0, 12, size=(3, 7))
    got = run_in_mode(lambda v: layer(v, training=False), mode, ids)
    np.testing.assert_allclose(np.asarray(got), table[ids], rtol=1e-6)
    expected_words = word_kept & np.any(_numpy_kept(theta, log_sigma2), axis=1)
    np.testing.assert_array_equal(layer.word_mask(), expected_words)
    assert layer.sparsity_groups()["words"] == (int(expected_words.sum()), 12)


def _probe(dtype, vocabulary_pruning, weight_sigma, word_sigma):
    layer = SparseVDEmbedding(
        3, 2, vocabulary_pruning=vocabulary_pruning, seed=5, dtype=dtype, num_examples=10
    )
    layer.build()
    theta = np.array([[0.5, -1.0], [2.0, 0.3], [1.0, 1.0]])
    layer.embeddings.assign(theta.astype(dtype))
    layer.embeddings_log_sigma2.assign(np.full((3, 2), 2 * np.log(weight_sigma), dtype))
    if vocabulary_pruning:
        layer.vocabulary_group.assign(np.array([1.0, 0.8, 1.2], dtype))
        layer.vocabulary_group_log_sigma2.assign(np.full(3, 2 * np.log(word_sigma), dtype))
    return layer, theta


def _assert_mc_moments(samples, mean, var):
    """Sample mean and variance within 5 standard errors of the exact moments."""
    n = samples.size
    centered4 = np.mean((samples - samples.mean()) ** 4)
    assert abs(samples.mean() - mean) < 5 * np.sqrt(var / n), (samples.mean(), mean)
    assert abs(samples.var() - var) < 5 * np.sqrt((centered4 - var**2) / n), (samples.var(), var)


def test_word_noise_is_one_draw_per_sequence(dtype):
    """A word has the same noisy vector at every position of a sequence, independent across
    sequences, with z ~ N(mu, sigma^2)."""
    layer, theta = _probe(dtype, True, weight_sigma=1e-30, word_sigma=0.25)
    ids = np.tile([1, 0, 1, 1], (20000, 1))
    out = np.asarray(layer(ids, training=True)).astype(np.float64)
    np.testing.assert_allclose(out[:, 2:], np.repeat(out[:, :1], 2, axis=1), rtol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1] / out[:, 0, 0], theta[1, 1] / theta[1, 0], rtol=1e-5)
    _assert_mc_moments(out[:, 0, 0] / theta[1, 0], 0.8, 0.0625)


def test_weight_noise_is_one_draw_per_batch(dtype):
    """The embedding matrix is sampled once per batch: equal rows in a batch, fresh per call."""
    layer, theta = _probe(dtype, False, weight_sigma=0.3, word_sigma=None)
    ids = np.array([[2, 2], [0, 2]])
    step = tf.function(lambda v: layer(v, training=True), jit_compile=True)
    draws = []
    for _ in range(600):
        out = np.asarray(step(ids)).astype(np.float64)
        np.testing.assert_array_equal(out[0, 0], out[1, 1])
        draws.append(out[0, 0, 0])
    _assert_mc_moments(np.array(draws), theta[2, 0], 0.09)


def _planted_words(n, rng):
    """Sequences of 6 noise words (5..29) with one planted word: 1, 2 positive, 3, 4 negative."""
    ids = rng.integers(5, 30, size=(n, 6))
    planted = rng.integers(1, 5, size=n)
    ids[np.arange(n), rng.integers(0, 6, size=n)] = planted
    return ids.astype("int32"), (planted <= 2).astype("float32")


def test_planted_irrelevant_words_are_pruned():
    """Embedding -> LSTM -> Dense: exactly the 4 sentiment words survive, the 25 noise words go."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    ids, y = _planted_words(2000, rng)
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            SparseVDEmbedding(
                30, 8, vocabulary_pruning=True, log_sigma2_initializer=-6.0, name="embedding"
            ),
            SparseVDLSTM(6, log_sigma2_initializer=-6.0, seed=1),
            SparseVDDense(1, activation="sigmoid", log_sigma2_initializer=-6.0),
        ]
    )
    set_num_examples(model, len(ids))
    model.compile(keras.optimizers.Adam(0.02), "binary_crossentropy", metrics=["accuracy"])
    model.fit(ids, y, batch_size=100, epochs=25, verbose=0)
    ids_test, y_test = _planted_words(1000, rng)
    assert model.evaluate(ids_test, y_test, verbose=0)[1] > 0.97
    kept = model.get_layer("embedding").word_mask()
    assert kept[1:5].all() and kept[5:].sum() <= 2, np.flatnonzero(kept)


def test_fit_with_jit_compile():
    """model.fit(jit_compile=True) trains every variational variable of the three layers."""
    ids, y = _planted_words(64, np.random.default_rng(1))
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            SparseVDEmbedding(30, 4, vocabulary_pruning=True),
            SparseVDLSTM(3),
            SparseVDDense(1),
        ]
    )
    set_num_examples(model, 64)
    model.compile(keras.optimizers.Adam(0.01), "mse", jit_compile=True)
    before = [np.asarray(v).copy() for v in model.trainable_weights]
    history = model.fit(ids, y, batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    for old, variable in zip(before, model.trainable_weights):
        assert not np.array_equal(old, np.asarray(variable)), variable.path


def test_config_round_trip_and_keras_file(tmp_path):
    layer = SparseVDEmbedding(
        20,
        3,
        embeddings_initializer="normal",
        mask_zero=True,
        vocabulary_pruning=True,
        prior="ard",
        threshold=2.0,
        seed=4,
        num_examples=50,
    )
    clone = SparseVDEmbedding.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential(
        [keras.Input((5,), dtype="int32"), layer, keras.layers.GlobalAveragePooling1D()]
    )
    layer.embeddings_log_sigma2.assign(
        np.random.default_rng(2).uniform(-10, 6, size=(20, 3)).astype("float32")
    )
    path = tmp_path / "embedding.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    ids = np.random.default_rng(3).integers(0, 20, size=(4, 5))
    np.testing.assert_array_equal(loaded.predict(ids, verbose=0), model.predict(ids, verbose=0))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(input_dim=0, output_dim=3), "input_dim"),
        (dict(input_dim=5, output_dim=2.0), "output_dim"),
        (dict(input_dim=5, output_dim=3, threshold="3"), "threshold"),
        (dict(input_dim=5, output_dim=3, prior="normal"), "prior"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseVDEmbedding(**kwargs)


def test_missing_num_examples_in_training():
    with pytest.raises(ValueError, match="num_examples"):
        SparseVDEmbedding(5, 2)(np.zeros((1, 3), "int32"), training=True)


def test_compress_keeps_only_kept_words(dtype):
    """compress(): a vocabulary remap plus a table of the kept words, with equal predictions."""
    rng = np.random.default_rng(7)
    model = keras.Sequential(
        [
            keras.Input((6,), dtype="int32"),
            SparseVDEmbedding(25, 4, vocabulary_pruning=True, dtype=dtype, name="words"),
            keras.layers.GlobalAveragePooling1D(dtype=dtype),
            SparseVDDense(3, dtype=dtype),
        ]
    )
    embedding = model.get_layer("words")
    embedding.vocabulary_group_log_sigma2.assign(rng.uniform(-10, 6, size=25).astype(dtype))
    embedding.embeddings_log_sigma2.assign(rng.uniform(-10, 3, size=(25, 4)).astype(dtype))
    compressed = sparsity.compress(model)
    ids = rng.integers(0, 25, size=(20, 6))
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(
        compressed.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=tol, rtol=tol
    )
    remap, table = compressed.layers[:2]
    kept = np.flatnonzero(embedding.word_mask())
    assert 0 < kept.size < 25
    np.testing.assert_array_equal(remap.get_vocabulary()[1:], kept)
    assert table.input_dim == kept.size + 1
