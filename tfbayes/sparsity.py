"""Sparsity reports, export of a sparsified model as a smaller plain Keras model, thresholds.

* :func:`sparsity_report` counts, per layer and in total, the weights and the
  groups (neurons, channels, gates, words) kept, the compression, and the
  FLOPs before and after compression.
* :func:`compress` returns a plain deterministic Keras model whose predictions
  equal the sparsified model's inference predictions. Pruned weights become
  zeros in plain ``Dense``/``Conv`` layers; pruned channels (structured
  pruning, e.g. :class:`~tfbayes.layers.SBPDropout`) and inputs whose weights
  are all pruned are removed physically: the layers become narrower and the
  next layers' input dimensions are sliced to match. Sequential models and
  functional models that are directed acyclic graphs (branches, ``Add``,
  ``Concatenate``, residual blocks) are supported; a channel is removed only
  where every layer that reads it agrees.
* :func:`with_thresholds` returns a copy of a trained model whose layers prune
  with other thresholds, and :func:`select_threshold` chooses that threshold
  on validation data within an accuracy budget, after training and without
  retraining.

Importing this module alone is enough: the rules for Keras's own layers
(``Dense``, ``Conv1D``/``2D``/``3D``, ``Embedding``, ``LSTM``, ``GRU``) live here.
A layer takes part through :class:`SparsifiableLayer` (stated once, below), and a
plain layer class through a :class:`PlainLayerRule` given to
:func:`register_plain_layer`.

FLOPs here are multiply-accumulates of the weight layers per example (biases,
activations, ``Add`` and pooling are not counted), counted by the rules of
:mod:`tfbayes.flops`; "after" counts only nonzero weights of the compressed model.
Each weight is counted once: a layer that runs sublayers (``Bidirectional``, an
adaptive block, a nested model) has rows for them, and an ``LSTM`` or ``GRU`` row
includes its cell.
"""

import collections
import typing

import keras
import numpy as np
from keras.src.models.functional import Functional

from tfbayes.flops import layer_flops


class SparsifiableLayer(typing.Protocol):
    """The sparsity protocol: what a sparsifying layer implements to take part.

    Every method is optional; a layer implements those that apply to it.
    """

    def sparsity_groups(self) -> dict:
        """What the layer prunes, by kind: ``{kind: (kept, total)}`` with Python ints.

        ``'weights'`` counts single weights; group kinds (``'units'``,
        ``'gates'``, ``'words'``...) count structures.
        """

    def plain_equivalent(self) -> keras.layers.Layer:
        """A *built* plain Keras layer (``Dense``, ``Conv2D``, ``Embedding``, ``LSTM``...)
        with the same name that computes the layer's inference output, pruned
        weights set to zero. :func:`compress` then shrinks it with the
        :class:`PlainLayerRule` registered for its class, and FLOPs are counted
        by that rule."""

    def channel_scale(self) -> np.ndarray:
        """Instead of ``plain_equivalent``, for a layer whose inference output is
        ``x * s`` along the last (channels) axis: ``s`` as a NumPy vector, 0 where
        a channel is removed. :func:`compress` drops the layer, removes the zero
        channels and folds ``s`` into the next weight layers."""

    def output_scale(self) -> np.ndarray:
        """Alongside ``plain_equivalent``, for a layer whose inference output is
        ``plain_equivalent()(x) * s`` along the channels axis (e.g. the hidden-unit
        groups of a sparse LSTM): :func:`compress` removes the channels where ``s``
        is 0 and folds ``s`` into the next weight layers."""


PlainLayerRule = collections.namedtuple(
    "PlainLayerRule", ["needed_inputs", "shrink", "flops", "produced_outputs"], defaults=(None,)
)
PlainLayerRule.__doc__ = """How :func:`compress` shrinks a plain Keras layer class.

Fields (callables; channel sets are boolean NumPy vectors over the layer's
original input or output channels):

* ``needed_inputs(layer, needed_outputs)``: the input channels that can affect
  the needed output channels.
* ``shrink(layer, kept_inputs, input_scale, kept_outputs)``: a new built layer
  reading only ``kept_inputs`` (each multiplied by ``input_scale``) and producing
  ``kept_outputs`` (or a list of layers to run in sequence, e.g. a vocabulary
  remap before a smaller ``Embedding``).
* ``flops(layer, input_shape)``: multiply-adds per example, ``(dense, nonzero)``.
* ``produced_outputs(layer, needed_outputs)`` (optional): the output channels
  the shrunk layer really produces, when that is a superset of the needed ones
  (an ``LSTM`` keeps the units its needed units read).
"""

_RULES = {}

_PASS_THROUGH = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalMaxPooling3D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalAveragePooling3D,
    keras.layers.Dropout,
    keras.layers.ReLU,
)
"""Layers that act on each channel alone and commute with a positive per-channel scale."""


