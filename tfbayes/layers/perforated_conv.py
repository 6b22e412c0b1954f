"""Perforated convolutions (Figurnov, Ibraimova, Vetrov, Kohli, NIPS 2016, arXiv 1504.08362).

A :class:`PerforatedConv2D` computes a 2-D convolution only at a subset of its
output positions, the *perforation mask*, and fills every other position with
the value of the nearest computed one (paper Sec. 3). With ``K`` kept out of
``H_out * W_out`` positions the multiply-adds drop by the factor
``H_out * W_out / K``; the interpolation is a gather.

When the kept positions form a regular grid (rows ``r0 + t_h * k``, columns
``c0 + t_w * l``), the convolution at them is one native strided convolution
of the input (strides multiplied by ``(t_h, t_w)``), which reads the input in
place. Any other mask gathers the ``K`` input patches (``prod(kernel_size) *
channels`` copied values per kept position) and multiplies them by the kernel.

Mask strategies (paper Sec. 3.1), for a fraction ``perforation_rate`` of kept
positions:

* ``'grid'``: a regular grid, every ``t_h``-th row times every ``t_w``-th
  column (centred), with steps ``|t_h - t_w| <= 1`` chosen so that the kept
  fraction is the closest to the rate (ties to the larger fraction); on a
  28 x 28 output the fractions are 1, 1/2, 1/4, 0.18, 0.13, ...;
* ``'uniform'``: ``K = round(rate * H_out * W_out)`` positions drawn uniformly
  without replacement (seeded NumPy);
* ``'pooling'``: the ``K`` positions covered by the most windows of the
  pooling layer that follows (``pooling=(size, stride)``), since overlapping
  windows read them several times;
* ``'impact'``: the ``K`` positions whose removal is estimated to change the
  loss the most (:func:`estimate_impact` and :meth:`PerforatedConv2D.set_impact`);
  until an impact is set, the grid mask is used.

This module's ``perforation_rate`` is the fraction of positions **computed**
(1 = the plain convolution); the paper's "perforation rate" is the fraction
removed, ``1 - perforation_rate``.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfbayes.flops import conv_flops, count_flops, model_input
from tfbayes.layers.base import check_finite_real

STRATEGIES = ("grid", "uniform", "pooling", "impact")


def _num_kept(rate, positions):
    return max(1, int(round(rate * positions)))


def perforation_mask(strategy, output_shape, rate, seed=None, pooling=(3, 2)):
    """A boolean perforation mask of ``output_shape`` = ``(H_out, W_out)``; True = computed.

    Args:
      strategy: ``'grid'``, ``'uniform'`` or ``'pooling'`` (see the module docstring;
        ``'impact'`` gives the grid mask).
      output_shape: the convolution's spatial output shape.
      rate: the fraction of kept positions, in (0, 1].
      seed: the NumPy seed of the ``'uniform'`` mask.
      pooling: ``(size, stride)`` of the following pooling, for ``'pooling'``.

    Returns:
      a NumPy bool array of ``output_shape`` with at least one True.
    """
    height, width = output_shape
    if strategy in ("grid", "impact"):
        rows, cols = _closest_regular_grid(height, width, rate)
        mask = np.zeros(output_shape, bool)
        mask[np.ix_(rows, cols)] = True
        return mask
    kept = _num_kept(rate, height * width)
    if strategy == "uniform":
        order = np.random.default_rng(seed).permutation(height * width)
    else:  # pooling: coverage by the windows of a 'valid' pooling of (size, stride)
        size, stride = pooling
        coverage = np.outer(
            _window_coverage(height, size, stride), _window_coverage(width, size, stride)
        ).ravel()
        order = np.argsort(-coverage, kind="stable")
    mask = np.zeros(height * width, bool)
    mask[order[:kept]] = True
    return mask.reshape(output_shape)


def _regular_positions(length, step):
    """Every ``step``-th of ``length`` positions, ``ceil(length / step)`` of them, centred."""
    count = -(-length // step)
    offset = (length - (count - 1) * step) // 2
    return offset + step * np.arange(count)


def _closest_regular_grid(height, width, rate):
    """``(rows, cols)`` of the regular grid whose kept fraction is the closest to ``rate``.

    The steps ``(t_h, t_w)`` range over ``|t_h - t_w| <= 1`` (near-square cells);
    ties go to the larger kept fraction, then to the smaller row step.
    """
    best = None
    for step_h in range(1, max(height, width) + 1):
        for step_w in (step_h - 1, step_h, step_h + 1):
            if step_w < 1:
                continue
            rows, cols = _regular_positions(height, step_h), _regular_positions(width, step_w)
            fraction = len(rows) * len(cols) / (height * width)
            key = (abs(fraction - rate), -fraction)
            if best is None or key < best[0]:
                best = (key, rows, cols)
    return best[1], best[2]


def regular_grid(mask):
    """``(r0, t_h, rows, c0, t_w, cols)`` if ``mask`` keeps exactly a regular grid, else None.

    A regular grid is the product of the rows ``r0 + t_h * k`` (``k < rows``) and
    the columns ``c0 + t_w * l`` (``l < cols``); one row (column) has step 1.
    """
    any_row, any_col = mask.any(axis=1), mask.any(axis=0)
    if not np.array_equal(mask, np.outer(any_row, any_col)):
        return None
    rows, cols = np.flatnonzero(any_row), np.flatnonzero(any_col)
    steps = []
    for kept in (rows, cols):
        gaps = np.unique(np.diff(kept))
        if len(gaps) > 1:
            return None
        steps.append(int(gaps[0]) if len(gaps) else 1)
    return int(rows[0]), steps[0], len(rows), int(cols[0]), steps[1], len(cols)


def _window_coverage(length, size, stride):
    """How many windows of a 'valid' 1-D pooling cover each of ``length`` positions."""
    coverage = np.zeros(length, int)
    for start in range(0, max(length - size, 0) + 1, stride):
        coverage[start : start + size] += 1
    return coverage


def nearest_kept(mask):
    """For every position of ``mask`` (row-major), the index of its nearest kept position.

    Indices count the kept positions in row-major order; the distance is
    Euclidean on the output grid, and ties go to the kept position that comes
    first in row-major order. Returns an int32 array of ``mask.size``.
    Cost: O(mask.size * K) time, in blocks of bounded memory.
    """
    kept = np.flatnonzero(mask)
    rows, cols = np.divmod(np.arange(mask.size), mask.shape[1])
    nearest = np.empty(mask.size, np.int32)
    chunk = max(1, 2**22 // len(kept))  # bounds the distance block to ~4M entries
    for start in range(0, mask.size, chunk):
        stop = min(start + chunk, mask.size)
        distance = (rows[start:stop, None] - rows[kept][None, :]) ** 2 + (
            cols[start:stop, None] - cols[kept][None, :]
        ) ** 2
        nearest[start:stop] = np.argmin(distance, axis=1)
    return nearest


@keras.saving.register_keras_serializable(package="tfbayes")
class PerforatedConv2D(keras.layers.Conv2D):
    """A drop-in for ``keras.layers.Conv2D`` computed only at a mask of output positions.

    The output at a kept position ``(i, j)`` is the convolution there,
    ``activation(sum_{a,b,c} x[i*s + a*d - pad, j*s + b*d - pad, c] W[a, b, c, :] + bias)``;
    every other position takes the value of its nearest kept position
    (:func:`nearest_kept`, one gather). The kept values come from one of two
    computations, chosen when the mask is set:

    * a regular grid of kept positions (:func:`regular_grid`, as the ``'grid'``
      strategy gives): one native convolution of the input with strides
      ``(t_h * s_h, t_w * s_w)``, starting at the grid's first row and column,
      which reads the input in place; ``uses_strided_conv`` is then True;
    * any other mask (and a grid whose steps a dilation does not divide): the
      ``K`` input patches are gathered and multiplied by the kernel in one
      matrix product.

    The weights are those of ``Conv2D`` (same names and
    shapes), so ``set_weights`` from a trained ``Conv2D`` perforates it.

    The input's spatial size must be known when the layer is built, since the
    mask lives on the output grid. The mask is stored in the layer
    (``perforation_mask``, saved with the model).

    The arguments of ``keras.layers.Conv2D`` not listed below mean what they
    mean there (``channels_last`` data format and ``groups=1`` only).

    Args:
      filters: the number of output channels.
      kernel_size: an int or a pair of ints.
      perforation_rate: the fraction of output positions computed, in (0, 1].
      mask: a strategy, ``'grid'`` (default), ``'uniform'``, ``'pooling'`` or
        ``'impact'``, or an explicit boolean array ``(H_out, W_out)``.
      pooling: ``(size, stride)`` of the pooling that follows, for ``'pooling'``.
      seed: the seed of the ``'uniform'`` mask, an int or None.
      **kwargs: the other arguments of ``Conv2D`` and of the base layer.

    Call arguments:
      inputs: ``[batch, height, width, channels]``.

    Returns:
      ``[batch, H_out, W_out, filters]``, as ``Conv2D``. Cost: ``K * prod(kernel_size) *
      channels * filters`` multiply-adds per example, plus the gather of the
      filling (and, off a regular grid, the gather of the patches).

    Example:

    >>> layer = PerforatedConv2D(8, 3, padding="same", perforation_rate=0.25)
    >>> layer(np.ones((1, 8, 8, 2), "float32")).shape
    TensorShape([1, 8, 8, 8])
    """

    def __init__(
        self,
        filters,
        kernel_size,
        perforation_rate=1.0,
        mask="grid",
        pooling=(3, 2),
        seed=None,
        **kwargs,
    ):
        super().__init__(filters, kernel_size, **kwargs)
        rate = check_finite_real(perforation_rate, "perforation_rate")
        if not 0.0 < rate <= 1.0:
            raise ValueError(
                f"perforation_rate: expected a number in (0, 1], got {perforation_rate!r}"
            )
        self.perforation_rate = rate
        if isinstance(mask, str):
            if mask not in STRATEGIES:
                raise ValueError(
                    f"mask: expected one of {STRATEGIES} or a boolean array, got {mask!r}"
                )
            self._explicit_mask = None
        else:
            array = np.asarray(mask)
            if array.ndim != 2 or array.dtype != bool or not array.any():
                raise ValueError(
                    "mask: expected a strategy name or a 2-D boolean array with a "
                    f"True entry, got {array.dtype} array of shape {array.shape}"
                )
            self._explicit_mask = array
        self.mask_strategy = mask if isinstance(mask, str) else None
        if (
            not isinstance(pooling, (tuple, list))
            or len(pooling) != 2
            or not all(
                isinstance(p, (int, np.integer)) and not isinstance(p, bool) and p > 0
                for p in pooling
            )
        ):
            raise ValueError(
                f"pooling: expected a pair of positive ints (size, stride), got {pooling!r}"
            )
        self.pooling = tuple(int(p) for p in pooling)
        self.seed = seed
        self._impact = None
        self._plan = None
        if self.groups != 1:
            raise ValueError(
                f"groups: expected 1 (grouped perforated convolution is not "
                f"supported), got {self.groups!r}"
            )
        if self.data_format != "channels_last":
            raise ValueError(f"data_format: expected 'channels_last', got {self.data_format!r}")

    def build(self, input_shape):
        if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
            raise ValueError(
                f"Layer {self.name!r}: expected a 4-D input with known height, width "
                f"and channels (the mask lives on the output grid), got shape "
                f"{tuple(input_shape)}"
            )
        super().build(input_shape)
        self._input_hw = (int(input_shape[1]), int(input_shape[2]))
        self.output_hw = tuple(int(d) for d in self.compute_output_shape(input_shape)[1:3])
        self.perforation_mask = self.add_weight(
            name="perforation_mask",
            shape=self.output_hw,
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        self.nearest_index = self.add_weight(
            name="nearest_index",
            shape=(int(np.prod(self.output_hw)),),
            dtype="int32",
            initializer="zeros",
            trainable=False,
        )
        if self._explicit_mask is not None:
            mask = self._explicit_mask
        else:
            mask = perforation_mask(
                self.mask_strategy,
                self.output_hw,
                self.perforation_rate,
                seed=self.seed,
                pooling=self.pooling,
            )
        self.set_mask(mask)

    def set_mask(self, mask):
        """Sets the perforation mask, a boolean array of the output's spatial shape.

        The number of kept positions is static in traced code: call this before
        the layer's model is traced or compiled (or ``compile`` again after). The
        mask also decides how the kept positions are computed (``uses_strided_conv``).

        Raises:
          ValueError: if ``mask`` does not have the output's spatial shape or keeps nothing.
        """
        mask = np.asarray(mask)
        if mask.shape != self.output_hw or mask.dtype != bool or not mask.any():
            raise ValueError(
                f"Layer {self.name!r}: mask: expected a boolean array of the output's "
                f"spatial shape {self.output_hw} with a True entry, got "
                f"{mask.dtype} array of shape {mask.shape}"
            )
        self.perforation_mask.assign(mask.astype(np.int32))
        self.nearest_index.assign(nearest_kept(mask))
        self.num_kept = int(mask.sum())
        grid = regular_grid(mask)
        self._plan = self._grid_plan(grid) if grid is not None else None

    @property
    def uses_strided_conv(self):
        """Whether the kept positions are computed by one strided convolution (see the class)."""
        return self._plan is not None

    def set_perforation_rate(self, perforation_rate):
        """Changes the fraction of computed positions and rebuilds the mask by its strategy.

        An ``'impact'`` layer keeps the top positions of its last :meth:`set_impact`
        map (the grid before one is set). As for :meth:`set_mask`, traced code must
        be traced again.

        Raises:
          ValueError: for a rate outside (0, 1], or a layer built with an explicit mask.
        """
        rate = check_finite_real(perforation_rate, "perforation_rate")
        if not 0.0 < rate <= 1.0:
            raise ValueError(
                f"perforation_rate: expected a number in (0, 1], got {perforation_rate!r}"
            )
        if self._explicit_mask is not None:
            raise ValueError(
                f"Layer {self.name!r}: mask: expected a strategy to change the rate "
                "of, got an explicit mask"
            )
        self.perforation_rate = rate
        if self.mask_strategy == "impact" and self._impact is not None:
            self.set_impact(self._impact)
        else:
            self.set_mask(
                perforation_mask(
                    self.mask_strategy, self.output_hw, rate, seed=self.seed, pooling=self.pooling
                )
            )

    def set_impact(self, impact):
        """Keeps the ``round(perforation_rate * H_out * W_out)`` positions of largest ``impact``.

        Args:
          impact: a non-negative array of the output's spatial shape, e.g. from
            :func:`estimate_impact`. Ties go to the earlier position in row-major order.
        """
        impact = np.asarray(impact, np.float64)
        if impact.shape != self.output_hw or not np.all(np.isfinite(impact)):
            raise ValueError(
                f"Layer {self.name!r}: impact: expected a finite array of shape "
                f"{self.output_hw}, got shape {impact.shape}"
            )
        self._impact = impact
        kept = np.argsort(-impact.ravel(), kind="stable")[
            : _num_kept(self.perforation_rate, impact.size)
        ]
        mask = np.zeros(impact.size, bool)
        mask[kept] = True
        self.set_mask(mask.reshape(self.output_hw))

    def save_own_variables(self, store):
        super().save_own_variables(store)  # Conv2D saves the kernel and bias only
        if self.built:
            store["perforation_mask"] = self.perforation_mask
            store["nearest_index"] = self.nearest_index

    def load_own_variables(self, store):
        super().load_own_variables(store)
        self.set_mask(np.asarray(store["perforation_mask"]).astype(bool))

    def _padding(self):
        """``[(top, bottom), (left, right)]``: the zero padding ``Conv2D`` uses for 'same'."""
        pads = []
        for size, out, k, s, d in zip(
            self._input_hw, self.output_hw, self.kernel_size, self.strides, self.dilation_rate
        ):
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads

    def _kept_positions(self):
        """The flat indices of the kept output positions in row-major order, int32 [K]."""
        flat = ops.reshape(self.perforation_mask, (-1,))
        size = int(np.prod(self.output_hw))
        score = flat * (size - ops.arange(size, dtype="int32"))
        return ops.top_k(score, self.num_kept, sorted=True)[1]

    def _grid_plan(self, grid):
        """How :meth:`_grid_conv` computes the regular ``grid``, or None if it cannot.

        Along an axis, output ``r0 + t * k`` (``k < n``) reads the zero-padded input
        at ``r0 * s + k * T + a * d`` (``T = t * s``, ``a < size``). When the dilation
        ``d`` divides ``T``, these are every ``d``-th position from ``r0 * s``,
        ``(n - 1) * T / d + size`` of them, convolved with stride ``T / d`` and no
        dilation: a strided slice of the input (none when it is the whole axis) and
        the zeros of the padding that it overlaps, as explicit padding, so the
        convolution reads the input in place. A dilation that does not divide the
        step (or a window entirely in the padding) gives None: the patch gather.

        Returns:
          per axis, ``(region, (zeros_before, zeros_after), stride)``; ``region`` is a
          ``slice`` of the input, or None for all of it.
        """
        pads = self._padding() if self.padding == "same" else [(0, 0), (0, 0)]
        plan = []
        axes = zip(
            (grid[:3], grid[3:]),
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self._input_hw,
            pads,
        )
        for (first, step, count), size, stride, dilation, length, (before, _) in axes:
            jump = step * stride if count > 1 else dilation  # one output: any stride
            taps = (count - 1) * jump // dilation + size
            positions = first * stride - before + dilation * np.arange(taps)  # in the input
            inside = np.flatnonzero((positions >= 0) & (positions < length))
            if jump % dilation or not len(inside):
                return None
            low, high = int(positions[inside[0]]), int(positions[inside[-1]])
            whole = dilation == 1 and low == 0 and length - 1 - high < jump
            region = None if whole else slice(low, high + 1, dilation)
            plan.append((region, (int(inside[0]), taps - 1 - int(inside[-1])), jump // dilation))
        return plan

    def _grid_conv(self, inputs):
        """The convolution on the regular grid of the unpadded ``inputs`` (see :meth:`_grid_plan`), [B, K, F]."""
        (rows, row_pads, row_stride), (cols, col_pads, col_stride) = self._plan
        if rows is not None or cols is not None:
            inputs = inputs[:, rows or slice(None), cols or slice(None)]
        outputs = tf.nn.conv2d(
            inputs,
            ops.cast(self.kernel, self.compute_dtype),
            strides=(1, row_stride, col_stride, 1),
            padding=[[0, 0], list(row_pads), list(col_pads), [0, 0]],
        )
        return ops.reshape(outputs, (-1, self.num_kept, self.filters))

    def _patch_conv(self, inputs):
        """The convolution at the kept positions of ``inputs``, by gathered patches, [B, K, F]."""
        if self.padding == "same":
            (top, bottom), (left, right) = self._padding()
            inputs = ops.pad(inputs, [(0, 0), (top, bottom), (left, right), (0, 0)])
        padded_width = int(inputs.shape[2])
        kept = self._kept_positions()
        out_rows, out_cols = kept // self.output_hw[1], kept % self.output_hw[1]
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.strides, self.dilation_rate
        rows = out_rows[:, None] * sh + ops.arange(kh, dtype="int32")[None, :] * dh  # [K, kh]
        cols = out_cols[:, None] * sw + ops.arange(kw, dtype="int32")[None, :] * dw  # [K, kw]
        index = ops.reshape(rows[:, :, None] * padded_width + cols[:, None, :], (-1,))
        channels = int(inputs.shape[-1])
        flat = ops.reshape(inputs, (-1, int(inputs.shape[1]) * padded_width, channels))
        patches = ops.reshape(
            ops.take(flat, index, axis=1), (-1, self.num_kept, kh * kw * channels)
        )
        return ops.matmul(patches, ops.reshape(self.kernel, (kh * kw * channels, self.filters)))

    def call(self, inputs):
        if self.num_kept == int(np.prod(self.output_hw)):
            return super().call(inputs)
        inputs = ops.cast(inputs, self.compute_dtype)
        outputs = self._grid_conv(inputs) if self._plan is not None else self._patch_conv(inputs)
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, self.compute_dtype)
        if self.activation is not None:  # elementwise: applied before the filling copies
            outputs = self.activation(outputs)
        outputs = ops.take(outputs, self.nearest_index, axis=1)
        return ops.reshape(outputs, (-1,) + self.output_hw + (self.filters,))

    def flops(self, input_shape):
        """``(dense, actual)`` multiply-adds per example (the tfbayes.flops protocol)."""
        out = self.compute_output_shape(input_shape)
        positions = int(out[1]) * int(out[2])
        channels = int(input_shape[-1])
        kept = self.num_kept if self.built else _num_kept(self.perforation_rate, positions)
        return (
            conv_flops(self.kernel_size, channels, self.filters, positions),
            conv_flops(self.kernel_size, channels, self.filters, kept),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            perforation_rate=self.perforation_rate,
            mask=(
                self.mask_strategy if self._explicit_mask is None else self._explicit_mask.tolist()
            ),
            pooling=self.pooling,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if not isinstance(config.get("mask"), str):
            config["mask"] = np.asarray(config["mask"], bool)
        return cls(**config)


def perforated_layers(model):
    """All :class:`PerforatedConv2D` layers of ``model`` (nested models included), in order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, PerforatedConv2D)
    ]


