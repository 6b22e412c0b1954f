"""Adaptive Computation Time over a stack of residual units (ACT and spatially adaptive SACT).

Figurnov, Collins, Zhu, Zhang, Huang, Vetrov, Salakhutdinov, "Spatially Adaptive
Computation Time for Residual Networks", CVPR 2017, arXiv 1612.02297, after
Graves, "Adaptive Computation Time for Recurrent Neural Networks", arXiv 1603.08983.

A stack of ``L`` residual units computes states ``x_0 = inputs`` and
``x_l = x_{l-1} + m_l * F_l(x_{l-1})``. After unit ``l < L`` a halting score
``h_l = sigmoid(logit_l(x_l))`` in (0, 1) is computed; ``h_L = 1``. With
``eps`` (0.01 in the paper), a position halts at

    N = min{ n : h_1 + ... + h_n >= 1 - eps },        R = 1 - (h_1 + ... + h_{N-1}),

the halting distribution is ``p_n = h_n`` for ``n < N``, ``p_N = R`` and 0 after,
and the output is ``sum_n p_n x_n``. The ponder cost ``rho = N + R`` bounds the
number of evaluated units; ``tau * mean(rho)`` is added to the loss (gradients
flow through ``R`` only, ``N`` is piecewise constant).

* **ACT** (``variant='act'``): one halting score per example,
  ``logit = w . mean_spatial(x) + b``.
* **SACT** (``variant='sact'``): one per spatial position of a 4-D state,
  ``logit = conv_kxk(x) + w . mean_spatial(x) + b`` (the paper's Sec. 3.2). The
  residual mask ``m_l`` is 1 at positions that have not halted before unit
  ``l`` and 0 elsewhere, so a halted position's features are copied forward
  and its neighbours still see them.

The bias ``b`` is initialised to -3 (the reference) so that training starts by
evaluating most units.

:class:`ProbabilisticAdaptiveComputationBlock` replaces this halting rule with
discrete halting variables (Probabilistic ACT, Figurnov, Sobolev, Vetrov,
arXiv 1712.00386), relaxed by the Concrete distribution in training.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops
from tensorflow.python.ops import control_flow_util

from tfbayes.flops import Flops, add_flops, conv_flops, dense_flops, layer_flops
from tfbayes.layers.base import check_finite_real

tfd = tfp.distributions

VARIANTS = ("act", "sact")


@keras.saving.register_keras_serializable(package="tfbayes")
class ResidualUnit(keras.layers.Layer):
    """The residual branch of a pre-activation ResNet basic unit, for adaptive computation.

    ``F(x) = conv(relu(bn(conv(relu(bn(x))))))`` with two ``kernel_size``
    convolutions of ``channels`` filters (stride 1, 'same' padding), so that
    ``x + F(x)`` is the unit of He et al. 2016 (identity mappings). The number of
    channels is taken from the input. :class:`AdaptiveComputationBlock` adds the
    shortcut; on its own the layer returns the residual only.

    Args:
      kernel_size: a positive odd int.
      kernel_initializer: the initializer of both convolutions.
      **kwargs: base layer arguments (``name``, ``dtype``).

    Call arguments:
      inputs: ``[batch, height, width, channels]``.
      training: Python bool, for batch normalization.

    Returns:
      ``[batch, height, width, channels]``.
      Cost: ``2 * H * W * kernel_size^2 * channels^2`` multiply-adds per example.
    """

    def __init__(self, kernel_size=3, kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = _check_odd_size(kernel_size, "kernel_size")
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"Layer {self.name!r}: expected a 4-D input with known channels, "
                f"got shape {tuple(input_shape)}"
            )
        channels = int(input_shape[-1])

        def conv(name):
            return keras.layers.Conv2D(
                channels,
                self.kernel_size,
                padding="same",
                use_bias=False,
                dtype=self.dtype_policy,
                name=name,
                kernel_initializer=self.kernel_initializer,
            )

        self.norm1 = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="bn1")
        self.conv1 = conv("conv1")
        self.norm2 = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="bn2")
        self.conv2 = conv("conv2")
        for layer in (self.norm1, self.conv1, self.norm2, self.conv2):
            layer.build(input_shape)

    def call(self, inputs, training=False):
        x = self.conv1(ops.relu(self.norm1(inputs, training=training)))
        return self.conv2(ops.relu(self.norm2(x, training=training)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def flops(self, input_shape):
        """``(dense, dense)`` multiply-adds per example (the tfbayes.flops protocol)."""
        count = 2 * conv_flops(
            (self.kernel_size,) * 2,
            int(input_shape[-1]),
            int(input_shape[-1]),
            _positions(input_shape),
        )
        return count, count

    def masked_flops(self, input_shape, mask):
        """Multiply-adds per example when only the positions where ``mask`` is true are needed.

        The second convolution is computed at the masked positions, the first at
        the masked positions dilated by the kernel (the positions the second one
        reads), as in the SACT reference.

        Args:
          input_shape: the unit's input shape.
          mask: a boolean tensor ``[batch, height, width]``.

        Returns:
          an int64 tensor ``[batch]``.
        """
        per_position = conv_flops(
            (self.kernel_size,) * 2, int(input_shape[-1]), int(input_shape[-1]), 1
        )
        dilated = (
            ops.max_pool(ops.cast(mask, "float32")[..., None], self.kernel_size, 1, padding="same")[
                ..., 0
            ]
            > 0
        )
        return per_position * (_count(mask) + _count(dilated))

    def get_config(self):
        config = super().get_config()
        config.update(
            kernel_size=self.kernel_size,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def _check_odd_size(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value <= 0
        or value % 2 == 0
    ):
        raise ValueError(f"{name}: expected a positive odd int, got {value!r}")
    return int(value)


def _positions(shape):
    return int(np.prod([int(d) for d in shape[1:-1]], dtype=np.int64))


def _in_xla_context():
    """True while tracing code that XLA compiles (``jit_compile=True``), whose shapes are static."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _count(mask):
    """The number of true entries of ``mask`` per example, int64 ``[batch]``."""
    return ops.sum(ops.reshape(ops.cast(mask, "int64"), (ops.shape(mask)[0], -1)), axis=1)


