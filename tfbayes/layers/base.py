"""The ELBO bookkeeping shared by every sparsifying layer.

A variational layer contributes ``KL(q || p)`` to the negative ELBO. Keras's
``model.fit`` minimises the *mean per-example* data loss, so each layer adds
``kl_weight * KL / N`` through ``add_loss``, where ``N`` is the training-set
size. The total is then the per-example negative ELBO

    (1/N) * [ sum_i -log p(y_i | x_i, w) + KL(q || p) ],

estimated on a mini-batch. ``N`` is given once for a whole model with
:func:`set_num_examples` (or per layer as ``num_examples=``), and
``kl_weight`` (1 by default) is ramped from 0 by the :class:`KLWarmup` callback
(to 1, or to another ``end`` for a tempered ELBO).

Mixed precision: under a policy such as ``mixed_float16`` Keras keeps the
variables in float32 and casts them to the compute dtype when a layer reads
them in ``call``. The KL is a sum over every weight, which float16 overflows
(a LeNet-300-100 layer's KL/N is ~8 nats, its KL ~5e5), so
:meth:`BayesianLayer.add_kl_loss` evaluates :meth:`~BayesianLayer.kl_divergence`
with the variables in their variable dtype (:func:`variable_dtype_scope`) and adds
it to the losses in float32 (float64 when ``keras.config.floatx()`` is float64).
"""

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend import AutocastScope


class BayesianLayer(keras.layers.Layer):
    """Base class of the sparsifying layers; not used directly.

    Subclasses implement :meth:`kl_divergence` and call
    ``self.add_kl_loss(training)`` once in ``call``. ``kl_divergence`` is
    evaluated inside :func:`variable_dtype_scope`, so it sees the variables in
    their variable dtype (float32 under a mixed policy), never in float16.

    Args:
      num_examples: the training-set size N, a positive int. May be left unset
        at construction and given later for the whole model with
        :func:`set_num_examples`. Training without it raises ``ValueError``.
      **kwargs: ``keras.layers.Layer``'s (``name``, ``dtype``, ``activity_regularizer``...).
    """

    def __init__(self, num_examples=None, **kwargs):
        super().__init__(**kwargs)
        self.num_examples = _check_num_examples(num_examples, allow_none=True)
        self.kl_weight = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="kl_weight", dtype="float32"
        )

    def __call__(self, *args, **kwargs):
        inputs = args[0] if args else kwargs.get("inputs")
        if (args or "inputs" in kwargs) and any(x is None for x in keras.tree.flatten(inputs)):
            raise TypeError(
                f"Layer {self.name!r}: inputs: expected a tensor or array, got {inputs!r}"
            )
        return super().__call__(*args, **kwargs)

    def kl_divergence(self):
        """The layer's total KL(q || p), a scalar tensor (summed over weights)."""
        raise NotImplementedError(f"{type(self).__name__} must implement kl_divergence()")

    def add_kl_loss(self, training):
        """Adds ``kl_weight * KL / N`` to the model's losses, in :func:`kl_loss_dtype`.

        The KL is computed from the variables in their own dtype, whatever the
        layer's compute dtype (see the module docstring).

        Raises:
          ValueError: in training, when N was never given.
        """
        if self.num_examples is None:
            if training:
                raise ValueError(
                    f"Layer {self.name!r}: the training-set size N is not set. Call "
                    "tfbayes.layers.set_num_examples(model, N) before training, or pass "
                    "num_examples=N to the layer (if model.fit already failed with this "
                    "error, call model.compile again after setting N)."
                )
            return
        with variable_dtype_scope(self):
            kl = tf.cast(self.kl_divergence(), kl_loss_dtype())
            self.add_loss(tf.cast(self.kl_weight, kl.dtype) * kl / float(self.num_examples))

    def get_config(self):
        config = super().get_config()
        config["num_examples"] = self.num_examples
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        return config


