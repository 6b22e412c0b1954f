"""TTConv2D against tf.nn.conv2d with the full kernel, in both contraction orders."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import t3f_ext
from t3f_ext.layers import TTConv2D


def full_filter(layer):
    kh, kw = layer.kernel_size
    kernel = t3f_ext.full(layer.kernel).numpy()
    return kernel.reshape(kh, kw, -1, layer.filters)


def reference(layer, x):
    """tf.nn.conv2d with the dense kernel, plus bias and activation, in NHWC."""
    if layer.data_format == "channels_first":
        x = np.transpose(x, [0, 2, 3, 1])
    out = tf.nn.conv2d(
        x,
        full_filter(layer).astype(x.dtype),
        strides=layer.strides,
        padding=layer.padding.upper(),
        dilations=layer.dilation_rate,
    ).numpy()
    out = layer.activation(out + layer.bias.numpy()).numpy()
    if layer.data_format == "channels_first":
        out = np.transpose(out, [0, 3, 1, 2])
    return out


def make_layer(dtype, in_channels, filters, input_hw=(9, 8), data_format="channels_last", **kwargs):
    layer = TTConv2D(
        filters,
        kernel_size=kwargs.pop("kernel_size", (3, 2)),
        tt_rank=3,
        activation="relu",
        data_format=data_format,
        dtype=np.dtype(dtype).name,
        **kwargs,
    )
    shape = (
        (2,) + input_hw + (in_channels,)
        if data_format == "channels_last"
        else (2, in_channels) + input_hw
    )
    layer.build(shape)
    rng = np.random.default_rng(0)
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype(dtype))
    return layer, rng.normal(size=shape).astype(dtype)


@pytest.mark.parametrize("in_channels, filters, conv_first", [(4, 24, True), (24, 4, False)])
@pytest.mark.parametrize(
    "conv_kwargs",
    [
        {"padding": "same"},
        {"padding": "valid", "strides": (2, 1)},
        {"padding": "same", "dilation_rate": 2},
        {"padding": "valid", "data_format": "channels_first"},
    ],
    ids=["same", "strided", "dilated", "nchw"],
)
def test_equals_conv2d_with_full_kernel(dtype, in_channels, filters, conv_first, conv_kwargs):
    layer, x = make_layer(dtype, in_channels, filters, **conv_kwargs)
    # Few input channels make the per-channel spatial conv cheaper first; few
    # output channels make the channel contraction cheaper first.
    assert layer.conv_first == conv_first
    out = layer(x).numpy()
    assert out.dtype == dtype
    assert out.shape == tuple(layer.compute_output_shape(x.shape))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, reference(layer, x), rtol=tol, atol=tol)


@pytest.mark.parametrize("jit", [False, True], ids=["function", "jit"])
def test_graph_and_xla_match_eager(jit):
    for in_channels, filters in [(4, 24), (24, 4)]:
        layer, x = make_layer(np.float64, in_channels, filters, padding="same")
        compiled = tf.function(lambda v: layer(v), jit_compile=jit)
        np.testing.assert_allclose(
            compiled(tf.constant(x)).numpy(), layer(x).numpy(), rtol=1e-12, atol=1e-12
        )


def test_unknown_spatial_size_and_parameter_count():
    layer = TTConv2D(16, 3, tt_rank=4, input_factorization=[2, 4], output_factorization=[4, 4])
    model = keras.Sequential([keras.Input((None, None, 8)), layer])
    assert model(np.ones((1, 5, 7, 8), "float32")).shape == (1, 3, 5, 16)
    assert [tuple(c.shape) for c in layer.cores] == [(1, 9, 1, 4), (4, 2, 4, 4), (4, 4, 4, 1)]
    assert model.count_params() == 36 + 128 + 64 + 16 < 3 * 3 * 8 * 16


def test_fit_with_jit_changes_every_core(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 8, 8, 6)).astype("float32")
    y = rng.normal(size=(32, 8, 8, 12)).astype("float32")
    layer = TTConv2D(12, 3, tt_rank=3, padding="same")
    model = keras.Sequential([keras.Input((8, 8, 6)), layer])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=True)
    before = [c.numpy().copy() for c in layer.cores]
    assert {id(c) for c in layer.cores} <= {id(w) for w in model.trainable_weights}
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert all(np.abs(c.numpy() - b).max() > 1e-4 for c, b in zip(layer.cores, before))
    config = layer.get_config()
    clone = TTConv2D.from_config(config)
    clone.build((None, 8, 8, 6))
    assert clone.get_config() == config
    path = str(tmp_path / "tt_conv.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded(x[:4]).numpy(), model(x[:4]).numpy())


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"input_factorization": [2, 2]}, ValueError, r"product 4, but the dimension is 6"),
        (
            {"output_factorization": [2, 2], "filters": 12},
            ValueError,
            r"product 4, but the dimension is 12",
        ),
        ({"tt_rank": -1}, ValueError, r"`tt_rank` must be positive"),
        (
            {"strides": 2, "dilation_rate": 2},
            ValueError,
            r"`strides` > 1 together with `dilation_rate` > 1",
        ),
        ({"padding": "causal"}, ValueError, r"`padding` must be 'valid' or 'same', got 'causal'"),
        ({"kernel_size": (3, 0)}, ValueError, r"`kernel_size` must be a positive int or a pair"),
        ({"data_format": "NHWC"}, ValueError, r"`data_format` must be"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    kwargs = {"filters": 12, **kwargs}
    with pytest.raises(error, match=message):
        layer = TTConv2D(**kwargs)
        layer.build((None, 8, 8, 6))
