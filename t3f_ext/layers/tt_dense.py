"""TTDense: a Dense layer whose kernel is a TT-matrix (Novikov et al. 2015)."""

import math

import keras
import tensorflow as tf

from t3f_ext import ops
from t3f_ext.layers import cores as tt_cores
from t3f_ext.layers import factorization
from t3f_ext.layers.contraction import dense_tt_matmul

IMPLEMENTATIONS = ("auto", "factorized", "reconstructed")


@keras.saving.register_keras_serializable(package="t3f_ext")
class TTDense(keras.layers.Layer):
    """``activation(x @ W + b)`` with ``W`` a TT-matrix (Novikov et al. 2015, arXiv 1509.06569).

    The ``M x N`` kernel (``M`` input features, ``N = units``) is stored as
    ``d`` cores ``G_k`` of shape ``[r_{k-1}, m_k, n_k, r_k]`` with
    ``M = m_1 ... m_d`` and ``N = n_1 ... n_d`` (eq. 4 of the paper):
    ``W[(i_1..i_d), (j_1..j_d)] = G_1[i_1, j_1] ... G_d[i_d, j_d]``.
    Each core is one Keras weight: ``sum_k r_{k-1} m_k n_k r_k`` parameters
    instead of ``M N``.

    The forward pass has two forms (``implementation``), with equal results:

    * *factorized*: the cores are applied to the input one by one (eq. 5), in
      the order with fewer FLOPs, and ``W`` is never formed. Cost for ``B``
      rows: ``B F_tt`` FLOPs with ``F_tt = sum_k 2 M_{<=k} r_{k-1} r_k N_{>=k}``
      right to left (``factorization.tt_matmul_flops``), and ``B S_tt``
      intermediate elements;
    * *reconstructed*: ``W`` is formed from the cores (``F_full =
      sum_{k>=2} 2 P_{<k} r_{k-1} m_k n_k r_k`` FLOPs, ``P_{<k} = prod_{j<k} m_j n_j``,
      and ``M N`` elements), then ``x @ W`` is one GEMM (``2 B M N``).

    ``"auto"`` (the default) takes the reconstructed form from the batch size
    ``B`` on where it needs fewer FLOPs and no more intermediate memory than
    the factorized one (``factorization.reconstruct_threshold``; the batch
    here is the number of rows, the product of all leading input dimensions),
    else the factorized form. That is usually never for low ranks (``F_tt <
    2 M N``), and from a small batch on for high ranks. When the batch size
    is only known at run time, a ``tf.cond`` picks the form (both are traced).
    ``summary()`` and ``repr`` report the resolved ranks, the threshold and
    the counts.

    Args:
      units: ``N``, the output size. May be omitted if ``output_factorization``
        is given.
      tt_rank: an int (all internal TT-ranks), a list of the ``d - 1``
        internal ranks, or T3F's list of ``d + 1`` ranks ``[1, ..., 1]``.
        Ranks above the largest useful one for the shape are capped to it.
        A float in ``(0, 1]`` is a parameter budget, a fraction of the dense
        kernel's ``M N``: the cores get the largest uniform rank (capped as
        above) whose parameters fit it, e.g. ``0.1`` for at most 10 %; when
        the factorization is chosen automatically, it is the one allowing the
        largest such rank (ties: the fewest FLOPs). The resolved ranks are in
        ``tt_ranks`` after ``build``.
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
      implementation: ``"auto"`` (default), ``"factorized"`` or
        ``"reconstructed"``: the forward form described above (the name
        tensorly-torch's ``FactorizedLinear`` uses).

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
    >>> budget = TTDense(1024, tt_rank=0.05)  # cores with at most 5 % of 784 * 1024 parameters
    >>> budget.build((None, 784))
    >>> budget.tt_ranks, budget.count_params() - 1024 <= 0.05 * 784 * 1024
    ([1, 25, 25, 25, 1], True)
    >>> budget.implementation_for(1), budget.implementation_for(512)
    ('factorized', 'reconstructed')
    """

    def __init__(
        self,
        units=None,
        tt_rank=8,
        input_factorization=None,
        output_factorization=None,
        num_cores=None,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units, output_factorization = factorization.resolve_output_size(
            units, output_factorization, "units"
        )
        self.tt_rank = (
            factorization.check_rank_budget(tt_rank)
            if factorization.is_rank_budget(tt_rank)
            else factorization.check_tt_rank(tt_rank)
        )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"`implementation` must be one of {list(IMPLEMENTATIONS)}, got {implementation!r}."
            )
        self.implementation = implementation
        self.input_factorization = (
            None if input_factorization is None else tuple(int(f) for f in input_factorization)
        )
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
            raise ValueError(
                f"TTDense needs a known last input dimension, got input shape {input_shape}."
            )
        (self.row_dims, self.col_dims, self.tt_ranks, self.right_to_left) = (
            factorization.choose_tt_matrix_shape(
                in_dim,
                self.units,
                self.tt_rank,
                self.num_cores,
                self.input_factorization,
                self.output_factorization,
            )
        )
        stddev = tt_cores.core_stddev(self.kernel_initializer, in_dim, self.units, self.tt_ranks)
        self.cores = tt_cores.add_tt_matrix_cores(
            self, self.row_dims, self.col_dims, self.tt_ranks, stddev, self.kernel_regularizer
        )
        self.bias = tt_cores.add_optional_bias(self, self.units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: in_dim})
        self.reconstruct_from_batch = {
            "factorized": None,
            "reconstructed": 1,
            "auto": factorization.reconstruct_threshold(
                self.row_dims, self.col_dims, self.tt_ranks, self.right_to_left
            ),
        }[self.implementation]

    @property
    def kernel(self):
        """The kernel as a `t3f_ext.TensorTrain` of shape ``[[m_1..m_d], [n_1..n_d]]``."""
        return tt_cores.cores_as_tensor_train(self.cores)

    @property
    def flops_per_example(self):
        """Multiply-add FLOPs of the factorized ``x @ W`` for one input row (2 M N for a Dense)."""
        return factorization.tt_matmul_flops(
            self.row_dims, self.col_dims, self.tt_ranks, self.right_to_left
        )

    def forward_costs(self, batch_size):
        """FLOPs and intermediate elements of both forms for ``batch_size`` rows.

        See ``factorization.forward_costs``; available after ``build``.
        """
        return factorization.forward_costs(
            self.row_dims, self.col_dims, self.tt_ranks, self.right_to_left, batch_size
        )

    def implementation_for(self, batch_size):
        """``"factorized"`` or ``"reconstructed"``: the form ``call`` uses for ``batch_size`` rows."""
        threshold = self.reconstruct_from_batch
        if threshold is None or batch_size < threshold:
            return "factorized"
        return "reconstructed"

    def call(self, inputs, training=None):
        in_dim = math.prod(self.row_dims)
        flat = tf.reshape(inputs, [-1, in_dim])
        outputs = self._matmul(flat)
        outputs = tf.reshape(outputs, tf.concat([tf.shape(inputs)[:-1], [self.units]], axis=0))
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def _matmul(self, flat):
        """``flat @ W`` in the form chosen for the number of rows (statically if known)."""

        def factorized():
            return dense_tt_matmul(
                flat, self.cores, self.row_dims, self.col_dims, self.right_to_left
            )

        def reconstructed():
            return tf.matmul(flat, ops.full(tt_cores.cores_as_tensor_train(self.cores)))

        threshold = self.reconstruct_from_batch
        rows = flat.shape[0]
        if threshold is None or (rows is not None and rows < threshold):
            return factorized()
        if threshold <= 1 or rows is not None:
            return reconstructed()
        return tf.cond(tf.shape(flat)[0] >= threshold, reconstructed, factorized)

    def summary(self, batch_sizes=(1, 32, 512), print_fn=None):
        """Prints (or passes to ``print_fn``) the TT shape, ranks and forward choice.

        Reports the factorizations, the resolved TT-ranks (and the budget they
        came from), the parameters against the dense kernel's, the
        implementation and the batch size from which ``"auto"`` reconstructs,
        and the FLOPs / intermediate elements of both forms at ``batch_sizes``.
        Needs a built layer.
        """
        if not self.built:
            raise ValueError(
                f"{type(self).__name__}.summary: layer {self.name!r} is not built; call it on data "
                "or build it first."
            )
        lines = [self._description()]
        lines.append(
            "  " + f"{'batch':>7} {'form':>13} {'factorized FLOPs':>17} "
            f"{'reconstructed FLOPs':>20} {'factorized mem':>15} {'reconstructed mem':>18}"
        )
        for batch in batch_sizes:
            costs = self.forward_costs(batch)
            lines.append(
                "  " + f"{batch:>7} {self.implementation_for(batch):>13} "
                f"{costs['factorized']['flops']:>17.3g} "
                f"{costs['reconstructed']['flops']:>20.3g} "
                f"{costs['factorized']['memory']:>15.3g} "
                f"{costs['reconstructed']['memory']:>18.3g}"
            )
        (print_fn or print)("\n".join(lines))

    def _description(self):
        in_dim, tt_params = (
            math.prod(self.row_dims),
            factorization.tt_matrix_num_params(self.row_dims, self.col_dims, self.tt_ranks),
        )
        budget = (
            f" (from the budget tt_rank={self.tt_rank:g}: <= "
            f"{self.tt_rank * in_dim * self.units:,.0f})"
            if factorization.is_rank_budget(self.tt_rank)
            else ""
        )
        threshold = self.reconstruct_from_batch
        form = (
            "factorized at every batch size"
            if threshold is None
            else "reconstructed at every batch size"
            if threshold <= 1
            else f"factorized below batch {threshold}, reconstructed from it on"
        )
        return (
            f"{type(self).__name__} {self.name!r}: {in_dim} -> {self.units}, TT-matrix "
            f"{list(self.row_dims)} x {list(self.col_dims)}, TT-ranks {list(self.tt_ranks)}\n"
            f"  kernel parameters: {tt_params:,} instead of {in_dim * self.units:,}{budget}, "
            f"compression {in_dim * self.units / tt_params:.1f}x\n"
            f"  implementation={self.implementation!r}: {form}"
        )

    def __repr__(self):
        if not self.built:
            return super().__repr__()
        threshold = self.reconstruct_from_batch
        form = (
            "factorized"
            if threshold is None
            else "reconstructed"
            if threshold <= 1
            else f"reconstructed from batch {threshold}"
        )
        return (
            f"<{type(self).__name__} name={self.name}, {math.prod(self.row_dims)}->{self.units}, "
            f"tt_ranks={list(self.tt_ranks)}, implementation={self.implementation} ({form})>"
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        built = self.built
        config.update(
            {
                "units": self.units,
                "tt_rank": list(self.tt_ranks) if built else self.tt_rank,
                "input_factorization": list(
                    self.row_dims if built else self.input_factorization or []
                )
                or None,
                "output_factorization": list(
                    self.col_dims if built else self.output_factorization or []
                )
                or None,
                "num_cores": self.num_cores,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer,
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "implementation": self.implementation,
            }
        )
        return config
