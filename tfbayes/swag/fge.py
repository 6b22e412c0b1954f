"""Fast Geometric Ensembling (FGE): an ensemble collected along one training run.

Garipov, Izmailov, Podoprikhin, Vetrov, Wilson 2018, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs" (arXiv 1802.10026). Starting from a trained network, the
learning rate follows a triangular cycle of ``c`` steps, from ``lr_max`` down to ``lr_min`` and
back; at the middle of every cycle, where the learning rate is smallest, the weights are
close to a (new) optimum and are saved as one member of the ensemble. The ensemble predicts
the mean of its members' class probabilities.
"""

import functools

import keras
import numpy as np

from tfbayes.layers.base import check_finite_real
from tfbayes.swag.averaging import average_predictions
from tfbayes.swag.swa import _check_int, _check_positive


def fge_learning_rate(step, cycle_steps, lr_max, lr_min):
    """The FGE learning rate at training step ``step`` (0-based), as in arXiv 1802.10026.

    With the paper's iteration number ``i = step + 1`` and ``t = (((i - 1) mod c) + 1) / c``
    in ``(0, 1]``:

        lr = (1 - 2t) * lr_max + 2t * lr_min          for 0 < t <= 1/2,
        lr = (2 - 2t) * lr_min + (2t - 1) * lr_max    for 1/2 < t <= 1.

    The rate falls linearly from (just below) ``lr_max`` to ``lr_min``, reached at ``t = 1/2``,
    and climbs back to ``lr_max`` at the cycle's last step. For an odd ``c`` no step has
    ``t = 1/2``: the two middle steps ``c // 2 - 1`` and ``c // 2`` (0-based, within the cycle)
    share the smallest rate.

    Args:
      step: the 0-based global step, a non-negative int.
      cycle_steps: the cycle length ``c`` in steps, an int >= 2.
      lr_max, lr_min: the largest and smallest learning rates (``alpha_1``, ``alpha_2``).

    Returns:
      The learning rate, a Python float.
    """
    t = ((step % cycle_steps) + 1) / cycle_steps
    if t <= 0.5:
        return (1.0 - 2.0 * t) * lr_max + 2.0 * t * lr_min
    return (2.0 - 2.0 * t) * lr_min + (2.0 * t - 1.0) * lr_max


def is_snapshot_step(step, cycle_steps):
    """Whether FGE saves the weights after the 0-based step ``step``: the first step of each
    cycle with the smallest learning rate, ``(step mod c) + 1 = c // 2`` (``t = 1/2`` exactly
    when ``c`` is even)."""
    return (step % cycle_steps) + 1 == cycle_steps // 2


