"""Mode-connecting curves between two trained networks.

Garipov, Izmailov, Podoprikhin, Vetrov, Wilson 2018, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs" (arXiv 1802.10026). Two independently trained networks with weights
``w_a`` and ``w_b`` are joined by a curve ``phi(t)``, ``t`` in [0, 1], with ``phi(0) = w_a``
and ``phi(1) = w_b``, made of ``n`` bends
``theta_0 = w_a, theta_1, ..., theta_{n-2}, theta_{n-1} = w_b``:

    phi(t) = sum_k c_k(t) theta_k,

* Bezier: ``c_k(t) = binom(n - 1, k) t^k (1 - t)^(n - 1 - k)`` (Bernstein polynomials);
* polygonal chain: ``c_k(t) = max(0, 1 - |t (n - 1) - k|)`` (straight segments between
  consecutive bends, each covering an equal share of ``t``);
* straight line: ``n = 2``, ``c = (1 - t, t)``.

The middle bends are trained to minimize the loss averaged over the curve,
``E_{t ~ U(0, 1)} L(phi(t))``, with one ``t`` drawn per batch (:func:`fit_curve`). Along a
trained curve the loss stays near the endpoints' while on the straight line it rises far
above them (:func:`evaluate_curve`).
"""

import keras
import numpy as np
import tensorflow as tf
from scipy.special import binom

from tfbayes.swag.bn import batch_norm_layers, update_bn

CURVES = ("bezier", "polychain", "line")


def curve_coefficients(curve, num_bends, t, dtype=tf.float64):
    """The coefficients ``c_k(t)``, k = 0..n-1, of the bends of a curve at ``t``.

    Args:
      curve: ``"bezier"``, ``"polychain"`` or ``"line"`` (see the module docstring).
      num_bends: ``n``, the number of bends including both endpoints.
      t: a scalar in [0, 1] (number or tensor, not checked here).
      dtype: the float dtype of the result.

    Returns:
      A tensor of shape ``(n,)``. The coefficients are non-negative and sum to one; at
      ``t = 0`` they are exactly ``(1, 0, ..., 0)`` and at ``t = 1`` exactly ``(0, ..., 0, 1)``.
    """
    # (A Python float goes to dtype directly: tf.cast would round it to float32 first.)
    t = tf.cast(t, dtype) if tf.is_tensor(t) else tf.constant(t, dtype)
    k = tf.range(num_bends, dtype=dtype)
    if curve == "polychain":
        return tf.maximum(tf.zeros([], dtype), 1.0 - tf.abs(t * (num_bends - 1) - k))
    # Bezier (the line is the Bezier curve of two bends). pow(0, 0) = 1 keeps the ends exact.
    binomial = tf.constant(binom(num_bends - 1, np.arange(num_bends)), dtype)
    return binomial * tf.pow(t, k) * tf.pow(1.0 - t, (num_bends - 1) - k)


def check_t(t, name="t"):
    """Returns ``t`` as a float, or raises ``ValueError`` if it is not a number in [0, 1]."""
    if (
        isinstance(t, bool)
        or not isinstance(t, (int, float, np.floating, np.integer))
        or not 0.0 <= t <= 1.0
    ):
        raise ValueError(f"{name}: expected a number in [0, 1], got {t!r}")
    return float(t)


class _Hidden:
    """Holds the template model out of Keras's attribute tracking, so that the template's
    own weights do not become weights (or trainable weights) of the curve."""

    def __init__(self, model):
        self.model = model


