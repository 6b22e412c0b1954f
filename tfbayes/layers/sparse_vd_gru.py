"""A Sparse Variational Dropout GRU with sparse weights, neurons and gates.

The GRU of Keras with ``reset_after=True`` (gate order z, r, h; the bias has
an input row ``b_x`` and a recurrent row ``b_h``), with the Sparse-VD weights
and group variables of :mod:`tfbayes.layers.sparse_vd_rnn` (Lobacheva et al.
2018, arXiv 1812.05692, sparsify GRUs as well as LSTMs). With ``s`` the
state and ``h_{t-1} = z_h * s_{t-1}`` the hidden neurons:

    a = ((x_t * z_x) W_x) * z_gate + b_x,     b = (h_{t-1} W_h) * z_gate + b_h,
    z = recurrent_activation(a_z + b_z),      r = recurrent_activation(a_r + b_r),
    s_t = z s_{t-1} + (1 - z) activation(a_h + r * b_h),    output h_t = z_h * s_t.

The state is ``s_t`` (the plain GRU's); the hidden group scales it wherever it
is read, so a pruned ``z_h`` removes the neuron.
"""

import keras
from keras import ops

from tfbayes.layers.sparse_vd_rnn import GROUPS, SparseVDRNN, SparseVDRNNCell

GATES = ("update", "reset", "candidate")
"""The three gate pre-activations, in Keras's order along the ``3 * units`` axis."""


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDGRUCell(SparseVDRNNCell):
    """The cell of :class:`SparseVDGRU`, a drop-in for ``keras.layers.GRUCell(reset_after=True)``.

    Args:
      reset_after: True (Keras's default): the reset gate multiplies the
        recurrent projection. False is not supported.
      Others: see :class:`~tfbayes.layers.sparse_vd_rnn.SparseVDRNNCell`.

    Call arguments:
      inputs: ``[batch, input_dim]``; states: ``[s]`` (or ``s``), ``[batch, units]``.

    Returns ``(z_h * s_t, [s_t])``. Cost per step: O(batch (input_dim + units) 3 units).
    """

    GATES = GATES

    def __init__(self, units, reset_after=True, **kwargs):
        if reset_after is not True:
            raise ValueError(
                f"reset_after: expected True (the Keras default; the reset-before "
                f"GRU is not supported), got {reset_after!r}"
            )
        super().__init__(units, **kwargs)
        self.reset_after = True
        self.state_size = self.units

    def bias_shape(self):
        return (2, self.gate_size)

    def call(self, inputs, states, training=False):
        s_prev = states[0] if isinstance(states, (list, tuple)) else states
        z_h = self.group_noise("hidden")
        x_part, h_part = self.gate_projections(
            inputs, s_prev if z_h is None else s_prev * z_h, training
        )
        if self.use_bias:
            x_part, h_part = x_part + self.bias[0], h_part + self.bias[1]
        x_z, x_r, x_h = ops.split(x_part, 3, axis=-1)
        h_z, h_r, h_h = ops.split(h_part, 3, axis=-1)
        z = self.recurrent_activation(x_z + h_z)
        r = self.recurrent_activation(x_r + h_r)
        s = z * s_prev + (1.0 - z) * self.activation(x_h + r * h_h)
        output = s if z_h is None else s * z_h
        return output, [s] if isinstance(states, (list, tuple)) else s

    def get_config(self):
        config = super().get_config()
        config["reset_after"] = self.reset_after
        return config


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDGRU(SparseVDRNN):
    """Drop-in for ``keras.layers.GRU`` (``reset_after=True``) with sparse weights, neurons, gates.

    ``keras.layers.RNN`` over a :class:`SparseVDGRUCell`; see the module
    docstring for the model. The variational weights and the arguments are
    those of :class:`~tfbayes.layers.SparseVDLSTM`, with ``3 units`` gate
    pre-activations, a ``[2, 3 units]`` bias and ``reset_after`` (True only)
    in place of ``unit_forget_bias``. With ``return_state`` the output is the
    tuple ``(output, s_T)``.

    Example:

    >>> layer = SparseVDGRU(8, return_sequences=True, num_examples=1000)
    >>> tuple(layer(np.ones((2, 5, 3), "float32")).shape)
    (2, 5, 8)
    """

    cell_class = SparseVDGRUCell
    plain_class = keras.layers.GRU

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        reset_after=True,
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
            reset_after=reset_after,
            groups=groups,
            **kwargs,
        )

    reset_after = property(lambda self: self.cell.reset_after, doc="The cell's ``reset_after``.")
