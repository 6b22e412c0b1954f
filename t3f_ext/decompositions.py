"""TT-SVD (dense -> TT), rounding (TT -> lower-rank TT) and orthogonalization.

Accuracy guarantees (Oseledets 2011, "Tensor-Train decomposition", Thm 2.2
and Alg. 2): truncating every one of the d - 1 unfoldings to the tolerance
``epsilon / sqrt(d - 1) * ||A||_F`` gives ``||A - TT||_F <= epsilon ||A||_F``.
``epsilon`` makes the ranks depend on the data, so it needs eager execution;
``max_tt_rank`` alone works in `tf.function` and under ``jit_compile``.
"""

import numpy as np
import tensorflow as tf

from t3f_ext import linalg
from t3f_ext import utils
from t3f_ext.tensor_train import TensorTrain


def _tt_svd(tens, max_ranks, epsilon):
    """TT-SVD of a dense tensor ``[n_1, ..., n_d]``; returns the d cores.

    Sweeps left to right: the unfolding ``[r_{k-1} n_k, n_{k+1}...n_d]`` is
    factored by an SVD truncated to ``min(max_ranks[k+1], epsilon-rank)``.
    Cost: O(r prod_k n_k min(n_1, ...)) dominated by the first SVD.
    """
    modes = tens.shape.as_list()
    d = len(modes)
    tolerance = None
    if epsilon is not None and d > 1:
        tolerance = epsilon / np.sqrt(d - 1) * tf.norm(tens)
    cores = []
    rest = tens
    left_rank = 1
    for k in range(d - 1):
        rest = tf.reshape(rest, [left_rank * modes[k], -1])
        s, u, v = linalg.svd(rest)
        rank = s.shape[-1]
        if max_ranks[k + 1] is not None:
            rank = min(rank, max_ranks[k + 1])
        if tolerance is not None:
            rank = min(rank, utils.rank_for_tolerance(s, tolerance))
        cores.append(tf.reshape(u[:, :rank], [left_rank, modes[k], rank]))
        rest = tf.cast(s[:rank, tf.newaxis], v.dtype) * tf.linalg.adjoint(v[:, :rank])
        left_rank = rank
    cores.append(tf.reshape(rest, [left_rank, modes[-1], 1]))
    return cores


def _check_dense(value, arg_name, min_rank=1):
    value = tf.convert_to_tensor(value, name=arg_name)
    if not (value.dtype.is_floating or value.dtype.is_complex):
        raise TypeError(
            "%s must have a floating or complex dtype, got %s" % (arg_name, value.dtype.name)
        )
    if (
        value.shape.rank is None
        or value.shape.rank < min_rank
        or (not value.shape.is_fully_defined())
    ):
        raise ValueError(
            "%s must have a static shape with at least %d dims, got "
            "%s" % (arg_name, min_rank, value.shape)
        )
    if 0 in value.shape.as_list():
        raise ValueError(
            "%s: expected a non-empty tensor (every dim >= 1; a "
            "TT mode has at least one index), got shape %s" % (arg_name, value.shape)
        )
    return value


def to_tt_tensor(tens, max_tt_rank=10, epsilon=None, name="t3f_to_tt_tensor"):
    """TT-SVD: the TT-tensor closest to a dense tensor at the given ranks.

    Args:
      tens: dense tensor-like ``[n_1, ..., n_d]`` with a static shape.
      max_tt_rank: int or list of d + 1 ints capping the TT-ranks (None: no
        cap; then the result is exact).
      epsilon: optional relative accuracy: the ranks are the smallest with
        ``||tens - result||_F <= epsilon ||tens||_F`` from the per-unfolding
        tolerance ``epsilon / sqrt(d - 1)``. Eager mode only.
      name: name scope.

    Returns:
      `TensorTrain` with cores ``[r_{k-1}, n_k, r_k]``.
      Cost: O(r prod_k n_k min(n_1 ..)) (d - 1 SVDs, the first is the largest).

    Raises:
      ValueError: for an invalid rank or epsilon, or epsilon in graph mode.
    """
    with tf.name_scope(name):
        tens = _check_dense(tens, "tens")
        d = tens.shape.rank
        ranks = utils.max_ranks(max_tt_rank, d, "max_tt_rank")
        epsilon = utils.check_epsilon(epsilon)
        return TensorTrain(_tt_svd(tens, ranks, epsilon))


def to_tt_matrix(mat, shape, max_tt_rank=10, epsilon=None, name="t3f_to_tt_matrix"):
    """TT-SVD of a dense matrix into a TT-matrix.

    Args:
      mat: dense ``[M, N]`` tensor-like, ``M = prod m_k``, ``N = prod n_k``.
      shape: ``((m_1, ..., m_d), (n_1, ..., n_d))``; for a vector
        ``((m_1..m_d), None)`` means all ``n_k = 1``.
      max_tt_rank, epsilon: as in `to_tt_tensor`.
      name: name scope.

    Returns:
      `TensorTrain` with cores ``[r_{k-1}, m_k, n_k, r_k]``. The matrix is
      reshaped to ``[m_1, ..., m_d, n_1, ..., n_d]``, permuted to
      ``[m_1 n_1, ..., m_d n_d]`` and TT-SVD'ed. Cost: as `to_tt_tensor`.
    """
    with tf.name_scope(name):
        mat = _check_dense(mat, "mat", min_rank=2)
        if mat.shape.rank != 2:
            raise ValueError("mat must be a matrix, got shape %s" % mat.shape)
        rows, cols = utils.matrix_modes(shape, "shape")
        if [int(np.prod(rows)), int(np.prod(cols))] != mat.shape.as_list():
            raise ValueError(
                "shape %r describes a %d x %d matrix but mat has "
                "shape %s" % (shape, np.prod(rows), np.prod(cols), mat.shape)
            )
        ranks = utils.max_ranks(max_tt_rank, len(rows), "max_tt_rank")
        epsilon = utils.check_epsilon(epsilon)
        tens = utils.matrix_to_merged_modes(mat, rows, cols, num_lead=0)
        raw_shape = (tf.TensorShape(rows), tf.TensorShape(cols))
        return utils.split_modes(_tt_svd(tens, ranks, epsilon), raw_shape, 0)


