"""TTDense: a Dense layer whose kernel is a TT-matrix (Novikov et al. 2015)."""
import math

import keras
import tensorflow as tf

from t3f_ext.layers import cores as tt_cores
from t3f_ext.layers import factorization
from t3f_ext.layers.contraction import dense_tt_matmul


@keras.saving.register_keras_serializable(package="t3f_ext")
class TTDense(keras.layers.Layer):
    """``activation(x @ W + b)`` with ``W`` a TT-matrix (Novikov et al. 2015, arXiv 1509.06569).

    The ``M x N`` kernel (``M`` input features, ``N = units``) is stored as
    ``d`` cores ``G_k`` of shape ``[r_{k-1}, m_k, n_k, r_k]`` with
    ``M = m_1 ... m_d`` and ``N = n_1 ... n_d`` (eq. 4 of the paper):
    ``W[(i_1..i_d), (j_1..j_d)] = G_1[i_1, j_1] ... G_d[i_d, j_d]``.
    Each core is one Keras weight. The product is applied core by core
    (eq. 5) and never formed, in the order with fewer FLOPs.

    Cost per input row: ``sum_k 2 M_{<=k} r_{k-1} r_k N_{>=k}`` FLOPs (right
    to left; see ``factorization.tt_matmul_flops``) instead of ``2 M N``, and
    ``sum_k r_{k-1} m_k n_k r_k`` parameters instead of ``M N``.

    Args:
      units: ``N``, the output size. May be omitted if ``output_factorization``
        is given.
      tt_rank: an int (all internal TT-ranks), a list of the ``d - 1``
        internal ranks, or T3F's list of ``d + 1`` ranks ``[1, ..., 1]``.
        Ranks above the largest useful one for the shape are capped to it.
      input_factorization: optional ``[m_1, ..., m_d]`` with product ``M``.
      output_factorization: optional ``[n_1, ..., n_d]`` with product ``units``.
      num_cores: ``d`` when no factorization is given. Default: the smallest
        ``d`` splitting both sizes into factors ``<= 8`` (1024 -> 4x4x8x8).
        Missing factorizations are the most balanced ones, ordered to
        minimise FLOPs.
      activation: Keras activation (name or callable), default none.
      use_bias: whether to add a bias of shape ``[units]``.
      kernel_initializer: ``"glorot"`` (default), ``"he"`` or ``"lecun"``: the
        variance of the FULL matrix entries (``2/(M+N)``, ``2/M``, ``1/M``);
        every core is ``N(0, s^2)`` with ``s`` chosen so that the product has
        that variance. A positive float is the std of the full entries.
      bias_initializer: Keras initializer for the bias.
      kernel_regularizer: Keras regularizer applied to every core.
      bias_regularizer: Keras regularizer for the bias.
      activity_regularizer: Keras regularizer for the output.

    Call arguments:
      inputs: ``[..., M]`` tensor of any rank >= 2.
      training: unused (the layer is deterministic), accepted for uniformity.

    Returns ``[..., units]``.

    Example:
    >>> layer = TTDense(1024, tt_rank=8)
    >>> y = layer(tf.ones([32, 784]))      # 784 = 4*4*7*7, 1024 = 8*8*4*4
    >>> layer.count_params() < 784 * 1024 // 100
    True
    >>> import t3f_ext
    >>> t3f_ext.full(layer.kernel).shape     # the kernel as a dense matrix, for checks
    TensorShape([784, 1024])
    """

    def __init__(self, units=None, tt_rank=8, input_factorization=None, output_factorization=None,
                 num_cores=None, activation=None, use_bias=True, kernel_initializer="glorot",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units, output_factorization = factorization.resolve_output_size(
            units, output_factorization, "units")
        self.tt_rank = factorization.check_tt_rank(tt_rank)
        self.input_factorization = (None if input_factorization is None
                                    else tuple(int(f) for f in input_factorization))
        self.output_factorization = output_factorization
        self.num_cores = num_cores
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = tt_cores.check_kernel_initializer(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f"TTDense needs a known last input dimension, got input shape {input_shape}.")
        (self.row_dims, self.col_dims, self.tt_ranks,
         self.right_to_left) = factorization.choose_tt_matrix_shape(
            in_dim, self.units, self.tt_rank, self.num_cores,
            self.input_factorization, self.output_factorization)
        stddev = tt_cores.core_stddev(self.kernel_initializer, in_dim, self.units, self.tt_ranks)
        self.cores = tt_cores.add_tt_matrix_cores(
            self, self.row_dims, self.col_dims, self.tt_ranks, stddev, self.kernel_regularizer)
        self.bias = tt_cores.add_optional_bias(self, self.units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: in_dim})

    @property
    def kernel(self):
        """The kernel as a `t3f_ext.TensorTrain` of shape ``[[m_1..m_d], [n_1..n_d]]``."""
        return tt_cores.cores_as_tensor_train(self.cores)

    @property
    def flops_per_example(self):
        """Multiply-add FLOPs of ``x @ W`` for one input row (2 M N for a Dense)."""
        return factorization.tt_matmul_flops(self.row_dims, self.col_dims, self.tt_ranks,
                                             self.right_to_left)

    def call(self, inputs, training=None):
        in_dim = math.prod(self.row_dims)
        flat = tf.reshape(inputs, [-1, in_dim])
        outputs = dense_tt_matmul(flat, self.cores, self.row_dims, self.col_dims, self.right_to_left)
        outputs = tf.reshape(outputs, tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        built = self.built
        config.update({
            "units": self.units,
            "tt_rank": list(self.tt_ranks) if built else self.tt_rank,
            "input_factorization": list(self.row_dims if built else self.input_factorization or []) or None,
            "output_factorization": list(self.col_dims if built else self.output_factorization or []) or None,
            "num_cores": self.num_cores,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        })
        return config
