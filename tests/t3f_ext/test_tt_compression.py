"""from_dense / compress_model: TT-SVD of trained layers, checked against the originals and NumPy SVD."""

import keras
import numpy as np
import pytest

from t3f_ext.layers import TTConv2D, TTDense, TTEmbedding, compress_model, from_dense


def built(layer, shape, dtype="float32"):
    layer.build(shape)
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(size=w.shape).astype(dtype) for w in layer.get_weights()])
    return layer


def tolerance(dtype):
    return 1e-4 if dtype == np.float32 else 1e-10


@pytest.mark.parametrize("input_shape", [(5, 24), (2, 3, 24)], ids=["2d", "3d"])
def test_dense_at_full_rank_is_reproduced(dtype, input_shape):
    dense = built(
        keras.layers.Dense(30, activation="sigmoid", dtype=np.dtype(dtype).name), (None, 24), dtype
    )
    tt = from_dense(dense, tt_rank=1000)
    assert isinstance(tt, TTDense) and tt.name == dense.name + "_tt"
    assert tt.tt_ranks == [1] + [min(a, b) for a, b in zip(*_unfolding_sizes(tt))] + [1]
    x = np.random.default_rng(1).normal(size=input_shape).astype(dtype)
    out = tt(x).numpy()
    assert out.dtype == dtype
    np.testing.assert_allclose(out, dense(x).numpy(), rtol=tolerance(dtype), atol=tolerance(dtype))


def _unfolding_sizes(layer):
    sizes = [m * n for m, n in zip(layer.row_dims, layer.col_dims)]
    left = [int(np.prod(sizes[:k])) for k in range(1, len(sizes))]
    right = [int(np.prod(sizes[k:])) for k in range(1, len(sizes))]
    return left, right


def test_truncated_rank_error_is_the_svd_tail():
    # With two cores TT-SVD is the truncated SVD of the permuted matrix
    # [m_1 n_1, m_2 n_2], so the error is the norm of the discarded singular values.
    dense = built(keras.layers.Dense(20, use_bias=False), (None, 12))
    tt = from_dense(dense, tt_rank=3, input_factorization=[3, 4], output_factorization=[4, 5])
    kernel = dense.kernel.numpy().astype(np.float64)
    permuted = kernel.reshape(3, 4, 4, 5).transpose(0, 2, 1, 3).reshape(12, 20)
    singular_values = np.linalg.svd(permuted, compute_uv=False)
    x = np.eye(12, dtype="float32")
    error = np.linalg.norm(tt(x).numpy() - kernel)
    np.testing.assert_allclose(error, np.linalg.norm(singular_values[3:]), rtol=1e-4)


@pytest.mark.parametrize(
    "conv_kwargs",
    [
        {"padding": "same"},
        {"padding": "valid", "strides": 2},
        {"padding": "valid", "data_format": "channels_first", "dilation_rate": 2},
    ],
    ids=["same", "strided", "nchw-dilated"],
)
def test_conv2d_at_full_rank_is_reproduced(dtype, conv_kwargs):
    data_format = conv_kwargs.get("data_format", "channels_last")
    shape = (2, 9, 9, 6) if data_format == "channels_last" else (2, 6, 9, 9)
    conv = built(
        keras.layers.Conv2D(8, 3, activation="relu", dtype=np.dtype(dtype).name, **conv_kwargs),
        shape,
        dtype,
    )
    tt = from_dense(conv, tt_rank=1000)
    assert isinstance(tt, TTConv2D)
    assert (tt.strides, tt.padding, tt.dilation_rate) == (
        conv.strides,
        conv.padding,
        conv.dilation_rate,
    )
    x = np.random.default_rng(2).normal(size=shape).astype(dtype)
    if data_format == "channels_last":
        expected = conv(x).numpy()
    else:  # TF's CPU Conv2D has no float64 NCHW kernel: run the same conv in NHWC.
        nhwc = keras.layers.Conv2D.from_config(
            {**conv.get_config(), "data_format": "channels_last"}
        )
        nhwc.build((None, 9, 9, 6))
        nhwc.set_weights(conv.get_weights())
        expected = np.transpose(nhwc(np.transpose(x, [0, 2, 3, 1])).numpy(), [0, 3, 1, 2])
    np.testing.assert_allclose(
        tt(x).numpy(), expected, rtol=tolerance(dtype), atol=tolerance(dtype)
    )


def test_embedding_at_full_rank_is_reproduced(dtype):
    embedding = built(keras.layers.Embedding(997, 12, dtype=np.dtype(dtype).name), None, dtype)
    tt = from_dense(embedding, tt_rank=1000)
    assert isinstance(tt, TTEmbedding) and np.prod(tt.row_dims) >= 997
    ids = np.array([[0, 5, 996], [400, 17, 3]])
    np.testing.assert_allclose(
        tt(ids).numpy(), embedding(ids).numpy(), rtol=tolerance(dtype), atol=tolerance(dtype)
    )


def small_model():
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(16, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x))


def test_compress_model_replaces_layers_copies_the_rest_and_fine_tunes():
    model = small_model()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 10, 10, 3)).astype("float32")
    y = rng.integers(0, 4, size=64)
    model.predict(x, verbose=0)
    original_weights = [w.numpy().copy() for w in model.weights]

    exact = compress_model(model, tt_rank=10000, layer_names=["conv", "hidden"])
    kinds = {layer.name: type(layer).__name__ for layer in exact.layers}
    assert kinds["conv_tt"] == "TTConv2D" and kinds["hidden_tt"] == "TTDense"
    assert kinds["logits"] == "Dense" and kinds["bn"] == "BatchNormalization"
    np.testing.assert_allclose(exact(x).numpy(), model(x).numpy(), rtol=1e-3, atol=1e-4)

    small = compress_model(model, tt_rank={"hidden": 4})
    assert isinstance(small.get_layer("hidden_tt"), TTDense)
    assert small.count_params() < model.count_params()
    small.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    history = small.fit(x, y, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    for weight, before in zip(model.weights, original_weights):
        np.testing.assert_array_equal(weight.numpy(), before)  # the original is untouched


def test_compress_model_default_keeps_layers_that_would_grow():
    model = small_model()
    compressed = compress_model(model, tt_rank=10000)
    assert [type(layer).__name__ for layer in compressed.layers] == [
        type(layer).__name__ for layer in model.layers
    ]


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(4)

    def call(self, inputs):
        return self.dense(inputs)


def test_errors_name_the_problem():
    with pytest.raises(
        TypeError, match=r"must be a keras.layers.Dense, Conv2D or Embedding, got LSTM"
    ):
        from_dense(keras.layers.LSTM(4), 2)
    with pytest.raises(ValueError, match=r"is not built"):
        from_dense(keras.layers.Dense(4), 2)
    with pytest.raises(ValueError, match=r"groups=2"):
        from_dense(built(keras.layers.Conv2D(4, 3, groups=2), (None, 8, 8, 4)), 2)
    model = small_model()
    with pytest.raises(ValueError, match=r"\['nope'\] are not layers of the model"):
        compress_model(model, 2, layer_names=["nope"])
    with pytest.raises(ValueError, match=r"\['bn'\] are not Dense, Conv2D or Embedding"):
        compress_model(model, 2, layer_names=["bn"])
    subclassed = Subclassed()
    subclassed(np.ones((1, 8), "float32"))
    with pytest.raises(ValueError, match=r"must be a Sequential or functional model"):
        compress_model(subclassed, 2)
