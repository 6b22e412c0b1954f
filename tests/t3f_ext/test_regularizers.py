"""t3f_ext.regularizers: values against NumPy, gradients, TF2 use."""

import numpy as np
import pytest
import tensorflow as tf

import t3f_ext as t3f
from tt_reference import MATRIX_MODES, make, random_cores, tol


def test_l2_regularizer_value_and_gradient(dtype):
    rng = np.random.default_rng(0)
    cores = random_cores(rng, MATRIX_MODES, [1, 2, 3, 1], dtype)
    variables = [tf.Variable(c) for c in cores]
    reg = t3f.l2_regularizer(0.1)

    @tf.function
    def loss_and_grads():
        with tf.GradientTape(persistent=True) as tape:
            tt = t3f.TensorTrain(variables)
            value = reg(tt)
            dense_value = 0.1 * tf.reduce_sum(tf.square(t3f.full(tt)))
        return value, tape.gradient(value, variables), tape.gradient(dense_value, variables)

    value, grads, dense_grads = loss_and_grads()
    _, dense = make(np.random.default_rng(0), MATRIX_MODES, [1, 2, 3, 1], dtype)
    np.testing.assert_allclose(
        value.numpy(), 0.1 * np.sum(dense.astype(np.float64) ** 2), **tol(dtype)
    )
    for grad, ref in zip(grads, dense_grads):
        np.testing.assert_allclose(grad.numpy(), ref.numpy(), **tol(dtype))
    batch, dense_batch = make(rng, MATRIX_MODES, [1, 2, 2, 1], dtype, batch=3)
    np.testing.assert_allclose(reg(batch).numpy(), 0.1 * np.sum(dense_batch**2), **tol(dtype))


def test_cores_regularizer(dtype):
    rng = np.random.default_rng(1)
    cores = random_cores(rng, MATRIX_MODES, [1, 2, 3, 1], dtype)
    reg = t3f.cores_regularizer(tf.nn.l2_loss, 0.5, scope="my_reg")
    value = tf.function(reg)(t3f.TensorTrain(cores))
    np.testing.assert_allclose(
        value.numpy(), 0.5 * sum(0.5 * np.sum(c**2) for c in cores), **tol(dtype)
    )


def test_regularizer_drives_keras_training_loop():
    rng = np.random.default_rng(2)
    cores = random_cores(rng, MATRIX_MODES, [1, 2, 2, 1], np.float32)
    variables = [tf.Variable(c) for c in cores]
    reg = t3f.l2_regularizer(1.0)
    opt = tf.keras.optimizers.SGD(1e-3)
    before = float(reg(t3f.TensorTrain(variables)))
    for _ in range(5):
        with tf.GradientTape() as tape:
            loss = reg(t3f.TensorTrain(variables))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    assert float(reg(t3f.TensorTrain(variables))) < 0.9 * before


def test_regularizer_errors():
    with pytest.raises(ValueError, match="scale must be a non-negative number"):
        t3f.l2_regularizer(-1.0)
    with pytest.raises(ValueError, match="scale must be a non-negative number"):
        t3f.cores_regularizer(tf.nn.l2_loss, [1.0, 2.0])
    with pytest.raises(TypeError, match="core_regularizer must be callable"):
        t3f.cores_regularizer(3.0, 1.0)
    with pytest.raises(TypeError, match="tt must be a TensorTrain"):
        t3f.l2_regularizer(1.0)(np.ones((2, 2)))