def register_plain_layer(layer_class, rule):
    """Registers how :func:`compress` shrinks instances of ``layer_class`` (and subclasses)."""
    if not isinstance(rule, PlainLayerRule):
        raise TypeError(f"rule: expected a PlainLayerRule, got {type(rule).__name__}")
    _RULES[layer_class] = rule


def _rule(layer):
    for cls in type(layer).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


# --- rules for kernel layers (Dense, Conv): kernel [..., in / groups, out], bias [out] ---


def _groups(layer):
    return getattr(layer, "groups", 1)


def _kernel_needed_inputs(layer, needed_outputs):
    """Inputs with a nonzero weight to a needed output; all inputs of a grouped convolution
    (its channel groups must stay equal in size, so it is not shrunk)."""
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    if _groups(layer) > 1:
        return np.ones(kernel.shape[-2] * _groups(layer), bool)
    kernel = kernel[..., needed_outputs]
    return np.any(kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]) != 0, axis=(0, 2))


def _kernel_produced_outputs(layer, needed_outputs):
    return np.ones_like(needed_outputs) if _groups(layer) > 1 else needed_outputs


def _kernel_shrink(layer, kept_inputs, input_scale, kept_outputs):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    groups = _groups(layer)
    if groups > 1:
        if not kept_inputs.all():
            raise ValueError(
                f"Layer {layer.name!r}: compress() cannot remove input channels of "
                f"a grouped convolution (groups={groups}); a channel removed "
                "upstream (e.g. by SBPDropout) reaches it"
            )
        # Input channel c is row c % (in / groups) of the columns of group c // (in / groups).
        per_group = input_scale.reshape(groups, -1)
        scale = np.repeat(per_group.T, kernel.shape[-1] // groups, axis=1)
        kernel = (kernel * scale).astype(kernel.dtype)
    else:
        kernel = (kernel[..., kept_inputs, :][..., kept_outputs] * input_scale[:, None]).astype(
            kernel.dtype
        )
    config = layer.get_config()
    config["units" if isinstance(layer, keras.layers.Dense) else "filters"] = int(kernel.shape[-1])
    new = type(layer).from_config(config)
    rank = kernel.ndim - 2
    new.build((None,) + (None,) * rank + (kernel.shape[-2] * groups,))
    weights = [kernel]
    if layer.use_bias:
        weights.append(
            keras.ops.convert_to_numpy(layer.bias)[kept_outputs if groups == 1 else slice(None)]
        )
    new.set_weights(weights)
    return new


def _dense_and_nonzero_flops(layer, input_shape, kernels):
    """``(dense, nonzero)``: :func:`tfbayes.flops.layer_flops`'s count, and that count with
    only the nonzero entries of ``kernels`` (every entry is used equally often)."""
    dense = layer_flops(layer, input_shape).dense
    arrays = [keras.ops.convert_to_numpy(k) for k in kernels]
    size = sum(a.size for a in arrays)
    return dense, dense // size * sum(int(np.count_nonzero(a)) for a in arrays) if size else 0


def _kernel_flops(layer, input_shape):
    return _dense_and_nonzero_flops(layer, input_shape, [layer.kernel])


_KERNEL_RULE = PlainLayerRule(
    _kernel_needed_inputs, _kernel_shrink, _kernel_flops, produced_outputs=_kernel_produced_outputs
)
for _cls in (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D):
    register_plain_layer(_cls, _KERNEL_RULE)


# --- keras.layers.Embedding: a table [input_dim, output_dim] read by ids ---


def _embedding_needed_inputs(embedding, needed_outputs):
    """An Embedding reads ids, not channels: nothing upstream of it is needed channel-wise."""
    return np.ones(0, bool)


def _embedding_shrink(embedding, kept_inputs, input_scale, kept_columns):
    """``[IntegerLookup, Embedding]``: a vocabulary remap and a table of the kept words only.

    The remap sends every kept word to its row of the smaller table and every
    other id to an all-zero row (``IntegerLookup``'s out-of-vocabulary index),
    so the pair computes the same vectors on the kept columns. With
    ``mask_zero`` the padding id 0 stays 0 (the lookup's mask token) and keeps
    its masking. The kept words are ``lookup.get_vocabulary()``; to run the
    table alone, remap ids in the input pipeline with that lookup.
    """
    table = keras.ops.convert_to_numpy(embedding.embeddings)[:, kept_columns]
    words = np.flatnonzero(np.any(table != 0, axis=1))
    if embedding.mask_zero:
        words = words[words != 0]
    if words.size == 0:
        raise ValueError(
            f"Layer {embedding.name!r}: every word is pruned; compress() cannot "
            "build an empty vocabulary"
        )
    lookup = keras.layers.IntegerLookup(
        vocabulary=words.astype("int64"),
        num_oov_indices=1,
        mask_token=0 if embedding.mask_zero else None,
        name=f"{embedding.name}_vocabulary_remap",
    )
    padding = [table[:1]] if embedding.mask_zero else []
    rows = np.concatenate(padding + [np.zeros_like(table[:1]), table[words]])
    config = embedding.get_config()
    config.update(input_dim=len(rows), output_dim=int(kept_columns.sum()))
    new = keras.layers.Embedding.from_config(config)
    new.build()
    new.set_weights([rows])
    return [lookup, new]


def _embedding_flops(embedding, input_shape):
    """A lookup has no multiply-adds."""
    return tuple(layer_flops(embedding, input_shape))


register_plain_layer(
    keras.layers.Embedding,
    PlainLayerRule(_embedding_needed_inputs, _embedding_shrink, _embedding_flops),
)


# --- keras.layers.LSTM and GRU: kernel [in, k units], recurrent_kernel [units, k units] ---


def _gate_count(rnn):
    return 4 if isinstance(rnn, keras.layers.LSTM) else 3


def _units_read_by(rnn, needed_units):
    """Bool ``[units]``: the needed units and every unit whose state they read through W_h."""
    reads = keras.ops.convert_to_numpy(rnn.cell.recurrent_kernel) != 0
    gates = _gate_count(rnn)
    units = np.asarray(needed_units, bool)
    while True:
        grown = units | reads[:, np.tile(units, gates)].any(axis=1)
        if np.array_equal(grown, units):
            return units
        units = grown


def _rnn_needed_inputs(rnn, needed_units):
    kernel = keras.ops.convert_to_numpy(rnn.cell.kernel)
    columns = np.tile(_units_read_by(rnn, needed_units), _gate_count(rnn))
    return np.any(kernel[:, columns] != 0, axis=1)


def _rnn_shrink(rnn, kept_inputs, input_scale, needed_units):
    """A smaller ``LSTM``/``GRU``: the kept inputs (scaled) and the units that matter.

    Gate ``g`` of unit ``j`` is column ``g * units + j`` of both kernels (and of
    the bias; a GRU with ``reset_after`` has a bias ``[2, 3 units]``).
    """
    units = _units_read_by(rnn, needed_units)
    if not units.any():
        raise ValueError(
            f"Layer {rnn.name!r}: no unit of this {type(rnn).__name__} affects the "
            "model's output; compress() cannot build a layer with 0 units"
        )
    columns = np.tile(units, _gate_count(rnn))
    kernel = keras.ops.convert_to_numpy(rnn.cell.kernel)
    weights = [
        (kernel[kept_inputs][:, columns] * input_scale[:, None]).astype(kernel.dtype),
        keras.ops.convert_to_numpy(rnn.cell.recurrent_kernel)[units][:, columns],
    ]
    if rnn.use_bias:
        weights.append(keras.ops.convert_to_numpy(rnn.cell.bias)[..., columns])
    config = rnn.get_config()
    config["units"] = int(units.sum())
    new = type(rnn).from_config(config)
    new.build((None, None, int(kept_inputs.sum())))
    new.set_weights(weights)
    return new


def _rnn_flops(rnn, input_shape):
    """Multiply-adds per example, ``time * (|W_x| + |W_h|)`` (per timestep if time is unknown)."""
    return _dense_and_nonzero_flops(rnn, input_shape, [rnn.cell.kernel, rnn.cell.recurrent_kernel])


_RNN_RULE = PlainLayerRule(
    _rnn_needed_inputs, _rnn_shrink, _rnn_flops, produced_outputs=_units_read_by
)
for _cls in (keras.layers.LSTM, keras.layers.GRU):
    register_plain_layer(_cls, _RNN_RULE)


# --- the graph of layers ---


def _check_model(model, needs=None):
    """``TypeError`` unless ``model`` is a ``keras.Model``; with ``needs`` (what the caller
    requires, for the message), ``ValueError`` for a subclassed model."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model: expected a keras.Model, got {type(model).__name__}")
    if needs and not isinstance(model, (keras.Sequential, Functional)):
        raise ValueError(f"model: {model.name!r} is a subclassed model; {needs}")


_Node = collections.namedtuple("_Node", ["layer", "inputs", "outputs"])
"""One call of a layer in the model: its input and output KerasTensors (masks excluded)."""


def _graph(model):
    """The nodes of a Sequential or functional ``model`` in topological order.

    Walks the graph back from the outputs. Raises ``ValueError`` for nested
    models and for a layer called more than once.
    """
    _check_model(
        model, needs="compress() needs a Sequential or functional model (its graph is unknown)"
    )
    if not model.built or not model.outputs:
        raise ValueError(f"model: {model.name!r} must be built (called on an input) for compress()")
    order, seen, layers = [], set(), set()

    def visit(tensor):
        layer, node_index, _ = tensor._keras_history
        if isinstance(layer, keras.layers.InputLayer) or (id(layer), node_index) in seen:
            return
        if isinstance(layer, keras.Model):
            raise ValueError(
                f"Layer {layer.name!r}: nested models are not supported by "
                "compress(); flatten the model"
            )
        if id(layer) in layers:
            raise ValueError(
                f"Layer {layer.name!r}: compress() does not support a layer "
                "called more than once (shared weights)"
            )
        seen.add((id(layer), node_index))
        layers.add(id(layer))
        node = layer._inbound_nodes[node_index]
        masks = keras.tree.flatten(node.arguments.kwargs.get("mask"))  # Keras's implicit masks
        inputs = [t for t in node.input_tensors if all(t is not m for m in masks)]
        for t in inputs:
            visit(t)
        order.append(_Node(layer, inputs, keras.tree.flatten(node.outputs)))

    for output in model.outputs:
        visit(output)
    return order


def _plain(layer):
    return layer.plain_equivalent() if hasattr(layer, "plain_equivalent") else layer


def _kind(layer):
    """Classifies a node's layer as ('scale', s) / ('weights', plain) / ('flatten',) /
    ('add',) / ('concatenate',) / ('pass',) / ('activation',)."""
    if hasattr(layer, "channel_scale"):
        return "scale", layer.channel_scale()
    plain = _plain(layer)
    if _rule(plain) is not None:
        if getattr(plain, "data_format", "channels_last") != "channels_last":
            raise ValueError(
                f"Layer {layer.name!r}: compress() supports channels_last only, "
                f"got data_format={plain.data_format!r}"
            )
        return "weights", plain
    if isinstance(layer, keras.layers.Flatten):
        return "flatten", None
    if isinstance(layer, keras.layers.Add):
        return "add", None
    if isinstance(layer, keras.layers.Concatenate):
        if layer.axis not in (-1,):
            raise ValueError(
                f"Layer {layer.name!r}: compress() supports Concatenate on the "
                f"channels axis (-1) only, got axis={layer.axis}"
            )
        return "concatenate", None
    if isinstance(layer, _PASS_THROUGH):
        return "pass", None
    if isinstance(layer, keras.layers.Activation):
        return (
            "pass"
            if layer.activation in (keras.activations.relu, keras.activations.linear)
            else "activation"
        ), None
    raise ValueError(
        f"Layer {layer.name!r} ({type(layer).__name__}): compress() does not know "
        "how to compress this layer type; supported are the tfbayes sparsifying "
        f"layers, {', '.join(c.__name__ for c in _RULES)}, Flatten, Add, "
        f"Concatenate, Activation, and {', '.join(c.__name__ for c in _PASS_THROUGH)}"
    )


def _channels(tensor):
    return int(tensor.shape[-1] or 0) if len(tensor.shape) > 1 else 0


def _output_scale(layer, channels):
    """The factor on a weight layer's plain output (the protocol's ``output_scale``), or ones."""
    return layer.output_scale() if hasattr(layer, "output_scale") else np.ones(channels)


def _needed_channels(nodes, kinds, model):
    """``{id(tensor): bool [channels]}``: the channels of each tensor that can affect an output.

    A tensor's channel is needed when any layer that reads it needs it. The
    inputs and the output of an ``Add`` must carry the same channels, so their
    sets are merged and the pass repeats until nothing grows.
    """
    forced = {}
    while True:
        needed = {id(t): np.ones(_channels(t), bool) for t in model.outputs}
        for node in reversed(nodes):
            kind, payload = kinds[id(node.layer)]
            out = needed.get(id(node.outputs[0]), np.zeros(_channels(node.outputs[0]), bool))
            out = out | forced.get(id(node.outputs[0]), False)
            if kind == "weights":
                out = out & (_output_scale(node.layer, out.size) != 0)
                ins = [_rule(payload).needed_inputs(payload, out)]
            elif kind == "scale":
                ins = [out & (payload != 0)]
            elif kind == "flatten":
                shape = node.inputs[0].shape
                spatial = int(np.prod(shape[1:-1], dtype=np.int64))
                ins = [out.reshape(spatial, shape[-1]).any(axis=0)]
            elif kind == "concatenate":
                ins = np.split(out, np.cumsum([_channels(t) for t in node.inputs])[:-1])
            else:  # pass, activation, add: channel c of the output reads channel c of the inputs
                ins = [out] * len(node.inputs)
            for tensor, channels in zip(node.inputs, ins):
                previous = needed.get(id(tensor), np.zeros(channels.size, bool))
                needed[id(tensor)] = previous | channels
        grown = False
        for node in nodes:
            if kinds[id(node.layer)][0] == "add":
                tensors = node.inputs + node.outputs
                union = np.logical_or.reduce([needed.get(id(t), False) for t in tensors])
                for t in tensors:
                    old = forced.get(id(t), np.zeros_like(union))
                    if np.any(union & ~old):
                        forced[id(t)], grown = old | union, True
        if not grown:
            for key, channels in forced.items():
                needed[key] = needed.get(key, False) | channels
            return needed


def compress(model):
    """A plain deterministic Keras model computing ``model``'s inference predictions.

    ``model`` is a Sequential or functional model (a directed acyclic graph of
    layer calls, with any number of inputs and outputs) whose layers are tfbayes
    sparsifying layers or the plain layers listed in the error message.
    Weight layers become plain Keras layers with the pruned weights zeroed.
    A channel is removed physically from the layer producing it and from every
    layer reading it when no reader needs it (its weights to needed outputs are
    all pruned, or a structured-pruning scale is 0); the inputs of an ``Add``
    keep the same channels. A channel scale (``SBPDropout``) is folded into the
    weight layers that read it; it may pass through ``relu``, pooling, ``Flatten``
    and ``Concatenate``, and through an ``Add`` only when all its inputs carry
    the same scale.

    Cost: one pass over the weights. Returns a ``keras.Sequential`` for a
    single chain of layers, else a functional ``keras.Model``.

    Raises:
      ValueError: naming the layer that cannot be compressed and why.
    """
    nodes = _graph(model)
    kinds = {id(node.layer): _kind(node.layer) for node in nodes}
    needed = _needed_channels(nodes, kinds, model)
    # Forward: build the smaller layers. Each tensor carries the original channels it
    # physically holds (`held`) and a pending per-channel scale on those channels.
    new_inputs = [
        keras.Input(shape=t.shape[1:], batch_size=None, dtype=t.dtype, name=t.name)
        for t in model.inputs
    ]
    held, scale, new_tensor = {}, {}, {}
    for old, new in zip(model.inputs, new_inputs):
        held[id(old)] = np.ones(_channels(old), bool)
        scale[id(old)] = np.ones(_channels(old))
        new_tensor[id(old)] = new
    chain = True
    for node in nodes:
        layer = node.layer
        kind, payload = kinds[id(layer)]
        chain &= len(node.inputs) == 1
        ins = [held[id(t)] for t in node.inputs]
        scales = [scale[id(t)] for t in node.inputs]
        x = [new_tensor[id(t)] for t in node.inputs]
        out = node.outputs[0]
        if kind == "weights":
            rule = _rule(payload)
            needed_out = needed.get(id(out), np.zeros(_channels(out), bool))
            needed_out = needed_out & (_output_scale(layer, needed_out.size) != 0)
            new = rule.shrink(payload, ins[0], scales[0], needed_out)
            y = x[0]
            for part in new if isinstance(new, list) else [new]:
                y = part(y)
            produced = (
                needed_out
                if rule.produced_outputs is None
                else rule.produced_outputs(payload, needed_out)
            )
            held[id(out)], scale[id(out)] = produced, _output_scale(layer, produced.size)[produced]
            new_tensor[id(out)] = y
            continue
        if kind == "scale":
            held[id(out)], scale[id(out)] = ins[0], scales[0] * payload[ins[0]]
            new_tensor[id(out)] = x[0]
            continue
        if kind == "activation" and not np.all(scales[0] == 1):
            raise ValueError(
                f"Layer {layer.name!r}: a channel scale (from SBPDropout) cannot be "
                f"moved through activation {layer.activation.__name__!r}; put "
                "SBPDropout after the activation, or before a relu"
            )
        if kind == "add":
            if any(not np.array_equal(h, ins[0]) for h in ins):
                raise ValueError(
                    f"Layer {layer.name!r}: the inputs of this Add keep different "
                    "channels (a recurrent layer keeps the units its units read); "
                    "compress() cannot align them"
                )
            if any(not np.array_equal(s, scales[0]) for s in scales):
                raise ValueError(
                    f"Layer {layer.name!r}: the inputs of this Add carry different "
                    "channel scales (from SBPDropout); put SBPDropout after the Add"
                )
            held[id(out)], scale[id(out)] = ins[0], scales[0]
        elif kind == "concatenate":
            held[id(out)], scale[id(out)] = np.concatenate(ins), np.concatenate(scales)
        elif kind == "flatten":
            spatial = int(np.prod(node.inputs[0].shape[1:-1], dtype=np.int64))
            held[id(out)], scale[id(out)] = np.tile(ins[0], spatial), np.tile(scales[0], spatial)
        else:
            held[id(out)], scale[id(out)] = ins[0], scales[0]
        new_layer = type(layer).from_config(layer.get_config())
        new_tensor[id(out)] = new_layer(x if len(x) > 1 else x[0])
    for output in model.outputs:
        if not np.all(scale[id(output)] == 1) or not np.all(held[id(output)]):
            raise ValueError(
                f"Layer {output._keras_history[0].name!r}: compress() needs a weight "
                "layer after the last SBPDropout, to fold its scale into"
            )
    name = f"{model.name}_compressed"
    outputs = [new_tensor[id(t)] for t in model.outputs]
    functional = keras.Model(
        new_inputs if len(new_inputs) > 1 else new_inputs[0],
        outputs if len(outputs) > 1 else outputs[0],
        name=name,
    )
    if chain and len(model.inputs) == 1 and len(model.outputs) == 1:
        return keras.Sequential(
            [keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)]
            + [l for l in functional.layers if not isinstance(l, keras.layers.InputLayer)],
            name=name,
        )
    return functional


def _is_ours(registered_name):
    """Whether a Keras registered name is one of tfbayes's serializable classes."""
    return isinstance(registered_name, str) and registered_name.startswith("tfbayes>")


