"""Sparsity reports, and export of a sparsified model as a smaller plain Keras model.

* :func:`sparsity_report` counts, per layer and in total, the weights and the
  groups (neurons, channels, gates, words) kept, the compression, and the
  FLOPs before and after compression.
* :func:`compress` returns a plain deterministic Keras model whose predictions
  equal the sparsified model's inference predictions. Pruned weights become
  zeros in plain ``Dense``/``Conv`` layers; pruned channels (structured
  pruning, e.g. :class:`~tfbayes.layers.SBPDropout`) and inputs whose weights
  are all pruned are removed physically: the layers become narrower and the
  next layer's input dimensions are sliced to match.
* :func:`with_thresholds` returns a copy of a trained model whose layers prune
  with other thresholds, to trade accuracy for compression after training
  (e.g. choosing the threshold on validation data) without retraining.

The sparsity protocol
---------------------
A layer takes part by implementing some of these methods:

``sparsity_groups() -> dict[str, (kept, total)]``
    What it prunes, by kind: ``'weights'`` for single weights, and any group
    kinds (``'units'``, ``'gates'``, ``'words'``...). Counts are Python ints.
``plain_equivalent() -> keras.layers.Layer``
    A *built* plain Keras layer (``Dense``, ``Conv2D``, ``Embedding``,
    ``LSTM``...) with the same name, computing the layer's inference output,
    with the pruned weights set to zero. :func:`compress` then shrinks it with
    the rule registered for its class.
``channel_scale() -> np.ndarray``
    Instead of ``plain_equivalent``, for a layer whose inference output is
    ``x * s`` along the last (channels) axis: ``s`` as a NumPy vector, 0 where
    a channel is removed. :func:`compress` drops the layer, removes the zero
    channels and folds ``s`` into the next weight layer.
``output_scale() -> np.ndarray``
    Alongside ``plain_equivalent``, for a layer whose inference output is
    ``plain_equivalent()(x) * s`` along the channels axis (e.g. the hidden
    unit groups of :class:`~tfbayes.layers.SparseVDLSTM`): :func:`compress`
    removes the channels where ``s`` is 0 and folds ``s`` into the next weight layer.

A plain layer class is shrunk by a :class:`PlainLayerRule` (registered with
:func:`register_plain_layer`): ``needed_inputs(layer, needed_outputs)`` gives
the input channels that can affect the needed output channels,
``shrink(layer, kept_inputs, input_scale, kept_outputs)`` returns a new built
layer reading only ``kept_inputs`` (each multiplied by ``input_scale``) and
producing only ``kept_outputs``, and ``flops(layer, input_shape)`` counts its
multiply-adds per example as ``(dense, nonzero)``. Rules for ``Dense``,
``Conv1D`` and ``Conv2D`` are built in. Optionally, ``shrink`` may return a
list of layers to run in sequence (e.g. a vocabulary remap before a smaller
``Embedding``), and ``produced_outputs(layer, needed_outputs)`` gives the
output channels the shrunk layer really produces when that is a superset of
the needed ones (an ``LSTM`` keeps the units its needed units read).

FLOPs here are multiply-accumulates of the weight layers per example (biases,
activations and pooling are not counted); "after" counts only nonzero weights
of the compressed model.
"""
import collections

import keras
import numpy as np
from keras.src.models.functional import Functional

PlainLayerRule = collections.namedtuple(
    "PlainLayerRule", ["needed_inputs", "shrink", "flops", "produced_outputs"], defaults=(None,))
"""How :func:`compress` shrinks a plain Keras layer class; see the module docstring."""

_RULES = {}

_PASS_THROUGH = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.MaxPooling3D,
                 keras.layers.AveragePooling1D, keras.layers.AveragePooling2D,
                 keras.layers.AveragePooling3D,
                 keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
                 keras.layers.GlobalMaxPooling3D,
                 keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D,
                 keras.layers.GlobalAveragePooling3D, keras.layers.Dropout, keras.layers.ReLU)
"""Layers that act on each channel alone and commute with a positive per-channel scale."""


def register_plain_layer(layer_class, rule):
    """Registers how :func:`compress` shrinks instances of ``layer_class``."""
    if not isinstance(rule, PlainLayerRule):
        raise TypeError(f"rule: expected a PlainLayerRule, got {type(rule).__name__}")
    _RULES[layer_class] = rule


