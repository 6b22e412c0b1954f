"""``x @ W`` for a dense batch ``x`` and a TT-matrix ``W``, one core at a time.

``W`` is ``M x N`` with cores ``G_k`` of shape ``[r_{k-1}, m_k, n_k, r_k]``
(Novikov et al. 2015, eq. 5). The product is never formed. Each step is one
2-D GEMM over the pair of indices ``(r, m_k)`` that the step contracts, followed
by one 2-D transpose that moves the new output mode ``n_k`` out of the way, so
the next pair of contracted indices is again contiguous:

* right to left the state is ``[N_{>k}, X, M_{<k}, m_k, r_k]``; the GEMM
  contracts its two trailing axes with ``G_k`` and the transpose moves ``n_k``
  in front: ``[n_k N_{>k}, X, M_{<k}, r_{k-1}]``;
* left to right the state is ``[r_{k-1}, m_k, M_{>k}, X, N_{<k}]``; the GEMM
  contracts its two leading axes and the transpose moves ``n_k`` to the back:
  ``[r_k, M_{>k}, X, N_{<k} n_k]``.

A transpose of the running state measured faster on CPU than batched GEMMs of
many tiny matrices (the transpose-free layouts). The boundary ranks ``r_0`` and
``r_d`` may exceed 1: TTConv2D feeds the spatial core's rank in at one end.
``factorization.tt_matmul_flops`` counts the FLOPs of both orders.
"""

import math

import tensorflow as tf


def tt_matmul_right_to_left(x, cores, row_dims, col_dims):
    """Contracts ``x`` of shape ``[X, M, r_d]`` with the cores, last core first.

    Args:
      x: ``[X, M, r_d]`` tensor, with ``M = prod(row_dims)`` in row-major order.
      cores: ``d`` tensors ``[r_{k-1}, m_k, n_k, r_k]``.
      row_dims, col_dims: the Python ints ``m_k`` and ``n_k``.

    Returns:
      ``[N, X, r_0]`` with ``out[j, x, a] = sum_{i, b} x[x, i, b] W[a, i, j, b]``,
      where ``W[a, :, :, b]`` is the TT-matrix with boundary ranks fixed to
      ``a`` and ``b``. Cost: ``sum_k 2 X M_{<=k} r_{k-1} r_k N_{>=k}`` FLOPs plus a
      copy of the state per core.
    """
    state = x
    for core, m, n in reversed(list(zip(cores, row_dims, col_dims))):
        rank_left, rank_right = core.shape[0], core.shape[3]
        # [r_{k-1}, m, n, r_k] -> [m r_k, r_{k-1} n]
        core_matrix = tf.reshape(tf.transpose(core, [1, 3, 0, 2]), [m * rank_right, rank_left * n])
        state = tf.matmul(tf.reshape(state, [-1, m * rank_right]), core_matrix)
        state = tf.transpose(tf.reshape(state, [-1, n]))
    return tf.reshape(state, [math.prod(col_dims), tf.shape(x)[0], cores[0].shape[0]])


def tt_matmul_left_to_right(x, cores, row_dims, col_dims):
    """Contracts ``x`` of shape ``[r_0, M, X]`` with the cores, first core first.

    Args:
      x: ``[r_0, M, X]`` tensor (the batch is the LAST axis here).
      cores, row_dims, col_dims: as in ``tt_matmul_right_to_left``.

    Returns:
      ``[r_d, X, N]`` with ``out[b, x, j] = sum_{a, i} x[a, i, x] W[a, i, j, b]``.
      Cost: ``sum_k 2 X N_{<=k} r_{k-1} r_k M_{>=k}`` FLOPs plus a copy of the
      state per core.
    """
    state = x
    for core, m, n in zip(cores, row_dims, col_dims):
        rank_left, rank_right = core.shape[0], core.shape[3]
        core_matrix = tf.reshape(core, [rank_left * m, n * rank_right])
        state = tf.matmul(core_matrix, tf.reshape(state, [rank_left * m, -1]), transpose_a=True)
        state = tf.transpose(tf.reshape(state, [n, -1]))
    return tf.reshape(state, [cores[-1].shape[3], tf.shape(x)[-1], math.prod(col_dims)])


def dense_tt_matmul(x, cores, row_dims, col_dims, right_to_left):
    """``x @ W`` for ``x`` of shape ``[X, M]`` and a TT-matrix ``W`` with ``r_0 = r_d = 1``.

    Returns ``[X, N]``. Either order transposes once more (the output right to
    left, the input left to right).
    """
    if right_to_left:
        out = tt_matmul_right_to_left(x[:, :, tf.newaxis], cores, row_dims, col_dims)
        return tf.transpose(out[:, :, 0])
    out = tt_matmul_left_to_right(tf.transpose(x)[tf.newaxis], cores, row_dims, col_dims)
    return out[0]