def _loss_function(model, loss):
    loss = loss if loss is not None else getattr(model, "loss", None)
    if loss is None:
        raise ValueError("loss: expected a Keras loss (or a compiled model), got None")
    return keras.losses.get(loss) if isinstance(loss, str) else loss


def estimate_impact(model, layer, x, y, loss=None):
    """The impact map of ``layer``: how much removing each output position changes the loss.

    For every example, the loss change when the layer's (unperforated) output
    ``V`` at position ``(i, j)`` is set to zero is estimated to first order,
    ``|sum_c dL/dV[i, j, c] * V[i, j, c]|``; the map is the mean over the
    examples (paper Sec. 3.1, impact perforation). Cost: one forward and
    backward pass over ``x``.

    Args:
      model: a functional or Sequential model containing ``layer``.
      layer: a :class:`PerforatedConv2D` of ``model``.
      x: a batch of inputs.
      y: their targets.
      loss: a Keras loss (name, object or callable ``loss(y_true, y_pred)``);
        by default the compiled model's loss.

    Returns:
      a NumPy array of the layer's output spatial shape.
    """
    if not isinstance(layer, PerforatedConv2D):
        raise TypeError(f"layer: expected a PerforatedConv2D, got {type(layer).__name__}")
    loss_fn = _loss_function(model, loss)
    saved = ops.convert_to_numpy(layer.perforation_mask).astype(bool)
    layer.set_mask(np.ones(layer.output_hw, bool))
    try:
        outputs = keras.Model(model_input(model), layer.output)(x, training=False)
        head = keras.Model(layer.output, model.outputs[0])
        with tf.GradientTape() as tape:
            tape.watch(outputs)
            value = ops.sum(loss_fn(y, head(outputs, training=False)))
        gradient = tape.gradient(value, outputs)
        impact = ops.abs(ops.sum(gradient * outputs, axis=-1))
        return ops.convert_to_numpy(ops.mean(ops.cast(impact, "float64"), axis=0))
    finally:
        layer.set_mask(saved)


