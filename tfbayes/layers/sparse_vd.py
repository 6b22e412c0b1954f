"""Sparse Variational Dropout layers (Molchanov, Ashukha, Vetrov 2017, arXiv 1701.05369).

Every weight ``w`` of a layer here has its own Gaussian posterior
``q(w) = N(theta, sigma^2)`` in the additive reparameterization (paper Sec. 4.3):
the trainable variables are ``theta`` (named like the Keras weight it replaces,
e.g. ``kernel``) and ``log sigma^2`` (``kernel_log_sigma2``, initialised to -10
as in the reference code). The dropout rate of a weight is
``alpha = sigma^2 / theta^2``; a weight with a large ``log alpha`` is pure noise
and is removed.

* **Training** uses the local reparameterization trick (paper eq. 6): for a
  layer that is linear in its weights, ``y = op(x, W)``, the pre-activation is
  Gaussian given ``x``, with mean ``op(x, theta)`` and variance
  ``op(x^2, sigma^2)``, so one normal sample per output is drawn instead of one
  weight matrix per example.
* **Inference** is deterministic: ``y = op(x, theta * [log alpha < threshold])``.
* **KL**: each layer adds ``sum_w KL(q(w) || p(w))`` of the chosen prior,
  ``'log_uniform'`` (paper eq. 14) or ``'ard'`` (Kharitonov et al. 2018), via
  :class:`tfbayes.layers.BayesianLayer`.

:class:`SparseVDLayer` holds this shared logic; :class:`SparseVDDense` and
:class:`SparseVDConv1D`/``2D``/``3D`` (on :class:`SparseVDKernelLayer`, which holds
the kernel and bias arguments of the Keras layers they replace), and the
Embedding/LSTM layers of :mod:`tfbayes.layers`, are thin wrappers that choose ``op``.
The sparsity protocol these layers implement for :mod:`tfbayes.sparsity`
(``sparsity_groups`` and ``plain_equivalent``) is described there.
"""

import keras
import numpy as np
from keras import ops

from tfbayes.layers import kl
from tfbayes.layers.base import BayesianLayer, check_finite_real, variable_dtype_scope

_LRT_EPS = 1e-8
"""Added to the pre-activation variance before the square root, as in the reference code."""


def local_reparameterization(op, inputs, theta, log_sigma2, seed):
    """One sample of ``op(inputs, W)`` for ``W ~ N(theta, exp(log_sigma2))`` elementwise.

    ``op`` must be linear in its second argument and act on non-negative
    ``inputs**2`` as a sum of products (matmul, convolution, gather). Then

        mean = op(x, theta),  var = op(x^2, sigma^2),  out = mean + sqrt(var) * eps,

    with ``eps ~ N(0, 1)`` of the output's shape (Kingma et al. 2015; Molchanov
    et al. 2017 eq. 6). Cost: two evaluations of ``op``.

    Both evaluations run in ``inputs``' dtype; the square root is taken in at
    least float32, with ``1e-8`` added to ``var`` (below float16's smallest
    subnormal, and needed for a finite gradient where ``var = 0``). In float16,
    where ``x^2`` overflows for ``|x| > 256``, the variance is formed as
    ``s^2 op((x/s)^2, sigma^2)`` with ``s = max(1, max|x|)``, which is the same number.

    Args:
      op: a callable ``op(x, w) -> y``.
      inputs: the input tensor ``x``.
      theta, log_sigma2: the posterior means and log-variances of ``W``.
      seed: a ``keras.random.SeedGenerator`` (or int) for ``eps``.
    """
    mean = op(inputs, theta)
    dtype = keras.backend.standardize_dtype(mean.dtype)
    wide = "float64" if dtype == "float64" else "float32"
    if dtype != "float16":
        var = ops.cast(op(ops.square(inputs), ops.exp(log_sigma2)), wide)
        std = ops.sqrt(var + _LRT_EPS)
    else:
        scale = ops.stop_gradient(ops.maximum(ops.max(ops.abs(inputs)), 1.0))
        var = ops.cast(op(ops.square(inputs / scale), ops.exp(log_sigma2)), wide)
        scale = ops.cast(scale, wide)
        std = scale * ops.sqrt(var + _LRT_EPS / ops.square(scale))
    noise = keras.random.normal(ops.shape(mean), dtype=dtype, seed=seed)
    return mean + ops.cast(std, dtype) * noise


