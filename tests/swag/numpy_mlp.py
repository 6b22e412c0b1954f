"""A NumPy reference for the small networks of the FGE and curve tests:
``Dense(relu) [-> BatchNormalization] -> Dense`` logits, in float64."""

import keras
import numpy as np


def mlp(inputs, hidden, classes, batch_norm, dtype="float32", output_activation=None):
    """The Keras model the NumPy reference mirrors."""
    x = keras.Input((inputs,), dtype=dtype)
    h = keras.layers.Dense(hidden, activation="relu", dtype=dtype)(x)
    if batch_norm:
        h = keras.layers.BatchNormalization(epsilon=1e-3, dtype=dtype)(h)
    return keras.Model(x, keras.layers.Dense(classes, activation=output_activation, dtype=dtype)(h))


def mlp_logits(trainable, x, bn_x=None, bn_stats=None, epsilon=1e-3):
    """The logits of :func:`mlp` with the trainable weights ``trainable`` (Keras order).

    With batch norm, its statistics are the exact (biased) moments of the hidden layer over
    ``bn_x``, or the given ``bn_stats = (mean, variance)``."""
    w = [np.asarray(v, np.float64) for v in trainable]
    h = np.maximum(np.asarray(x, np.float64) @ w[0] + w[1], 0.0)
    if len(w) == 6:
        if bn_stats is None:
            hb = np.maximum(np.asarray(bn_x, np.float64) @ w[0] + w[1], 0.0)
            bn_stats = hb.mean(0), hb.var(0)
        mean, var = (np.asarray(s, np.float64) for s in bn_stats)
        h = (h - mean) / np.sqrt(var + epsilon) * w[2] + w[3]
    return h @ w[-2] + w[-1]


def softmax(logits):
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)