@keras.saving.register_keras_serializable(package="tfbayes")
class Curve(keras.Model):
    """A curve ``phi(t)`` in weight space between the trainable weights of two models.

    Every trainable weight of the architecture gets ``num_bends`` copies (the bends); the
    first and last are the endpoints' weights and are frozen, the middle ones are this
    model's trainable weights. They start on the straight line between the endpoints
    (``theta_k = w_a + k / (n - 1) (w_b - w_a)``, the reference initialization), where every
    curve type equals the line. The formula of each curve type is in the module docstring.

    Called as a Keras model, ``curve(x, t=None, training=False)`` runs the architecture with
    the weights ``phi(t)``; with ``t=None`` it draws ``t ~ U(0, 1)``, once per call (one batch),
    which is the training objective of :func:`fit_curve`. Gradients flow to the middle bends
    through ``phi(t)`` (the architecture runs with ``stateless_call``), so ``model.fit``
    with ``jit_compile=True`` works. Weight regularizers of the architecture apply to ``phi(t)``.

    Non-trainable weights are not on the curve: frozen weights are ``model_a``'s all along,
    and BatchNormalization statistics belong to one point only and must be recomputed for
    the weights at ``t`` with :func:`~tfbayes.swag.update_bn`, which :meth:`model_at` and
    :func:`evaluate_curve` do.

    Called directly, ``curve(x, t=t)`` in inference mode normalizes with the architecture's
    running statistics, which training blended over many ``t``: for predictions at ``t`` of
    a network with BatchNormalization use ``model_at(t, bn_data)``.

    A curve saves and loads as a Keras model (``curve.save("curve.keras")``,
    ``keras.saving.load_model``) when its architecture is serializable.

    Args:
      model_a: the model at ``t = 0``, a built Keras model with trainable weights.
      model_b: the model at ``t = 1``, with the same architecture (the same weight shapes and
        dtypes, and the same layer types).
      curve: ``"bezier"``, ``"polychain"`` or ``"line"``.
      num_bends: the number of bends including both endpoints: an int >= 3 for the Bezier
        curve and the polygonal chain (3 by default, one trainable bend: a quadratic Bezier
        curve or a chain of two segments), and 2 for the line.
      seed: the seed of the ``t`` draws, an int or None.

    Raises:
      TypeError: an endpoint is not a Keras model.
      ValueError: an endpoint is not built or has no trainable weights, the endpoints'
        architectures differ, ``curve`` is unknown, or ``num_bends`` does not fit ``curve``.

    Memory: ``num_bends`` copies of the trainable weights, plus one copy of the architecture.
    """

    def __init__(self, model_a, model_b, curve="bezier", num_bends=None, seed=None, **kwargs):
        _check_same_architecture(model_a, model_b)
        # The architecture casts its inputs itself (a float64 network gets float64 inputs).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        if curve not in CURVES:
            raise ValueError(f"curve: expected one of {CURVES}, got {curve!r}")
        if num_bends is None:
            num_bends = 2 if curve == "line" else 3
        if curve == "line":
            if num_bends != 2:
                raise ValueError(
                    f"num_bends: the line has 2 bends (its endpoints), got {num_bends!r}"
                )
        elif (
            isinstance(num_bends, bool)
            or not isinstance(num_bends, (int, np.integer))
            or num_bends < 3
        ):
            raise ValueError(
                f"num_bends: expected an int >= 3 (both endpoints and at least one "
                f"trainable bend) for curve={curve!r}, got {num_bends!r}"
            )
        self.curve = curve
        self.num_bends = int(num_bends)
        self.seed = seed
        template = _clone_built(model_a)
        self._template = _Hidden(template)
        # model_a's non-trainable weights, the starting point of model_at (saved with the curve).
        self.endpoint_state = []
        for i, v in enumerate(template.non_trainable_weights):
            var = self.add_weight(
                shape=v.shape,
                dtype=v.dtype,
                name=f"endpoint_state{i}",
                initializer="zeros",
                trainable=False,
            )
            var.assign(v)
            self.endpoint_state.append(var)
        self._seed_generator = keras.random.SeedGenerator(seed)
        weights_a = [v.numpy() for v in model_a.trainable_variables]
        weights_b = [v.numpy() for v in model_b.trainable_variables]
        self.bends = []
        for k in range(self.num_bends):
            frac = k / (self.num_bends - 1)
            bend = []
            for j, (wa, wb, v) in enumerate(
                zip(weights_a, weights_b, template.trainable_variables)
            ):
                value = wa if k == 0 else wb if k == self.num_bends - 1 else wa + frac * (wb - wa)
                var = self.add_weight(
                    shape=v.shape,
                    dtype=v.dtype,
                    name=f"bend{k}_weight{j}",
                    initializer="zeros",
                    trainable=0 < k < self.num_bends - 1,
                )
                var.assign(value)
                bend.append(var)
            self.bends.append(bend)
        self.built = True  # every weight exists; nothing depends on the input shape

    @property
    def architecture(self):
        """The model that :meth:`call` runs with the weights ``phi(t)`` (internal; its weight
        values are not the curve's)."""
        return self._template.model

    def coefficients(self, t):
        """The bend coefficients ``c_k(t)`` as a NumPy float64 array of shape ``(num_bends,)``."""
        return curve_coefficients(self.curve, self.num_bends, check_t(t)).numpy()

    def _weights_tensors(self, t):
        """``phi(t)``, one tensor per trainable weight of the architecture (``t`` a scalar)."""
        coeffs = curve_coefficients(self.curve, self.num_bends, t)
        weights = []
        for j in range(len(self.bends[0])):
            dtype = self.bends[0][j].dtype
            c = tf.cast(coeffs, dtype)
            weights.append(tf.add_n([c[k] * self.bends[k][j] for k in range(self.num_bends)]))
        return weights

    def weights_at(self, t):
        """``phi(t)`` as a list of NumPy arrays, in the order of the architecture's
        ``trainable_weights``. ``weights_at(0)`` and ``weights_at(1)`` are exactly the
        endpoints' trainable weights."""
        return [w.numpy() for w in self._weights_tensors(check_t(t))]

    def model_at(self, t, bn_data=None, batch_size=128):
        """A new Keras model with the architecture and the weights ``phi(t)``.

        Its non-trainable weights are ``model_a``'s; the statistics of its
        BatchNormalization layers are then recomputed over ``bn_data`` (usually the training
        inputs) with :func:`~tfbayes.swag.update_bn`.

        Args:
          t: a number in [0, 1].
          bn_data: data for :func:`~tfbayes.swag.update_bn`; required when the architecture
            has BatchNormalization layers.
          batch_size: the batch size of :func:`~tfbayes.swag.update_bn` on arrays.

        Raises:
          ValueError: ``t`` is outside [0, 1], or the model has BatchNormalization layers and
            ``bn_data`` is None.
        """
        t = check_t(t)
        model = _clone_built(self.architecture)
        self._load(model, t, bn_data, batch_size)
        return model

    def _load(self, model, t, bn_data, batch_size):
        """Sets ``model`` (with the architecture) to the weights ``phi(t)`` and recomputes its
        BatchNormalization statistics over ``bn_data``."""
        if batch_norm_layers(model) and bn_data is None:
            raise ValueError(
                "bn_data: the model has BatchNormalization layers, whose statistics "
                "must be recomputed for the weights at t; expected data (e.g. the "
                "training inputs), got None"
            )
        for var, value in zip(model.trainable_variables, self._weights_tensors(t)):
            var.assign(value)
        for var, value in zip(model.non_trainable_weights, self.endpoint_state):
            var.assign(value)
        if bn_data is not None:
            update_bn(model, bn_data, batch_size=batch_size)

    def call(self, inputs, training=None, t=None):
        if t is None:
            t = keras.random.uniform((), dtype="float64", seed=self._seed_generator)
        elif not tf.is_tensor(t):
            t = check_t(t)
        model = self.architecture
        outputs, non_trainable, losses = model.stateless_call(
            self._weights_tensors(t),
            [v.value for v in model.non_trainable_variables],
            inputs,
            training=training,
            return_losses=True,
        )
        # Keep the architecture's state moving (dropout seeds, BatchNormalization statistics).
        for var, value in zip(model.non_trainable_variables, non_trainable):
            var.assign(value)
        for loss in losses:
            self.add_loss(loss)
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            architecture=keras.saving.serialize_keras_object(self.architecture),
            curve=self.curve,
            num_bends=self.num_bends,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        """A curve with the architecture of ``config``, to be filled by ``load_weights``."""
        config = dict(config)
        architecture = keras.saving.deserialize_keras_object(config.pop("architecture"))
        return cls(architecture, architecture, **config)


