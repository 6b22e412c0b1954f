"""A Sparse Variational Dropout LSTM with sparse weights, neurons and gates.

The layer is the LSTM of Keras (gate order i, f, c, o; ``c_t = f c_{t-1} + i g``,
``h_t = o act(c_t)``) with four kinds of multiplicative noise, each with the
same Sparse-VD posterior ``N(mean, sigma^2)`` and the same prior:

* every weight of ``W_x`` (``[input_dim, 4 units]``) and ``W_h`` (``[units, 4 units]``)
  (Lobacheva, Chirkova, Vetrov 2017, arXiv 1708.00077);
* a group variable ``z_x`` per input neuron and ``z_h`` per hidden neuron, and
  a group variable ``z_gate`` per gate pre-activation, i.e. per (gate, unit)
  (Lobacheva, Chirkova, Vetrov 2018, arXiv 1812.05692):

      pre_t = z_gate * ((x_t * z_x) W_x + h_{t-1} W_h) + b,
      i, f, o = recurrent_activation(pre_t[i, f, o]),  g = activation(pre_t[c]),
      c_t = f c_{t-1} + i g,       h_t = z_h * o * activation(c_t).

A gate pre-activation whose ``z_gate`` is pruned makes that gate the constant
``recurrent_activation(b)`` (or ``activation(b)`` for the cell candidate); a
pruned ``z_h`` removes the hidden neuron; a pruned ``z_x`` removes an input.

Noise is NOT drawn per timestep (no local reparameterization): as in the
paper, the weights are sampled once per mini-batch and the group variables
once per sequence, and the same sample is used at every timestep. At
inference the layer is deterministic: every weight or group variable whose
``log alpha`` exceeds ``threshold`` is set to zero, the others to their mean.
"""
import keras
import numpy as np
import tensorflow as tf

from tfbayes.layers.shared_noise import per_sequence_group, shared_weight
from tfbayes.layers.sparse_vd import SparseVDLayer
from tfbayes.sparsity import PlainLayerRule, register_plain_layer

GATES = ("input", "forget", "cell", "output")
"""The four gate pre-activations, in Keras's order along the ``4 * units`` axis."""

GROUPS = ("inputs", "hidden", "gates")
"""The structured group variables a :class:`SparseVDLSTM` can carry."""