def with_thresholds(model, threshold=None, snr_threshold=None):
    """A copy of ``model`` with the same weights whose layers prune at other thresholds.

    Every layer with a ``threshold`` setting (the Sparse VD layers: a weight or
    group is removed when ``log alpha >= threshold``; lower prunes more) gets
    ``threshold``, and every layer with an ``snr_threshold`` (``SBPDropout``: a
    unit is kept when its SNR exceeds it; higher prunes more) gets
    ``snr_threshold``; None leaves that setting as it is. Layers inside
    wrappers (``Bidirectional``, ``TimeDistributed``) and nested models get
    them too. The copy is rebuilt
    from the layers' configs (``keras.models.clone_model``), so traced
    functions of ``model`` never see the change and ``model`` is untouched.
    The copy is for inference (``predict``, :func:`compress`,
    :func:`sparsity_report`) and is not compiled, whatever ``model``'s
    optimizer, loss and metrics (Keras would otherwise rebuild them from their
    configs, which fails for unregistered custom objects); ``compile`` it to
    ``evaluate`` or train it. Cost: one copy of the weights.

    Raises:
      ValueError: for a subclassed model (its layers cannot be rebuilt from
        configs), or an invalid threshold (from the layer that receives it).
    """
    _check_model(
        model,
        needs="with_thresholds() needs a Sequential or functional model (it "
        "rebuilds the layers from configs)",
    )
    overrides = {
        k: v
        for k, v in (("threshold", threshold), ("snr_threshold", snr_threshold))
        if v is not None
    }

    def override(config, ours=False):
        """Sets the thresholds in a config of one of our layers (``ours``) and in every
        serialized layer of ours nested in it (a wrapper's ``layer``, an RNN's ``cell``, a
        nested model's layers). Other layers keep theirs (``ReLU`` has a ``threshold`` too)."""
        if isinstance(config, list):
            for value in config:
                override(value)
        elif isinstance(config, dict):
            if "class_name" in config and isinstance(config.get("config"), dict):
                override(config["config"], _is_ours(config.get("registered_name")))
                return config
            if ours:
                config.update({k: v for k, v in overrides.items() if k in config})
            for value in config.values():
                override(value)
        return config

    def clone_layer(layer):
        name = keras.saving.get_registered_name(type(layer))
        config = override(layer.get_config(), _is_ours(name))
        try:
            return type(layer).from_config(config)
        except TypeError as error:  # Keras wraps the layer's own ValueError; raise that one
            if isinstance(error.__context__, ValueError):
                raise error.__context__ from None
            raise

    compiled = model.compiled
    model.compiled = False  # clone_model recompiles a compiled model from its config
    try:
        copy = keras.models.clone_model(model, clone_function=clone_layer)
    finally:
        model.compiled = compiled
    copy.set_weights(model.get_weights())
    return copy


