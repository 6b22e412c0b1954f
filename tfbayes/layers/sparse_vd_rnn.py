"""Sparse Variational Dropout for gated recurrent networks: the shared cell and layer machinery.

A gated recurrent cell here (:class:`~tfbayes.layers.SparseVDLSTMCell`,
:class:`~tfbayes.layers.SparseVDGRUCell`) has the weights of its Keras
counterpart, ``W_x`` (``kernel``, ``[input_dim, G units]``) and ``W_h``
(``recurrent_kernel``, ``[units, G units]``) for ``G`` gate pre-activations,
each weight with the Sparse-VD posterior ``N(theta, sigma^2)``
(Lobacheva, Chirkova, Vetrov 2017, arXiv 1708.00077), and optionally three
kinds of group variables with the same posterior and prior
(Lobacheva et al. 2018, arXiv 1812.05692):

* ``z_x`` per input neuron (``inputs``): the input is ``x_t * z_x``;
* ``z_h`` per hidden neuron (``hidden``): the hidden state is multiplied by
  ``z_h`` wherever it is read, by the recurrent kernel and as the output;
* ``z_gate`` per gate pre-activation (``gates``), i.e. per (gate, unit), on the
  weight part of the pre-activation::

      pre_x = ((x_t * z_x) W_x) * z_gate,   pre_h = ((h_{t-1} * z_h) W_h) * z_gate,

  and the bias added as in Keras. A pruned ``z_gate`` leaves that
  pre-activation its bias only.

The noise is drawn once per sequence batch and shared by all timesteps
(:class:`~tfbayes.layers.shared_noise.SharedNoiseRNNCell`): the weights once per
batch, the groups once per sequence. At inference the cell is deterministic:
every weight or group variable whose ``log alpha`` reaches ``threshold`` is 0,
the others are their means. Dropout and recurrent dropout masks are Keras's
(``DropoutRNNCell``): one mask per sequence for the inputs and one for the
recurrent input, shared by all the gates.

:class:`SparseVDRNN` runs such a cell with ``keras.layers.RNN`` (so it has
``initial_state``, ``return_state``, ``stateful``, ``unroll``,
``go_backwards``, masking and ``Bidirectional`` as Keras's layers have them),
adds the cell's KL once per call, and implements the sparsity protocol of
:mod:`tfbayes.sparsity` (``sparsity_groups``, ``plain_equivalent`` onto the
Keras layer, ``output_scale``).

Mixed precision: the variational parameters, the KL and the pruning decisions
are in the variable dtype (float32 under ``mixed_float16``); the recurrence
runs in the compute dtype.
"""

import keras
import numpy as np
from keras import ops
from keras.src import backend
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell

from tfbayes.layers.base import check_finite_real
from tfbayes.layers.shared_noise import GROUP_SUFFIX, SharedNoiseRNNCell
from tfbayes.layers.sparse_vd import SparseVDLayer

GROUPS = ("inputs", "hidden", "gates")
"""The structured group variables a Sparse-VD recurrent cell can carry."""


def _check_rate(value, name):
    rate = check_finite_real(value, name)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return rate


