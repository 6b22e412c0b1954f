"""Sums of many TT objects with rounding along the way, so that the ranks
stay bounded (T3F's ``approximate`` module).

Adding k TT objects of rank r exactly gives rank k r; these functions add in a
binary tree and round every partial sum to ``max_tt_rank``, so each addition
costs O(d n (2 r)^3) with r <= max_tt_rank. The result is an approximation:
its error is bounded by the rounding errors of the log2(k) levels.
"""

import tensorflow as tf

from t3f_ext import decompositions
from t3f_ext import ops
from t3f_ext import utils
from t3f_ext.tensor_train_batch import TensorTrainBatch


def add_n(tt_objects, max_tt_rank, name="t3f_approximate_add_n"):
    """Approximate sum of a list of TT objects, rounded to ``max_tt_rank``.

    Args:
      tt_objects: non-empty list of TT objects of the same shape (batches
        broadcast as in `t3f_ext.add`).
      max_tt_rank: int or list of d + 1 ints.
      name: name scope.

    Returns:
      A TT object. Cost: O(k d n max_tt_rank^3) for k objects.
    """
    if not isinstance(tt_objects, (list, tuple)) or not tt_objects:
        raise TypeError("tt_objects must be a non-empty list of TT objects, got %r" % (tt_objects,))
    for i, tt in enumerate(tt_objects):
        utils.check_tt(tt, "tt_objects[%d]" % i)
    with tf.name_scope(name):
        level = list(tt_objects)
        while len(level) > 1:
            paired = [
                decompositions.round(ops.add(level[i], level[i + 1]), max_tt_rank)
                for i in range(0, len(level) - 1, 2)
            ]
            level = paired + level[len(paired) * 2 :]
        return level[0]


def reduce_sum_batch(tt_batch, max_tt_rank, coef=None, name="t3f_approximate_reduce_sum_batch"):
    """Approximate (weighted) sum of the elements of a `TensorTrainBatch`.

    Args:
      tt_batch: `TensorTrainBatch` of static size B.
      max_tt_rank: int or list of d + 1 ints.
      coef: None (plain sum), ``[B]`` (weighted sum -> `TensorTrain`) or
        ``[B, N]`` (N weighted sums -> `TensorTrainBatch` of size N).
      name: name scope.

    Returns:
      `TensorTrain`, or `TensorTrainBatch` of size N for a 2-D ``coef``.
      Cost: O(B N d n max_tt_rank^3).
    """
    utils.check_batch(tt_batch, "tt_batch")
    if tt_batch.batch_size is None:
        raise ValueError("tt_batch must have a static batch size, got None")
    batch = tt_batch.batch_size
    with tf.name_scope(name):
        cores = list(tt_batch.tt_cores)
        num_sums = 1
        returns_batch = False
        if coef is not None:
            coef = tf.convert_to_tensor(coef, dtype=tt_batch.dtype)
            returns_batch = coef.shape.rank == 2
            if coef.shape.rank not in (1, 2) or coef.shape[0] != batch:
                raise ValueError(
                    "coef must have shape [%d] or [%d, N], got %s" % (batch, batch, coef.shape)
                )
            num_sums = 1 if coef.shape.rank == 1 else coef.shape[1]
            coef = tf.reshape(coef, [batch * num_sums])
            # Element b * num_sums + j is coef[b, j] * tt_batch[b].
            cores = [tf.repeat(core, num_sums, axis=0) for core in cores]
            cores[0] = cores[0] * tf.reshape(coef, [-1] + [1] * (cores[0].shape.rank - 1))
        groups = batch
        while groups > 1:
            if groups % 2:
                cores = [tf.concat([c, tf.zeros_like(c[:num_sums])], 0) for c in cores]
                groups += 1
            half = groups // 2 * num_sums
            summed = ops.add(
                TensorTrainBatch([c[:half] for c in cores]),
                TensorTrainBatch([c[half:] for c in cores]),
            )
            cores = list(decompositions.round(summed, max_tt_rank).tt_cores)
            groups //= 2
        result = TensorTrainBatch(cores)
        return result if returns_batch else result[0]