def fit_curve(
    model_a,
    model_b,
    data,
    curve="bezier",
    num_bends=None,
    epochs=10,
    batch_size=32,
    optimizer="adam",
    loss=None,
    seed=None,
    jit_compile="auto",
    callbacks=None,
    verbose=0,
):
    """Trains a curve between two trained models (arXiv 1802.10026).

    The middle bends minimize ``E_{t ~ U(0, 1)} L(phi(t))`` by stochastic gradients, with one
    ``t`` drawn per batch; the endpoints stay fixed. The bends start on the straight line
    between the endpoints. Training is ``model.fit`` on the :class:`Curve` (BatchNormalization
    layers normalize with the batch statistics at ``phi(t)``).

    Args:
      model_a, model_b: the endpoints, built Keras models with the same architecture.
      data: ``(x, y)`` arrays (shuffled into batches of ``batch_size``) or a
        ``tf.data.Dataset`` of ``(x, y)`` batches.
      curve: ``"bezier"`` or ``"polychain"``.
      num_bends: the number of bends including both endpoints, an int >= 3 (default 3).
      epochs: the number of training epochs.
      batch_size: the batch size for array data.
      optimizer: a Keras optimizer or its name.
      loss: a Keras loss; by default the one ``model_a`` was compiled with.
      seed: the seed of the ``t`` draws.
      jit_compile: passed to ``compile``.
      callbacks: Keras callbacks for ``fit``.
      verbose: passed to ``fit``.

    Returns:
      The trained :class:`Curve`, compiled with ``loss`` (and accuracy); ``curve.history``
      holds the ``fit`` history.

    Raises:
      ValueError: as :class:`Curve`, for ``curve="line"`` (nothing to train: build
        ``Curve(model_a, model_b, curve="line")``), and when no loss is known.

    Cost: ``epochs`` passes over ``data``, each step one forward and backward pass plus
    ``O(num_bends * P)`` to form ``phi(t)``.
    """
    if curve == "line":
        raise ValueError(
            "curve: the line has no bends to train; use "
            "Curve(model_a, model_b, curve='line') directly"
        )
    if loss is None:
        loss = getattr(model_a, "loss", None)
        if loss is None:
            raise ValueError(
                "loss: model_a was not compiled with a loss; expected loss=..., got None"
            )
    result = Curve(model_a, model_b, curve=curve, num_bends=num_bends, seed=seed)
    result.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"], jit_compile=jit_compile)
    if isinstance(data, tuple):
        x, y = data
        result.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=verbose,
        )
    else:
        # A dataset batches and shuffles itself; shuffle=False keeps Keras from warning.
        result.fit(data, epochs=epochs, shuffle=False, callbacks=callbacks, verbose=verbose)
    return result