def _rule(layer):
    for cls in type(layer).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


# --- rules for kernel layers (Dense, Conv): kernel [..., in, out], bias [out] ---

def _kernel_needed_inputs(layer, needed_outputs):
    kernel = keras.ops.convert_to_numpy(layer.kernel)[..., needed_outputs]
    return np.any(kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]) != 0, axis=(0, 2))


def _kernel_shrink(layer, kept_inputs, input_scale, kept_outputs):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    kernel = (kernel[..., kept_inputs, :][..., kept_outputs]
              * input_scale[:, None]).astype(kernel.dtype)
    config = layer.get_config()
    config["units" if isinstance(layer, keras.layers.Dense) else "filters"] = int(kept_outputs.sum())
    new = type(layer).from_config(config)
    rank = kernel.ndim - 2
    new.build((None,) + (None,) * rank + (int(kept_inputs.sum()),))
    weights = [kernel]
    if layer.use_bias:
        weights.append(keras.ops.convert_to_numpy(layer.bias)[kept_outputs])
    new.set_weights(weights)
    return new


def _kernel_flops(layer, input_shape):
    kernel = keras.ops.convert_to_numpy(layer.kernel)
    if isinstance(layer, keras.layers.Dense):
        positions = int(np.prod(input_shape[1:-1], dtype=np.int64))
    else:
        positions = int(np.prod(layer.compute_output_shape(input_shape)[1:-1], dtype=np.int64))
    return positions * kernel.size, positions * int(np.count_nonzero(kernel))


_KERNEL_RULE = PlainLayerRule(_kernel_needed_inputs, _kernel_shrink, _kernel_flops)
for _cls in (keras.layers.Dense, keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D):
    register_plain_layer(_cls, _KERNEL_RULE)


# --- the chain of layers ---

