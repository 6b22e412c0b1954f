"""T3F's ``t3f.nn.KerasDense``, built on the Keras 3 `t3f_ext.layers.TTDense`.

T3F 1.2.0's layer keeps its TT-cores outside Keras' weight tracking, so under
Keras 3 it trains silently frozen and cannot be saved. This one takes T3F's
constructor arguments and is a `TTDense`: its cores are Keras weights (they
train, save to ``.keras`` and load back).
"""

import math

import keras
import numpy as np

from t3f_ext.layers.tt_dense import TTDense


@keras.saving.register_keras_serializable(package="t3f_ext")
class KerasDense(TTDense):
    """``activation(x @ W + b)`` with a TT-matrix ``W`` of shape
    ``[prod(input_dims), prod(output_dims)]``, with T3F's arguments.

    Args:
      input_dims: the row modes ``[m_1, ..., m_d]`` (their product is the input
        size).
      output_dims: the column modes ``[n_1, ..., n_d]``.
      tt_rank: an int or T3F's list of ``d + 1`` TT-ranks; ranks above the
        largest useful one for the shape are capped to it, as in `TTDense`.
      activation: Keras activation, default none.
      use_bias: whether to add a bias.
      kernel_initializer: ``"glorot"``, ``"he"`` or ``"lecun"`` (the variance
        of the full matrix entries, as T3F's initializers of those names).
      bias_initializer: a number (T3F: every bias entry starts at it) or a
        Keras initializer.
      **kwargs: Keras layer arguments (``name``, ``dtype``, ``trainable``) and
        `TTDense`'s regularizer arguments.

    Attributes (T3F's): ``tt_shape`` ``[input_dims, output_dims]``,
    ``output_dim``, and after building ``matrix`` (the kernel as a
    `TensorTrain`) and ``b`` (the bias weight).

    Cost and call arguments: see `TTDense`.
    """

    def __init__(
        self,
        input_dims,
        output_dims,
        tt_rank=2,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot",
        bias_initializer=0.1,
        **kwargs,
    ):
        for arg_name, dims in (("input_dims", input_dims), ("output_dims", output_dims)):
            if np.ndim(dims) != 1 or len(dims) == 0:
                raise ValueError(
                    "%s: expected a non-empty list of mode sizes, got %r" % (arg_name, dims)
                )
        if len(input_dims) != len(output_dims):
            raise ValueError(
                "output_dims: expected %d mode sizes like input_dims "
                "%r, got %r" % (len(input_dims), list(input_dims), list(output_dims))
            )
        self.tt_shape = [[int(m) for m in input_dims], [int(n) for n in output_dims]]
        self.output_dim = math.prod(self.tt_shape[1])
        self._t3f_bias_initializer = bias_initializer
        if isinstance(bias_initializer, (int, float, np.number)) and not (
            isinstance(bias_initializer, bool)
        ):
            bias_initializer = keras.initializers.Constant(float(bias_initializer))
        super().__init__(
            units=self.output_dim,
            tt_rank=tt_rank,
            input_factorization=self.tt_shape[0],
            output_factorization=self.tt_shape[1],
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )

    @property
    def matrix(self):
        """T3F's name for the kernel: a `t3f_ext.TensorTrain`."""
        return self.kernel

    @property
    def b(self):  # pylint: disable=invalid-name
        """T3F's name for the bias weight (None without a bias)."""
        return self.bias

    def get_config(self):
        config = super().get_config()
        for key in ("units", "input_factorization", "output_factorization", "num_cores"):
            config.pop(key)
        bias = self._t3f_bias_initializer
        config.update(
            {
                "input_dims": self.tt_shape[0],
                "output_dims": self.tt_shape[1],
                "bias_initializer": (
                    bias if isinstance(bias, (int, float)) else config["bias_initializer"]
                ),
            }
        )
        return config
