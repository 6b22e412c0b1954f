"""Averaging a model's predicted probabilities over several weight settings (Bayesian model
averaging over posterior samples, or an ensemble of snapshots)."""

import numpy as np
import tensorflow as tf

from tfbayes.swag.bn import batch_norm_layers, update_bn


def average_predictions(
    model, weight_setters, x, bn_data=None, batch_size=None, from_logits=False, bn_batch_size=128
):
    """The mean predictive distribution ``(1/S) sum_s p(y | x, w_s)``.

    For every setter ``s`` in ``weight_setters``: ``s()`` loads the weights ``w_s`` into
    ``model``; when ``bn_data`` is given and the model has BatchNormalization layers, their
    statistics are recomputed with :func:`update_bn`; then ``model.predict(x)`` is taken
    (a softmax is applied to each output when ``from_logits``). All of the model's weights
    (BN statistics included) are restored afterwards, also when an error interrupts.

    Args:
      model: a Keras model.
      weight_setters: an iterable of zero-argument callables (at least one).
      x: inputs, as ``model.predict`` takes them.
      bn_data: data for :func:`update_bn`, or None to keep the statistics each setter left.
      batch_size: passed to ``model.predict``.
      from_logits: whether the model outputs logits.
      bn_batch_size: the batch size of :func:`update_bn` on array data.

    Returns:
      A float64 NumPy array shaped as the model's output.

    Cost: S times (a setter, a pass over ``bn_data`` if any, a prediction over ``x``).
    """
    update = bn_data is not None and bool(batch_norm_layers(model))
    saved = model.get_weights()
    total, count = None, 0
    try:
        for set_weights in weight_setters:
            set_weights()
            if update:
                update_bn(model, bn_data, bn_batch_size)
            outputs = model.predict(x, batch_size=batch_size, verbose=0)
            probs = tf.nn.softmax(outputs).numpy() if from_logits else np.asarray(outputs)
            total = probs.astype(np.float64) if total is None else total + probs
            count += 1
    finally:
        model.set_weights(saved)
    if count == 0:
        raise ValueError("weight_setters: expected at least one weight setting, got none")
    return total / count
