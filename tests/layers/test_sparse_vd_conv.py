"""SparseVDConv1D/2D against a NumPy convolution and Monte Carlo over weight noise."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes.layers import SparseVDConv1D, SparseVDConv2D, set_num_examples


def _np_conv(x, kernel, strides, padding, dilation=1):
    """Cross-correlation of channels_last ``x`` [B, *S, C] with ``kernel`` [*K, C, F] (NumPy)."""
    rank = kernel.ndim - 2
    if padding == "same":
        pads = []
        for size, k, s in zip(x.shape[1:-1], kernel.shape[:rank], strides):
            effective = (k - 1) * dilation + 1
            out = -(-size // s)
            total = max((out - 1) * s + effective - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    dilated = np.zeros(
        tuple((k - 1) * dilation + 1 for k in kernel.shape[:rank]) + kernel.shape[rank:]
    )
    dilated[tuple(slice(None, None, dilation) for _ in range(rank))] = kernel
    windows = np.lib.stride_tricks.sliding_window_view(
        x, dilated.shape[:rank], axis=tuple(range(1, rank + 1))
    )
    windows = windows[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    # windows: [B, *out, C, *K]; contract C and K with the kernel.
    letters = "ijk"[:rank]
    return np.einsum(f"...c{letters},{letters}cf->...f", windows, dilated)


def _layer(cls, dtype, in_channels, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    layer = cls(dtype=dtype.__name__, seed=seed, **kwargs)
    rank = 1 if cls is SparseVDConv1D else 2
    layer.build((None,) + (9,) * rank + (in_channels,))
    shape = layer.kernel.shape
    layer.kernel.assign(rng.normal(size=shape).astype(dtype))
    layer.kernel_log_sigma2.assign(rng.uniform(-4, 2, size=shape).astype(dtype))
    layer.bias.assign(rng.normal(size=shape[-1]).astype(dtype))
    return layer


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_conv2d_training_mean_and_variance_match_monte_carlo(dtype, mode):
    layer = _layer(
        SparseVDConv2D,
        dtype,
        2,
        filters=2,
        kernel_size=3,
        strides=2,
        padding="same",
        num_examples=10,
    )
    x = np.random.default_rng(1).normal(size=(1, 5, 5, 2)).astype(dtype)
    samples = 4000
    theta = layer.kernel.numpy().astype(np.float64)
    sigma2 = np.exp(layer.kernel_log_sigma2.numpy().astype(np.float64))
    exact_mean = _np_conv(x.astype(np.float64), theta, (2, 2), "same") + layer.bias.numpy()
    exact_var = _np_conv(x.astype(np.float64) ** 2, sigma2, (2, 2), "same")
    # Monte Carlo over whole weight tensors confirms the LRT moments...
    rng = np.random.default_rng(2)
    weights = theta + np.sqrt(sigma2) * rng.normal(size=(400,) + theta.shape)
    mc = np.stack([_np_conv(x.astype(np.float64), w, (2, 2), "same") for w in weights])[:, 0]
    mc = mc + layer.bias.numpy()
    np.testing.assert_array_less(
        np.abs(mc.mean(0) - exact_mean[0]), 5 * np.sqrt(exact_var[0] / 400)
    )
    np.testing.assert_array_less(
        np.abs(mc.var(0) - exact_var[0]), 5 * exact_var[0] * np.sqrt(2 / 399)
    )

    # ...and the layer's samples have them.
    def call(t):
        return layer(t, training=True)

    fn = call if mode == "eager" else tf.function(call, jit_compile=True)
    ours = fn(tf.constant(np.repeat(x, samples, 0))).numpy().astype(np.float64)
    np.testing.assert_array_less(
        np.abs(ours.mean(0) - exact_mean[0]), 5 * np.sqrt(exact_var[0] / samples)
    )
    np.testing.assert_array_less(
        np.abs(ours.var(0) - exact_var[0]), 5 * exact_var[0] * np.sqrt(2 / (samples - 1))
    )


@pytest.mark.parametrize(
    "cls, strides, padding, dilation",
    [
        (SparseVDConv1D, 1, "valid", 2),
        (SparseVDConv1D, 2, "same", 1),
        (SparseVDConv2D, 1, "valid", 1),
        (SparseVDConv2D, 2, "same", 1),
        (SparseVDConv2D, 1, "same", 2),
    ],
)
def test_inference_is_a_convolution_with_pruned_theta(dtype, cls, strides, padding, dilation):
    layer = _layer(
        cls,
        dtype,
        3,
        filters=4,
        kernel_size=3,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        activation="relu",
        threshold=0.5,
    )
    rank = 1 if cls is SparseVDConv1D else 2
    x = np.random.default_rng(4).normal(size=(2,) + (9,) * rank + (3,)).astype(dtype)
    theta = layer.kernel.numpy().astype(np.float64)
    mask = np.clip(layer.kernel_log_sigma2.numpy() - np.log(theta**2 + 1e-8), -8, 8) < 0.5
    assert 0 < mask.sum() < mask.size
    expected = np.maximum(
        _np_conv(x.astype(np.float64), theta * mask, (strides,) * rank, padding, dilation)
        + layer.bias.numpy(),
        0,
    )
    ours = tf.function(lambda t: layer(t), jit_compile=True)(tf.constant(x)).numpy()
    assert ours.dtype == dtype and ours.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.plain_equivalent()(x).numpy(), ours, rtol=1e-5, atol=1e-5)


def test_lenet_like_model_learns_digits_and_round_trips_through_keras_file(tmp_path):
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images[..., None] / 16.0).astype("float32")
    y = digits.target
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            SparseVDConv2D(8, 3, padding="same", activation="relu", seed=0),
            keras.layers.MaxPooling2D(),
            keras.layers.Reshape((16, 8)),
            SparseVDConv1D(8, 3, activation="relu", seed=1),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )
    set_num_examples(model, len(x))
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    model.fit(x, y, batch_size=128, epochs=8, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.9
    path = tmp_path / "conv.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.predict(x[:32], verbose=0), model.predict(x[:32], verbose=0)
    )
    for original, restored in zip(model.layers, loaded.layers):
        assert original.get_config() == restored.get_config()


def test_model_fit_with_jit_compile_reduces_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 3)).astype("float32")
    y = x[:, 1:-1, :1] - x[:, 2:, 2:]  # a causal 3-tap filter of the input channels
    model = keras.Sequential([keras.Input((6, 3)), SparseVDConv1D(1, 3, seed=0)])
    set_num_examples(model, len(x))
    model.compile(keras.optimizers.Adam(0.05), "mse", jit_compile=True)
    history = model.fit(x, y, batch_size=16, epochs=10, verbose=0).history["loss"]
    assert history[-1] < 0.2 * history[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 0, "kernel_size": 3}, "filters: expected a positive int, got 0"),
        (
            {"filters": 2, "kernel_size": (3, 0)},
            r"kernel_size: expected a positive int or a tuple of 2",
        ),
        ({"filters": 2, "kernel_size": 3, "strides": (1, 2, 3)}, "strides: expected"),
        (
            {"filters": 2, "kernel_size": 3, "padding": "causal"},
            "padding: expected 'valid' or 'same'",
        ),
        ({"filters": 2, "kernel_size": 3, "data_format": "NHWC"}, "data_format: expected"),
        ({"filters": 2, "kernel_size": 3, "threshold": None}, "threshold: expected a finite real"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseVDConv2D(**kwargs)


def test_wrong_input_rank_is_reported():
    with pytest.raises(ValueError, match="expected a 4-D input .* got shape"):
        SparseVDConv2D(2, 3)(np.ones((2, 5, 3), "float32"))