class SparseVDLayer(BayesianLayer):
    """Base class of the Sparse Variational Dropout layers; not used directly.

    A subclass creates each of its variational weights in ``build`` with
    :meth:`add_variational_weight`, and computes its output in ``call`` with
    :meth:`apply_variational` (local reparameterization in training, pruned
    deterministic weights at inference). The KL sums over all variational weights.

    Args:
      threshold: a weight is removed at inference when ``log alpha >= threshold``
        (default 3, i.e. dropout rate alpha > e^3 ~ 20, as in the paper).
      prior: ``'log_uniform'`` (Molchanov et al. eq. 14) or ``'ard'`` (the
        empirical-Bayes Gaussian prior, KL = 0.5 log(1 + 1/alpha)).
      log_sigma2_initializer: the initial value of every ``log sigma^2``, a float
        (default -10).
      seed: an int seed for the training noise, or None.
      num_examples: the training-set size N (see :class:`BayesianLayer`).
    """

    def __init__(
        self,
        threshold=3.0,
        prior="log_uniform",
        log_sigma2_initializer=-10.0,
        seed=None,
        num_examples=None,
        **kwargs,
    ):
        super().__init__(num_examples=num_examples, **kwargs)
        self.threshold = check_finite_real(threshold, "threshold")
        self._prior_kl = kl.get_prior_kl(prior)
        self.prior = prior
        self.log_sigma2_initializer = check_finite_real(
            log_sigma2_initializer, "log_sigma2_initializer"
        )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._variational_names = []

    def add_variational_weight(self, name, shape, initializer, regularizer=None, constraint=None):
        """Creates ``theta`` (named ``name``) and ``log sigma^2`` (``name + '_log_sigma2'``).

        Both are set as attributes of the layer under those names and returned.
        ``regularizer`` and ``constraint`` (as for ``add_weight``) act on ``theta``,
        as a Keras layer's ``kernel_regularizer`` acts on its kernel.
        """
        theta = self.add_weight(
            name=name,
            shape=shape,
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
        )
        log_sigma2 = self.add_weight(
            name=f"{name}_log_sigma2",
            shape=shape,
            initializer=keras.initializers.Constant(self.log_sigma2_initializer),
        )
        setattr(self, name, theta)
        setattr(self, f"{name}_log_sigma2", log_sigma2)
        self._variational_names.append(name)
        return theta, log_sigma2

    def log_alpha(self, name):
        """``log alpha`` of the variational weight ``name``, clipped to [-8, 8].

        Computed in the variable dtype (float32 under a mixed policy), also inside ``call``.
        """
        with variable_dtype_scope(self):
            return kl.log_alpha(
                ops.convert_to_tensor(getattr(self, name)),
                ops.convert_to_tensor(getattr(self, f"{name}_log_sigma2")),
            )

    def weight_mask(self, name):
        """1 where the weight ``name`` is kept (``log alpha < threshold``), else 0 (variable
        dtype)."""
        return ops.cast(self.log_alpha(name) < self.threshold, self.variable_dtype)

    def pruned_weight(self, name):
        """The deterministic inference weight ``theta * [log alpha < threshold]`` (variable
        dtype)."""
        with variable_dtype_scope(self):
            return ops.convert_to_tensor(getattr(self, name)) * self.weight_mask(name)

    def kl_divergence(self):
        """``sum_w KL(q(w) || p(w))`` over every variational weight, a scalar (variable dtype)."""
        return sum(
            ops.sum(self._prior_kl(self.log_alpha(name))) for name in self._variational_names
        )

    def apply_variational(self, op, inputs, name, training):
        """``op(inputs, W)`` for the variational weight ``name``, in the dtype of float ``inputs``.

        Keras delivers float inputs in the compute dtype (inside a wrapper with
        another policy, in the wrapper's), and the weights are cast to match.

        In training: one local-reparameterization sample
        (:func:`local_reparameterization`). Otherwise: ``op(inputs, pruned_weight(name))``.
        """
        if training:
            return local_reparameterization(
                op,
                inputs,
                getattr(self, name),
                getattr(self, f"{name}_log_sigma2"),
                self.seed_generator,
            )
        dtype = inputs.dtype if keras.backend.is_float_dtype(inputs.dtype) else self.compute_dtype
        return op(inputs, ops.cast(self.pruned_weight(name), dtype))

    def sparsity_groups(self):
        """``{'weights': (kept, total)}`` over all variational weights (the sparsity protocol)."""
        masks = [ops.convert_to_numpy(self.weight_mask(name)) for name in self._variational_names]
        return {"weights": (int(sum(m.sum() for m in masks)), int(sum(m.size for m in masks)))}

    def get_config(self):
        config = super().get_config()
        config.update(
            threshold=self.threshold,
            prior=self.prior,
            log_sigma2_initializer=self.log_sigma2_initializer,
            seed=self.seed,
        )
        return config