def _check_model(model, needs=None):
    """``TypeError`` unless ``model`` is a ``keras.Model``; with ``needs`` (what the caller
    requires, for the message), ``ValueError`` for a subclassed model."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model: expected a keras.Model, got {type(model).__name__}")
    if needs and not isinstance(model, (keras.Sequential, Functional)):
        raise ValueError(f"model: {model.name!r} is a subclassed model; {needs}")


def _layer_chain(model):
    """``[(layer, input_shape)]`` of a Sequential or single-chain functional model, in order.

    Walks the graph back from the output; every layer on the way must have one
    input, and every layer of the model must be on the way.
    """
    _check_model(model, needs="compress() needs a Sequential or single-chain functional model "
                              "(its graph is unknown)")
    if not model.built or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(f"model: {model.name!r} must be built with one input and one output "
                         "for compress()")
    chain = []
    history = model.outputs[0]._keras_history
    while not isinstance(history.operation, keras.layers.InputLayer):
        layer = history.operation
        if isinstance(layer, keras.Model):
            raise ValueError(f"Layer {layer.name!r}: nested models are not supported by "
                             "compress(); flatten the model into one chain")
        node = layer._inbound_nodes[history.node_index]
        masks = keras.tree.flatten(node.arguments.kwargs.get("mask"))  # Keras's implicit masks
        inputs = [t for t in node.input_tensors if all(t is not m for m in masks)]
        if len(inputs) != 1:
            raise ValueError(f"Layer {layer.name!r}: compress() needs layers with one input "
                             f"(a single chain), this one has {len(inputs)}")
        chain.append((layer, tuple(inputs[0].shape)))
        history = inputs[0]._keras_history
    chain.reverse()
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if len(layers) != len(chain):
        off_chain = [layer.name for layer in layers if all(layer is not c for c, _ in chain)]
        raise ValueError(f"model: {model.name!r} is not a single chain; compress() cannot "
                         f"place layers {off_chain}")
    return chain


def _plain(layer):
    return layer.plain_equivalent() if hasattr(layer, "plain_equivalent") else layer


def _stage(layer):
    """Classifies ``layer`` as ('scale', s) / ('weights', plain) / ('flatten',) / ('pass',)."""
    if hasattr(layer, "channel_scale"):
        return "scale", layer.channel_scale()
    plain = _plain(layer)
    if _rule(plain) is not None:
        if getattr(plain, "data_format", "channels_last") != "channels_last":
            raise ValueError(f"Layer {layer.name!r}: compress() supports channels_last only, "
                             f"got data_format={plain.data_format!r}")
        return "weights", plain
    if isinstance(layer, keras.layers.Flatten):
        return "flatten", None
    if isinstance(layer, _PASS_THROUGH):
        return "pass", None
    if isinstance(layer, keras.layers.Activation):
        return ("pass" if layer.activation in (keras.activations.relu, keras.activations.linear)
                else "activation"), None
    raise ValueError(f"Layer {layer.name!r} ({type(layer).__name__}): compress() does not know "
                     "how to compress this layer type; supported are the tfbayes sparsifying "
                     f"layers, {', '.join(c.__name__ for c in _RULES)}, Flatten, Activation, "
                     f"and {', '.join(c.__name__ for c in _PASS_THROUGH)}")


def _output_scale(layer, channels):
    """The factor on a weight layer's plain output (the protocol's ``output_scale``), or ones."""
    return layer.output_scale() if hasattr(layer, "output_scale") else np.ones(channels)


def compress(model):
    """A plain deterministic Keras model computing ``model``'s inference predictions.

    ``model`` must be a Sequential or single-chain functional model whose
    layers are tfbayes sparsifying layers or plain layers listed in the error
    message. Weight layers become plain Keras layers with the pruned weights
    zeroed; structurally removed channels/neurons are cut out of the layer that
    produces them and of the layer that reads them, so the result is smaller.

    Cost: one pass over the weights. Returns a ``keras.Sequential``.

    Raises:
      ValueError: naming the layer that cannot be compressed and why.
    """
    chain = _layer_chain(model)
    stages = [(layer, shape) + _stage(layer) for layer, shape in chain]
    output_channels = int(model.outputs[0].shape[-1])
    # Backward: which channels of each layer's input can affect the model's output.
    needed = np.ones(output_channels, bool)
    needed_outputs = []
    for layer, shape, kind, payload in reversed(stages):
        if kind == "weights":
            needed = needed & (_output_scale(layer, needed.size) != 0)
        needed_outputs.append(needed)
        if kind == "weights":
            needed = _rule(payload).needed_inputs(payload, needed)
        elif kind == "scale":
            needed = needed & (payload != 0)
        elif kind == "flatten":
            spatial = int(np.prod(shape[1:-1], dtype=np.int64))
            needed = needed.reshape(spatial, shape[-1]).any(axis=0)
    needed_outputs.reverse()
    # Forward: build the smaller layers, carrying the produced channels and a pending scale.
    input_shape = chain[0][1]
    produced = np.ones(input_shape[-1] or 0, bool)  # an Embedding reads ids, not channels
    scale = np.ones(int(produced.sum()))
    new_layers = []
    for (layer, shape, kind, payload), needed_out in zip(stages, needed_outputs):
        if kind == "weights":
            rule = _rule(payload)
            new = rule.shrink(payload, produced, scale, needed_out)
            new_layers.extend(new if isinstance(new, list) else [new])
            produced = (needed_out if rule.produced_outputs is None
                        else rule.produced_outputs(payload, needed_out))
            scale = _output_scale(layer, produced.size)[produced]
            continue
        if kind == "scale":
            scale = scale * payload[produced]
            continue
        if kind == "activation" and not np.all(scale == 1):
            raise ValueError(f"Layer {layer.name!r}: a channel scale (from SBPDropout) cannot be "
                             f"moved through activation {layer.activation.__name__!r}; put "
                             "SBPDropout after the activation, or before a relu")
        if kind == "flatten":
            spatial = int(np.prod(shape[1:-1], dtype=np.int64))
            produced, scale = np.tile(produced, spatial), np.tile(scale, spatial)
        new_layers.append(type(layer).from_config(layer.get_config()))
    if not np.all(scale == 1) or not np.all(produced):
        raise ValueError(f"Layer {chain[-1][0].name!r}: compress() needs a weight layer after the "
                         "last SBPDropout, to fold its scale into")
    inputs = keras.Input(shape=input_shape[1:], dtype=model.inputs[0].dtype)
    return keras.Sequential([inputs] + new_layers, name=f"{model.name}_compressed")


def with_thresholds(model, threshold=None, snr_threshold=None):
    """A copy of ``model`` with the same weights whose layers prune at other thresholds.

    Every layer with a ``threshold`` setting (the Sparse VD layers: a weight or
    group is removed when ``log alpha >= threshold``; lower prunes more) gets
    ``threshold``, and every layer with an ``snr_threshold`` (``SBPDropout``: a
    unit is kept when its SNR exceeds it; higher prunes more) gets
    ``snr_threshold``; None leaves that setting as it is. The copy is rebuilt
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
    _check_model(model, needs="with_thresholds() needs a Sequential or functional model (it "
                              "rebuilds the layers from configs)")
    overrides = {k: v for k, v in (("threshold", threshold), ("snr_threshold", snr_threshold))
                 if v is not None}

    def clone_layer(layer):
        config = layer.get_config()
        config.update({k: v for k, v in overrides.items() if k in config})
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


