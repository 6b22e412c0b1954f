"""Stochastic Weight Averaging (Izmailov et al. 2018, arXiv 1803.05407) as a Keras callback."""

import json
import os
import warnings

import keras
import numpy as np

from tfbayes.layers.base import check_finite_real
from tfbayes.swag.bn import batch_norm_layers, update_bn
from tfbayes.swag.flat import FlatWeights
from tfbayes.swag.moments import RunningMoments


def swa_learning_rate(epoch, start_epoch, lr_init, swa_lr, ramp=(0.5, 0.9)):
    """The reference SWA learning-rate schedule at (0-based) ``epoch``.

    With ``t = epoch / start_epoch`` and ``r = swa_lr / lr_init``, the rate is
    ``lr_init * f(t)`` where ``f = 1`` for ``t <= ramp[0]``, falls linearly to ``r`` on
    ``[ramp[0], ramp[1]]``, and stays ``r`` afterwards (so averaging runs at ``swa_lr``).
    ``start_epoch = 0`` gives ``swa_lr`` throughout. This is the schedule of the SWA and
    SWAG reference code (``ramp = (0.5, 0.9)``).
    """
    t = epoch / start_epoch if start_epoch > 0 else np.inf
    ratio = swa_lr / lr_init
    low, high = ramp
    if t <= low:
        factor = 1.0
    elif t <= high:
        factor = 1.0 - (1.0 - ratio) * (t - low) / (high - low)
    else:
        factor = ratio
    return lr_init * factor


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a non-negative int" if minimum == 0 else f"an int >= {minimum}"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return int(value)


def _check_positive(value, name):
    if check_finite_real(value, name) <= 0:
        raise ValueError(f"{name}: expected a positive finite number, got {value!r}")
    return float(value)