def evaluate_curve(curve, data, ts, loss=None, bn_data=None, batch_size=128):
    """The loss and accuracy of a curve's models at the points ``ts``.

    At every ``t`` the architecture gets the weights ``phi(t)``, its BatchNormalization
    statistics are recomputed over ``bn_data`` with :func:`~tfbayes.swag.update_bn`, and it is
    evaluated on ``data`` with ``model.evaluate`` (so the loss includes the architecture's
    regularization losses at ``phi(t)``).

    Args:
      curve: a :class:`Curve` (trained by :func:`fit_curve`, or the line).
      data: ``(x, y)`` arrays or a ``tf.data.Dataset`` of ``(x, y)`` batches.
      ts: the points, an iterable of numbers in [0, 1].
      loss: a Keras loss; by default the one the curve was compiled with.
      bn_data: data for :func:`~tfbayes.swag.update_bn`; by default the inputs of ``data``.
        Pass the training inputs when ``data`` is a test set.
      batch_size: the batch size on array data.

    Returns:
      A dict of NumPy arrays of shape ``(len(ts),)``: ``"t"``, ``"loss"`` and ``"accuracy"``.

    Cost: ``len(ts)`` passes over ``data`` (plus over ``bn_data`` if there is BatchNormalization).
    """
    if not isinstance(curve, Curve):
        raise TypeError(f"curve: expected a tfbayes.swag.Curve, got {type(curve).__name__}")
    values = np.atleast_1d(np.asarray(ts, dtype=object))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"ts: expected a non-empty sequence of numbers in [0, 1], got {ts!r}")
    ts = [check_t(t, "ts") for t in values]
    if loss is None:
        loss = getattr(curve, "loss", None)
        if loss is None:
            raise ValueError(
                "loss: the curve was not compiled with a loss; expected loss=..., got None"
            )
    model = curve.architecture
    with model.distribute_strategy.scope():  # the strategy the curve was built under
        model.compile(loss=loss, metrics=["accuracy"])
    if bn_data is None:
        bn_data = data
    losses, accuracies = [], []
    for t in ts:
        curve._load(model, t, bn_data if batch_norm_layers(model) else None, batch_size)
        if isinstance(data, tuple):
            result = model.evaluate(*data, batch_size=batch_size, verbose=0, return_dict=True)
        else:
            result = model.evaluate(data, verbose=0, return_dict=True)
        losses.append(result["loss"])
        accuracies.append(result["accuracy"])
    return {"t": np.asarray(ts), "loss": np.asarray(losses), "accuracy": np.asarray(accuracies)}