# --- the report ---

def _weight_counts(layer):
    if hasattr(layer, "sparsity_groups"):
        return layer.sparsity_groups()
    total = sum(int(np.prod(w.shape)) for w in layer.trainable_weights
                if not w.path.endswith("bias"))
    return {"weights": (total, total)} if total else {}


class SparsityReport:
    """Per-layer and total sparsity of a model; ``str()`` is a table, ``to_dict()`` a dict.

    Attributes:
      layers: a list of dicts with keys ``name``, ``class``, ``weights_kept``,
        ``weights_total``, ``compression``, ``groups`` (``{kind: [kept, total]}``),
        ``flops_before``, ``flops_after`` (nonzero weights) and ``dense_flops_after``
        (the compressed layers run densely), None when unknown.
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
        header = ("layer", "type", "weights kept", "compression", "groups kept", "FLOPs before",
                  "FLOPs after")
        rows = [header]
        for row in self.layers + [self.total]:
            groups = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in row["groups"].items())
            rows.append((row["name"], row["class"], f"{row['weights_kept']}/{row['weights_total']}",
                         _format_ratio(row["compression"]), groups,
                         _format_int(row["flops_before"]), _format_int(row["flops_after"])))
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(header))]
        lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        return "\n".join(lines)

    __repr__ = __str__


def _format_ratio(value):
    return "-" if value is None else f"{value:.1f}x"


def _format_int(value):
    return "-" if value is None else f"{value:,}"


def _ratio(total, kept):
    return None if not total else (float("inf") if kept == 0 else total / kept)


def _flops_by_name(model):
    """``{layer name: (dense, nonzero)}`` for the weight layers of a chain model."""
    result = {}
    for layer, shape in _layer_chain(model):
        plain = _plain(layer) if not hasattr(layer, "channel_scale") else None
        rule = _rule(plain) if plain is not None else None
        if rule is not None:
            result[layer.name] = rule.flops(plain, shape)
    return result


def sparsity_report(model):
    """Counts what ``model`` keeps, per layer and in total; returns a :class:`SparsityReport`.

    Weights are the entries of the weight matrices/kernels (biases excluded);
    a plain Keras layer counts all its weights as kept. FLOPs (multiply-adds
    per example of the weight layers) are "before" = the dense model and
    "after" = nonzero weights of :func:`compress`'s model; they are given for
    Sequential and single-chain functional models, and None otherwise.
    """
    _check_model(model)
    if not model.built:
        raise ValueError(f"model: {model.name!r} is not built; call it on data first")
    try:
        before = _flops_by_name(model)
        after = _flops_by_name(compress(model))
    except ValueError:
        before = after = {}
    rows = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        groups = _weight_counts(layer)
        if not groups or isinstance(layer, keras.Model):
            continue
        kept, total = groups.get("weights", (0, 0))
        rows.append({
            "name": layer.name, "class": type(layer).__name__, "weights_kept": kept,
            "weights_total": total, "compression": _ratio(total, kept),
            "groups": {k: list(v) for k, v in groups.items() if k != "weights"},
            "flops_before": before[layer.name][0] if layer.name in before else None,
            "flops_after": after[layer.name][1] if layer.name in after else None,
            "dense_flops_after": after[layer.name][0] if layer.name in after else None})
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
    total_row = {"name": "total", "class": "", "weights_kept": kept, "weights_total": total,
                 "compression": _ratio(total, kept), "groups": dict(groups),
                 "flops_before": flops_before, "flops_after": flops_after,
                 "dense_flops_after": dense_flops_after}
    return SparsityReport(rows, total_row)
