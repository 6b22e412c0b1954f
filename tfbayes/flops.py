"""Counting the multiply-adds of a network, dense and as actually computed.

One convention everywhere: a *FLOP* here is one multiply-add of a weight layer
(a multiply-accumulate), per example. Biases, batch normalization, activations,
pooling and interpolation are not counted. This is the unit of He et al.'s
ResNet tables and of :func:`tfbayes.sparsity.sparsity_report`; the SACT
reference code's ``flopsometer`` counts a multiply-add as 2 operations, so its
numbers are twice ours.

Every count is a pair ``(dense, actual)``:

* ``dense``: the layer evaluated at every output position, as Keras runs it;
* ``actual``: what the layer really needs to compute. It is smaller for layers
  that skip work: :class:`~tfbayes.layers.PerforatedConv2D` computes only its
  kept output positions, and
  :class:`~tfbayes.layers.AdaptiveComputationBlock` stops units where the
  halting rule says so (then ``actual`` depends on the data).

The FLOPs protocol
------------------
A layer takes part by implementing

``flops(input_shape) -> (dense, actual)``
    multiply-adds per example for an input of ``input_shape`` (batch axis
    first, ignored). ``actual`` may be None when it depends on the data.
``data_flops(inputs) -> (dense, actual)``
    optionally, for a data-dependent layer: ``actual`` is the mean over the
    examples of the batch ``inputs``.

Plain ``Dense``, ``Conv1D``, ``Conv2D``, ``Conv3D`` (with groups) and
``DepthwiseConv2D`` layers, the recurrent ``LSTM``, ``GRU`` and ``SimpleRNN``
(``time * (|W_x| + |W_h|)``, per time step when the length is unknown),
``Bidirectional`` (both directions) and ``Embedding`` (a lookup: 0) are counted by
the rules here (:func:`layer_flops`), and a ``Sequential`` model by summing its
layers in order. :func:`tfbayes.sparsity.sparsity_report` counts with the same rules.
"""

import collections

import keras
import numpy as np

Flops = collections.namedtuple("Flops", ["dense", "actual"])
"""Multiply-adds per example: ``dense`` (every position computed) and ``actual``."""


def conv_flops(kernel_size, in_channels, filters, output_positions, groups=1):
    """Multiply-adds of a convolution: ``positions * prod(kernel_size) * in/groups * filters``.

    Args:
      kernel_size: a tuple of ints, the kernel's spatial size.
      in_channels: the number of input channels.
      filters: the number of output channels.
      output_positions: the number of output positions computed (an int, or an
        integer array/tensor of per-example counts).
      groups: the number of channel groups (``in_channels`` for a depthwise conv).

    Returns:
      ``output_positions * prod(kernel_size) * (in_channels // groups) * filters``.
    """
    per_position = int(np.prod(kernel_size, dtype=np.int64)) * (in_channels // groups) * filters
    return output_positions * per_position


def dense_flops(in_features, units, positions=1):
    """Multiply-adds of ``Dense``: ``positions * in_features * units``."""
    return positions * in_features * units


def _positions(shape):
    return int(np.prod([int(d) for d in shape[1:-1]], dtype=np.int64))


def _plain_flops(layer, input_shape):
    """``(dense, dense)`` for a plain Keras weight layer, or None for a layer without a rule."""
    if isinstance(layer, keras.layers.Dense):
        count = dense_flops(int(input_shape[-1]), layer.units, _positions(input_shape))
        return Flops(count, count)
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _check_channels_last(layer)
        out = layer.compute_output_shape(input_shape)
        channels = int(input_shape[-1])
        count = conv_flops(
            layer.kernel_size,
            channels,
            channels * layer.depth_multiplier,
            _positions(out),
            groups=channels,
        )
        return Flops(count, count)
    if isinstance(
        layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
    ) and not isinstance(
        layer,
        (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose),
    ):
        _check_channels_last(layer)
        out = layer.compute_output_shape(input_shape)
        count = conv_flops(
            layer.kernel_size,
            int(input_shape[-1]),
            layer.filters,
            _positions(out),
            groups=layer.groups,
        )
        return Flops(count, count)
    if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)):
        # per step, the input kernel [in, gates * units] and the recurrent kernel
        steps = input_shape[1] or 1
        count = steps * sum(
            int(np.prod(w.shape)) for w in (layer.cell.kernel, layer.cell.recurrent_kernel)
        )
        return Flops(count, count)
    if isinstance(layer, keras.layers.Embedding):
        return Flops(0, 0)  # a lookup
    return None


def _check_channels_last(layer):
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise ValueError(
            f"Layer {layer.name!r}: data_format: expected 'channels_last' for FLOPs "
            f"counting, got {layer.data_format!r}"
        )