THRESHOLD_GRIDS = {
    "threshold": (
        -3.0,
        -2.0,
        -1.5,
        -1.0,
        -0.5,
        0.0,
        0.5,
        1.0,
        1.5,
        2.0,
        2.5,
        3.0,
        3.5,
        4.0,
        5.0,
        6.0,
    ),
    "snr_threshold": (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0),
}
"""The default grids of :func:`select_threshold`: log alpha thresholds of the Sparse VD
layers (default 3; lower prunes more) and SNR thresholds of SBPDropout (default 1;
higher prunes more)."""

_DEFAULT_THRESHOLDS = {"threshold": 3.0, "snr_threshold": 1.0}


def select_threshold(
    model,
    validation_accuracy,
    reference_accuracy,
    max_loss_pt,
    validation_size=None,
    setting="threshold",
    grid=None,
    objective="compression",
    record=None,
):
    """Chooses a pruning threshold of a trained model on validation data, within an accuracy budget.

    Every threshold of ``grid`` is applied with :func:`with_thresholds` (no
    retraining). The one chosen buys the most ``objective`` among those whose
    validation accuracy is at most ``max_loss_pt`` percentage points, less one
    standard error of ``reference_accuracy`` on ``validation_size`` examples,
    below ``reference_accuracy``; when none is, the layers' default (3 for
    ``threshold``, 1 for ``snr_threshold``). The margin keeps the choice from
    spending the whole budget on validation noise. This makes the SBP authors'
    post-training sweep of the SNR threshold a rule on held-out data.

    Args:
      model: a trained Sequential or functional model with sparsifying layers.
      validation_accuracy: ``f(model) -> float`` in [0, 1], the accuracy on validation data.
      reference_accuracy: the accuracy to stay close to (e.g. the dense model's on the
        same validation data), in [0, 1].
      max_loss_pt: the budget in percentage points, a non-negative number.
      validation_size: the number of validation examples, for the standard-error
        margin; None for no margin.
      setting: ``'threshold'`` (Sparse VD layers) or ``'snr_threshold'`` (SBPDropout).
      grid: the thresholds to try; default ``THRESHOLD_GRIDS[setting]``.
      objective: ``'compression'`` (weights total / kept) or ``'flops_reduction'``
        (FLOPs before / after, the compressed layers run densely); ties go to the
        higher validation accuracy.
      record: optional ``{name: f(model) -> value}`` recorded for every threshold
        (e.g. the test accuracy, to show the trade-off; never used to choose).

    Returns:
      ``(model at the chosen threshold, the threshold, the sweep)``; the sweep is a
      list of dicts with ``threshold``, ``val_accuracy``, ``compression``,
      ``flops_reduction`` and the ``record`` keys. Cost: one copy, report and
      validation pass per threshold.
    """
    if setting not in THRESHOLD_GRIDS:
        raise ValueError(f"setting: expected one of {sorted(THRESHOLD_GRIDS)}, got {setting!r}")
    if objective not in ("compression", "flops_reduction"):
        raise ValueError(
            f"objective: expected 'compression' or 'flops_reduction', got {objective!r}"
        )
    for name, value in (("reference_accuracy", reference_accuracy), ("max_loss_pt", max_loss_pt)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float, np.number))
            or not (np.isfinite(value) and value >= 0)
        ):
            raise ValueError(f"{name}: expected a non-negative finite number, got {value!r}")
    if not reference_accuracy <= 1:
        raise ValueError(
            f"reference_accuracy: expected an accuracy in [0, 1], got {reference_accuracy!r}"
        )
    if validation_size is not None and (
        isinstance(validation_size, bool)
        or not isinstance(validation_size, (int, np.integer))
        or validation_size <= 0
    ):
        raise ValueError(
            f"validation_size: expected a positive int or None, got {validation_size!r}"
        )
    default = _DEFAULT_THRESHOLDS[setting]
    grid = tuple(THRESHOLD_GRIDS[setting] if grid is None else grid)
    if not grid:
        raise ValueError("grid: expected at least one threshold, got an empty grid")
    sweep, models = [], {}
    for threshold in dict.fromkeys(grid + (default,)):
        candidate = with_thresholds(model, **{setting: threshold})
        total = sparsity_report(candidate).total
        row = {
            "threshold": threshold,
            "val_accuracy": float(validation_accuracy(candidate)),
            "compression": total["compression"],
            "flops_reduction": (
                total["flops_before"] / total["dense_flops_after"]
                if total["flops_before"] and total["dense_flops_after"]
                else None
            ),
        }
        row.update({name: f(candidate) for name, f in (record or {}).items()})
        if threshold in grid:
            sweep.append(row)
        models[threshold] = candidate
    margin = (
        0.0
        if validation_size is None
        else 100 * np.sqrt(reference_accuracy * (1 - reference_accuracy) / validation_size)
    )
    within = [
        row
        for row in sweep
        if 100 * (reference_accuracy - row["val_accuracy"]) <= max_loss_pt - margin
    ]
    chosen = (
        max(within, key=lambda row: (row[objective] or 0.0, row["val_accuracy"]))["threshold"]
        if within
        else default
    )
    return models[chosen], chosen, sweep