def _orthogonalized_merged(tt, left_to_right):
    """QR sweep over the merged cores; returns the new merged cores."""
    nb = utils.batch_dims(tt)
    cores = utils.merged_cores(tt)
    d = len(cores)
    order = range(d - 1) if left_to_right else range(d - 1, 0, -1)
    for k in order:
        core = cores[k]
        left, modes, right = core.shape[-3:]
        if left_to_right:
            q, r = tf.linalg.qr(utils.reshape_tail(core, nb, [left * modes, right]))
            new_rank = q.shape[-1]
            cores[k] = utils.reshape_tail(q, nb, [left, modes, new_rank])
            cores[k + 1] = tf.einsum("...ab,...bic->...aic", r, cores[k + 1])
        else:
            unfolding = utils.reshape_tail(core, nb, [left, modes * right])
            q, r = tf.linalg.qr(tf.linalg.adjoint(unfolding))
            new_rank = q.shape[-1]
            cores[k] = utils.reshape_tail(tf.linalg.adjoint(q), nb, [new_rank, modes, right])
            cores[k - 1] = tf.einsum("...aib,...cb->...aic", cores[k - 1], r)
    return cores


def orthogonalize_tt_cores(tt, left_to_right=True, name="t3f_orthogonalize_tt_cores"):
    """The same tensor with orthogonal cores (by a QR sweep).

    With ``left_to_right=True`` cores 1..d-1 become left-orthogonal
    (``sum_{a,i} G[a,i,b] G[a,i,c] = delta_bc``), so ``||tt|| = ||G_d||``; with
    False cores 2..d become right-orthogonal. The TT-ranks may shrink to
    ``min(r_{k-1} n_k, r_k)``.

    Args:
      tt: `TensorTrain` or `TensorTrainBatch` (batched QR).
      left_to_right: sweep direction.
      name: name scope.

    Returns:
      An object of the same type. Cost: O(d n r^3).
    """
    utils.check_tt(tt, "tt")
    with tf.name_scope(name):
        cores = _orthogonalized_merged(tt, left_to_right)
        return utils.split_modes(cores, tt.get_raw_shape(), utils.batch_dims(tt))


def round(tt, max_tt_rank=None, epsilon=None, name="t3f_round"):  # pylint: disable=redefined-builtin
    """TT-rounding: a lower-rank approximation of a TT object.

    Orthogonalizes left to right (QR), then sweeps right to left with truncated
    SVDs of the unfoldings ``[r_{k-1}, n_k r_k]`` (Oseledets 2011, Alg. 2).

    Args:
      tt: `TensorTrain` or `TensorTrainBatch` (all elements get the same ranks:
        with epsilon, the largest rank any element needs).
      max_tt_rank: int or list of d + 1 ints capping the ranks; None: no cap.
      epsilon: optional relative accuracy, ``||tt - result|| <= epsilon ||tt||``
        (per batch element). Eager mode only.
      name: name scope.

    Returns:
      An object of the same type with ranks ``<= max_tt_rank``. The result is
      the best approximation of each unfolding up to the ``sqrt(d - 1)``
      factor of TT-SVD. Cost: O(d n r^3).
    """
    utils.check_tt(tt, "tt")
    with tf.name_scope(name):
        d = tt.ndims()
        ranks = utils.max_ranks(max_tt_rank, d, "max_tt_rank")
        epsilon = utils.check_epsilon(epsilon)
        nb = utils.batch_dims(tt)
        cores = _orthogonalized_merged(tt, left_to_right=True)
        tolerance = None
        if epsilon is not None and d > 1:
            last = cores[-1]
            norm = tf.sqrt(
                tf.reduce_sum(tf.square(tf.abs(last)), axis=list(range(nb, last.shape.rank)))
            )
            tolerance = epsilon / np.sqrt(d - 1) * norm
        for k in range(d - 1, 0, -1):
            left, modes, right = cores[k].shape[-3:]
            unfolding = utils.reshape_tail(cores[k], nb, [left, modes * right])
            s, u, v = linalg.svd(unfolding)
            rank = s.shape[-1]
            if ranks[k] is not None:
                rank = min(rank, ranks[k])
            if tolerance is not None:
                rank = min(rank, utils.rank_for_tolerance(s, tolerance))
            cores[k] = utils.reshape_tail(
                tf.linalg.adjoint(v[..., :rank]), nb, [rank, modes, right]
            )
            us = u[..., :rank] * tf.cast(s[..., tf.newaxis, :rank], u.dtype)
            cores[k - 1] = tf.einsum("...aib,...bc->...aic", cores[k - 1], us)
        return utils.split_modes(cores, tt.get_raw_shape(), nb)
