"""TTEmbedding against a gather on the full table, without ever forming the table."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import t3f_ext
from t3f_ext.layers import TTEmbedding

MODES = ["eager", "function", "jit"]


def full_table(layer):
    return t3f_ext.full(layer.embeddings).numpy()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "input_dim, row_dims",
    [(1000, (10, 10, 10)), (997, (10, 10, 10))],
    ids=["exact", "padded-prime"],
)
def test_equals_gather_on_the_full_table(dtype, mode, input_dim, row_dims):
    layer = TTEmbedding(input_dim, 24, tt_rank=4, dtype=np.dtype(dtype).name)
    layer.build()
    assert layer.row_dims == row_dims and layer.col_dims == (4, 3, 2)
    indices = np.random.default_rng(0).integers(0, input_dim, size=(3, 5))
    indices[0, :3] = [0, input_dim - 1, 99]
    fn = lambda v: layer(v)  # noqa: E731
    if mode != "eager":
        fn = tf.function(fn, jit_compile=mode == "jit")
    out = fn(tf.constant(indices)).numpy()
    assert out.dtype == dtype and out.shape == (3, 5, 24)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(out, full_table(layer)[indices], rtol=tol, atol=tol)


def test_lookup_never_materializes_the_table():
    vocab, dim, batch = 20000, 64, 8
    layer = TTEmbedding(vocab, dim, tt_rank=8)
    layer.build()
    graph = (
        tf.function(lambda v: layer(v))
        .get_concrete_function(tf.TensorSpec([batch], tf.int32))
        .graph
    )
    largest = max(
        int(np.prod(t.shape.as_list()))
        for op in graph.get_operations()
        for t in op.outputs
        if t.shape.is_fully_defined() and t.shape.rank
    )
    largest_core = max(int(np.prod(c.shape)) for c in layer.cores)
    # Nothing bigger than a core or the [batch, D, rank] chain state exists.
    assert largest <= max(largest_core, batch * dim * 8) < vocab * dim // 100


def test_mask_zero_and_trainable_cores():
    layer = TTEmbedding(
        60,
        12,
        tt_rank=3,
        mask_zero=True,
        input_factorization=[3, 4, 5],
        output_factorization=[2, 2, 3],
    )
    inputs = keras.Input((4,), dtype="int32")
    pooled = keras.layers.GlobalAveragePooling1D()(layer(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    ids = np.array([[5, 7, 0, 0], [59, 1, 2, 0]])
    np.testing.assert_array_equal(layer.compute_mask(ids).numpy(), ids != 0)
    table = full_table(layer)
    expected_pooled = np.stack([table[[5, 7]].mean(0), table[[59, 1, 2]].mean(0)])
    dense = model.layers[-1]
    np.testing.assert_allclose(
        model(ids).numpy(),
        expected_pooled @ dense.kernel.numpy() + dense.bias.numpy(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert len(model.trainable_weights) == 3 + 2
    assert layer.count_params() == 1 * 3 * 2 * 3 + 3 * 4 * 2 * 3 + 3 * 5 * 3 * 1


def test_fit_with_jit_changes_every_core_and_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 500, size=(64, 6))
    targets = rng.normal(size=(64, 6, 16)).astype("float32")
    layer = TTEmbedding(500, 16, tt_rank=4)
    model = keras.Sequential([keras.Input((6,), dtype="int32"), layer])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=True)
    before = [c.numpy().copy() for c in layer.cores]
    model.fit(ids, targets, epochs=2, batch_size=16, verbose=0)
    assert all(np.abs(c.numpy() - b).max() > 1e-4 for c, b in zip(layer.cores, before))
    config = layer.get_config()
    assert TTEmbedding.from_config(config).get_config() == config
    path = str(tmp_path / "tt_embedding.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(ids[:3]).numpy(), model(ids[:3]).numpy())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"input_factorization": [5, 5, 5]}, ValueError, r"product 125, which must be >= 1000"),
        ({"output_factorization": [2, 2, 5]}, ValueError, r"product 20, but the dimension is 24"),
        (
            {"num_cores": 2, "output_factorization": [4, 3, 2]},
            ValueError,
            r"must agree on the number of cores",
        ),
        ({"tt_rank": [4, 4, 4, 4, 4]}, ValueError, r"2 internal ranks"),
        ({"tt_rank": 2.5}, ValueError, r"`tt_rank` as a float .* must be in \(0, 1\], got 2.5"),
        ({"tt_rank": "8"}, TypeError, r"`tt_rank` must be a positive int"),
        ({"input_dim": 0}, ValueError, r"`input_dim` must be a positive int, got 0"),
        ({"embeddings_initializer": -1.0}, ValueError, r"`embeddings_initializer` must be one of"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    kwargs = {"input_dim": 1000, "output_dim": 24, **kwargs}
    with pytest.raises(error, match=message):
        TTEmbedding(**kwargs)
