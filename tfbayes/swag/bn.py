"""Recomputing BatchNormalization statistics for new weights (``update_bn``).

Averaged (SWA), sampled (SWAG), ensembled (FGE) or interpolated (curves) weights
come with no matching BatchNormalization statistics: the moving mean and
variance a network accumulated during training belong to other weights. Used
as they are, they can ruin the accuracy. :func:`update_bn` recomputes them for
the current weights as exact averages over a data set.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf


def batch_norm_layers(model):
    """The trainable ``keras.layers.BatchNormalization`` layers of ``model`` (nested models
    included, in the order Keras tracks them). Frozen layers (``trainable=False``) run in
    inference mode in Keras and are left out."""
    layers = [model] if isinstance(model, keras.layers.Layer) else []
    layers += list(model._flatten_layers(include_self=False, recursive=True))
    return [
        layer
        for layer in layers
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]


def iterate_inputs(data, batch_size=128):
    """Yields the model inputs of ``data`` batch by batch.

    ``data`` is a ``tf.data.Dataset`` or any iterable of batches (a batch is the inputs
    alone, or a tuple/list whose first item is the inputs, as ``model.fit`` accepts), or a
    NumPy array / tensor of inputs (or a tuple ``(x, y)`` of arrays), then cut into batches
    of ``batch_size``.
    """
    if isinstance(data, tuple) and data and _is_array(data[0]):
        data = data[0]
    if _is_array(data):
        for start in range(0, int(data.shape[0]), batch_size):
            yield data[start : start + batch_size]
        return
    for batch in data:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def _is_array(value):
    return isinstance(value, (np.ndarray, tf.Tensor))


def _num_examples(x):
    first = tf.nest.flatten(x)[0]
    return int(first.shape[0]) if first.shape[0] is not None else int(tf.shape(first)[0])


# model -> (its BN layers, the traced training-mode forward pass). Weak keys: a cached
# function never keeps a model alive. The trace bakes in momentum 0, which update_bn sets
# before every call.
_FORWARDS = weakref.WeakKeyDictionary()


def _forward_function(model, layers):
    cached = _FORWARDS.get(model)
    if cached is not None and cached[0] == layers:
        return cached[1]
    model_ref = weakref.ref(model)

    @tf.function(reduce_retracing=True)
    def forward(x):
        model_ref()(x, training=True)
        return (
            [layer.moving_mean.value for layer in layers],
            [layer.moving_variance.value for layer in layers],
        )

    _FORWARDS[model] = (layers, forward)
    return forward


def update_bn(model, data, batch_size=128):
    """Recomputes the moving mean and variance of every BatchNormalization layer.

    One pass over ``data`` runs ``model(x, training=True)`` batch by batch, so every
    BatchNormalization layer normalizes with its batch statistics, exactly as during
    training (and as the reference implementations of SWA/SWAG do). Each layer's
    ``moving_mean`` and ``moving_variance`` are then set to the exact mean and the exact
    (biased, as Keras uses) variance of that layer's inputs over *all* of ``data``, pooled
    in float64 from the per-batch moments:

        mean = sum_b n_b m_b / N,    var = max(0, sum_b n_b (v_b + m_b^2) / N - mean^2),

    where ``m_b``, ``v_b`` are the layer's moments on batch ``b`` and ``n_b`` its number of
    examples (every example is assumed to contribute the same number of positions, e.g.
    the same image size). Other layers behave as in training (Dropout drops), as in the
    reference code. Layers with ``trainable=False`` are frozen and left unchanged; nested
    models are included. The layers' ``momentum`` is restored afterwards.

    Args:
      model: a Keras model or layer.
      data: a ``tf.data.Dataset``, an iterable of batches, or arrays (see
        :func:`iterate_inputs`); labels, if present, are ignored.
      batch_size: the batch size used when ``data`` is an array.

    Returns:
      The number of BatchNormalization layers updated (0 leaves the model untouched and
      does not read ``data``).

    Raises:
      ValueError: ``data`` holds no examples, or a layer uses batch renormalization.

    Cost: one forward pass over ``data``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    for layer in layers:
        if layer.renorm:
            raise ValueError(
                f"model: BatchNormalization layer {layer.name!r} uses renorm=True, "
                "which update_bn does not support"
            )
    momenta = [layer.momentum for layer in layers]
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    total = 0
    sums = [None] * len(layers)
    try:
        for layer in layers:
            layer.momentum = 0.0  # moving stats := this batch's moments
            # Clean start: 0 * NaN would otherwise keep stale NaN statistics.
            layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
            layer.moving_variance.assign(tf.ones_like(layer.moving_variance))

        forward = _forward_function(model, layers)
        for x in iterate_inputs(data, batch_size):
            n = _num_examples(x)
            if n == 0:
                continue
            means, variances = forward(x)
            for i, (m, v) in enumerate(zip(means, variances)):
                m = np.asarray(m, np.float64)
                v = np.asarray(v, np.float64)
                if sums[i] is None:
                    sums[i] = [np.zeros_like(m), np.zeros_like(m)]
                sums[i][0] += n * m
                sums[i][1] += n * (v + m * m)
            total += n
        if total == 0:
            raise ValueError(
                "data: expected at least one example to compute BatchNormalization "
                "statistics from, got an empty data set"
            )
    except BaseException:
        for layer, (mean, variance) in zip(layers, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
        raise
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    for layer, (first, second) in zip(layers, sums):
        mean = first / total
        variance = np.maximum(second / total - mean * mean, 0.0)
        layer.moving_mean.assign(mean.astype(layer.moving_mean.dtype))
        layer.moving_variance.assign(variance.astype(layer.moving_variance.dtype))
    return len(layers)