# --- the report ---


def _counted_whole(layer):
    """True for a layer whose report row covers its sublayers' weights too: one with
    ``sparsity_groups`` or a :func:`compress` rule (Dense, Conv, Embedding, LSTM, GRU)."""
    return hasattr(layer, "sparsity_groups") or _rule(layer) is not None


def _counted_layers(layer):
    """The layers under ``layer`` that get a report row, so that each weight is counted once.

    A layer counted whole (an LSTM with its cell) is not searched further; any other
    layer (``Bidirectional``, an adaptive block, a residual unit, a nested model) has a
    row for its own weights only, and its sublayers are searched.
    """
    for child in layer._flatten_layers(include_self=False, recursive=False):
        yield child
        if not _counted_whole(child):
            yield from _counted_layers(child)


def _weight_counts(layer):
    if hasattr(layer, "sparsity_groups"):
        return layer.sparsity_groups()
    inner = (
        set()
        if _counted_whole(layer)
        else {
            id(w)
            for child in layer._flatten_layers(include_self=False, recursive=False)
            for w in child.weights
        }
    )
    total = sum(
        int(np.prod(w.shape))
        for w in layer.trainable_weights
        if len(w.shape) >= 2 and id(w) not in inner
    )
    return {"weights": (total, total)} if total else {}