class SWA(keras.callbacks.Callback):
    """Stochastic Weight Averaging: averages the weights along the SGD trajectory.

    From epoch ``start_epoch`` on (0-based, as Keras counts epochs in callbacks), the
    trainable weights are added to a running average at the end of every epoch, or
    every ``every_n_steps`` training steps. With ``swa_lr`` set, the optimizer's learning
    rate follows the reference schedule (:func:`swa_learning_rate`): constant
    ``lr_init`` for the first half of ``start_epoch``, a linear ramp to ``swa_lr`` until
    ``0.9 * start_epoch``, then ``swa_lr``. When training ends, the model gets the
    averaged weights and BatchNormalization statistics recomputed over ``bn_data`` with
    :func:`update_bn` (Izmailov et al. 2018, Algorithm 1).

    Memory: ``P`` extra numbers for ``P`` trainable weights, kept in host memory as
    NumPy arrays (works unchanged with ``jit_compile=True`` and ``tf.distribute``).

    Args:
      start_epoch: the first (0-based) epoch whose weights are averaged. ``fit`` must run
        past it: per-epoch averaging needs ``start_epoch < epochs - 1`` (at least two
        averaged epochs), per-step averaging ``start_epoch < epochs``.
      swa_lr: the constant learning rate while averaging, or ``None`` to leave the
        optimizer's learning rate (or schedule) alone.
      lr_init: the learning rate before the ramp; by default the optimizer's at the start
        of training.
      every_n_steps: average every this many steps instead of once per epoch (with
        ``steps_per_execution = s`` in ``compile``, Keras calls batch hooks once per ``s``
        steps, and this counts those calls).
      bn_data: data for :func:`update_bn` at the end of training (e.g. the training set
        without labels, or a ``tf.data.Dataset``). Required when the model has
        BatchNormalization layers and ``set_weights_at_end`` is true.
      bn_batch_size: the batch size :func:`update_bn` uses when ``bn_data`` is an array.
      set_weights_at_end: whether ``on_train_end`` sets the averaged weights.
      ramp: the fractions of ``start_epoch`` where the ramp begins and ends.

    Attributes:
      moments: the :class:`RunningMoments` collected so far (``moments.mean`` is the
        average, ``moments.count`` the number of averaged weight vectors).

    Example:
      ```python
      swa = tfbayes.swag.SWA(start_epoch=15, swa_lr=0.01, bn_data=x_train)
      model.fit(x_train, y_train, epochs=20, callbacks=[swa])  # ends on SWA weights
      ```
    """

    _track_variance = False

    def __init__(
        self,
        start_epoch,
        swa_lr=None,
        lr_init=None,
        every_n_steps=None,
        bn_data=None,
        bn_batch_size=128,
        set_weights_at_end=True,
        ramp=(0.5, 0.9),
    ):
        super().__init__()
        self.start_epoch = _check_int(start_epoch, "start_epoch", 0)
        self.swa_lr = None if swa_lr is None else _check_positive(swa_lr, "swa_lr")
        self.lr_init = None if lr_init is None else _check_positive(lr_init, "lr_init")
        self.every_n_steps = (
            None if every_n_steps is None else _check_int(every_n_steps, "every_n_steps", 1)
        )
        self.bn_batch_size = _check_int(bn_batch_size, "bn_batch_size", 1)
        self.bn_data = bn_data
        self.set_weights_at_end = bool(set_weights_at_end)
        if (
            not isinstance(ramp, (tuple, list))
            or len(ramp) != 2
            or not 0 <= check_finite_real(ramp[0], "ramp") < check_finite_real(ramp[1], "ramp") <= 1
        ):
            raise ValueError(f"ramp: expected two fractions 0 <= a < b <= 1, got {ramp!r}")
        self.ramp = (float(ramp[0]), float(ramp[1]))
        self.moments = None
        self._shapes = None
        self._flat_weights = None
        self._epoch = 0
        self._steps = 0

    def _max_rank(self):
        return 0

    def get_config(self):
        """The constructor arguments (except ``bn_data``), as saved by :meth:`save`."""
        return {
            "start_epoch": self.start_epoch,
            "swa_lr": self.swa_lr,
            "lr_init": self.lr_init,
            "every_n_steps": self.every_n_steps,
            "bn_batch_size": self.bn_batch_size,
            "set_weights_at_end": self.set_weights_at_end,
            "ramp": list(self.ramp),
        }

    # Collection -------------------------------------------------------------------------

    def _flat(self, model=None):
        model = self.model if model is None else model
        if model is None:
            raise ValueError(
                "model: expected a Keras model, got None (pass model=, or use "
                "this callback in model.fit first)"
            )
        flat = FlatWeights(model)
        if self._shapes is not None:
            flat.check_matches(self._shapes, f"the collected state of {type(self).__name__}")
        return flat

    def on_train_begin(self, logs=None):
        epochs = self.params.get("epochs")
        if epochs is not None:
            last = epochs - 1 if self.every_n_steps is None else epochs
            if self.start_epoch >= last:
                per = (
                    "the end of each epoch"
                    if self.every_n_steps is None
                    else f"every {self.every_n_steps} steps"
                )
                raise ValueError(
                    f"start_epoch: expected an epoch before {last} so that averaging at {per} "
                    f"collects at least two weight vectors in fit(epochs={epochs}), got "
                    f"{self.start_epoch}"
                )
        self._flat_weights = self._flat()
        if self.set_weights_at_end and self.bn_data is None and batch_norm_layers(self.model):
            raise ValueError(
                "bn_data: the model has BatchNormalization layers, whose statistics "
                "must be recomputed for the averaged weights; pass the training "
                "inputs as bn_data (or set_weights_at_end=False), got None"
            )
        if self.moments is None:
            self.moments = RunningMoments(
                self._flat_weights.size,
                self._flat_weights.dtype,
                self._track_variance,
                self._max_rank(),
            )
            self._shapes = self._flat_weights.shapes
        if self.swa_lr is not None:
            optimizer = self.model.optimizer
            rate = getattr(optimizer, "_learning_rate", None)
            if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) or callable(rate):
                raise ValueError(
                    "swa_lr: the optimizer's learning rate is a schedule, which SWA "
                    "cannot overwrite; pass swa_lr=None to keep the schedule, or "
                    f"give the optimizer a constant rate (got swa_lr={self.swa_lr})"
                )
            if self.lr_init is None:
                self.lr_init = float(np.asarray(optimizer.learning_rate))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.swa_lr is not None:
            self.model.optimizer.learning_rate = swa_learning_rate(
                epoch, self.start_epoch, self.lr_init, self.swa_lr, self.ramp
            )

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps is not None and self._epoch >= self.start_epoch:
            self._steps += 1
            if self._steps % self.every_n_steps == 0:
                self.collect()

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_steps is None and epoch >= self.start_epoch:
            self.collect()

    def collect(self):
        """Adds the model's current weights to the moments (called by the callback hooks)."""
        self.moments.update(self._flat_weights.read())

    def on_train_end(self, logs=None):
        if not self.set_weights_at_end:
            return
        if self.moments.count == 0:
            warnings.warn(
                f"{type(self).__name__}: training ended before any weights were "
                "averaged; the model keeps its last weights"
            )
            return
        self.set_average_weights(bn_data=self.bn_data)

    # Using the average ------------------------------------------------------------------

    def _require(self, minimum):
        if self.moments is None or self.moments.count < minimum:
            count = 0 if self.moments is None else self.moments.count
            raise ValueError(
                f"{type(self).__name__}: expected at least {minimum} collected weight "
                f"vector(s), got {count}; train with the callback first"
            )

    def set_average_weights(self, model=None, bn_data=None):
        """Sets ``model``'s (default: the trained model's) trainable weights to the average
        and, when ``bn_data`` is given, recomputes its BatchNormalization statistics."""
        self._require(1)
        flat = self._flat(model)
        flat.assign(self.moments.mean)
        if bn_data is not None:
            update_bn(self.model if model is None else model, bn_data, self.bn_batch_size)

    # Saving -----------------------------------------------------------------------------

    def save(self, path):
        """Saves the configuration and the collected state to ``path`` (a NumPy ``.npz``;
        as with ``np.savez``, ``.npz`` is appended to a path without it).

        :meth:`load` restores it, to resume collection in a later ``fit`` (pass
        ``initial_epoch``) or to ship the average / posterior with the model's architecture.
        """
        self._require(1)
        arrays = {f"moments/{key}": value for key, value in self.moments.state().items()}
        header = {
            "class": type(self).__name__,
            "config": self.get_config(),
            "shapes": [list(shape) for shape in self._shapes],
        }
        np.savez(path, header=np.asarray(json.dumps(header)), **arrays)

    @classmethod
    def load(cls, path, bn_data=None):
        """Rebuilds a callback saved by :meth:`save` (``bn_data`` is not saved)."""
        path = str(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        with np.load(path) as archive:
            header = json.loads(str(archive["header"]))
            state = {
                key.split("/", 1)[1]: archive[key]
                for key in archive.files
                if key.startswith("moments/")
            }
        if header["class"] != cls.__name__:
            raise ValueError(
                f"path: expected a saved {cls.__name__}, got a saved {header['class']} in {path!r}"
            )
        callback = cls(bn_data=bn_data, **header["config"])
        callback.moments = RunningMoments.from_state(state)
        callback._shapes = [tuple(shape) for shape in header["shapes"]]
        return callback