def _clone_built(model):
    """A new model with ``model``'s architecture and weights (built; subclassed models need
    ``get_config``/``from_config``, as for ``keras.models.clone_model``)."""
    clone = keras.models.clone_model(model)
    if not clone.built or len(clone.weights) != len(model.weights):
        clone.build_from_config(model.get_build_config())
    if len(clone.weights) != len(model.weights):
        raise ValueError(
            f"model: could not rebuild {model.name!r} with the same weights "
            f"({len(model.weights)} expected, {len(clone.weights)} built)"
        )
    clone.set_weights(model.get_weights())
    return clone


def _layer_types(model):
    return [
        type(layer).__name__ for layer in model._flatten_layers(include_self=True, recursive=True)
    ]


def _check_same_architecture(model_a, model_b):
    for name, model in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(model, keras.Model):
            raise TypeError(f"{name}: expected a Keras model, got {type(model).__name__}")
        if not model.built:
            raise ValueError(
                f"{name}: expected a built model (call it on data once), "
                f"got the unbuilt {model.name!r}"
            )
        if not model.trainable_variables:
            raise ValueError(
                f"{name}: expected a model with trainable weights, got {model.name!r} with none"
            )
    if _layer_types(model_a) != _layer_types(model_b):
        raise ValueError(
            f"model_b: expected the architecture of model_a (layers "
            f"{_layer_types(model_a)}), got layers {_layer_types(model_b)}"
        )
    specs_a = [(tuple(v.shape), v.dtype, v.trainable) for v in model_a.weights]
    specs_b = [(tuple(v.shape), v.dtype, v.trainable) for v in model_b.weights]
    if len(specs_a) != len(specs_b):
        raise ValueError(
            f"model_b: expected the architecture of model_a ({len(specs_a)} "
            f"weights), got {len(specs_b)} weights"
        )
    for i, (spec_a, spec_b) in enumerate(zip(specs_a, specs_b)):
        if spec_a != spec_b:
            raise ValueError(
                f"model_b: expected the architecture of model_a, got a different "
                f"weight {i} ({model_b.weights[i].path}): (shape, dtype, "
                f"trainable) = {spec_b} in model_b, {spec_a} in model_a"
            )