@keras.saving.register_keras_serializable(package="tfbayes")
class AdaptiveComputationBlock(keras.layers.Layer):
    """A stack of residual units with (spatially) adaptive computation time.

    See the module docstring for the halting rule, the output and the ponder
    cost (SACT paper eqs. 1-7). In training, every unit runs on the whole batch
    and halted positions are masked, which gives the exact gradients of the
    paper. At inference (``training=False``) a unit runs only on the examples
    that still have a running position (gathered and scattered back), so an
    example whose every position has halted skips its remaining units; under
    XLA (static shapes) a unit is skipped only once the whole batch has halted.
    Within an example, halted positions are masked, and the FLOPs count reports
    the per-position savings, as in the reference.

    Args:
      units: a list of Keras layers, each computing a residual branch ``F_l``
        whose output has its input's shape; or a positive int ``n`` for ``n``
        :class:`ResidualUnit` (3x3 pre-activation basic units).
      variant: ``'sact'`` (a halting score per spatial position; 4-D states) or
        ``'act'`` (one per example; states of any rank >= 2).
      eps: the halting threshold's slack, in (0, 1); default 0.01.
      tau: the ponder cost weight, a non-negative number; ``tau * mean(rho)`` is
        added through ``add_loss`` in float32 (0 adds nothing).
      halting_bias_initializer: the initial halting logit bias, default -3.
      halting_kernel_size: the SACT halting convolution's size, a positive odd int.
      **kwargs: base layer arguments (``name``, ``dtype``).

    Call arguments:
      inputs: ``[batch, ..., channels]`` (``[batch, height, width, channels]`` for SACT).
      training: Python bool, passed to the units.
      return_ponder: Python bool; also return a dict of the ponder statistics.

    Returns:
      the output, of the inputs' shape; with ``return_ponder=True`` a pair
      ``(output, stats)`` where ``stats`` has ``'ponder_cost'`` (``rho``),
      ``'num_units'`` (int32, units evaluated), ``'halting_distribution'``
      (``p``, last axis over units), computed in float32 (float64 for float64
      layers), with shape ``[batch, height, width]`` for SACT and ``[batch]``
      for ACT (the ponder map); and ``'flops'`` (int64 ``[batch]``, the
      multiply-adds of the units and halting layers actually needed per example).

    Cost: up to ``L`` units, plus the halting layers (a 1-filter conv per unit for SACT).

    Example:

    >>> block = AdaptiveComputationBlock(3, variant="sact", tau=0.01)
    >>> y, stats = block(np.ones((2, 8, 8, 4), "float32"), return_ponder=True)
    >>> y.shape, stats["ponder_cost"].shape
    (TensorShape([2, 8, 8, 4]), TensorShape([2, 8, 8]))
    """

    def __init__(
        self,
        units,
        variant="sact",
        eps=0.01,
        tau=0.01,
        halting_bias_initializer=-3.0,
        halting_kernel_size=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, (int, np.integer)) and not isinstance(units, bool):
            if units <= 0:
                raise ValueError(
                    f"units: expected a positive int or a list of layers, got {units!r}"
                )
            units = [
                ResidualUnit(dtype=self.dtype_policy, name=f"unit_{i + 1}")
                for i in range(int(units))
            ]
        elif (
            isinstance(units, (list, tuple))
            and units
            and all(isinstance(u, keras.layers.Layer) for u in units)
        ):
            units = list(units)
        else:
            raise ValueError(
                f"units: expected a positive int or a non-empty list of Keras layers, got {units!r}"
            )
        self.residual_units = units
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        eps = check_finite_real(eps, "eps")
        if not 0.0 < eps < 1.0:
            raise ValueError(f"eps: expected a number in (0, 1), got {eps!r}")
        self.eps = eps
        tau = check_finite_real(tau, "tau")
        if tau < 0:
            raise ValueError(f"tau: expected a non-negative number, got {tau!r}")
        self.tau = tau
        self.halting_bias_initializer = check_finite_real(
            halting_bias_initializer, "halting_bias_initializer"
        )
        self.halting_kernel_size = _check_odd_size(halting_kernel_size, "halting_kernel_size")

    @property
    def num_units(self):
        """The number of residual units L."""
        return len(self.residual_units)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if self.variant == "sact" and len(input_shape) != 4:
            raise ValueError(
                f"Layer {self.name!r}: variant 'sact' expects a 4-D input "
                f"(batch, height, width, channels), got shape {input_shape}"
            )
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Layer {self.name!r}: expected an input of rank >= 2 with known "
                f"channels, got shape {input_shape}"
            )
        for unit in self.residual_units:
            if not unit.built:
                unit.build(input_shape)
            try:
                out_shape = tuple(unit.compute_output_shape(input_shape))
            except NotImplementedError:
                continue
            if out_shape[1:] != input_shape[1:]:
                raise ValueError(
                    f"Layer {self.name!r}: units: expected residual units that keep "
                    f"the input's shape {input_shape}, got unit {unit.name!r} with "
                    f"output shape {out_shape}"
                )
        policy = self.dtype_policy
        bias = keras.initializers.Constant(self.halting_bias_initializer)
        pooled_shape = (input_shape[0], input_shape[-1])
        self.halting_global = []
        self.halting_local = []
        for i in range(self.num_units - 1):
            glob = keras.layers.Dense(
                1,
                use_bias=self.variant == "act",
                bias_initializer=bias,
                dtype=policy,
                name=f"halting_global_{i + 1}",
            )
            glob.build(pooled_shape)
            self.halting_global.append(glob)
            if self.variant == "sact":
                local = keras.layers.Conv2D(
                    1,
                    self.halting_kernel_size,
                    padding="same",
                    bias_initializer=bias,
                    dtype=policy,
                    name=f"halting_local_{i + 1}",
                )
                local.build(input_shape)
                self.halting_local.append(local)

    def _stats_dtype(self):
        return "float64" if self.compute_dtype == "float64" else "float32"

    def _halting_logit(self, index, state):
        """The halting logit of unit ``index`` (0-based): ``[batch]`` or ``[batch, H, W]``."""
        spatial_axes = tuple(range(1, len(state.shape) - 1))
        pooled = ops.mean(state, axis=spatial_axes) if spatial_axes else state
        logit = self.halting_global[index](pooled)[:, 0]
        if self.variant == "sact":
            logit = self.halting_local[index](state)[..., 0] + logit[:, None, None]
        return ops.cast(logit, self._stats_dtype())

    def _map_shape(self, inputs):
        """The shape of the halting statistics: ``[batch, H, W]`` (SACT) or ``[batch]`` (ACT)."""
        return ops.shape(inputs)[:3] if self.variant == "sact" else ops.shape(inputs)[:1]

    def _run_unit(self, index, state, active, training):
        """``state + m * F(state)`` with ``m`` = ``active``.

        In training every example runs (masked). At inference the unit runs only
        on the examples with an active position: they are gathered, the unit is
        applied to them and their new states are scattered back, so a halted
        example costs nothing; the whole unit is skipped when no example is
        active. Under XLA, whose shapes are static, the unit is skipped only when
        nothing in the batch is active.
        """
        unit = self.residual_units[index]
        if index == 0:
            return state + unit(state, training=training)
        mask = self._expand(active, state)

        def run():
            return state + mask * unit(state, training=training)

        if training:
            return run()
        if _in_xla_context():
            return ops.cond(ops.any(active), run, lambda: state)
        batch = tf.shape(state)[0]
        running = ops.any(ops.reshape(active, (batch, -1)), axis=1)
        rows = tf.where(running)[:, 0]

        def run_running_examples():
            part = tf.gather(state, rows)
            part = part + tf.gather(mask, rows) * unit(part, training=False)
            return tf.tensor_scatter_nd_update(state, rows[:, None], part)

        count = tf.size(rows)
        return tf.cond(
            count == 0, lambda: state, lambda: tf.cond(count == batch, run, run_running_examples)
        )

    def _active_flops(self, index, input_shape, active):
        """Multiply-adds per example of unit ``index`` and its halting layers for ``active``."""
        if self.variant == "act":
            active = ops.broadcast_to(
                ops.reshape(active, (-1,) + (1,) * (len(input_shape) - 2)),
                (ops.shape(active)[0],) + tuple(input_shape[1:-1]),
            )
        count = self._unit_flops(self.residual_units[index], input_shape, active)
        if index < self.num_units - 1:
            count = count + self._halting_flops(int(input_shape[-1]), active)
        return count

    def _expand(self, values, state):
        """``values`` ([batch] or [batch, H, W]) broadcastable against ``state``, in its dtype."""
        values = ops.cast(values, state.dtype)
        return ops.reshape(
            values, ops.shape(values) + (1,) * (len(state.shape) - len(values.shape))
        )

    def _halting_flops(self, channels, active):
        """Multiply-adds of one unit's halting layers per example, int64 [batch]: the global
        dense for examples with an active position, the SACT conv at the active positions."""
        active_count = _count(active)
        count = dense_flops(channels, 1) * ops.cast(active_count > 0, "int64")
        if self.variant == "sact":
            count = count + conv_flops((self.halting_kernel_size,) * 2, channels, 1, active_count)
        return count

    def _unit_flops(self, unit, input_shape, active):
        """Multiply-adds of ``unit`` per example when only ``active`` positions are needed."""
        if hasattr(unit, "masked_flops"):
            return unit.masked_flops(input_shape, active)
        # A unit of unknown structure costs its dense count times the active fraction.
        dense = layer_flops(unit, input_shape).dense
        fraction = ops.cast(_count(active), "float64") / max(_positions(input_shape), 1)
        return ops.cast(ops.round(dense * fraction), "int64")

    def call(self, inputs, training=False, return_ponder=False):
        stats_dtype = self._stats_dtype()
        inputs = ops.cast(inputs, self.compute_dtype)
        input_shape = tuple(inputs.shape)
        state = inputs
        map_shape = self._map_shape(inputs)
        cumulative = ops.zeros(map_shape, stats_dtype)
        remainder = ops.ones(map_shape, stats_dtype)
        ponder = ops.ones(map_shape, stats_dtype)
        num_units = ops.zeros(map_shape, "int32")
        finished = ops.zeros(map_shape, "bool")
        output = None
        distribution = []
        flops = 0
        for index in range(self.num_units):
            active = ops.logical_not(finished)
            state = self._run_unit(index, state, active, training)
            if return_ponder:
                flops = flops + self._active_flops(index, input_shape, active)
            if index < self.num_units - 1:
                halting = ops.sigmoid(self._halting_logit(index, state))
            else:
                halting = ops.ones(map_shape, stats_dtype)
            cumulative = cumulative + halting
            now_finished = cumulative >= 1.0 - self.eps
            just_finished = ops.logical_and(now_finished, active)
            zero = ops.zeros_like(halting)
            proba = ops.where(now_finished, zero, halting)
            weight = ops.where(just_finished, remainder, proba)
            ponder = ponder + ops.where(
                now_finished, ops.where(just_finished, remainder, zero), ops.ones_like(halting)
            )
            num_units = num_units + ops.cast(active, "int32")
            contribution = self._expand(weight, state) * state
            output = contribution if output is None else output + contribution
            remainder = remainder - proba
            finished = now_finished
            distribution.append(weight)
        if self.tau > 0:
            self.add_loss(self.tau * ops.mean(ops.cast(ponder, "float32")))
        if not return_ponder:
            return output
        stats = {
            "ponder_cost": ponder,
            "num_units": num_units,
            "halting_distribution": ops.stack(distribution, axis=-1),
            "flops": flops,
        }
        return output, stats

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs, training=False, return_ponder=False):
        output = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_ponder:
            return output
        map_shape = tuple(inputs.shape[:3] if self.variant == "sact" else inputs.shape[:1])
        stats_dtype = self._stats_dtype()
        return output, {
            "ponder_cost": keras.KerasTensor(map_shape, dtype=stats_dtype),
            "num_units": keras.KerasTensor(map_shape, dtype="int32"),
            "halting_distribution": keras.KerasTensor(
                map_shape + (self.num_units,), dtype=stats_dtype
            ),
            "flops": keras.KerasTensor(map_shape[:1], dtype="int64"),
        }

    def flops(self, input_shape):
        """``(dense, None)``: every unit and halting layer at every position (FLOPs protocol).

        The actual count depends on the data; see :meth:`data_flops`.
        """
        input_shape = tuple(input_shape)
        total = Flops(0, 0)
        channels = int(input_shape[-1])
        for index, unit in enumerate(self.residual_units):
            total = add_flops(total, layer_flops(unit, input_shape))
            if index < self.num_units - 1:
                halting = dense_flops(channels, 1)
                if self.variant == "sact":
                    halting += conv_flops(
                        (self.halting_kernel_size,) * 2, channels, 1, _positions(input_shape)
                    )
                total = add_flops(total, Flops(halting, halting))
        return total.dense, None

    def data_flops(self, inputs):
        """``(dense, actual)`` with ``actual`` the mean over the examples of ``inputs``."""
        _, stats = self(inputs, training=False, return_ponder=True)
        return self.flops(tuple(inputs.shape))[0], float(
            np.mean(ops.convert_to_numpy(stats["flops"]))
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            units=[keras.saving.serialize_keras_object(u) for u in self.residual_units],
            variant=self.variant,
            eps=self.eps,
            tau=self.tau,
            halting_bias_initializer=self.halting_bias_initializer,
            halting_kernel_size=self.halting_kernel_size,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["units"] = [keras.saving.deserialize_keras_object(u) for u in config["units"]]
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfbayes")
class ProbabilisticAdaptiveComputationBlock(AdaptiveComputationBlock):
    """A stack of residual units whose halting is a discrete latent variable (PACT).

    Figurnov, Sobolev, Vetrov, "Probabilistic Adaptive Computation Time",
    arXiv 1712.00386. After unit ``l < L`` a halting variable
    ``z_l ~ Bernoulli(h_l)``, ``h_l = sigmoid(logit_l(x_l))`` (the same halting
    layers as :class:`AdaptiveComputationBlock`), decides whether to stop;
    ``z_L = 1``. The number of units is ``N = min{n : z_n = 1}`` and the output
    ``x_N``. The prior ``p(N = n) ∝ exp(-tau * n)`` prefers fast computation, so
    ``-log p(N)`` adds ``tau * N`` to the loss (up to a constant).

    * **Training** relaxes each ``z_l`` to a Concrete (relaxed Bernoulli) sample
      ``z~_l = sigmoid((logit_l + L) / temperature)`` with logistic noise ``L``
      (reparameterized; the sampling path of ``tfp.distributions.RelaxedBernoulli``).
      The residual mask relaxes with it: ``x_l = x_{l-1} + r_{l-1} F_l(x_{l-1})`` with
      ``r_l = prod_{k<=l} (1 - z~_k)`` (``r_0 = 1``), and the output is ``x_L``. The
      halting weights ``w_n = z~_n r_{n-1}`` sum to 1 and ``tau * mean(sum_n n w_n)``,
      the relaxed ``N``, is added through ``add_loss`` in float32. Every unit runs.
    * **Inference** is deterministic: ``z_l = [h_l > 1/2]``, the most probable
      value. Halted positions (SACT) or examples (ACT) are frozen by the residual
      mask, so the output is simply the last state; examples whose every position
      has halted skip the remaining units (as for the base class), and nothing but
      the current state is kept.

    Args:
      units: as for :class:`AdaptiveComputationBlock`.
      variant: ``'sact'`` (per position) or ``'act'`` (per example).
      tau: the prior's time penalty, a non-negative number.
      temperature: the Concrete temperature, a positive number.
      halting_bias_initializer: the initial halting logit bias, default -3.
      halting_kernel_size: the SACT halting convolution's size, a positive odd int.
      seed: an int seed for the Concrete noise, or None. Each training call draws
        a stateless TFP seed from a ``keras.random.SeedGenerator`` built from it.
      **kwargs: base layer arguments (``name``, ``dtype``).

    Call arguments:
      inputs: as for :class:`AdaptiveComputationBlock`.
      training: Python bool; True samples the relaxed halting variables.
      return_ponder: Python bool; also return the statistics dict.

    Returns:
      the output, and with ``return_ponder=True`` the dict of
      :class:`AdaptiveComputationBlock`: ``'ponder_cost'`` is the (relaxed) ``N``,
      ``'halting_distribution'`` the weights ``w`` (one-hot at inference),
      ``'num_units'`` the units evaluated (``L`` in training) and ``'flops'``.
    """

    def __init__(
        self,
        units,
        variant="sact",
        tau=0.01,
        temperature=2.0 / 3.0,
        halting_bias_initializer=-3.0,
        halting_kernel_size=3,
        seed=None,
        **kwargs,
    ):
        kwargs.pop("eps", None)  # not used by the probabilistic halting rule
        super().__init__(
            units,
            variant=variant,
            tau=tau,
            halting_bias_initializer=halting_bias_initializer,
            halting_kernel_size=halting_kernel_size,
            **kwargs,
        )
        temperature = check_finite_real(temperature, "temperature")
        if temperature <= 0:
            raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
        self.temperature = temperature
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _halting_sample(self, logit, training):
        """A relaxed sample of ``z`` in training, else ``[logit > 0]``, in the logit's dtype.

        The Concrete sample is ``sigmoid(y)`` with ``y ~ Logistic(logit / temperature,
        1 / temperature)``, which is how ``tfp.distributions.RelaxedBernoulli`` samples; the
        sigmoid is applied here because the bijector's ``exp`` overflows for large ``|y|``
        and its gradient is then NaN.
        """
        if not training:
            return ops.cast(logit > 0, logit.dtype)
        seed = tf.cast(self.seed_generator.next(), tf.int32)
        temperature = ops.cast(self.temperature, logit.dtype)
        relaxed_logit = tfd.Logistic(logit / temperature, 1 / temperature).sample(seed=seed)
        return ops.sigmoid(relaxed_logit)

    def call(self, inputs, training=False, return_ponder=False):
        stats_dtype = self._stats_dtype()
        inputs = ops.cast(inputs, self.compute_dtype)
        input_shape = tuple(inputs.shape)
        state = inputs
        map_shape = self._map_shape(inputs)
        running = ops.ones(map_shape, stats_dtype)  # prod_{k<n} (1 - z_k)
        ponder = ops.zeros(map_shape, stats_dtype)
        num_units = ops.zeros(map_shape, "int32")
        always = ops.ones(map_shape, "bool")
        distribution = []
        flops = 0
        for index in range(self.num_units):
            active = always if training else running > 0
            # the residual mask is the (relaxed) indicator of still running
            state = self._run_unit(index, state, running if training else active, training)
            if return_ponder:
                flops = flops + self._active_flops(index, input_shape, active)
            if index < self.num_units - 1:
                halt = self._halting_sample(self._halting_logit(index, state), training)
            else:
                halt = ops.ones(map_shape, stats_dtype)
            weight = halt * running
            running = running * (1 - halt)
            ponder = ponder + (index + 1) * weight
            num_units = num_units + ops.cast(active, "int32")
            distribution.append(weight)
        if self.tau > 0:
            self.add_loss(self.tau * ops.mean(ops.cast(ponder, "float32")))
        output = state  # halted positions were frozen (softly in training) at their halting state
        if not return_ponder:
            return output
        stats = {
            "ponder_cost": ponder,
            "num_units": num_units,
            "halting_distribution": ops.stack(distribution, axis=-1),
            "flops": flops,
        }
        return output, stats

    def get_config(self):
        config = super().get_config()
        del config["eps"]
        config.update(temperature=self.temperature, seed=self.seed)
        return config