def layer_flops(layer, input_shape):
    """Multiply-adds per example of ``layer`` on inputs of ``input_shape``, as :class:`Flops`.

    A layer implementing the protocol (``flops(input_shape)``) counts itself;
    plain weight layers are counted by rule; a ``Sequential`` model is the sum
    of its layers, each on the shape its predecessor outputs. Layers without
    weights (activations, pooling, normalization...) count 0.

    Args:
      layer: a built Keras layer.
      input_shape: its input shape, batch axis first.

    Returns:
      ``Flops(dense, actual)`` of Python ints (``actual`` may be None, see the
      module docstring).

    Raises:
      ValueError: for a layer with weights that no rule counts.
    """
    input_shape = tuple(input_shape)
    if hasattr(layer, "flops"):
        return Flops(*layer.flops(input_shape))
    plain = _plain_flops(layer, input_shape)
    if plain is not None:
        return plain
    if isinstance(layer, keras.layers.Bidirectional):
        return add_flops(
            layer_flops(layer.forward_layer, input_shape),
            layer_flops(layer.backward_layer, input_shape),
        )
    if isinstance(layer, keras.Sequential):
        total = Flops(0, 0)
        shape = input_shape
        for sublayer in layer.layers:
            total = add_flops(total, layer_flops(sublayer, shape))
            shape = tuple(sublayer.compute_output_shape(shape))
        return total
    if any(w.trainable for w in layer.weights) and not isinstance(
        layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization)
    ):
        raise ValueError(
            f"Layer {layer.name!r} ({type(layer).__name__}): tfbayes.flops has no "
            "rule to count this layer; give it a flops(input_shape) method"
        )
    return Flops(0, 0)


def add_flops(a, b):
    """The sum of two :class:`Flops`; ``actual`` is None when either is unknown."""
    actual = None if a.actual is None or b.actual is None else a.actual + b.actual
    return Flops(a.dense + b.dense, actual)


class FlopsReport:
    """Per-layer and total multiply-adds of a model; ``str()`` is a table.

    Attributes:
      layers: a list of dicts with keys ``name``, ``class``, ``dense``,
        ``actual`` (None when unknown) and ``speedup`` (``dense / actual``).
      total: the same keys summed over the layers (``name`` 'total').
    """

    def __init__(self, layers, total):
        self.layers = layers
        self.total = total

    def to_dict(self):
        return {"layers": self.layers, "total": self.total}

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __str__(self):
        rows = [("layer", "type", "dense FLOPs", "actual FLOPs", "speed-up")]
        for row in self.layers + [self.total]:
            rows.append(
                (
                    row["name"],
                    row["class"],
                    f"{row['dense']:,}",
                    "-" if row["actual"] is None else f"{row['actual']:,.0f}",
                    "-" if row["speedup"] is None else f"{row['speedup']:.2f}x",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        return "\n".join(lines)

    __repr__ = __str__


def _row(name, cls, count):
    speedup = (
        None
        if count.actual is None or not count.dense
        else (float("inf") if count.actual == 0 else count.dense / count.actual)
    )
    return {
        "name": name,
        "class": cls,
        "dense": int(count.dense),
        "actual": None if count.actual is None else float(count.actual),
        "speedup": speedup,
    }


def model_input(model):
    """The input of a functional or Sequential model: one tensor, or the list of several."""
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


def count_flops(model, data=None):
    """Counts the multiply-adds per example of every weight layer of ``model``.

    Args:
      model: a built functional or Sequential ``keras.Model``; each counted
        layer must be called once in it (its input shape is read from the graph).
      data: optional inputs of ``model`` (a batch). Data-dependent layers (those
        with ``data_flops``, e.g. adaptive computation) then report their mean
        ``actual`` count over these examples; without data it is None.

    Returns:
      A :class:`FlopsReport` with ``dense`` and ``actual`` per layer and in total.

    Raises:
      TypeError: if ``model`` is not a ``keras.Model``.
      ValueError: if it is not built, or a layer cannot be counted.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model: expected a keras.Model, got {type(model).__name__}")
    if not model.built or not hasattr(model, "inputs") or not model.inputs:
        raise ValueError(
            f"model: expected a built functional or Sequential model, got "
            f"{model.name!r} without a graph of inputs"
        )
    rows = []
    total = Flops(0, 0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or not (
            layer.weights or hasattr(layer, "flops") or hasattr(layer, "data_flops")
        ):
            continue  # no weights, no multiply-adds (e.g. Add, whose input is a list)
        input_shape = tuple(layer.input.shape)
        if data is not None and hasattr(layer, "data_flops"):
            layer_inputs = keras.Model(model_input(model), layer.input)(data, training=False)
            count = Flops(*layer.data_flops(layer_inputs))
        else:
            count = layer_flops(layer, input_shape)
        if count.dense == 0 and count.actual == 0:
            continue
        rows.append(_row(layer.name, type(layer).__name__, count))
        total = add_flops(total, count)
    return FlopsReport(rows, _row("total", "", total))