def _input_units(input_shape, layer, axis=-1):
    units = input_shape[axis]
    if units is None:
        raise ValueError(
            f"Layer {layer.name!r}: the input's axis {axis} must be known to build "
            f"the layer, got input shape {tuple(input_shape)}"
        )
    return int(units)


def check_positive_int(value, name):
    """``value`` as an int, or ``ValueError`` naming ``name`` unless it is a positive int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def check_unsupported(**arguments):
    """``ValueError`` for a Keras argument that a Sparse VD layer accepts only as None.

    LoRA and quantization change the kernel's parameterization, which here is
    the variational posterior; they have no Sparse VD meaning.
    """
    for name, value in arguments.items():
        if value is not None:
            raise ValueError(
                f"{name}: expected None (Sparse VD layers do not support LoRA or "
                f"quantization), got {value!r}"
            )


class SparseVDKernelLayer(SparseVDLayer):
    """Base of :class:`SparseVDDense` and :class:`SparseVDConv`: a variational kernel and a bias.

    Holds the arguments they share with ``keras.layers.Dense``/``Conv*D``, with
    the same meaning: ``activation``, ``use_bias``, and ``kernel_``/``bias_``
    ``initializer``, ``regularizer`` and ``constraint`` (the kernel ones act on
    ``theta``, the posterior mean); ``activity_regularizer`` acts on the output.
    """

    def __init__(
        self,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)

    def build_kernel(self, kernel_shape):
        """Creates the variational ``kernel`` and, with ``use_bias``, the ``bias``."""
        self.add_variational_weight(
            "kernel",
            kernel_shape,
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        self.bias = (
            self.add_weight(
                name="bias",
                shape=(kernel_shape[-1],),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
            if self.use_bias
            else None
        )

    def plain_kwargs(self):
        """The arguments of the plain Keras layer this one replaces that both share."""
        return dict(
            activation=self.activation,
            use_bias=self.use_bias,
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            activity_regularizer=self.activity_regularizer,
            kernel_constraint=self.kernel_constraint,
            bias_constraint=self.bias_constraint,
            dtype=self.dtype_policy,
        )

    def plain_equivalent(self):
        """The built plain Keras layer with kernel ``theta * mask``: the inference function."""
        kernel = ops.convert_to_numpy(self.pruned_weight("kernel"))
        weights = [kernel] + ([ops.convert_to_numpy(self.bias)] if self.use_bias else [])
        plain = self.plain_layer(name=self.name)
        plain.build(self.plain_input_shape(kernel.shape))
        plain.set_weights(weights)
        return plain

    def get_config(self):
        config = super().get_config()
        config.update(
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
            kernel_constraint=keras.constraints.serialize(self.kernel_constraint),
            bias_constraint=keras.constraints.serialize(self.bias_constraint),
        )
        return config


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDDense(SparseVDKernelLayer):
    """A drop-in for ``keras.layers.Dense`` with Sparse Variational Dropout.

    ``y = activation(x @ W + b)`` with ``W ~ N(theta, sigma^2)`` per weight in
    training (local reparameterization) and ``W = theta * [log alpha < threshold]``
    at inference. The bias is an ordinary (point-estimate) weight.

    ``activation``, ``use_bias``, ``kernel_initializer``, ``bias_initializer``,
    ``kernel_regularizer``, ``bias_regularizer``, ``activity_regularizer``,
    ``kernel_constraint`` and ``bias_constraint`` mean what they mean for
    ``keras.layers.Dense``; the kernel ones act on ``theta``.

    Args:
      units: the output size, a positive int.
      lora_rank, lora_alpha, quantization_config: accepted for signature
        compatibility; must be None.
      threshold, prior, log_sigma2_initializer, seed, num_examples: see
        :class:`SparseVDLayer`.

    Call arguments:
      inputs: a tensor of shape ``[..., input_dim]``.
      training: Python bool; True samples the noise and requires N to be set.

    Returns:
      ``[..., units]``. Cost: O(#inputs * input_dim * units), twice in training.

    Example:

    >>> layer = SparseVDDense(4, num_examples=1000)
    >>> tuple(layer(np.ones((2, 3), "float32")).shape)
    (2, 4)
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        super().__init__(
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        check_unsupported(
            lora_rank=lora_rank, lora_alpha=lora_alpha, quantization_config=quantization_config
        )
        self.units = check_positive_int(units, "units")

    def build(self, input_shape):
        input_dim = _input_units(input_shape, self)
        self.build_kernel((input_dim, self.units))
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs, training=False):
        self.add_kl_loss(training)
        outputs = self.apply_variational(ops.matmul, inputs, "kernel", training)
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def plain_layer(self, name=None):
        """An unbuilt ``keras.layers.Dense`` with this layer's settings."""
        return keras.layers.Dense(self.units, name=name, **self.plain_kwargs())

    def plain_input_shape(self, kernel_shape):
        return (None, kernel_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config


def _normalize_tuple(value, rank, name):
    """``value`` (an int or a tuple of ``rank`` ints, all positive) as a tuple of ``rank`` ints."""
    values = (value,) * rank if isinstance(value, (int, np.integer)) else value
    if (
        not isinstance(values, (tuple, list))
        or len(values) != rank
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in values
        )
    ):
        raise ValueError(
            f"{name}: expected a positive int or a tuple of {rank} positive ints, got {value!r}"
        )
    return tuple(int(v) for v in values)


class SparseVDConv(SparseVDKernelLayer):
    """N-D convolution with Sparse Variational Dropout; use ``SparseVDConv1D``/``2D``/``3D``.

    ``y = activation(conv(x, W) + b)``, with ``W ~ N(theta, sigma^2)`` per weight
    in training (local reparameterization: ``mean = conv(x, theta)``,
    ``var = conv(x^2, sigma^2)``) and ``W = theta * [log alpha < threshold]`` at
    inference. Every argument means what it means for ``keras.layers.Conv{rank}D``.
    A subclass for another rank only passes ``rank`` (see :class:`SparseVDConv3D`).

    Args:
      rank: the number of spatial dimensions (1, 2 or 3).
      filters: the number of output channels, a positive int divisible by ``groups``.
      kernel_size, strides, dilation_rate: a positive int or a tuple of ``rank`` ints.
      padding: ``'valid'`` or ``'same'`` (and ``'causal'`` for rank 1).
      data_format: ``'channels_last'`` (default) or ``'channels_first'``.
      groups: the number of channel groups of a grouped convolution (default 1):
        input and output channels are split into ``groups`` blocks, block ``j``
        of the outputs reading only block ``j`` of the inputs.
      activation, use_bias, kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint, bias_constraint: as in
        Keras; the kernel ones act on ``theta``.
      threshold, prior, log_sigma2_initializer, seed, num_examples: see
        :class:`SparseVDLayer`.

    Cost: O(#output positions * prod(kernel_size) * in_channels / groups * filters),
    twice in training.
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format="channels_last",
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.rank = rank
        self.filters = check_positive_int(filters, "filters")
        self.groups = check_positive_int(groups, "groups")
        if self.filters % self.groups:
            raise ValueError(
                f"groups: expected a divisor of filters={self.filters}, got {groups!r}"
            )
        self.kernel_size = _normalize_tuple(kernel_size, rank, "kernel_size")
        self.strides = _normalize_tuple(strides, rank, "strides")
        self.dilation_rate = _normalize_tuple(dilation_rate, rank, "dilation_rate")
        paddings = ("valid", "same", "causal") if rank == 1 else ("valid", "same")
        if padding not in paddings:
            raise ValueError(
                f"padding: expected {' or '.join(map(repr, paddings))}, got {padding!r}"
            )
        self.padding = padding
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                f"data_format: expected 'channels_last' or 'channels_first', got {data_format!r}"
            )
        self.data_format = data_format

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape):
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"Layer {self.name!r}: expected a {self.rank + 2}-D input "
                f"(batch, {self.rank} spatial dims, channels), got shape "
                f"{tuple(input_shape)}"
            )
        in_channels = _input_units(input_shape, self, self._channel_axis)
        if in_channels % self.groups:
            raise ValueError(
                f"Layer {self.name!r}: groups={self.groups} must divide the input's "
                f"{in_channels} channels"
            )
        self.build_kernel(self.kernel_size + (in_channels // self.groups, self.filters))
        self.input_spec = keras.layers.InputSpec(
            ndim=self.rank + 2, axes={self._channel_axis: in_channels}
        )

    def _convolve(self, inputs, kernel):
        padding = self.padding
        if padding == "causal":  # as keras.layers.Conv1D: pad the past, then a valid convolution
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            pad = (
                [[0, 0], [left, 0], [0, 0]]
                if self.data_format == "channels_last"
                else [[0, 0], [0, 0], [left, 0]]
            )
            inputs, padding = ops.pad(inputs, pad), "valid"
        return ops.conv(
            inputs,
            kernel,
            strides=self.strides,
            padding=padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )

    def call(self, inputs, training=False):
        self.add_kl_loss(training)
        outputs = self.apply_variational(self._convolve, inputs, "kernel", training)
        if self.use_bias:
            bias_shape = (
                (1,) * (self.rank + 1) + (self.filters,)
                if self.data_format == "channels_last"
                else (1, self.filters) + (1,) * self.rank
            )
            outputs = ops.add(outputs, ops.reshape(self.bias, bias_shape))
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return self.plain_layer().compute_output_shape(input_shape)

    def plain_layer(self, name=None):
        """An unbuilt ``keras.layers.Conv{rank}D`` with this layer's settings."""
        plain_class = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[
            self.rank
        ]
        return plain_class(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
            name=name,
            **self.plain_kwargs(),
        )

    def plain_input_shape(self, kernel_shape):
        in_channels = kernel_shape[-2] * self.groups
        return (
            (None,) * (self.rank + 1) + (in_channels,)
            if self.data_format == "channels_last"
            else (None, in_channels) + (None,) * self.rank
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            groups=self.groups,
        )
        return config


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDConv1D(SparseVDConv):
    """A drop-in for ``keras.layers.Conv1D`` with Sparse Variational Dropout.

    Inputs ``[batch, steps, channels]`` (channels_last). See :class:`SparseVDConv`.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(1, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDConv2D(SparseVDConv):
    """A drop-in for ``keras.layers.Conv2D`` with Sparse Variational Dropout.

    Inputs ``[batch, height, width, channels]`` (channels_last). See :class:`SparseVDConv`.

    Example:

    >>> layer = SparseVDConv2D(8, 3, padding="same", activation="relu")
    >>> tuple(layer(np.ones((1, 5, 5, 2), "float32")).shape)
    (1, 5, 5, 8)
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(2, filters, kernel_size, **kwargs)


@keras.saving.register_keras_serializable(package="tfbayes")
class SparseVDConv3D(SparseVDConv):
    """A drop-in for ``keras.layers.Conv3D`` with Sparse Variational Dropout.

    Inputs ``[batch, depth, height, width, channels]`` (channels_last). See :class:`SparseVDConv`.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        super().__init__(3, filters, kernel_size, **kwargs)
