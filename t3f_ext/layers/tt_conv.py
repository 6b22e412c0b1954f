"""TTConv2D: a 2-D convolution whose kernel is a TT-matrix (Garipov et al. 2016)."""

import math

import keras
import tensorflow as tf

from t3f_ext.layers import cores as tt_cores
from t3f_ext.layers import factorization
from t3f_ext.layers.contraction import tt_matmul_left_to_right, tt_matmul_right_to_left


def _pair(value, arg_name):
    if hasattr(value, "__index__") and not isinstance(value, bool):
        value = (int(value), int(value))
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(hasattr(v, "__index__") and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        raise ValueError(
            f"`{arg_name}` must be a positive int or a pair of positive ints, got {value!r}."
        )
    return tuple(int(v) for v in value)


def _conv_output_size(size, kernel, stride, dilation, padding):
    if size is None:
        return None
    if padding == "same":
        return -(-size // stride)
    return (size - (kernel - 1) * dilation - 1) // stride + 1


@keras.saving.register_keras_serializable(package="t3f_ext")
class TTConv2D(keras.layers.Layer):
    """Conv2D with a TT-format kernel (Garipov et al. 2016, arXiv 1611.03214).

    The kernel ``K[x, y, c, s]`` (``kh x kw`` window, ``C = c_1 ... c_d`` input
    and ``S = s_1 ... s_d`` output channels) is the TT-matrix of shape
    ``[(kh kw) C, S]`` with ``d + 1`` cores: a spatial core
    ``[1, kh kw, 1, r_0]`` followed by channel cores ``[r_{k-1}, c_k, s_k, r_k]``
    (``r_d = 1``), i.e. ``K[x, y, c, s] = G_0[x, y] G_1[c_1, s_1] ... G_d[c_d, s_d]``
    (Garipov et al., eq. 6 with the spatial modes merged into one core).

    It runs in one of two orders, the one with fewer FLOPs for the input size:

    * *conv first*: every input channel is convolved with the ``r_0`` spatial
      filters (``2 C kh kw r_0`` FLOPs per output pixel), then the channel
      cores contract ``(c, r_0) -> s`` left to right at the output pixels;
    * *channels first*: the channel cores contract ``c -> (r_0, s)`` right to
      left at the input pixels, then every output channel is a convolution of
      its ``r_0`` maps (``2 S kh kw r_0`` FLOPs per output pixel).

    Parameters: ``kh kw r_0 + sum_k r_{k-1} c_k s_k r_k`` instead of
    ``kh kw C S``.

    Args:
      filters: ``S``, the number of output channels (or give
        ``output_factorization``).
      kernel_size: int or pair ``(kh, kw)``.
      tt_rank: an int (all ``d`` ranks ``r_0 .. r_{d-1}``) or a list of them
        (or of all ``d + 2`` ranks with the boundary 1s). Capped at the
        largest useful rank. A float in ``(0, 1]`` is a parameter budget, a
        fraction of the ``kh kw C S`` kernel: the largest uniform rank whose
        cores (the spatial one included) fit it (see `TTDense`).
      input_factorization, output_factorization: optional ``[c_1..c_d]`` and
        ``[s_1..s_d]`` with products ``C`` and ``S``.
      num_cores: ``d``, the number of channel cores, when no factorization is
        given (default: factors ``<= 8``, as in `TTDense`).
      strides: as in `keras.layers.Conv2D`.
      padding: ``"valid"`` or ``"same"``, as in `keras.layers.Conv2D`.
      data_format: ``"channels_last"`` or ``"channels_first"``.
      dilation_rate: as in `keras.layers.Conv2D`.
      activation: as in `TTDense`.
      use_bias: as in `TTDense`.
      kernel_initializer: as in `TTDense`; its fans are ``kh kw C`` and ``kh kw S``, as Keras
        counts them for a convolution.
      bias_initializer: as in `TTDense`.
      kernel_regularizer: as in `TTDense`.
      bias_regularizer: as in `TTDense`.
      activity_regularizer: as in `TTDense`.

    Call arguments:
      inputs: ``[B, H, W, C]`` (or ``[B, C, H, W]`` for channels_first).
      training: unused.

    Example:
    >>> layer = TTConv2D(64, 3, tt_rank=8, padding="same")
    >>> layer(tf.ones([2, 28, 28, 32])).shape
    TensorShape([2, 28, 28, 64])
    """

    def __init__(
        self,
        filters=None,
        kernel_size=3,
        tt_rank=8,
        input_factorization=None,
        output_factorization=None,
        num_cores=None,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        kernel_initializer="glorot",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.filters, output_factorization = factorization.resolve_output_size(
            filters, output_factorization, "filters"
        )
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.tt_rank = (
            factorization.check_rank_budget(tt_rank)
            if factorization.is_rank_budget(tt_rank)
            else factorization.check_tt_rank(tt_rank)
        )
        self.input_factorization = (
            None if input_factorization is None else tuple(int(f) for f in input_factorization)
        )
        self.output_factorization = output_factorization
        self.num_cores = num_cores
        self.strides = _pair(strides, "strides")
        self.dilation_rate = _pair(dilation_rate, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                f"`strides` > 1 together with `dilation_rate` > 1 is not supported (as in Conv2D); "
                f"got strides={self.strides}, dilation_rate={self.dilation_rate}."
            )
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise ValueError(f"`padding` must be 'valid' or 'same', got {padding!r}.")
        self.padding = padding.lower()
        self.data_format = keras.backend.image_data_format() if data_format is None else data_format
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                f"`data_format` must be 'channels_last' or 'channels_first', got {data_format!r}."
            )
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = tt_cores.check_kernel_initializer(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape):
        in_channels = input_shape[self._channel_axis()]
        if in_channels is None:
            raise ValueError(
                f"TTConv2D needs a known number of input channels, got input shape {input_shape}."
            )
        kh, kw = self.kernel_size
        budget = factorization.is_rank_budget(self.tt_rank)
        rank_hint = (
            1 if budget else self.tt_rank if isinstance(self.tt_rank, int) else max(self.tt_rank)
        )
        for _ in range(2 if budget else 1):
            # A budget: the channel factorization for rank 1, then again for the rank it allows.
            channel_rows, channel_cols, _, _ = factorization.choose_tt_matrix_shape(
                in_channels,
                self.filters,
                rank_hint,
                self.num_cores,
                self.input_factorization,
                self.output_factorization,
            )
            self.row_dims = (kh * kw,) + channel_rows
            self.col_dims = (1,) + channel_cols
            self.tt_ranks = (
                factorization.ranks_for_budget_or_raise(self.tt_rank, self.row_dims, self.col_dims)
                if budget
                else factorization.normalize_tt_ranks(self.tt_rank, self.row_dims, self.col_dims)
            )
            rank_hint = max(self.tt_ranks)
        self.conv_first = self._conv_first_is_cheaper(input_shape)
        stddev = tt_cores.core_stddev(
            self.kernel_initializer, kh * kw * in_channels, kh * kw * self.filters, self.tt_ranks
        )
        self.cores = tt_cores.add_tt_matrix_cores(
            self, self.row_dims, self.col_dims, self.tt_ranks, stddev, self.kernel_regularizer
        )
        self.bias = tt_cores.add_optional_bias(self, self.filters)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={self._channel_axis(): in_channels})

    def _spatial_sizes(self, input_shape):
        if self.data_format == "channels_last":
            return input_shape[1], input_shape[2]
        return input_shape[2], input_shape[3]

    def _conv_first_is_cheaper(self, input_shape):
        """Compares the FLOPs of the two orders per output pixel (see the class docstring)."""
        kh, kw = self.kernel_size
        sizes_in = self._spatial_sizes(input_shape)
        sizes_out = [
            _conv_output_size(size, k, s, dil, self.padding)
            for size, k, s, dil in zip(sizes_in, self.kernel_size, self.strides, self.dilation_rate)
        ]
        if None in sizes_in or min(sizes_out) < 1:
            pixels_in_per_out = math.prod(self.strides)
        else:
            pixels_in_per_out = math.prod(sizes_in) / math.prod(sizes_out)
        channel_rows, channel_cols, ranks = self.row_dims[1:], self.col_dims[1:], self.tt_ranks[1:]
        rank = self.tt_ranks[1]
        conv_first = 2 * math.prod(channel_rows) * kh * kw * rank + factorization.tt_matmul_flops(
            channel_rows, channel_cols, ranks, False
        )
        channels_first = (
            pixels_in_per_out
            * factorization.tt_matmul_flops(channel_rows, channel_cols, ranks, True)
            + 2 * self.filters * kh * kw * rank
        )
        return conv_first <= channels_first

    @property
    def kernel(self):
        """The kernel as a `t3f_ext.TensorTrain` of shape ``[[kh kw, c_1..c_d], [1, s_1..s_d]]``.

        ``tf.reshape(t3f_ext.full(layer.kernel), [kh, kw, C, S])`` is the
        `tf.nn.conv2d` filter.
        """
        return tt_cores.cores_as_tensor_train(self.cores)

    def _conv(self, images, spatial_filter):
        return tf.nn.conv2d(
            images,
            spatial_filter,
            strides=self.strides,
            padding=self.padding.upper(),
            dilations=self.dilation_rate,
        )

    def call(self, inputs, training=None):
        kh, kw = self.kernel_size
        rank = self.tt_ranks[1]
        spatial_core, channel_cores = self.cores[0], self.cores[1:]
        channel_rows, channel_cols = self.row_dims[1:], self.col_dims[1:]
        in_channels = math.prod(channel_rows)
        images = (
            inputs if self.data_format == "channels_last" else tf.transpose(inputs, [0, 2, 3, 1])
        )
        batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
        if self.conv_first:
            # [B, H, W, C] -> [B C, H, W, 1] -conv-> [B C, H', W', r_0] -> [r_0, C, B H' W'].
            per_channel = tf.reshape(tf.transpose(images, [0, 3, 1, 2]), [-1, height, width, 1])
            maps = self._conv(per_channel, tf.reshape(spatial_core, [kh, kw, 1, rank]))
            out_h, out_w = tf.shape(maps)[1], tf.shape(maps)[2]
            maps = tf.reshape(maps, [batch, in_channels, out_h * out_w, rank])
            maps = tf.reshape(tf.transpose(maps, [3, 1, 0, 2]), [rank, in_channels, -1])
            outputs = tt_matmul_left_to_right(maps, channel_cores, channel_rows, channel_cols)
            outputs = tf.reshape(outputs, [batch, out_h, out_w, self.filters])
        else:
            # [B H W, C, 1] -> [S, B H W, r_0] -> [S B, H, W, r_0] -conv-> [S, B, H', W'].
            pixels = tf.reshape(images, [-1, in_channels, 1])
            maps = tt_matmul_right_to_left(pixels, channel_cores, channel_rows, channel_cols)
            maps = tf.reshape(maps, [-1, height, width, rank])
            outputs = self._conv(maps, tf.reshape(spatial_core, [kh, kw, rank, 1]))
            out_h, out_w = tf.shape(outputs)[1], tf.shape(outputs)[2]
            outputs = tf.reshape(outputs, [self.filters, batch, out_h, out_w])
            outputs = tf.transpose(outputs, [1, 2, 3, 0])
        if self.use_bias:
            outputs = outputs + self.bias
        outputs = self.activation(outputs)
        if self.data_format == "channels_first":
            outputs = tf.transpose(outputs, [0, 3, 1, 2])
        return outputs

    def compute_output_shape(self, input_shape):
        sizes = [
            _conv_output_size(size, k, s, dil, self.padding)
            for size, k, s, dil in zip(
                self._spatial_sizes(input_shape), self.kernel_size, self.strides, self.dilation_rate
            )
        ]
        if self.data_format == "channels_last":
            return (input_shape[0], sizes[0], sizes[1], self.filters)
        return (input_shape[0], self.filters, sizes[0], sizes[1])

    def get_config(self):
        config = super().get_config()
        built = self.built
        config.update(
            {
                "filters": self.filters,
                "kernel_size": list(self.kernel_size),
                "tt_rank": list(self.tt_ranks) if built else self.tt_rank,
                "input_factorization": (
                    list(self.row_dims[1:])
                    if built
                    else list(self.input_factorization or []) or None
                ),
                "output_factorization": (
                    list(self.col_dims[1:])
                    if built
                    else list(self.output_factorization or []) or None
                ),
                "num_cores": self.num_cores,
                "strides": list(self.strides),
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": list(self.dilation_rate),
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            }
        )
        return config
