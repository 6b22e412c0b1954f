"""update_bn against BatchNormalization statistics computed by NumPy over the same data."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes.swag import update_bn


def _dense_bn_model(dtype):
    inputs = keras.Input((3,), dtype=dtype)
    h = keras.layers.Dense(4, dtype=dtype)(inputs)
    outputs = keras.layers.BatchNormalization(dtype=dtype)(h)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("as_dataset", [False, True])
def test_single_layer_equals_numpy(dtype, as_dataset):
    keras.utils.set_random_seed(0)
    model = _dense_bn_model(dtype)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(50, 3)).astype(dtype)
    data = tf.data.Dataset.from_tensor_slices((x, x[:, 0])).batch(16) if as_dataset else x
    assert update_bn(model, data, batch_size=16) == 1
    kernel, bias = (np.asarray(w, np.float64) for w in model.layers[1].get_weights())
    h = x.astype(np.float64) @ kernel + bias
    bn = model.layers[2]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(bn.moving_mean.numpy(), h.mean(0), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(bn.moving_variance.numpy(), h.var(0), rtol=rtol)
    assert bn.momentum == 0.99
    # A second call (the traced pass is reused) follows new data and new weights.
    model.layers[1].kernel.assign(model.layers[1].kernel * 2)
    update_bn(model, x[:20], batch_size=16)
    h = x[:20].astype(np.float64) @ (2 * kernel) + bias
    np.testing.assert_allclose(bn.moving_mean.numpy(), h.mean(0), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(bn.moving_variance.numpy(), h.var(0), rtol=rtol)


def test_conv_and_nested_equal_numpy():
    """BN over [N, H, W, C] pools over batch and space; a BN inside a nested model sees the
    outputs of an earlier BN that normalized with its own batch statistics."""
    keras.utils.set_random_seed(1)
    inner = keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()])
    inputs = keras.Input((4, 4, 2))
    h = keras.layers.BatchNormalization(epsilon=1e-3)(inputs)
    h = keras.layers.Flatten()(h)
    model = keras.Model(inputs, inner(h))
    x = np.random.default_rng(1).normal(1.0, 2.0, size=(40, 4, 4, 2)).astype(np.float32)
    # Stale statistics that must not leak into the result.
    for layer in (model.layers[1], inner.layers[1]):
        layer.moving_mean.assign(np.full(layer.moving_mean.shape, np.nan, np.float32))
    assert update_bn(model, x, batch_size=15) == 2

    x64 = x.astype(np.float64)
    np.testing.assert_allclose(model.layers[1].moving_mean.numpy(), x64.mean((0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(
        model.layers[1].moving_variance.numpy(), x64.var((0, 1, 2)), rtol=1e-5
    )
    kernel, bias = (np.asarray(w, np.float64) for w in inner.layers[0].get_weights())
    gamma, beta = (np.asarray(w, np.float64) for w in model.layers[1].get_weights()[:2])
    hidden = []
    for start in range(0, 40, 15):  # the first BN normalizes each batch with its own moments
        xb = x64[start : start + 15]
        z = (xb - xb.mean((0, 1, 2))) / np.sqrt(xb.var((0, 1, 2)) + 1e-3) * gamma + beta
        hidden.append(z.reshape(len(xb), -1) @ kernel + bias)
    hidden = np.concatenate(hidden)
    np.testing.assert_allclose(
        inner.layers[1].moving_mean.numpy(), hidden.mean(0), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(inner.layers[1].moving_variance.numpy(), hidden.var(0), rtol=1e-4)


def test_subclassed_model_and_frozen_layer():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.bn = keras.layers.BatchNormalization()
            self.frozen = keras.layers.BatchNormalization(trainable=False)

        def call(self, x, training=None):
            return self.frozen(self.bn(x, training=training), training=training)

    model = Net()
    x = np.random.default_rng(2).normal(-1.0, 0.5, size=(30, 2)).astype(np.float32)
    model(x)
    assert update_bn(model, x) == 1
    np.testing.assert_allclose(model.bn.moving_mean.numpy(), x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(model.bn.moving_variance.numpy(), x.var(0), rtol=1e-5)
    np.testing.assert_array_equal(model.frozen.moving_mean.numpy(), 0.0)


def test_no_bn_layers_and_bad_input():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert update_bn(model, np.zeros((0, 2), np.float32)) == 0
    model = _dense_bn_model(np.float32)
    before = model.layers[2].moving_variance.numpy()
    with pytest.raises(ValueError, match="data: expected at least one example"):
        update_bn(model, np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="data: expected at least one example"):
        update_bn(model, tf.data.Dataset.from_tensor_slices(np.zeros((0, 3), np.float32)).batch(4))
    np.testing.assert_array_equal(model.layers[2].moving_variance.numpy(), before)
    with pytest.raises(ValueError, match="batch_size: expected a positive int, got 0"):
        update_bn(model, np.zeros((4, 3), np.float32), batch_size=0)