def lstm_recurrence(inputs, kernel, recurrent_kernel, bias, input_scale, hidden_scale,
                    gate_scale, activation, recurrent_activation, mask=None,
                    go_backwards=False):
    """Runs the (group-scaled) LSTM recurrence with ``tf.scan``.

    Args:
      inputs: ``[batch, time, input_dim]``.
      kernel: ``[input_dim, 4 units]``; recurrent_kernel: ``[units, 4 units]``.
      bias: ``[4 units]`` or None.
      input_scale, hidden_scale, gate_scale: ``[batch or 1, input_dim]``,
        ``[batch or 1, units]`` and ``[batch or 1, 4 units]``, or None for 1.
        They are the same at every timestep.
      activation, recurrent_activation: callables.
      mask: optional bool ``[batch, time]``; at a masked step the state (and the
        output) keep their previous values, as in Keras.
      go_backwards: process the sequence in reverse; the returned sequence is
        then in reverse order too, as in Keras.

    Returns:
      ``(sequence, h_T, c_T)`` with sequence ``[batch, time, units]``.
      Cost: O(batch * time * (input_dim + units) * 4 units).
    """
    units = recurrent_kernel.shape[0]
    if input_scale is not None:
        inputs = inputs * input_scale[:, None, :]
    elems = [tf.einsum("btd,dk->tbk", inputs, kernel)]  # time-major projections
    if mask is not None:
        elems.append(tf.transpose(tf.cast(mask, tf.bool)))
    if go_backwards:
        elems = [e[::-1] for e in elems]

    def step(state, step_elems):
        h_prev, c_prev = state
        pre = step_elems[0] + tf.matmul(h_prev, recurrent_kernel)
        if gate_scale is not None:
            pre = pre * gate_scale
        if bias is not None:
            pre = pre + bias
        pre_i, pre_f, pre_c, pre_o = tf.split(pre, 4, axis=-1)
        c = recurrent_activation(pre_f) * c_prev + recurrent_activation(pre_i) * activation(pre_c)
        h = recurrent_activation(pre_o) * activation(c)
        if hidden_scale is not None:
            h = h * hidden_scale
        if mask is None:
            return h, c
        keep = step_elems[1][:, None]
        return tf.where(keep, h, h_prev), tf.where(keep, c, c_prev)

    zeros = tf.zeros(tf.stack([tf.shape(elems[0])[1], units]), dtype=elems[0].dtype)
    h_seq, c_seq = tf.scan(step, elems, initializer=(zeros, zeros))
    return tf.transpose(h_seq, [1, 0, 2]), h_seq[-1], c_seq[-1]


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDLSTM(SparseVDLayer):
    """Drop-in for ``keras.layers.LSTM`` with sparse weights, neurons and gates.

    See the module docstring for the model. The variational weights are
    ``kernel`` (``W_x``), ``recurrent_kernel`` (``W_h``) and the group variables
    ``inputs_group`` ``[input_dim]``, ``hidden_group`` ``[units]`` and
    ``gates_group`` ``[4 units]`` (means initialised to 1), each with its
    ``*_log_sigma2``. Training adds ``KL / N`` through ``add_loss``, summed over
    all of them; the bias is a plain weight.

    Args:
      units: a positive int, the number of hidden units.
      activation, recurrent_activation, use_bias, kernel_initializer,
        recurrent_initializer, bias_initializer, unit_forget_bias,
        return_sequences, return_state, go_backwards: as in ``keras.layers.LSTM``.
      groups: which group variables to learn, a subset of
        ``("inputs", "hidden", "gates")`` (all three by default).
      threshold, prior, log_sigma2_initializer, seed, num_examples: see
        :class:`~tfbayes.layers.sparse_vd.SparseVDLayer`.

    Call arguments:
      inputs: ``[batch, time, input_dim]`` floats.
      mask: optional bool ``[batch, time]``; masked steps keep the previous
        state, as in Keras.
      training: sample the noise (True) or run the deterministic pruned
        network (False).

    Output: ``[batch, units]``, or ``[batch, time, units]`` with
    ``return_sequences``; with ``return_state`` the list ``[output, h_T, c_T]``.
    Cost per timestep: O(batch * (input_dim + units) * 4 units); per training
    step one weight sample, O((input_dim + units) * 4 units), and
    O(batch * (input_dim + 5 units)) group samples.

    Example:

    >>> model = keras.Sequential([keras.Input((None,), dtype="int32"),
    ...                           keras.layers.Embedding(1000, 32),
    ...                           SparseVDLSTM(64, num_examples=25000),
    ...                           keras.layers.Dense(1, activation="sigmoid")])
    """

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, return_sequences=False,
                 return_state=False, go_backwards=False, groups=GROUPS, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"units: expected a positive int, got {units!r}")
        if isinstance(groups, str) or not all(isinstance(g, str) for g in groups) \
                or not set(groups) <= set(GROUPS) or len(set(groups)) != len(groups):
            raise ValueError(f"groups: expected distinct names among {GROUPS}, got {groups!r}")
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.groups = tuple(g for g in GROUPS if g in groups)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"Layer {self.name!r}: the last axis of the input (input_dim) "
                             f"must be known, got input shape {tuple(input_shape)}")
        units = self.units
        self.add_variational_weight("kernel", (input_dim, 4 * units), self.kernel_initializer)
        self.add_variational_weight("recurrent_kernel", (units, 4 * units),
                                    self.recurrent_initializer)
        self.bias = (self.add_weight(shape=(4 * units,), name="bias",
                                     initializer=self._bias_initializer)
                     if self.use_bias else None)
        sizes = {"inputs": input_dim, "hidden": units, "gates": 4 * units}
        for group in self.groups:
            self.add_variational_weight(f"{group}_group", (sizes[group],), "ones")
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: input_dim})

    def _bias_initializer(self, shape, dtype=None):
        if not self.unit_forget_bias:
            return self.bias_initializer(shape, dtype=dtype)
        units = self.units
        return tf.concat([self.bias_initializer((units,), dtype=dtype),
                          tf.ones((units,), dtype=dtype),
                          self.bias_initializer((2 * units,), dtype=dtype)], axis=0)

    def call(self, inputs, mask=None, training=False):
        self.add_kl_loss(training)
        batch_size = tf.shape(inputs)[0]
        scales = {group: (per_sequence_group(self, f"{group}_group", batch_size, training)
                          if group in self.groups else None) for group in GROUPS}
        sequence, h_last, c_last = lstm_recurrence(
            inputs, shared_weight(self, "kernel", training),
            shared_weight(self, "recurrent_kernel", training), self.bias,
            scales["inputs"], scales["hidden"], scales["gates"],
            self.activation, self.recurrent_activation, mask=mask,
            go_backwards=self.go_backwards)
        output = sequence if self.return_sequences else h_last
        if self.return_state:
            return [output, h_last, c_last]
        return output

    def compute_output_shape(self, input_shape):
        batch, time = input_shape[0], input_shape[1]
        output_shape = (batch, time, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [output_shape, (batch, self.units), (batch, self.units)]
        return output_shape

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask, None, None]
        return output_mask

    def _group_mask(self, group, size):
        if group not in self.groups:
            return np.ones(size, bool)
        return keras.ops.convert_to_numpy(self.weight_mask(f"{group}_group")) > 0

    def kept_structure(self):
        """What survives at inference, as NumPy bool arrays.

        Returns a dict with ``kernel`` ``[input_dim, 4 units]`` and
        ``recurrent_kernel`` ``[units, 4 units]`` (the weights that still act,
        after the input, unit and gate groups are applied), ``inputs``
        ``[input_dim]`` (inputs with an acting weight), ``units`` ``[units]``
        (hidden neurons kept) and ``gates`` ``[4 units]`` (gate pre-activations
        that depend on the input; the others are the constant
        ``activation(b)``). The gates of a removed unit count as removed.
        """
        input_dim, units = self.kernel.shape[0], self.units
        unit_kept = self._group_mask("hidden", units)
        gates = self._group_mask("gates", 4 * units) & np.tile(unit_kept, 4)
        kernel = ((keras.ops.convert_to_numpy(self.weight_mask("kernel")) > 0)
                  & self._group_mask("inputs", input_dim)[:, None] & gates[None, :])
        recurrent = ((keras.ops.convert_to_numpy(self.weight_mask("recurrent_kernel")) > 0)
                     & unit_kept[:, None] & gates[None, :])
        return {"kernel": kernel, "recurrent_kernel": recurrent, "inputs": kernel.any(axis=1),
                "units": unit_kept, "gates": gates & (kernel.any(axis=0) | recurrent.any(axis=0))}

    def sparsity_groups(self):
        """Kept/total ``weights``, ``inputs``, ``units`` and ``gates`` (the sparsity protocol)."""
        kept = self.kept_structure()
        return {"weights": (int(kept["kernel"].sum() + kept["recurrent_kernel"].sum()),
                            int(kept["kernel"].size + kept["recurrent_kernel"].size)),
                **{kind: (int(kept[kind].sum()), int(kept[kind].size))
                   for kind in ("inputs", "units", "gates")}}

    def _inference_group(self, group, size):
        """The pruned group means as NumPy (ones when the layer has no such group)."""
        if group not in self.groups:
            return np.ones(size)
        return keras.ops.convert_to_numpy(self.pruned_weight(f"{group}_group"))

    def output_scale(self):
        """``z_h`` at inference, ``[units]``: the output is ``plain_equivalent()(x) * z_h``."""
        return self._inference_group("hidden", self.units)

    def plain_equivalent(self):
        """A built ``keras.layers.LSTM`` whose output times :meth:`output_scale` is this layer's.

        The groups are folded into the kernels, ``W_x' = diag(z_x) W_x diag(z_gate)``
        and ``W_h' = diag(z_h) W_h diag(z_gate)`` (pruned entries zero), so the
        plain LSTM's state is ``h / z_h``; a pruned gate keeps only its bias.

        Raises:
          ValueError: with ``return_state=True`` (the states cannot be rescaled).
        """
        if self.return_state:
            raise ValueError(f"Layer {self.name!r}: compress() supports SparseVDLSTM with "
                             "return_state=False only")
        units = self.units
        gates = self._inference_group("gates", 4 * units)
        kernel = (keras.ops.convert_to_numpy(self.pruned_weight("kernel"))
                  * self._inference_group("inputs", self.kernel.shape[0])[:, None] * gates)
        recurrent = (keras.ops.convert_to_numpy(self.pruned_weight("recurrent_kernel"))
                     * self.output_scale()[:, None] * gates)
        weights = [kernel, recurrent]
        if self.use_bias:
            weights.append(keras.ops.convert_to_numpy(self.bias))
        plain = keras.layers.LSTM(
            units, activation=self.activation, recurrent_activation=self.recurrent_activation,
            use_bias=self.use_bias, return_sequences=self.return_sequences,
            go_backwards=self.go_backwards, dtype=self.dtype_policy, name=self.name)
        plain.build((None, None, kernel.shape[0]))
        plain.set_weights(weights)
        return plain

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=keras.activations.serialize(self.activation),
            recurrent_activation=keras.activations.serialize(self.recurrent_activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            recurrent_initializer=keras.initializers.serialize(self.recurrent_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            unit_forget_bias=self.unit_forget_bias,
            return_sequences=self.return_sequences,
            return_state=self.return_state,
            go_backwards=self.go_backwards,
            groups=list(self.groups))
        return config


# --- how tfbayes.sparsity.compress shrinks a plain keras.layers.LSTM ---

def _units_read_by(lstm, needed_units):
    """Bool ``[units]``: the needed units and every unit whose state they read through W_h."""
    reads = keras.ops.convert_to_numpy(lstm.cell.recurrent_kernel) != 0
    units = np.asarray(needed_units, bool)
    while True:
        grown = units | reads[:, np.tile(units, 4)].any(axis=1)
        if np.array_equal(grown, units):
            return units
        units = grown


def _lstm_needed_inputs(lstm, needed_units):
    kernel = keras.ops.convert_to_numpy(lstm.cell.kernel)
    return np.any(kernel[:, np.tile(_units_read_by(lstm, needed_units), 4)] != 0, axis=1)


def _lstm_shrink(lstm, kept_inputs, input_scale, needed_units):
    """A smaller ``keras.layers.LSTM``: the kept inputs (scaled) and the units that matter."""
    units = _units_read_by(lstm, needed_units)
    if not units.any():
        raise ValueError(f"Layer {lstm.name!r}: no unit of this LSTM affects the model's output; "
                         "compress() cannot build an LSTM with 0 units")
    columns = np.tile(units, 4)
    kernel = keras.ops.convert_to_numpy(lstm.cell.kernel)
    weights = [(kernel[kept_inputs][:, columns] * input_scale[:, None]).astype(kernel.dtype),
               keras.ops.convert_to_numpy(lstm.cell.recurrent_kernel)[units][:, columns]]
    if lstm.use_bias:
        weights.append(keras.ops.convert_to_numpy(lstm.cell.bias)[columns])
    config = lstm.get_config()
    config["units"] = int(units.sum())
    new = keras.layers.LSTM.from_config(config)
    new.build((None, None, int(kept_inputs.sum())))
    new.set_weights(weights)
    return new


def _lstm_flops(lstm, input_shape):
    """Multiply-adds per example, ``time * (|W_x| + |W_h|)`` (per timestep if time is unknown)."""
    kernels = [keras.ops.convert_to_numpy(w)
               for w in (lstm.cell.kernel, lstm.cell.recurrent_kernel)]
    steps = input_shape[1] or 1
    return (steps * sum(k.size for k in kernels),
            steps * sum(int(np.count_nonzero(k)) for k in kernels))


register_plain_layer(keras.layers.LSTM, PlainLayerRule(
    _lstm_needed_inputs, _lstm_shrink, _lstm_flops, produced_outputs=_units_read_by))