class SparseVDRNNCell(SparseVDLayer, SharedNoiseRNNCell, DropoutRNNCell):
    """Base class of the gated Sparse-VD recurrent cells; not used directly.

    A subclass sets ``GATES`` (the names of its gate pre-activations, in its
    Keras counterpart's order along the ``G units`` axis), the state sizes,
    and implements ``call(inputs, states, training)`` with
    :meth:`gate_projections`; it may override :meth:`bias_shape` and
    :meth:`initial_bias`. See the module docstring for the model.

    ``activation``, ``recurrent_activation``, ``use_bias``, ``kernel_initializer``,
    ``recurrent_initializer``, ``bias_initializer``, ``kernel_regularizer``,
    ``recurrent_regularizer``, ``bias_regularizer``, ``kernel_constraint``,
    ``recurrent_constraint`` and ``bias_constraint`` mean what they mean for
    Keras's cells; the initializers, regularizers and constraints of the
    kernels act on ``theta``.

    Args:
      units: a positive int, the number of hidden units.
      dropout, recurrent_dropout: rates in [0, 1) of Keras's dropout of the
        inputs and of the recurrent input.
      groups: which group variables to learn, a subset of
        ``("inputs", "hidden", "gates")`` (all three by default).
      threshold, prior, log_sigma2_initializer, seed, num_examples: see
        :class:`~tfbayes.layers.sparse_vd.SparseVDLayer`; ``seed`` also seeds dropout.
    """

    GATES = ()

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        groups=GROUPS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units <= 0:
            raise ValueError(f"units: expected a positive int, got {units!r}")
        if (
            isinstance(groups, str)
            or not all(isinstance(g, str) for g in groups)
            or not set(groups) <= set(GROUPS)
            or len(set(groups)) != len(groups)
        ):
            raise ValueError(f"groups: expected distinct names among {GROUPS}, got {groups!r}")
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _check_rate(dropout, "dropout")
        self.recurrent_dropout = _check_rate(recurrent_dropout, "recurrent_dropout")
        self.groups = tuple(g for g in GROUPS if g in groups)
        self.output_size = self.units

    @property
    def gate_size(self):
        """``G units``, the width of the kernels."""
        return len(self.GATES) * self.units

    def bias_shape(self):
        """The shape of the bias, ``(G units,)`` unless a subclass says otherwise."""
        return (self.gate_size,)

    def initial_bias(self, shape, dtype=None):
        """The bias initializer; ``bias_initializer`` unless a subclass says otherwise."""
        return self.bias_initializer(shape, dtype=dtype)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                f"Layer {self.name!r}: the last axis of the input (input_dim) "
                f"must be known, got input shape {tuple(input_shape)}"
            )
        for name, shape, initializer, regularizer, constraint in (
            (
                "kernel",
                (input_dim, self.gate_size),
                self.kernel_initializer,
                self.kernel_regularizer,
                self.kernel_constraint,
            ),
            (
                "recurrent_kernel",
                (self.units, self.gate_size),
                self.recurrent_initializer,
                self.recurrent_regularizer,
                self.recurrent_constraint,
            ),
        ):
            theta, _ = self.add_variational_weight(name, shape, initializer)
            theta.regularizer, theta.constraint = regularizer, constraint
        self.bias = (
            self.add_weight(
                shape=self.bias_shape(),
                name="bias",
                initializer=self.initial_bias,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )
        sizes = {"inputs": input_dim, "hidden": self.units, "gates": self.gate_size}
        for group in self.groups:
            self.add_variational_weight(f"{group}{GROUP_SUFFIX}", (sizes[group],), "ones")

    def group_noise(self, group):
        """The shared draw of a group, ``[batch or 1, n]``; None if the cell has no such group."""
        return self.shared_noise(f"{group}{GROUP_SUFFIX}") if group in self.groups else None

    def gate_projections(self, inputs, recurrent_input, training):
        """``(((x z_x) W_x) z_gate, ((r z_h) W_h) z_gate)``, each ``[batch, G units]``.

        ``recurrent_input`` is the state the recurrent kernel reads; the caller
        passes it unscaled when the cell's state already carries ``z_h``. The
        dropout masks of Keras apply in training. Cost: O(batch (input_dim + units) G units).
        """
        z_x = self.group_noise("inputs")
        if z_x is not None:
            inputs = inputs * z_x
        if training and self.dropout > 0:
            inputs = inputs * self.get_dropout_mask(inputs)
        if training and self.recurrent_dropout > 0:
            recurrent_input = recurrent_input * self.get_recurrent_dropout_mask(recurrent_input)
        x_part = ops.matmul(inputs, self.shared_noise("kernel"))
        h_part = ops.matmul(recurrent_input, self.shared_noise("recurrent_kernel"))
        z_gate = self.group_noise("gates")
        if z_gate is not None:
            x_part, h_part = x_part * z_gate, h_part * z_gate
        return x_part, h_part

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def load_own_variables(self, store):
        # A file written when the layer had no cell holds these variables at the
        # layer's own path; SparseVDRNN.load_own_variables has loaded them already.
        if not len(store.keys()) and getattr(self, "_loaded_by_layer", False):
            return
        super().load_own_variables(store)

    # --- what survives at inference (used by SparseVDRNN's sparsity protocol) ---

    def _group_mask(self, group, size):
        if group not in self.groups:
            return np.ones(size, bool)
        return ops.convert_to_numpy(self.weight_mask(f"{group}{GROUP_SUFFIX}")) > 0

    def _inference_group(self, group, size):
        """The pruned group means as NumPy (ones when the cell has no such group)."""
        if group not in self.groups:
            return np.ones(size)
        return ops.convert_to_numpy(self.pruned_weight(f"{group}{GROUP_SUFFIX}"))

    def kept_structure(self):
        """What survives at inference, as NumPy bool arrays.

        Returns a dict with ``kernel`` ``[input_dim, G units]`` and
        ``recurrent_kernel`` ``[units, G units]`` (the weights that still act,
        after the input, unit and gate groups are applied), ``inputs``
        ``[input_dim]`` (inputs with an acting weight), ``units`` ``[units]``
        (hidden neurons kept) and ``gates`` ``[G units]`` (gate pre-activations
        that depend on the input or state through a weight; the others are
        their bias). The gates of a removed unit count as removed.
        """
        input_dim, units, n_gates = self.kernel.shape[0], self.units, len(self.GATES)
        unit_kept = self._group_mask("hidden", units)
        gates = self._group_mask("gates", self.gate_size) & np.tile(unit_kept, n_gates)
        kernel = (
            (ops.convert_to_numpy(self.weight_mask("kernel")) > 0)
            & self._group_mask("inputs", input_dim)[:, None]
            & gates[None, :]
        )
        recurrent = (
            (ops.convert_to_numpy(self.weight_mask("recurrent_kernel")) > 0)
            & unit_kept[:, None]
            & gates[None, :]
        )
        return {
            "kernel": kernel,
            "recurrent_kernel": recurrent,
            "inputs": kernel.any(axis=1),
            "units": unit_kept,
            "gates": gates & (kernel.any(axis=0) | recurrent.any(axis=0)),
        }

    def sparsity_groups(self):
        """``{}``: the recurrent layer that runs the cell reports its sparsity, once."""
        return {}

    def hidden_scale(self):
        """``z_h`` at inference, ``[units]`` (ones without hidden groups)."""
        return self._inference_group("hidden", self.units)

    def plain_weights(self):
        """The weights of the plain Keras cell computing this cell at inference, as NumPy.

        The groups are folded into the kernels, ``W_x' = diag(z_x) W_x diag(z_gate)``
        and ``W_h' = diag(z_h) W_h diag(z_gate)`` (pruned entries zero); the plain
        cell's state is this cell's without the ``z_h`` factor. Returns
        ``[kernel, recurrent_kernel]`` plus ``bias`` with ``use_bias``.
        """
        gates = self._inference_group("gates", self.gate_size)
        kernel = (
            ops.convert_to_numpy(self.pruned_weight("kernel"))
            * self._inference_group("inputs", self.kernel.shape[0])[:, None]
            * gates
        )
        recurrent = (
            ops.convert_to_numpy(self.pruned_weight("recurrent_kernel"))
            * self.hidden_scale()[:, None]
            * gates
        )
        weights = [kernel, recurrent]
        if self.use_bias:
            weights.append(ops.convert_to_numpy(self.bias))
        return weights

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
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            recurrent_regularizer=keras.regularizers.serialize(self.recurrent_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            kernel_constraint=keras.constraints.serialize(self.kernel_constraint),
            recurrent_constraint=keras.constraints.serialize(self.recurrent_constraint),
            bias_constraint=keras.constraints.serialize(self.bias_constraint),
            dropout=self.dropout,
            recurrent_dropout=self.recurrent_dropout,
            groups=list(self.groups),
        )
        return config


_SPARSE_VD_ARGUMENTS = ("groups", "threshold", "prior", "log_sigma2_initializer", "num_examples")
"""The config keys that the plain Keras layer does not have."""


def _cell_property(name):
    return property(
        lambda self: getattr(self.cell, name), doc=f"The cell's ``{name}`` (``self.cell.{name}``)."
    )


class SparseVDRNN(keras.layers.RNN):
    """Base class of the Sparse-VD recurrent layers: ``keras.layers.RNN`` over a Sparse-VD cell.

    A subclass sets ``cell_class`` (a :class:`SparseVDRNNCell`) and
    ``plain_class`` (the Keras layer it replaces); its constructor takes the
    cell's arguments and the layer arguments ``return_sequences``,
    ``return_state``, ``go_backwards``, ``stateful``, ``unroll``,
    ``zero_output_for_mask`` and ``activity_regularizer``, which mean what they
    mean for ``keras.layers.RNN``.

    Args:
      use_cudnn: ``"auto"`` or False (the noisy cell has no cuDNN kernel).

    Call arguments:
      sequences: ``[batch, time, input_dim]``.
      initial_state: the initial states, as for the Keras layer.
      mask: optional bool ``[batch, time]``; masked steps keep the previous state.
      training: sample the noise (True) or run the deterministic pruned network.

    In ``call`` the layer adds the cell's ``kl_weight * KL / N`` (in the
    variables' dtype), draws the shared noise, runs the recurrence and forgets
    the noise. The cell's variational weights (``kernel``, ``*_log_sigma2``,
    ``*_group``), ``bias``, ``num_examples`` and ``kl_weight`` are also reachable
    as attributes of the layer.
    """

    cell_class = None
    plain_class = None

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        activity_regularizer=None,
        use_cudnn="auto",
        name=None,
        dtype=None,
        trainable=True,
        **cell_kwargs,
    ):
        if use_cudnn not in ("auto", False):
            raise ValueError(
                f"use_cudnn: expected 'auto' or False (a {type(self).__name__} has "
                f"no cuDNN kernel), got {use_cudnn!r}"
            )
        cell = self.cell_class(
            units,
            dtype=dtype,
            trainable=trainable,
            name=f"{name}_cell" if name else None,
            **cell_kwargs,
        )
        super().__init__(
            cell,
            return_sequences=bool(return_sequences),
            return_state=bool(return_state),
            go_backwards=bool(go_backwards),
            stateful=bool(stateful),
            unroll=bool(unroll),
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            name=name,
            dtype=dtype,
            trainable=trainable,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if isinstance(mask, (list, tuple)):  # Keras adds the states' masks after the input's
            mask = mask[0]
        with backend.AutocastScope(self.cell.variable_dtype):  # the KL from float32 parameters
            self.cell.add_kl_loss(training)
        self.cell.draw_shared_noise(ops.shape(sequences)[0], training)
        try:
            return super().call(
                sequences, initial_state=initial_state, mask=mask, training=training
            )
        finally:
            self.cell.reset_shared_noise()

    def load_own_variables(self, store):
        """Loads a ``.keras`` file; also the layout written when the layer had no cell.

        The layer itself has no variables. A file saved by the tfbayes
        ``SparseVDLSTM`` of the single ``tf.scan`` loop stores the variables
        at the layer's path, in the order of the cell's variables; they are
        loaded into the cell.
        """
        if len(store.keys()) and not self._trainable_variables + self._non_trainable_variables:
            self.cell.load_own_variables(store)
            self.cell._loaded_by_layer = True
            return
        super().load_own_variables(store)

    # --- the sparsity protocol of tfbayes.sparsity ---

    def kept_structure(self):
        """See :meth:`SparseVDRNNCell.kept_structure`."""
        return self.cell.kept_structure()

    def sparsity_groups(self):
        """Kept/total ``weights``, ``inputs``, ``units`` and ``gates`` (the sparsity protocol)."""
        kept = self.kept_structure()
        return {
            "weights": (
                int(kept["kernel"].sum() + kept["recurrent_kernel"].sum()),
                int(kept["kernel"].size + kept["recurrent_kernel"].size),
            ),
            **{
                kind: (int(kept[kind].sum()), int(kept[kind].size))
                for kind in ("inputs", "units", "gates")
            },
        }

    def output_scale(self):
        """``z_h`` at inference, ``[units]``: the output is ``plain_equivalent()(x) * z_h``."""
        return self.cell.hidden_scale()

    def plain_equivalent(self):
        """A built ``plain_class`` layer whose output times :meth:`output_scale` is this layer's.

        See :meth:`SparseVDRNNCell.plain_weights` for the folding of the groups.

        Raises:
          ValueError: with ``return_state=True`` (the states cannot be rescaled)
            or ``stateful=True``.
        """
        for flag in ("return_state", "stateful"):
            if getattr(self, flag):
                raise ValueError(
                    f"Layer {self.name!r}: compress() supports "
                    f"{type(self).__name__} with {flag}=False only"
                )
        weights = self.cell.plain_weights()
        config = {k: v for k, v in self.get_config().items() if k not in _SPARSE_VD_ARGUMENTS}
        config["dtype"] = self.dtype_policy
        plain = self.plain_class.from_config(config)
        plain.build((None, None, weights[0].shape[0]))
        plain.set_weights(weights)
        return plain

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            del cell_config[key]
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        return {**config, **cell_config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @property
    def num_examples(self):
        """The training-set size N of the cell's KL (settable)."""
        return self.cell.num_examples

    @num_examples.setter
    def num_examples(self, value):
        self.cell.num_examples = value

    units = _cell_property("units")
    activation = _cell_property("activation")
    recurrent_activation = _cell_property("recurrent_activation")
    use_bias = _cell_property("use_bias")
    dropout = _cell_property("dropout")
    recurrent_dropout = _cell_property("recurrent_dropout")
    groups = _cell_property("groups")
    threshold = _cell_property("threshold")
    prior = _cell_property("prior")
    seed = _cell_property("seed")
    kl_weight = _cell_property("kl_weight")
    kernel = _cell_property("kernel")
    kernel_log_sigma2 = _cell_property("kernel_log_sigma2")
    recurrent_kernel = _cell_property("recurrent_kernel")
    recurrent_kernel_log_sigma2 = _cell_property("recurrent_kernel_log_sigma2")
    bias = _cell_property("bias")
    inputs_group = _cell_property("inputs_group")
    inputs_group_log_sigma2 = _cell_property("inputs_group_log_sigma2")
    hidden_group = _cell_property("hidden_group")
    hidden_group_log_sigma2 = _cell_property("hidden_group_log_sigma2")
    gates_group = _cell_property("gates_group")
    gates_group_log_sigma2 = _cell_property("gates_group_log_sigma2")
    log_alpha = _cell_property("log_alpha")
    weight_mask = _cell_property("weight_mask")
    pruned_weight = _cell_property("pruned_weight")
    kl_divergence = _cell_property("kl_divergence")