class SparsityReport:
    """Per-layer and total sparsity of a model; ``str()`` is a table, ``to_dict()`` a dict.

    Attributes:
      layers: a list of dicts with keys ``name``, ``class``, ``weights_kept``,
        ``weights_total``, ``compression``, ``groups`` (``{kind: [kept, total]}``),
        ``flops_before``, ``flops_after`` (nonzero weights) and ``dense_flops_after``
        (the compressed layers run densely), None when unknown.
      total: the same keys summed over the layers (``name`` 'total').
      flops_note: None, or why the FLOPs are missing (the reason :func:`compress`
        refused the model).
    """

    def __init__(self, layers, total, flops_note=None):
        self.layers = layers
        self.total = total
        self.flops_note = flops_note

    def to_dict(self):
        return {"layers": self.layers, "total": self.total, "flops_note": self.flops_note}

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __str__(self):
        header = (
            "layer",
            "type",
            "weights kept",
            "compression",
            "groups kept",
            "FLOPs before",
            "FLOPs after",
        )
        rows = [header]
        for row in self.layers + [self.total]:
            groups = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in row["groups"].items())
            rows.append(
                (
                    row["name"],
                    row["class"],
                    f"{row['weights_kept']}/{row['weights_total']}",
                    _format_ratio(row["compression"]),
                    groups,
                    _format_int(row["flops_before"]),
                    _format_int(row["flops_after"]),
                )
            )
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        if self.flops_note:
            lines.append(self.flops_note)
        return "\n".join(lines)

    __repr__ = __str__


