"""The Sparse VD layers take every argument of the Keras layer they replace, with its meaning.

References are Keras's own layers holding theta (the posterior mean) as their
weights, and NumPy; in training, Monte Carlo with standard-error tolerances.
"""

import keras
import numpy as np
import pytest

from tfbayes.layers import (
    SparseVDConv1D,
    SparseVDConv2D,
    SparseVDConv3D,
    SparseVDDense,
    SparseVDEmbedding,
)

REGULARIZED = dict(
    kernel_regularizer=keras.regularizers.L2(0.1),
    bias_regularizer=keras.regularizers.L1(0.2),
    activity_regularizer=keras.regularizers.L2(0.3),
)


def _copy_into(plain, layer):
    """Builds ``plain`` like ``layer`` and gives it the pruned theta and the bias."""
    plain.build(layer.plain_input_shape(layer.kernel.shape))
    plain.set_weights([layer.pruned_weight("kernel").numpy(), layer.bias.numpy()])
    return plain


@pytest.mark.parametrize(
    "cls, plain_cls, args",
    [(SparseVDDense, keras.layers.Dense, (4,)), (SparseVDConv2D, keras.layers.Conv2D, (4, 3))],
    ids=["dense", "conv2d"],
)
def test_regularizers_act_on_theta_as_keras_regularizers_act_on_the_kernel(cls, plain_cls, args):
    ours, plain = cls(*args, **REGULARIZED), plain_cls(*args, **REGULARIZED)
    x = np.random.default_rng(0).normal(size=(3, 6, 6, 4) if cls is SparseVDConv2D else (3, 6))
    x = x.astype("float32")
    ours(x)
    ours.kernel_log_sigma2.assign(np.full(ours.kernel.shape, -30.0))  # no weight pruned
    ours.bias.assign(np.random.default_rng(1).normal(size=ours.bias.shape))
    _copy_into(plain, ours)
    np.testing.assert_allclose(ours(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
    # Keras adds kernel, bias and activity terms (the last per example); the same, from theta.
    theta, bias, y = ours.kernel.numpy(), ours.bias.numpy(), plain(x).numpy()
    expected = sorted(
        [0.1 * np.sum(theta**2), 0.2 * np.sum(np.abs(bias)), 0.3 * np.sum(y**2) / len(x)]
    )
    np.testing.assert_allclose(sorted(float(l) for l in ours.losses), expected, rtol=1e-5)
    np.testing.assert_allclose(sorted(float(l) for l in plain.losses), expected, rtol=1e-5)


def test_constraints_act_on_theta_after_each_update():
    layer = SparseVDDense(
        3,
        kernel_constraint=keras.constraints.NonNeg(),
        bias_constraint=keras.constraints.MaxNorm(0.01, axis=0),
        num_examples=8,
    )
    model = keras.Sequential([keras.Input((4,)), layer])
    model.compile(keras.optimizers.SGD(1.0), "mse")
    rng = np.random.default_rng(2)
    model.fit(rng.normal(size=(8, 4)), 10 * rng.normal(size=(8, 3)), verbose=0, epochs=2)
    assert np.all(layer.kernel.numpy() >= 0) and np.any(layer.kernel.numpy() > 0)
    assert np.linalg.norm(layer.bias.numpy()) <= 0.01 + 1e-6
    assert np.any(layer.kernel_log_sigma2.numpy() != -10.0)  # log sigma^2 is unconstrained


@pytest.mark.parametrize(
    "cls, plain_cls, kwargs, shape",
    [
        (SparseVDConv2D, keras.layers.Conv2D, dict(groups=3, padding="same"), (2, 5, 5, 6)),
        (SparseVDConv1D, keras.layers.Conv1D, dict(padding="causal", dilation_rate=2), (2, 9, 2)),
        (SparseVDConv3D, keras.layers.Conv3D, dict(strides=2, groups=2), (2, 5, 6, 5, 4)),
    ],
    ids=["grouped_conv2d", "causal_conv1d", "conv3d"],
)
def test_convolutions_match_keras_at_inference_and_in_training_mean_and_variance(
    cls, plain_cls, kwargs, shape
):
    layer = cls(6, 3, seed=0, num_examples=10, **kwargs)
    rng = np.random.default_rng(3)
    x = rng.normal(size=shape).astype("float32")
    layer(x)
    layer.kernel_log_sigma2.assign(rng.uniform(-6, -3, layer.kernel.shape))
    layer.bias.assign(rng.normal(size=6))
    plain = _copy_into(plain_cls(6, 3, **kwargs), layer)
    mean = plain(x).numpy()
    np.testing.assert_allclose(layer(x).numpy(), mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.plain_equivalent()(x).numpy(), mean, rtol=1e-5, atol=1e-5)
    # Training: each output is N(conv(x, theta) + b, conv(x^2, sigma^2)), theta unpruned; both
    # are Keras convolutions (same groups, padding), of x with theta and of x^2 with sigma^2.
    plain.set_weights([layer.kernel.numpy(), layer.bias.numpy()])
    mean = plain(x).numpy()
    squares = plain_cls(6, 3, use_bias=False, **kwargs)
    squares.build(layer.plain_input_shape(layer.kernel.shape))
    squares.set_weights([np.exp(layer.kernel_log_sigma2.numpy())])
    var = squares(x**2).numpy()
    tiled = np.tile(x, (400,) + (1,) * (x.ndim - 1))  # 400 independent samples per example
    samples = layer(tiled, training=True).numpy().astype(np.float64).reshape((400,) + mean.shape)
    z = (samples.mean(0) - mean) / np.sqrt(var / 400 + 1e-12)
    assert np.abs(z).max() < 5.5  # every output within 5.5 standard errors
    np.testing.assert_allclose(samples.var(0).mean(), var.mean(), rtol=5 * np.sqrt(2 / 399))


def test_configs_round_trip_every_keras_argument():
    layer = SparseVDConv1D(
        4,
        3,
        padding="causal",
        groups=2,
        **REGULARIZED,
        kernel_constraint="non_neg",
        bias_constraint="non_neg",
    )
    config = layer.get_config()
    copy = SparseVDConv1D.from_config(config)
    assert copy.get_config() == config
    assert config["groups"] == 2 and config["padding"] == "causal"
    assert isinstance(copy.kernel_regularizer, keras.regularizers.L2)
    assert isinstance(copy.activity_regularizer, keras.regularizers.L2)
    assert isinstance(copy.bias_constraint, keras.constraints.NonNeg)
    dense_keys = set(keras.layers.Dense(2).get_config()) - {
        "lora_rank",
        "lora_alpha",
        "quantization_config",
    }
    assert dense_keys <= set(SparseVDDense(2).get_config())
    conv_keys = set(keras.layers.Conv3D(2, 3).get_config())
    assert conv_keys <= set(SparseVDConv3D(2, 3).get_config())


def test_embedding_takes_keras_weights_regularizer_and_constraint():
    table = np.arange(12, dtype="float32").reshape(4, 3) - 6
    layer = SparseVDEmbedding(
        4,
        3,
        weights=[table],
        embeddings_regularizer=keras.regularizers.L2(0.5),
        embeddings_constraint=keras.constraints.NonNeg(),
    )
    np.testing.assert_array_equal(layer.embeddings.numpy(), table)
    ids = np.array([[0, 3]])
    np.testing.assert_allclose(layer(ids).numpy(), table[ids], rtol=1e-6)
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.sum(table**2), rtol=1e-6)
    assert isinstance(
        SparseVDEmbedding.from_config(layer.get_config()).embeddings_constraint,
        keras.constraints.NonNeg,
    )
    with pytest.raises(ValueError, match=r"weights: expected \[table\] with table of shape"):
        SparseVDEmbedding(4, 3, weights=[table[:2]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lora_rank": 4}, "lora_rank: expected None"),
        ({"quantization_config": "int8"}, "quantization_config: expected None"),
    ],
)
def test_lora_and_quantization_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseVDDense(3, **kwargs)
    with pytest.raises(ValueError, match=message):
        SparseVDEmbedding(5, 3, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"filters": 4, "groups": 3}, "groups: expected a divisor of filters=4, got 3"),
        ({"filters": 4, "groups": 0}, "groups: expected a positive int, got 0"),
        ({"filters": 4, "padding": "causal"}, "padding: expected 'valid' or 'same', got 'causal'"),
    ],
)
def test_bad_conv3d_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseVDConv3D(kernel_size=2, **kwargs)
