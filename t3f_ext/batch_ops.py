"""Operations across the batch dimension of `TensorTrainBatch` objects:
concatenation, per-element scaling and Gram matrices of inner products."""

import tensorflow as tf

from t3f_ext import shapes
from t3f_ext import utils
from t3f_ext.tensor_train_base import TensorTrainBase
from t3f_ext.tensor_train_batch import TensorTrainBatch


def concat_along_batch_dim(tt_list, name="t3f_concat_along_batch_dim"):
    """Concatenates TT batches (and single TT objects, as batches of 1).

    Args:
      tt_list: a non-empty list of `TensorTrainBatch` / `TensorTrain` with equal
        raw shapes and TT-ranks, or (as in T3F) one TT object: a batch is
        returned as it is, a single TT object as a batch of 1.
      name: name scope.

    Returns:
      `TensorTrainBatch` of the summed batch size. Cost: O(B d n r^2) copies.

    Raises:
      ValueError: if shapes or TT-ranks differ (naming the elements).
    """
    if isinstance(tt_list, TensorTrainBase):
        return shapes.expand_batch_dim(tt_list)
    if not isinstance(tt_list, (list, tuple)) or not tt_list:
        raise TypeError("tt_list must be a non-empty list of TT objects, got %r" % (tt_list,))
    for i, tt in enumerate(tt_list):
        utils.check_tt(tt, "tt_list[%d]" % i)
        utils.check_same_raw_shape(tt_list[0], tt, "tt_list[0]", "tt_list[%d]" % i)
        utils.check_same_dtype(tt_list[0], tt, "tt_list[0]", "tt_list[%d]" % i)
        if not tt.get_tt_ranks().is_compatible_with(tt_list[0].get_tt_ranks()):
            raise ValueError(
                "all TT-ranks must be equal to concatenate: "
                "tt_list[0] has %s and tt_list[%d] has %s"
                % (tt_list[0].get_tt_ranks(), i, tt.get_tt_ranks())
            )
    with tf.name_scope(name):
        cores = []
        for k in range(tt_list[0].ndims()):
            cores.append(
                tf.concat(
                    [
                        tt.tt_cores[k] if utils.batch_dims(tt) else tt.tt_cores[k][None]
                        for tt in tt_list
                    ],
                    axis=0,
                )
            )
        return TensorTrainBatch(cores)


def multiply_along_batch_dim(batch_tt, weights, name="t3f_multiply_along_batch_dim"):
    """Scales element i of the batch by ``weights[i]`` (its first core).

    Args:
      batch_tt: `TensorTrainBatch` of size B.
      weights: ``[B]`` tensor-like.
      name: name scope.

    Returns:
      `TensorTrainBatch`. Cost: O(B n r).
    """
    utils.check_batch(batch_tt, "batch_tt")
    with tf.name_scope(name):
        weights = tf.convert_to_tensor(weights, dtype=batch_tt.dtype)
        if weights.shape.rank != 1 or not weights.shape.is_compatible_with([batch_tt.batch_size]):
            raise ValueError(
                "weights must have shape [batch_size] = [%s], got %s"
                % (batch_tt.batch_size, weights.shape)
            )
        cores = list(batch_tt.tt_cores)
        cores[0] = cores[0] * tf.reshape(weights, [-1] + [1] * (cores[0].shape.rank - 1))
        return TensorTrainBatch(cores)


def _check_pair(tt_1, tt_2):
    for tt, tt_name in ((tt_1, "tt_1"), (tt_2, "tt_2")):
        utils.check_batch(tt, tt_name)
    utils.check_same_dtype(tt_1, tt_2, "tt_1", "tt_2")


def _ones_state(tt_1, tt_2, num_ranks):
    """Ones of shape ``[B_1, B_2, 1, ..., 1]`` (static when the sizes are)."""
    sizes = []
    for tt in (tt_1, tt_2):
        sizes.append(tt.batch_size if tt.batch_size is not None else tf.shape(tt.tt_cores[0])[0])
    return tf.ones(tf.stack(sizes + [1] * num_ranks), tt_1.dtype)


def pairwise_flat_inner(tt_1, tt_2, matrix=None, name="t3f_pairwise_flat_inner"):
    """All inner products between two batches: ``res[i, j]``.

    * ``matrix=None``: ``res[i, j] = flat_inner(tt_1[i], tt_2[j])``.
      Cost O(B_1 B_2 d n r^3).
    * with a TT-matrix A ``[M, N]``:
      ``res[i, j] = flat_inner(tt_1[i], A @ tt_2[j])`` for batches of
      TT-matrices ``[M, P]`` and ``[N, P]`` (TT-vectors have P = 1).
      Cost O(B_1 B_2 d r^2 r_A (r m p + r_A m n p)) without forming ``A @ x``.

    Returns:
      ``[B_1, B_2]`` tensor.
    """
    _check_pair(tt_1, tt_2)
    with tf.name_scope(name):
        if matrix is None:
            utils.check_same_raw_shape(tt_1, tt_2, "tt_1", "tt_2")
            state = _ones_state(tt_1, tt_2, 2)  # [B1, B2, r_1, r_2]
            for c1, c2 in zip(utils.merged_cores(tt_1), utils.merged_cores(tt_2)):
                tmp = tf.einsum("ijab,ianc->ijbnc", state, c1)
                state = tf.einsum("ijbnc,jbnd->ijcd", tmp, c2)
            return state[:, :, 0, 0]
        utils.check_tt(matrix, "matrix", matrix=True)
        utils.check_tt(tt_1, "tt_1", matrix=True)
        utils.check_tt(tt_2, "tt_2", matrix=True)
        utils.check_same_dtype(tt_1, matrix, "tt_1", "matrix")
        rows, cols = matrix.get_raw_shape()
        fits = (
            tt_1.ndims() == tt_2.ndims() == matrix.ndims()
            and tt_1.get_raw_shape()[0].is_compatible_with(rows)
            and tt_2.get_raw_shape()[0].is_compatible_with(cols)
            and tt_1.get_raw_shape()[1].is_compatible_with(tt_2.get_raw_shape()[1])
        )
        if not fits:
            raise ValueError(
                "shapes do not match for pairwise_flat_inner: tt_1 has "
                "%s, matrix has %s and tt_2 has %s; need tt_1 [M, P], "
                "matrix [M, N], tt_2 [N, P]"
                % (
                    utils.describe_shape(tt_1),
                    utils.describe_shape(matrix),
                    utils.describe_shape(tt_2),
                )
            )
        state = _ones_state(tt_1, tt_2, 3)  # [B1, B2, r_1, r_A, r_2]
        for c1, ca, c2 in zip(tt_1.tt_cores, matrix.tt_cores, tt_2.tt_cores):
            tmp = tf.einsum("ijxay,ixmpu->ijaympu", state, c1)
            tmp = tf.einsum("ijaympu,amnv->ijypuvn", tmp, ca)
            state = tf.einsum("ijypuvn,jynpw->ijuvw", tmp, c2)
        return state[:, :, 0, 0, 0]


def gram_matrix(tt_vectors, matrix=None, name="t3f_gram_matrix"):
    """``res[i, j] = flat_inner(x_i, A x_j)`` (A = identity if None) for one
    batch ``x``; see `pairwise_flat_inner`. Returns ``[B, B]``."""
    return pairwise_flat_inner(tt_vectors, tt_vectors, matrix, name=name)