def _format_ratio(value):
    return "-" if value is None else f"{value:.1f}x"


def _format_int(value):
    return "-" if value is None else f"{value:,}"


def _ratio(total, kept):
    return None if not total else (float("inf") if kept == 0 else total / kept)


def _flops_by_name(model):
    """``{layer name: (dense, nonzero)}`` for the weight layers of a Sequential/functional model."""
    result = {}
    for node in _graph(model):
        if hasattr(node.layer, "channel_scale"):
            continue
        plain = _plain(node.layer)
        rule = _rule(plain)
        if rule is not None:
            result[node.layer.name] = rule.flops(plain, tuple(node.inputs[0].shape))
    return result


def sparsity_report(model):
    """Counts what ``model`` keeps, per layer and in total; returns a :class:`SparsityReport`.

    Weights are the entries of the weight matrices and kernels (arrays of rank
    2 or more): biases and per-channel vectors such as BatchNormalization's
    gamma and beta are not counted, and a layer with none of them gets no row.
    A plain Keras layer counts all its weights as kept. FLOPs (multiply-adds
    per example of the weight layers) are "before" = the dense model and
    "after" = nonzero weights of :func:`compress`'s model. They need the
    model's graph and its compressed model, so they are None for a subclassed
    model or one :func:`compress` refuses; ``report.flops_note`` (also in
    ``to_dict()`` and the table) then says why. A layer without a FLOPs rule
    (``SBPDropout``, pooling, a plain layer ``compress`` does not shrink) has
    None in its row.
    """
    _check_model(model)
    if not model.built:
        raise ValueError(f"model: {model.name!r} is not built; call it on data first")
    try:
        before = _flops_by_name(model)
        after = _flops_by_name(compress(model))
        note = None
    except ValueError as error:
        before = after = {}
        note = f"no FLOPs: {error}"
    rows = []
    for layer in _counted_layers(model):
        groups = _weight_counts(layer)
        if not groups:
            continue
        kept, total = groups.get("weights", (0, 0))
        rows.append(
            {
                "name": layer.name,
                "class": type(layer).__name__,
                "weights_kept": kept,
                "weights_total": total,
                "compression": _ratio(total, kept),
                "groups": {k: list(v) for k, v in groups.items() if k != "weights"},
                "flops_before": before[layer.name][0] if layer.name in before else None,
                "flops_after": after[layer.name][1] if layer.name in after else None,
                "dense_flops_after": after[layer.name][0] if layer.name in after else None,
            }
        )
    kept = sum(r["weights_kept"] for r in rows)
    total = sum(r["weights_total"] for r in rows)
    groups = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        for k, (g_kept, g_total) in r["groups"].items():
            groups[k][0] += g_kept
            groups[k][1] += g_total
    flops_before = sum(v[0] for v in before.values()) if before else None
    flops_after = sum(v[1] for v in after.values()) if after else None
    dense_flops_after = sum(v[0] for v in after.values()) if after else None
    total_row = {
        "name": "total",
        "class": "",
        "weights_kept": kept,
        "weights_total": total,
        "compression": _ratio(total, kept),
        "groups": dict(groups),
        "flops_before": flops_before,
        "flops_after": flops_after,
        "dense_flops_after": dense_flops_after,
    }
    return SparsityReport(rows, total_row, note)
