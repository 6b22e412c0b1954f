"""A Sparse Variational Dropout LSTM with sparse weights, neurons and gates.

The LSTM of Keras (gate order i, f, c, o; ``c_t = f c_{t-1} + i g``,
``h_t = o act(c_t)``) with the Sparse-VD weights and group variables of
:mod:`tfbayes.layers.sparse_vd_rnn` (Lobacheva, Chirkova, Vetrov 2017,
arXiv 1708.00077; Lobacheva et al. 2018, arXiv 1812.05692):

    pre_t = z_gate * ((x_t * z_x) W_x + h_{t-1} W_h) + b,
    i, f, o = recurrent_activation(pre_t[i, f, o]),  g = activation(pre_t[c]),
    c_t = f c_{t-1} + i g,       h_t = z_h * o * activation(c_t).

A gate pre-activation whose ``z_gate`` is pruned makes that gate the constant
``recurrent_activation(b)`` (or ``activation(b)`` for the cell candidate); a
pruned ``z_h`` removes the hidden neuron; a pruned ``z_x`` removes an input.
The states are ``[h_t, c_t]``, with ``h_t`` carrying its ``z_h``.
"""

import keras
from keras import ops

from tfbayes.layers.sparse_vd_rnn import GROUPS, SparseVDRNN, SparseVDRNNCell

GATES = ("input", "forget", "cell", "output")
"""The four gate pre-activations, in Keras's order along the ``4 * units`` axis."""


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDLSTMCell(SparseVDRNNCell):
    """The cell of :class:`SparseVDLSTM`, a drop-in for ``keras.layers.LSTMCell``.

    Args:
      unit_forget_bias: as in ``keras.layers.LSTMCell``: the forget gate's bias
        starts at 1.
      Others: see :class:`~tfbayes.layers.sparse_vd_rnn.SparseVDRNNCell`.

    Call arguments:
      inputs: ``[batch, input_dim]``; states: ``[h, c]``, each ``[batch, units]``.

    Returns ``(h, [h, c])``. Cost per step: O(batch (input_dim + units) 4 units).
    Run it with :class:`SparseVDLSTM` (or any :class:`SparseVDRNN`), which draws
    the shared noise before the time loop.
    """

    GATES = GATES

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def initial_bias(self, shape, dtype=None):
        if not self.unit_forget_bias:
            return self.bias_initializer(shape, dtype=dtype)
        units = self.units
        return ops.concatenate(
            [
                self.bias_initializer((units,), dtype=dtype),
                ops.ones((units,), dtype=dtype),
                self.bias_initializer((2 * units,), dtype=dtype),
            ]
        )

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states
        x_part, h_part = self.gate_projections(inputs, h_prev, training)
        pre = x_part + h_part
        if self.use_bias:
            pre = pre + self.bias
        pre_i, pre_f, pre_c, pre_o = ops.split(pre, 4, axis=-1)
        c = self.recurrent_activation(pre_f) * c_prev + self.recurrent_activation(
            pre_i
        ) * self.activation(pre_c)
        h = self.recurrent_activation(pre_o) * self.activation(c)
        z_h = self.group_noise("hidden")
        if z_h is not None:
            h = h * z_h
        return h, [h, c]

    def get_config(self):
        config = super().get_config()
        config["unit_forget_bias"] = self.unit_forget_bias
        return config


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDLSTM(SparseVDRNN):
    """Drop-in for ``keras.layers.LSTM`` with sparse weights, neurons and gates.

    ``keras.layers.RNN`` over a :class:`SparseVDLSTMCell`; see the module
    docstring for the model. The variational weights are the cell's ``kernel``
    (``W_x``), ``recurrent_kernel`` (``W_h``) and the group variables
    ``inputs_group`` ``[input_dim]``, ``hidden_group`` ``[units]`` and
    ``gates_group`` ``[4 units]`` (means initialised to 1), each with its
    ``*_log_sigma2``; they are also attributes of the layer. Training adds
    ``KL / N`` through ``add_loss``, summed over all of them; the bias is a
    plain weight.

    ``activation``, ``recurrent_activation``, ``use_bias``, ``kernel_initializer``,
    ``recurrent_initializer``, ``bias_initializer``, ``unit_forget_bias``,
    ``kernel_regularizer``, ``recurrent_regularizer``, ``bias_regularizer``,
    ``activity_regularizer``, ``kernel_constraint``, ``recurrent_constraint``,
    ``bias_constraint``, ``dropout``, ``recurrent_dropout``, ``seed``,
    ``return_sequences``, ``return_state``, ``go_backwards``, ``stateful``,
    ``unroll`` and ``use_cudnn`` mean what they mean for ``keras.layers.LSTM``:
    the initializers, regularizers and constraints of the kernels act on
    ``theta``, ``seed`` also seeds the Sparse-VD noise, and ``use_cudnn`` may be
    ``"auto"`` or False.

    Args:
      units: a positive int, the number of hidden units.
      groups: which group variables to learn, a subset of
        ``("inputs", "hidden", "gates")`` (all three by default).
      threshold, prior, log_sigma2_initializer, num_examples: see
        :class:`~tfbayes.layers.sparse_vd.SparseVDLayer`.

    Call arguments:
      inputs: ``[batch, time, input_dim]`` floats.
      initial_state: optional ``[h_0, c_0]``, each ``[batch, units]``.
      mask: optional bool ``[batch, time]``; masked steps keep the previous
        state, as in Keras.
      training: sample the noise (True) or run the deterministic pruned
        network (False).

    Output: ``[batch, units]``, or ``[batch, time, units]`` with
    ``return_sequences``; with ``return_state`` the tuple ``(output, h_T, c_T)``.
    Cost per timestep: O(batch * (input_dim + units) * 4 units); per training
    call one weight sample, O((input_dim + units) * 4 units), and
    O(batch * (input_dim + 5 units)) group samples.

    Example:

    >>> model = keras.Sequential([keras.Input((None,), dtype="int32"),
    ...                           keras.layers.Embedding(1000, 32),
    ...                           SparseVDLSTM(64, num_examples=25000),
    ...                           keras.layers.Dense(1, activation="sigmoid")])
    """

    cell_class = SparseVDLSTMCell
    plain_class = keras.layers.LSTM

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        groups=GROUPS,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            groups=groups,
            **kwargs,
        )

    unit_forget_bias = property(
        lambda self: self.cell.unit_forget_bias, doc="The cell's ``unit_forget_bias``."
    )
