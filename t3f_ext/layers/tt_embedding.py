"""TTEmbedding: an embedding table stored as a TT-matrix (Hrinchuk et al. 2019)."""

import math

import keras
import tensorflow as tf

from t3f_ext import linalg
from t3f_ext.layers import cores as tt_cores
from t3f_ext.layers import factorization

DEFAULT_NUM_CORES = 3


@keras.saving.register_keras_serializable(package="t3f_ext")
class TTEmbedding(keras.layers.Layer):
    """Embedding whose ``V x D`` table is a TT-matrix (Hrinchuk et al., arXiv 1901.10787).

    The table has cores ``[r_{k-1}, v_k, e_k, r_k]`` with
    ``V' = v_1 ... v_d >= V`` rows (the rows past ``input_dim`` are padding,
    as in the paper, so any vocabulary size factorizes evenly) and
    ``D = e_1 ... e_d`` columns. Row ``i`` is looked up without forming the
    table: ``i`` is unravelled into digits ``(i_1, ..., i_d)`` (row-major,
    like ``np.unravel_index``) and the row is the chain product
    ``G_1[i_1] G_2[i_2] ... G_d[i_d]`` of the core slices ``[r_{k-1}, e_k r_k]``.

    Cost per looked-up index: ``sum_k 2 D_{<k} r_{k-1} e_k r_k`` FLOPs
    (``D_{<k} = e_1 ... e_{k-1}``), no ``V x D`` memory. Parameters:
    ``sum_k r_{k-1} v_k e_k r_k`` instead of ``V D``.

    Args:
      input_dim: ``V``, the vocabulary size.
      output_dim: ``D``, the embedding size.
      tt_rank: an int or a list of the ``d - 1`` internal ranks (or ``d + 1``
        with the boundary 1s). Capped at the largest useful rank. A float in
        ``(0, 1]`` is a parameter budget, a fraction of the ``V D`` table: the
        largest uniform rank whose cores fit it (see `TTDense`).
      input_factorization: optional ``[v_1..v_d]`` with product ``>= V``.
      output_factorization: optional ``[e_1..e_d]`` with product ``D``.
      num_cores: ``d`` when no factorization is given (default 3, the
        paper's). ``V`` is then split into balanced factors, padded by a few
        rows if it has no balanced factorization; ``D`` exactly.
      embeddings_initializer: ``"glorot"`` (default, the paper's choice:
        variance ``2 / (V + D)`` of the full table), ``"he"``, ``"lecun"``, or
        a positive float (the std of the table entries).
      embeddings_regularizer: Keras regularizer applied to every core.
      mask_zero: as in `keras.layers.Embedding`: index 0 is padding and a mask
        is propagated.

    Call arguments:
      inputs: integer tensor of any shape, values in ``[0, input_dim)``.
        Ids outside that range (negative, or past ``input_dim`` into the
        padding rows or beyond) are errors, checked before any cast:
        eagerly a ValueError naming ``inputs``; in a `tf.function` an
        `InvalidArgumentError` when the lookup runs; under XLA
        (``jit_compile=True``, also Keras' default ``"auto"``), where
        assertions are dropped, the rows of such ids are NaN, so the loss
        turns NaN instead of training on a wrong row.
      training: unused.

    Returns ``inputs.shape + [output_dim]``.
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        tt_rank=8,
        input_factorization=None,
        output_factorization=None,
        num_cores=None,
        embeddings_initializer="glorot",
        embeddings_regularizer=None,
        mask_zero=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not hasattr(value, "__index__") or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        if num_cores is not None and (
            not hasattr(num_cores, "__index__") or isinstance(num_cores, bool) or num_cores < 1
        ):
            raise ValueError(f"`num_cores` must be a positive int, got {num_cores!r}.")
        lengths = {len(f) for f in (input_factorization, output_factorization) if f is not None}
        if num_cores is not None:
            lengths.add(int(num_cores))
        if len(lengths) > 1:
            raise ValueError(
                "`input_factorization`, `output_factorization` and `num_cores` must agree on the "
                f"number of cores; got input_factorization={input_factorization}, "
                f"output_factorization={output_factorization}, num_cores={num_cores}."
            )
        self.num_cores = num_cores
        num_cores = lengths.pop() if lengths else DEFAULT_NUM_CORES
        self.row_dims = (
            factorization.padded_factorization(self.input_dim, num_cores)
            if input_factorization is None
            else factorization.validate_factorization(
                input_factorization, self.input_dim, "input_factorization", allow_padding=True
            )
        )
        self.col_dims = (
            tuple(reversed(factorization.balanced_factorizations(self.output_dim, num_cores)[0]))
            if output_factorization is None
            else factorization.validate_factorization(
                output_factorization, self.output_dim, "output_factorization"
            )
        )
        self.tt_ranks = (
            factorization.ranks_for_budget_or_raise(
                tt_rank, self.row_dims, self.col_dims, self.input_dim * self.output_dim
            )
            if factorization.is_rank_budget(tt_rank)
            else factorization.normalize_tt_ranks(tt_rank, self.row_dims, self.col_dims)
        )
        self.embeddings_initializer = tt_cores.check_kernel_initializer(
            embeddings_initializer, "embeddings_initializer"
        )
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero

    def build(self, input_shape=None):
        stddev = tt_cores.core_stddev(
            self.embeddings_initializer, self.input_dim, self.output_dim, self.tt_ranks
        )
        self.cores = tt_cores.add_tt_matrix_cores(
            self, self.row_dims, self.col_dims, self.tt_ranks, stddev, self.embeddings_regularizer
        )

    @property
    def embeddings(self):
        """The ``[V', D]`` table as a `t3f_ext.TensorTrain` (rows past ``input_dim`` are padding)."""
        return tt_cores.cores_as_tensor_train(self.cores)

    def call(self, inputs, training=None):
        ids = tf.reshape(tf.cast(inputs, "int64"), [-1])
        valid = (ids >= 0) & (ids < self.input_dim)
        indices = tf.cast(tf.where(valid, ids, tf.zeros_like(ids)), "int32")
        # state[x, (e_1..e_{k-1}), r_{k-1}]; digit k of row i is (i // V_{>k}) % v_k.
        state = None
        rows_after = math.prod(self.row_dims)
        for core, v, e in zip(self.cores, self.row_dims, self.col_dims):
            rows_after //= v
            digit = (indices // rows_after) % v
            rank_left, rank_right = core.shape[0], core.shape[3]
            slices = tf.gather(tf.transpose(core, [1, 0, 2, 3]), digit)  # [X, r_{k-1}, e, r_k]
            slices = tf.reshape(slices, [-1, rank_left, e * rank_right])
            state = slices if state is None else tf.matmul(state, slices)
            state = tf.reshape(state, [tf.shape(indices)[0], -1, rank_right])
        rows = self._checked_rows(ids, valid, tf.reshape(state, [-1, self.output_dim]))
        return tf.reshape(rows, tf.concat([tf.shape(inputs), [self.output_dim]], axis=0))

    def _checked_rows(self, ids, valid, rows):
        """``rows`` after the id check described under "Call arguments"."""
        message = f"`inputs`: expected ids in [0, {self.input_dim}), got"
        if linalg.in_xla_context():
            return tf.where(valid[:, tf.newaxis], rows, tf.constant(float("nan"), rows.dtype))
        if tf.executing_eagerly():
            if not bool(tf.reduce_all(valid)):
                bad = tf.boolean_mask(ids, tf.logical_not(valid)).numpy()
                raise ValueError(
                    f"{message} {bad[:10].tolist()}"
                    + (f" and {bad.size - 10} more" if bad.size > 10 else "")
                )
            return rows
        check = tf.debugging.Assert(
            tf.reduce_all(valid),
            [message, tf.boolean_mask(ids, tf.logical_not(valid))],
            summarize=10,
        )
        with tf.control_dependencies([check]):
            return tf.identity(rows)

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return keras.ops.not_equal(inputs, 0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "tt_rank": list(self.tt_ranks),
                "input_factorization": list(self.row_dims),
                "output_factorization": list(self.col_dims),
                "num_cores": self.num_cores,
                "embeddings_initializer": self.embeddings_initializer,
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
                "mask_zero": self.mask_zero,
            }
        )
        return config