def variable_dtype_scope(layer):
    """A context in which ``layer``'s variables read in their variable dtype.

    Inside a layer's ``call`` under a mixed policy Keras reads every float
    variable in the compute dtype (e.g. float16). Sums over many weights (a KL)
    and special functions without a float16 kernel (SBP's inverse normal CDF)
    read them inside this scope instead, in ``layer.variable_dtype`` (float32).
    (Keras's own ``AutocastScope(None)`` would report such a variable's
    ``dtype`` as ``floatx()``, wrong for float64 layers, hence the explicit dtype.)
    """
    return AutocastScope(layer.variable_dtype)


def kl_loss_dtype():
    """The dtype in which a KL enters ``add_loss``: float64 if ``floatx()`` is, else float32.

    Keras sums the model's losses in one dtype; the data loss is computed in
    ``floatx()`` (float32 by default, also under a mixed policy).
    """
    return "float64" if keras.config.floatx() == "float64" else "float32"


def _check_num_examples(num_examples, allow_none=False):
    if num_examples is None and allow_none:
        return None
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples <= 0:
        raise ValueError(
            f"num_examples: expected a positive int (the training-set size N), got {num_examples!r}"
        )
    return num_examples


def is_finite_real(value):
    """Whether ``value`` is a finite real number (Python or NumPy int or float; not a bool)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.floating, np.integer))
        and bool(np.isfinite(value))
    )


def check_finite_real(value, name):
    """Returns ``value`` as a float, or raises ``ValueError`` naming ``name`` if it is not a
    finite real number (:func:`is_finite_real`)."""
    if not is_finite_real(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return float(value)


def bayesian_layers(model):
    """All :class:`BayesianLayer` instances in ``model`` (nested models included)."""
    if isinstance(model, BayesianLayer):
        return [model]
    if not isinstance(model, keras.layers.Layer):
        raise TypeError(f"model: expected a keras.Model or layer, got {type(model).__name__}")
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, BayesianLayer)
    ]


def set_num_examples(model, num_examples):
    """Sets the training-set size N on every sparsifying layer of ``model``.

    Call it once before ``fit`` (before the first traced training step). It
    returns the number of layers it set, and raises ``ValueError`` when the
    model has none, which usually means the wrong model was passed.
    """
    num_examples = _check_num_examples(num_examples)
    layers = bayesian_layers(model)
    if not layers:
        raise ValueError(
            f"model: {getattr(model, 'name', model)!r} has no tfbayes "
            "sparsifying layers to set num_examples on"
        )
    for layer in layers:
        layer.num_examples = num_examples
    return len(layers)


class KLWarmup(keras.callbacks.Callback):
    """Ramps the KL weight of every sparsifying layer linearly from ``start`` to ``end``.

    As in the Sparse VD reference code, the KL term is switched on gradually
    so the network first fits the data: the weight at training step ``t`` is
    ``start + (end - start) * min(1, t / (warmup_epochs * steps_per_epoch))``.
    With ``end = 1`` (the default) training ends on the ELBO. Another ``end``
    trains a tempered ELBO, data loss + ``end * KL / N``: below 1 the layers
    keep more weights and fit the data more closely, above 1 they prune harder
    (docs/sparsification.md measures both).

    Args:
      warmup_epochs: a positive number of epochs over which the weight reaches ``end``.
      start: the weight at step 0, in [0, end].
      end: the weight after the warm-up, a positive finite number.
    """

    def __init__(self, warmup_epochs, start=0.0, end=1.0):
        super().__init__()
        if not check_finite_real(warmup_epochs, "warmup_epochs") > 0:
            raise ValueError(f"warmup_epochs: expected a positive number, got {warmup_epochs!r}")
        if not check_finite_real(end, "end") > 0:
            raise ValueError(f"end: expected a positive finite number, got {end!r}")
        if not 0.0 <= check_finite_real(start, "start") <= end:
            raise ValueError(f"start: expected a number in [0, end] = [0, {end}], got {start!r}")
        self.warmup_epochs = warmup_epochs
        self.start = start
        self.end = end
        self._epoch = 0

    def _weight(self, batch):
        steps = self.params.get("steps") or 1
        progress = (self._epoch + batch / steps) / self.warmup_epochs
        return self.start + (self.end - self.start) * min(1.0, progress)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        weight = self._weight(batch)
        for layer in bayesian_layers(self.model):
            layer.kl_weight.assign(weight)