class FGE(keras.callbacks.Callback):
    """Fast Geometric Ensembling: a cyclic learning rate and one snapshot per cycle.

    Train an already trained model further with ``model.fit(..., callbacks=[fge])``. Before
    every step the callback sets the optimizer's learning rate to
    :func:`fge_learning_rate` (a triangle over ``cycle_epochs`` epochs, ``c`` steps), and at
    the middle of every cycle, after the step with the smallest learning rate, it stores a
    copy of all the model's weights. :meth:`predict` averages the snapshots' probabilities.

    The step count carries on across several ``fit`` calls (the cycle continues), so does the
    list of snapshots. The optimizer needs a settable learning rate (a float, not a
    ``LearningRateSchedule``), the paper uses SGD with momentum. The model must be compiled
    with ``steps_per_execution=1`` (callbacks see every step).

    Args:
      cycle_epochs: the cycle length in epochs, a positive int (the reference CIFAR runs use 2,
        with ``lr_max = 0.05``, ``lr_min = 0.01`` for PreResNet-164); the
        cycle has ``c = cycle_epochs * steps_per_epoch`` steps, and ``c`` must be >= 2.
      lr_max: the learning rate at the cycle ends (``alpha_1``), a positive number.
      lr_min: the learning rate at the cycle middle (``alpha_2``), in ``[0, lr_max]``.
      steps_per_epoch: the number of steps in an epoch; by default the one ``model.fit``
        reports (required when ``fit`` cannot know it, e.g. for an unsized dataset).

    Attributes:
      snapshots: the list of snapshots, each the list ``model.get_weights()`` returned.
      cycle_steps: ``c``, known once training started.

    Example:

    ```python
    model.fit(x, y, epochs=20)                     # a trained model
    fge = tfbayes.swag.FGE(cycle_epochs=2, lr_max=0.05, lr_min=0.01)
    model.fit(x, y, epochs=8, callbacks=[fge])     # 4 cycles, 4 snapshots
    probs = fge.predict(x_test, bn_data=x)         # (n, classes)
    ```

    Memory: one copy of the weights per snapshot.
    """

    def __init__(self, cycle_epochs, lr_max, lr_min, steps_per_epoch=None):
        super().__init__()
        self.cycle_epochs = _check_int(cycle_epochs, "cycle_epochs", 1)
        self.lr_max = _check_positive(lr_max, "lr_max")
        if not 0 <= check_finite_real(lr_min, "lr_min") <= lr_max:
            raise ValueError(
                f"lr_min: expected a number in [0, lr_max] = [0, {lr_max}], got {lr_min!r}"
            )
        self.lr_min = float(lr_min)
        self.steps_per_epoch = (
            None if steps_per_epoch is None else _check_int(steps_per_epoch, "steps_per_epoch", 1)
        )
        self.cycle_steps = None
        self.snapshots = []
        self._step = 0

    def on_train_begin(self, logs=None):
        if getattr(self.model, "steps_per_execution", 1) != 1:
            raise ValueError(
                f"model: FGE sets the learning rate before every step and needs "
                f"steps_per_execution=1 in compile, got "
                f"{self.model.steps_per_execution}"
            )
        steps = self.steps_per_epoch or self.params.get("steps")
        if not steps:
            raise ValueError(
                "steps_per_epoch: model.fit does not know the number of steps in "
                "an epoch; pass steps_per_epoch to FGE"
            )
        cycle_steps = self.cycle_epochs * int(steps)
        if cycle_steps < 2:
            raise ValueError(
                f"cycle_epochs: expected a cycle of at least 2 steps, got "
                f"{self.cycle_epochs} epoch(s) of {steps} step(s)"
            )
        rate = getattr(self.model.optimizer, "_learning_rate", None)
        if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule) or callable(rate):
            raise ValueError(
                "model: the optimizer's learning rate is a schedule, which FGE "
                "cannot overwrite; give the optimizer a constant learning rate"
            )
        self.cycle_steps = cycle_steps

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate = fge_learning_rate(
            self._step, self.cycle_steps, self.lr_max, self.lr_min
        )

    def on_train_batch_end(self, batch, logs=None):
        if is_snapshot_step(self._step, self.cycle_steps):
            self.snapshots.append([np.copy(w) for w in self.model.get_weights()])
        self._step += 1

    def predict(self, x, bn_data=None, model=None, batch_size=None, from_logits=False):
        """The ensemble's predictive distribution: the mean of the snapshots' probabilities.

            p(y | x) = (1/S) sum_s p(y | x, w_s)

        Each snapshot's weights are loaded into the model in turn (by
        :func:`~tfbayes.swag.average_predictions`); when ``bn_data`` is given
        and the model has BatchNormalization layers, their statistics are recomputed for that
        snapshot by :func:`~tfbayes.swag.update_bn` (otherwise the snapshot keeps the moving
        statistics it had when it was taken, as in the reference code: they were averaged
        over the low-learning-rate steps before it). The model's weights are restored
        afterwards.

        Args:
          x: the inputs, anything ``model.predict`` accepts.
          bn_data: data for :func:`~tfbayes.swag.update_bn` (usually the training inputs),
            or None.
          model: the model (default: the one trained with this callback).
          batch_size: the batch size of ``model.predict``.
          from_logits: whether the model outputs logits (a softmax is then applied to each
            snapshot's output) rather than probabilities.

        Returns:
          A float64 NumPy array with the shape of the model's output: the averaged
          probabilities.

        Cost: S forward passes over ``x`` (plus S over ``bn_data``).
        """
        if not self.snapshots:
            raise ValueError(
                "FGE has no snapshots yet: train with model.fit(..., "
                "callbacks=[fge]) for at least half a cycle first"
            )
        model = self.model if model is None else model
        return average_predictions(
            model,
            [functools.partial(model.set_weights, weights) for weights in self.snapshots],
            x,
            bn_data=bn_data,
            batch_size=batch_size,
            from_logits=from_logits,
        )