def perforate(
    model, x, y, target_flops, loss=None, rates=(1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1)
):
    """Greedy per-layer perforation rates until the model needs at most ``target_flops``.

    The paper's greedy scheme (Sec. 3.3): starting with every
    :class:`PerforatedConv2D` of ``model`` unperforated, repeatedly move one
    layer to its next rate in ``rates``, choosing the layer whose move costs
    the least increase of the loss on ``(x, y)`` per multiply-add saved, until
    the model's multiply-adds per example (:func:`tfbayes.flops.count_flops`)
    are at most ``target_flops``. Fine-tune the model afterwards.

    Args:
      model: a built functional or Sequential model.
      x: a batch of inputs (the loss is evaluated on it at every step, so keep it modest).
      y: their targets.
      target_flops: the multiply-adds per example to reach, a positive number.
      loss: a Keras loss; by default the compiled model's loss.
      rates: the decreasing ladder of perforation rates each layer may take.

    Returns:
      ``{layer name: perforation_rate}``; the layers are changed in place.

    Raises:
      ValueError: if the model has no PerforatedConv2D, or the target cannot be
        reached with the given rates.

    Cost: up to ``len(layers) * len(rates)`` steps, each ``len(layers)`` forward passes.
    """
    target = check_finite_real(target_flops, "target_flops")
    if target <= 0:
        raise ValueError(f"target_flops: expected a positive number, got {target_flops!r}")
    layers = perforated_layers(model)
    if not layers:
        raise ValueError(
            f"model: expected a model with PerforatedConv2D layers, got {model.name!r} without any"
        )
    loss_fn = _loss_function(model, loss)
    if (
        not len(rates)
        or any(not 0 < r <= 1 for r in rates)
        or any(a <= b for a, b in zip(rates, rates[1:]))
    ):
        raise ValueError(
            f"rates: expected a decreasing sequence of numbers in (0, 1], got {rates!r}"
        )

    def mean_loss():
        return float(ops.convert_to_numpy(ops.mean(loss_fn(y, model(x, training=False)))))

    step = {layer.name: 0 for layer in layers}
    for layer in layers:
        layer.set_perforation_rate(rates[0])
    flops = count_flops(model, x).total["actual"]
    current = mean_loss()
    while flops > target:
        best = None
        for layer in layers:
            before = layer.flops(tuple(layer.input.shape))[1]
            # the next rate that keeps fewer positions (a grid mask may keep as many at two rates)
            for index in range(step[layer.name] + 1, len(rates)):
                layer.set_perforation_rate(rates[index])
                saved = before - layer.flops(tuple(layer.input.shape))[1]
                if saved > 0:
                    increase = mean_loss() - current
                    if best is None or increase / saved < best[0]:
                        best = (increase / saved, layer, index, saved, increase)
                    break
            layer.set_perforation_rate(rates[step[layer.name]])
        if best is None:
            raise ValueError(
                f"target_flops: expected a number of multiply-adds reachable with "
                f"rates down to {rates[-1]}, got {target_flops!r} (reached {flops:,.0f})"
            )
        _, layer, index, saved, increase = best
        step[layer.name] = index
        layer.set_perforation_rate(rates[index])
        flops -= saved
        current += increase
    return {layer.name: layer.perforation_rate for layer in layers}
