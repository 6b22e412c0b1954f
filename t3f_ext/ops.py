"""Basic operations on TT objects: full, matmul, add, multiply, inner
products, norms, transpose, bilinear forms, gather_nd, cast, renormalization.

Notation for the costs: d cores, mode sizes up to n (m for TT-matrix rows),
TT-ranks up to r, B the batch size. Every op accepts a `TensorTrain` or a
`TensorTrainBatch` (with T3F's broadcasting: a single TT object or a batch of
size 1 broadcasts against a batch), runs in eager mode, in `tf.function` and
under ``jit_compile=True``.
"""

import numpy as np
import tensorflow as tf

from t3f_ext import utils
from t3f_ext.tensor_train_base import TensorTrainBase


def full(tt, name="t3f_full"):
    """The dense tensor or matrix that a TT object represents.

    Args:
      tt: `TensorTrain` or `TensorTrainBatch`.
      name: name scope.

    Returns:
      ``[n_1, ..., n_d]`` for a TT-tensor, ``[M, N]`` for a TT-matrix, with a
      leading ``[B]`` for a batch. Cost: O(r^2 prod_k n_k) (per batch element).

    Raises:
      ValueError: before allocating anything, if the result (or an
        intermediate ``[n_1 ... n_k, r_k]`` product) has more elements than
        int64 can index or more bytes than the machine's memory.
    """
    utils.check_tt(tt, "tt")
    _check_full_size(tt)
    with tf.name_scope(name):
        nb = utils.batch_dims(tt)
        cores = utils.merged_cores(tt)
        # res: [..., (i_1 ... i_k), r_k]
        res = utils.reshape_tail(cores[0], nb, [cores[0].shape[nb + 1], -1])
        for core in cores[1:]:
            res = tf.einsum("...pa,...aib->...pib", res, core)
            res = utils.reshape_tail(res, nb, [-1, core.shape[-1]])
        raw = [s.as_list() for s in tt.get_raw_shape()]
        if not tt.is_tt_matrix():
            return utils.reshape_tail(res, nb, raw[0])
        return utils.merged_modes_to_matrix(res, raw[0], raw[1], nb)


def _check_full_size(tt):
    """`utils.check_dense_size` for the tensors `full` forms: after core k,
    ``[B, n_1 ... n_k, r_k]`` (mode sizes merged for a TT-matrix)."""
    nb = utils.batch_dims(tt)
    batch = (tt.batch_size or 1) if nb else 1
    modes = [core.shape[nb + 1 : -1] for core in tt.tt_cores]
    largest, prefix = 0, 1
    for core, mode in zip(tt.tt_cores, modes):
        prefix *= utils.static_size(mode)
        largest = max(largest, prefix * utils.static_size(core.shape[-1:]))
    utils.check_dense_size(batch * largest, tt.dtype, "tt", "full(tt) of shape %s" % tt.get_shape())


def _check_matmul_size(tt, dense, tt_name, dense_on_left):
    """`utils.check_dense_size` for `_tt_dense_matmul_transposed`.

    For ``tt [M, N] @ dense [..., N, K]`` its state after core k holds
    ``lead * n_{k+1}..n_d * K * m_1..m_k * r_k`` numbers; ``dense [..., K, M]
    @ tt`` runs the same on the transposes (m and n swapped)."""
    m_modes, n_modes = [s.as_list() for s in tt.get_raw_shape()]
    if dense_on_left:
        m_modes, n_modes = n_modes, m_modes
    nb = utils.batch_dims(tt)
    lead = max(utils.static_size(dense.shape[:-2]), (tt.batch_size or 1) if nb else 1)
    free = utils.static_size(dense.shape[-2 if dense_on_left else -1 :][:1])
    largest = 0
    for k in range(len(m_modes) + 1):
        rank = tt.get_tt_ranks()[k] or 1
        largest = max(largest, lead * free * rank * utils.static_size(n_modes[k:] + m_modes[:k]))
    utils.check_dense_size(
        largest,
        tt.dtype,
        tt_name,
        "the product of the TT-matrix of shape %s with a "
        "dense matrix of shape %s" % (tt.get_shape(), dense.shape),
    )


def _check_dense_shape(tt, tt_name, dense, dense_name, axis, size):
    if dense.shape.rank is None or dense.shape.rank < 2:
        raise ValueError(
            "%s must be a matrix with at least 2 dims, got shape %s" % (dense_name, dense.shape)
        )
    got = tf.compat.dimension_value(dense.shape[axis])
    if got is not None and size is not None and got != size:
        raise ValueError(
            "shapes do not match for matmul: %s is a TT-matrix of shape %s (%s) "
            "and %s has shape %s"
            % (tt_name, tt.get_shape(), utils.describe_shape(tt), dense_name, dense.shape)
        )


def _tt_dense_matmul_transposed(tt, dense):
    """``(tt @ dense)^T`` for a TT-matrix ``[M, N]`` and a dense ``[..., N, K]``.

    Contracts one core at a time. The state before core k is
    ``[..., n_k, (n_{k+1}..n_d, K, m_1..m_{k-1}), r_{k-1}]``; the einsum with
    core k consumes ``(n_k, r_{k-1})`` and appends ``(m_k, r_k)``, so each step
    is one matmul plus one transpose of the state (as T3F's algorithm). The
    last state is ``[..., K, M]``, the transposed product.
    Cost: O(d r^2 max(m, n)^{d+1} K) for mode sizes m, n.
    """
    nb = utils.batch_dims(tt)
    lead_in = dense.shape.rank - 2
    lead = max(lead_in, nb)
    m_modes = tt.get_raw_shape()[0].as_list()
    n_modes = tt.get_raw_shape()[1].as_list()
    state = utils.reshape_tail(dense, lead_in, [n_modes[0], -1, 1])
    for k, core in enumerate(tt.tt_cores):
        state = tf.einsum("...jRa,...aijb->...Rib", state, core)
        if k + 1 < tt.ndims():
            state = utils.reshape_tail(state, lead, [n_modes[k + 1], -1, core.shape[-1]])
    return utils.reshape_tail(state, lead, [-1, int(np.prod(m_modes))])


def _tt_tt_matmul(a, b):
    """Cores of ``a @ b``: ``[r_a r_b, m_k, p_k, r_a' r_b']``. O(d r^4 m n p)."""
    nb = max(utils.batch_dims(a), utils.batch_dims(b))
    cores = []
    for ca, cb in zip(a.tt_cores, b.tt_cores):
        prod = tf.einsum("...amnb,...cnkd->...acmkbd", ca, cb)
        cores.append(
            utils.reshape_tail(
                prod,
                nb,
                [
                    ca.shape[-4] * cb.shape[-4],
                    ca.shape[-3],
                    cb.shape[-2],
                    ca.shape[-1] * cb.shape[-1],
                ],
            )
        )
    return utils.wrap(cores, nb)


def matmul(a, b, name="t3f_matmul"):
    """Matrix product of a TT-matrix with a TT-matrix or a dense matrix.

    Supported combinations (B = batch size, broadcasting as in T3F):

    * TT ``[M, N]`` @ TT ``[N, P]`` -> TT ``[M, P]`` with TT-ranks
      ``r_a r_b``; batches give a batch. Cost O(d r_a^2 r_b^2 m n p).
    * TT ``[M, N]`` @ dense ``[..., N, K]`` -> dense ``[..., M, K]``.
      Cost O(d r^2 max(m, n)^{d+1} K).
    * dense ``[..., K, M]`` @ TT ``[M, N]`` -> dense ``[..., K, N]``, computed
      as ``(b^T a^T)^T`` with the same cost (plus a transpose of ``a``).
    * `tf.SparseTensor` ``[K, M]`` @ TT ``[M, N]`` or TT @ sparse: dense, see
      `sparse_tt_matmul`.

    The explicit forms `tt_tt_matmul`, `tt_dense_matmul`, `dense_tt_matmul`,
    `sparse_tt_matmul` and `tt_sparse_matmul` (T3F's names) check the kinds of
    their arguments and then do the same.

    A `TensorTrainBatch` with a dense operand broadcasts its batch dim against
    the dense operand's leading dims.

    Args:
      a: TT-matrix (or batch) or a dense tensor-like.
      b: TT-matrix (or batch) or a dense tensor-like; at least one of a, b is a
        TT object.
      name: name scope.

    Raises:
      ValueError: if the inner dimensions (mode sizes for TT @ TT) differ; the
        message names both shapes.
      TypeError: if neither argument is a TT object or the dtypes differ.
    """
    a_is_tt = isinstance(a, TensorTrainBase)
    b_is_tt = isinstance(b, TensorTrainBase)
    if isinstance(a, tf.SparseTensor) and b_is_tt:
        return sparse_tt_matmul(a, b)
    if a_is_tt and isinstance(b, tf.SparseTensor):
        return tt_sparse_matmul(a, b)
    if not (a_is_tt or b_is_tt):
        raise TypeError(
            "matmul needs a TT-matrix as a or b, got %s and %s"
            % (type(a).__name__, type(b).__name__)
        )
    with tf.name_scope(name):
        if a_is_tt and b_is_tt:
            utils.check_tt(a, "a", matrix=True)
            utils.check_tt(b, "b", matrix=True)
            utils.check_same_dtype(a, b, "a", "b")
            utils.check_batch_broadcast(a, b, "a", "b")
            if a.ndims() != b.ndims() or not a.get_raw_shape()[1].is_compatible_with(
                b.get_raw_shape()[0]
            ):
                raise ValueError(
                    "shapes do not match for matmul: a has %s and b has "
                    "%s; a's column modes must equal b's row modes"
                    % (utils.describe_shape(a), utils.describe_shape(b))
                )
            return _tt_tt_matmul(a, b)
        if a_is_tt:
            utils.check_tt(a, "a", matrix=True)
            dense = tf.convert_to_tensor(b, dtype=a.dtype, name="b")
            _check_dense_shape(a, "a", dense, "b", -2, a.get_shape()[1])
            _check_matmul_size(a, dense, "a", dense_on_left=False)
            return tf.linalg.matrix_transpose(_tt_dense_matmul_transposed(a, dense))
        utils.check_tt(b, "b", matrix=True)
        dense = tf.convert_to_tensor(a, dtype=b.dtype, name="a")
        _check_dense_shape(b, "b", dense, "a", -1, b.get_shape()[0])
        _check_matmul_size(b, dense, "b", dense_on_left=True)
        # a @ b = ((b^T) @ a^T)^T, which is what the helper returns directly.
        return _tt_dense_matmul_transposed(transpose(b), tf.linalg.matrix_transpose(dense))


def _check_dense_operand(value, arg_name):
    """TypeError if ``value`` is a TT object or a `tf.SparseTensor`."""
    if isinstance(value, (TensorTrainBase, tf.SparseTensor)):
        raise TypeError(
            "%s: expected a dense tensor-like, got %s" % (arg_name, type(value).__name__)
        )


def _check_sparse_operand(value, arg_name, rank=None):
    if not isinstance(value, tf.SparseTensor):
        raise TypeError("%s: expected a tf.SparseTensor, got %s" % (arg_name, type(value).__name__))
    if rank is not None and value.shape.rank != rank:
        raise ValueError(
            "%s: expected a sparse matrix of rank %d, got shape %s" % (arg_name, rank, value.shape)
        )


def tt_tt_matmul(tt_matrix_a, tt_matrix_b):
    """TT-matrix @ TT-matrix -> TT-matrix; see `matmul`. O(d r_a^2 r_b^2 m n p)."""
    utils.check_tt(tt_matrix_a, "tt_matrix_a", matrix=True)
    utils.check_tt(tt_matrix_b, "tt_matrix_b", matrix=True)
    return matmul(tt_matrix_a, tt_matrix_b)


def tt_dense_matmul(tt_matrix_a, matrix_b):
    """TT-matrix ``[M, N]`` @ dense ``[..., N, K]`` -> dense; see `matmul`."""
    utils.check_tt(tt_matrix_a, "tt_matrix_a", matrix=True)
    _check_dense_operand(matrix_b, "matrix_b")
    return matmul(tt_matrix_a, matrix_b)


def dense_tt_matmul(matrix_a, tt_matrix_b):
    """dense ``[..., K, M]`` @ TT-matrix ``[M, N]`` -> dense; see `matmul`."""
    _check_dense_operand(matrix_a, "matrix_a")
    utils.check_tt(tt_matrix_b, "tt_matrix_b", matrix=True)
    return matmul(matrix_a, tt_matrix_b)


def sparse_tt_matmul(sparse_matrix_a, tt_matrix_b):
    """`tf.SparseTensor` ``[K, M]`` @ TT-matrix ``[M, N]`` -> dense ``[K, N]``.

    Each stored entry ``(i, j, v)`` adds ``v`` times row ``j`` of the
    TT-matrix to row ``i``; row ``j`` is computed from the cores sliced at the
    row modes of ``j``, so neither the TT-matrix nor the sparse matrix is made
    dense. (T3F 1.2.0 raises NotImplementedError.)

    Cost: O(nnz (d r^2 + r N)) for nnz stored entries, ``[nnz, N]`` memory.
    """
    _check_sparse_operand(sparse_matrix_a, "sparse_matrix_a", rank=2)
    utils.check_tt(tt_matrix_b, "tt_matrix_b", matrix=True)
    if utils.batch_dims(tt_matrix_b):
        raise TypeError("tt_matrix_b: expected a single TT-matrix, got a batch")
    rows_needed = tt_matrix_b.get_shape()[0]
    if not sparse_matrix_a.shape[1:].is_compatible_with([rows_needed]):
        raise ValueError(
            "shapes do not match for matmul: sparse_matrix_a has "
            "shape %s and tt_matrix_b is a TT-matrix of shape %s"
            % (sparse_matrix_a.shape, tt_matrix_b.get_shape())
        )
    num_rows = tf.compat.dimension_value(sparse_matrix_a.shape[0])
    utils.check_dense_size(
        utils.static_size([num_rows, tt_matrix_b.get_shape()[1]]),
        tt_matrix_b.dtype,
        "tt_matrix_b",
        "the product of a sparse matrix of "
        "shape %s with a TT-matrix of shape %s" % (sparse_matrix_a.shape, tt_matrix_b.get_shape()),
    )
    m_modes = tt_matrix_b.get_raw_shape()[0].as_list()
    row_modes = tf.unravel_index(sparse_matrix_a.indices[:, 1], m_modes)
    # The rows j of the stored entries, as a batch of TT row vectors [1, N].
    cores = [
        tf.gather(tf.transpose(core, [1, 0, 2, 3]), row_modes[k])[:, :, tf.newaxis]
        for k, core in enumerate(tt_matrix_b.tt_cores)
    ]
    rows = full(utils.wrap(cores, 1))[:, 0, :]  # [nnz, N]
    values = tf.cast(sparse_matrix_a.values, tt_matrix_b.dtype)[:, tf.newaxis]
    num_segments = num_rows if num_rows is not None else sparse_matrix_a.dense_shape[0]
    return tf.math.unsorted_segment_sum(values * rows, sparse_matrix_a.indices[:, 0], num_segments)


def tt_sparse_matmul(tt_matrix_a, sparse_matrix_b):
    """TT-matrix ``[M, N]`` @ `tf.SparseTensor` ``[N, K]`` -> dense ``[M, K]``,
    as ``(b^T a^T)^T`` with `sparse_tt_matmul`; same cost."""
    utils.check_tt(tt_matrix_a, "tt_matrix_a", matrix=True)
    _check_sparse_operand(sparse_matrix_b, "sparse_matrix_b", rank=2)
    return tf.transpose(
        sparse_tt_matmul(tf.sparse.transpose(sparse_matrix_b), transpose(tt_matrix_a))
    )


def _broadcast_batch(cores, num_batch_dims, target):
    """Cores with a leading batch dim of size ``target`` (int or tensor)."""
    if not num_batch_dims:
        cores = [core[tf.newaxis] for core in cores]
    out = []
    for core in cores:
        if isinstance(target, int) and core.shape[0] == target:
            out.append(core)
        else:
            out.append(tf.broadcast_to(core, tf.concat([[target], tf.shape(core)[1:]], 0)))
    return out


def _batch_target(a, b):
    """The broadcast batch size of a and b (an int if static, else a tensor)."""
    sizes = [tt.batch_size for tt in (a, b) if utils.batch_dims(tt)]
    if all(s is not None for s in sizes):
        return max(sizes)
    return tf.reduce_max([tf.shape(tt.tt_cores[0])[0] for tt in (a, b) if utils.batch_dims(tt)])


def add(tt_a, tt_b, name="t3f_add"):
    """The element-wise sum ``tt_a + tt_b`` of two TT objects of equal shape.

    The cores of the sum are block-diagonal: ``[[A_k, 0], [0, B_k]]`` (the first
    core is ``[A_1, B_1]``, the last ``[A_d; B_d]``), so the TT-ranks add up.
    Use `t3f_ext.round` afterwards to compress. Cost: O(d n (r_a + r_b)^2).

    Args:
      tt_a, tt_b: `TensorTrain` or `TensorTrainBatch` of the same raw shape;
        a batch broadcasts with a single object or a batch of size 1.
      name: name scope.

    Raises:
      ValueError: if the shapes differ (naming both) or the batch sizes do not
        broadcast. TypeError: for non-TT arguments or different dtypes.
    """
    utils.check_tt(tt_a, "tt_a")
    utils.check_tt(tt_b, "tt_b")
    utils.check_same_raw_shape(tt_a, tt_b, "tt_a", "tt_b")
    utils.check_same_dtype(tt_a, tt_b, "tt_a", "tt_b")
    utils.check_batch_broadcast(tt_a, tt_b, "tt_a", "tt_b")
    with tf.name_scope(name):
        nb = max(utils.batch_dims(tt_a), utils.batch_dims(tt_b))
        cores_a, cores_b = list(tt_a.tt_cores), list(tt_b.tt_cores)
        if nb:
            target = _batch_target(tt_a, tt_b)
            cores_a = _broadcast_batch(cores_a, utils.batch_dims(tt_a), target)
            cores_b = _broadcast_batch(cores_b, utils.batch_dims(tt_b), target)
        d = tt_a.ndims()
        modes = [[0, 0]] * tt_a.num_tensor_axes()
        cores = []
        for k, (ca, cb) in enumerate(zip(cores_a, cores_b)):
            left_a, right_a = ca.shape[nb], ca.shape[-1]
            left_b, right_b = cb.shape[nb], cb.shape[-1]
            # The first core is only concatenated on the right rank, the last only
            # on the left rank, the middle ones are block-diagonal.
            pad_left = k > 0
            pad_right = k < d - 1
            lead = [[0, 0]] * nb
            ca = tf.pad(
                ca,
                lead
                + [[0, left_b if pad_left else 0]]
                + modes
                + [[0, right_b if pad_right else 0]],
            )
            cb = tf.pad(
                cb,
                lead
                + [[left_a if pad_left else 0, 0]]
                + modes
                + [[right_a if pad_right else 0, 0]],
            )
            cores.append(ca + cb)
        return utils.wrap(cores, nb)


def _is_scalar(value):
    if isinstance(value, (int, float, complex, np.number)):
        return True
    return isinstance(value, (tf.Tensor, tf.Variable, np.ndarray)) and (
        value.shape.rank == 0 if hasattr(value.shape, "rank") else np.ndim(value) == 0
    )


def multiply(tt_left, right, name="t3f_multiply"):
    """Element-wise (Hadamard) product of TT objects, or product by a scalar.

    * TT * TT: cores ``A_k[i] (x) B_k[i]`` (Kronecker product per mode index),
      TT-ranks ``r_a r_b``. Cost O(d n r_a^2 r_b^2).
    * TT * scalar (either order): scales the first core. Cost O(n r).

    Args:
      tt_left: TT object or scalar.
      right: TT object or scalar (a Python number or 0-d tensor).
      name: name scope.

    Raises:
      ValueError: for different shapes (naming both), a non-scalar non-TT
        operand, or batch sizes that do not broadcast.
    """
    if not isinstance(tt_left, TensorTrainBase):
        tt_left, right = right, tt_left
    utils.check_tt(tt_left, "tt_left")
    with tf.name_scope(name):
        if not isinstance(right, TensorTrainBase):
            if not _is_scalar(right):
                raise ValueError(
                    "right must be a TT object or a scalar, got %s of "
                    "shape %s" % (type(right).__name__, np.shape(right))
                )
            scale = utils.scalar_as(right, tt_left.dtype)
            cores = list(tt_left.tt_cores)
            cores[0] = scale * cores[0]
            return utils.wrap(cores, utils.batch_dims(tt_left))
        utils.check_same_raw_shape(tt_left, right, "tt_left", "right")
        utils.check_same_dtype(tt_left, right, "tt_left", "right")
        utils.check_batch_broadcast(tt_left, right, "tt_left", "right")
        nb = max(utils.batch_dims(tt_left), utils.batch_dims(right))
        cores = []
        for ca, cb in zip(utils.merged_cores(tt_left), utils.merged_cores(right)):
            prod = tf.einsum("...anb,...cnd->...acnbd", ca, cb)
            cores.append(
                utils.reshape_tail(
                    prod,
                    nb,
                    [ca.shape[-3] * cb.shape[-3], ca.shape[-2], ca.shape[-1] * cb.shape[-1]],
                )
            )
        return utils.split_modes(cores, tt_left.get_raw_shape(), nb)


def _tt_tt_flat_inner(a, b):
    """``sum(a * b)`` by contracting the cores pairwise. O(d n r^3)."""
    state = tf.ones([1, 1], a.dtype)  # [..., r_a, r_b]
    for ca, cb in zip(utils.merged_cores(a), utils.merged_cores(b)):
        tmp = tf.einsum("...ab,...ani->...bni", state, ca)
        state = tf.einsum("...bni,...bnj->...ij", tmp, cb)
    return state[..., 0, 0]


def _tt_dense_flat_inner(tt, dense):
    """``sum(full(tt) * dense)`` contracting dense with one core at a time.

    Cost: O(r prod_k n_k) (dominated by the first core)."""
    full_rank = len(tt.get_raw_shape()[0]) if not tt.is_tt_matrix() else 2
    lead = dense.shape.rank - full_rank
    expected = tt.get_shape()[utils.batch_dims(tt) :]
    if lead < 0 or not dense.shape[lead:].is_compatible_with(expected):
        raise ValueError(
            "shapes do not match for flat_inner: the TT object has "
            "shape %s (%s) and the dense tensor has shape %s"
            % (expected, utils.describe_shape(tt), dense.shape)
        )
    if tt.is_tt_matrix():
        rows, cols = [s.as_list() for s in tt.get_raw_shape()]
        dense = utils.matrix_to_merged_modes(dense, rows, cols, lead)
    cores = utils.merged_cores(tt)
    out_lead = max(lead, utils.batch_dims(tt))
    state = utils.reshape_tail(dense, lead, [1, cores[0].shape[-2], -1])
    for k, core in enumerate(cores):
        state = tf.einsum("...ais,...aib->...bs", state, core)
        if k + 1 < len(cores):
            state = utils.reshape_tail(
                state, out_lead, [core.shape[-1], cores[k + 1].shape[-2], -1]
            )
    return state[..., 0, 0]


def _tt_sparse_flat_inner(tt, sparse):
    """``sum_j values_j * tt[indices_j]`` for a `tf.SparseTensor`. O(nnz d r^2).

    For a TT-matrix the sparse tensor is ``[M, N]`` with (row, col) indices."""
    expected = tt.get_shape()[utils.batch_dims(tt) :]
    if not sparse.shape.is_compatible_with(expected):
        raise ValueError(
            "shapes do not match for flat_inner: the TT object has "
            "shape %s and the sparse tensor has shape %s" % (expected, sparse.shape)
        )
    values = tf.cast(sparse.values, tt.dtype)
    if tt.is_tt_matrix():
        m_modes, n_modes = [s.as_list() for s in tt.get_raw_shape()]
        rows = tf.unravel_index(sparse.indices[:, 0], m_modes)
        cols = tf.unravel_index(sparse.indices[:, 1], n_modes)
        # The merged mode k has index i_k * n_k + j_k.
        indices = tf.transpose(rows * np.array(n_modes)[:, None] + cols)
        tensor_tt = utils.wrap(utils.merged_cores(tt), utils.batch_dims(tt))
        entries = _entries_of_each_element(tensor_tt, indices)
    else:
        entries = _entries_of_each_element(tt, sparse.indices)
    return tf.reduce_sum(entries * values, axis=-1)


def flat_inner(a, b, name="t3f_flat_inner"):
    """The inner product ``sum_i a[i] b[i]`` over all entries.

    Combinations (either order): TT . TT (O(d n r^3)), TT . dense tensor or
    matrix of the same shape (O(r prod n), no TT-SVD), TT . `tf.SparseTensor`
    (O(nnz d r^2)). With a `TensorTrainBatch` the result has shape ``[B]``
    (batch sizes broadcast as in T3F; dense operands may carry leading batch
    dims), otherwise it is a scalar.

    Raises:
      ValueError: if the shapes differ (the message names both).
      TypeError: if neither operand is a TT object or the dtypes differ.
    """
    if not isinstance(a, TensorTrainBase):
        a, b = b, a
    if not isinstance(a, TensorTrainBase):
        raise TypeError(
            "flat_inner needs a TT object as a or b, got %s and %s"
            % (type(a).__name__, type(b).__name__)
        )
    with tf.name_scope(name):
        if isinstance(b, TensorTrainBase):
            utils.check_same_raw_shape(a, b, "a", "b")
            utils.check_same_dtype(a, b, "a", "b")
            utils.check_batch_broadcast(a, b, "a", "b")
            return _tt_tt_flat_inner(a, b)
        if isinstance(b, tf.SparseTensor):
            return _tt_sparse_flat_inner(a, b)
        return _tt_dense_flat_inner(a, tf.convert_to_tensor(b, dtype=a.dtype))


def tt_tt_flat_inner(tt_a, tt_b):
    """`flat_inner` of two TT objects. O(d n r^3)."""
    utils.check_tt(tt_a, "tt_a")
    utils.check_tt(tt_b, "tt_b")
    return flat_inner(tt_a, tt_b)


def tt_dense_flat_inner(tt_a, dense_b):
    """`flat_inner` of a TT object and a dense tensor. O(r prod n)."""
    utils.check_tt(tt_a, "tt_a")
    _check_dense_operand(dense_b, "dense_b")
    return flat_inner(tt_a, dense_b)


def dense_tt_flat_inner(dense_a, tt_b):
    """`flat_inner` of a dense tensor and a TT object. O(r prod n)."""
    _check_dense_operand(dense_a, "dense_a")
    utils.check_tt(tt_b, "tt_b")
    return flat_inner(dense_a, tt_b)


def tt_sparse_flat_inner(tt_a, sparse_b):
    """`flat_inner` of a TT object and a `tf.SparseTensor`. O(nnz d r^2)."""
    utils.check_tt(tt_a, "tt_a")
    _check_sparse_operand(sparse_b, "sparse_b")
    return flat_inner(tt_a, sparse_b)


def sparse_tt_flat_inner(sparse_a, tt_b):
    """`flat_inner` of a `tf.SparseTensor` and a TT object. O(nnz d r^2)."""
    _check_sparse_operand(sparse_a, "sparse_a")
    utils.check_tt(tt_b, "tt_b")
    return flat_inner(sparse_a, tt_b)


def frobenius_norm_squared(tt, differentiable=False, name="t3f_frobenius_norm_squared"):
    """``||tt||_F^2`` (per batch element).

    Args:
      tt: `TensorTrain` or `TensorTrainBatch`.
      differentiable: if False (T3F's default), orthogonalize the cores left to
        right (QR) and return the squared norm of the last core: accurate. The
        QR's own gradient is undefined for rank-deficient cores (as in
        `t3f_ext.gradients`, where t3f 1.2.0 gave NaN), so for real dtypes the
        gradient is taken from ``flat_inner(tt, tt)`` instead: the same
        function, differentiated without QR. If True, the value is also
        ``flat_inner(tt, tt)``.
      name: name scope.

    Returns:
      Scalar, or ``[B]`` for a batch. Cost: O(d n r^3).
    """
    utils.check_tt(tt, "tt")
    with tf.name_scope(name):
        if differentiable:
            return flat_inner(tt, tt)
        if tt.dtype.is_complex:
            return _orthogonalized_norm_squared(tt)
        nb = utils.batch_dims(tt)

        @tf.custom_gradient
        def norm_squared(*cores):
            def grad(upstream):
                with tf.GradientTape() as tape:
                    tape.watch(cores)
                    same = utils.wrap(list(cores), nb)
                    value = flat_inner(same, same)
                return tape.gradient(value, cores, output_gradients=upstream)

            return _orthogonalized_norm_squared(utils.wrap(list(cores), nb)), grad

        return norm_squared(*tt.tt_cores)


def _orthogonalized_norm_squared(tt):
    """``||tt||^2`` as the squared norm of the last core after a QR sweep."""
    from t3f_ext import decompositions

    last = decompositions.orthogonalize_tt_cores(tt).tt_cores[-1]
    nb = utils.batch_dims(tt)
    return tf.reduce_sum(tf.square(tf.abs(last)), axis=list(range(nb, last.shape.rank)))


def frobenius_norm(tt, epsilon=1e-5, differentiable=False, name="t3f_frobenius_norm"):
    """``sqrt(||tt||_F^2 + epsilon)`` as in T3F (epsilon keeps the gradient at
    zero finite). See `frobenius_norm_squared`. Cost: O(d n r^3).

    Raises:
      ValueError: if ``epsilon`` is a number that is negative or not finite
        (a tensor epsilon is not checked).
    """
    if not tf.is_tensor(epsilon) and (
        np.ndim(epsilon) != 0
        or isinstance(epsilon, bool)
        or not np.isreal(epsilon)
        or not np.isfinite(epsilon)
        or epsilon < 0
    ):
        raise ValueError("epsilon: expected a finite non-negative number, got %r" % (epsilon,))
    with tf.name_scope(name):
        return tf.sqrt(
            frobenius_norm_squared(tt, differentiable) + utils.scalar_as(epsilon, tt.dtype)
        )


def transpose(tt_matrix, name="t3f_transpose", *, conjugate=False):
    """The transposed TT-matrix ``[N, M]`` (cores' m and n axes swapped).

    Args:
      tt_matrix: TT-matrix or batch of TT-matrices.
      conjugate: also complex-conjugate the cores.
      name: name scope.

    Cost: O(d r^2 m n) copies.
    """
    utils.check_tt(tt_matrix, "tt_matrix", matrix=True)
    with tf.name_scope(name):
        nb = utils.batch_dims(tt_matrix)
        perm = list(range(nb)) + [nb, nb + 2, nb + 1, nb + 3]
        cores = [tf.transpose(core, perm, conjugate=conjugate) for core in tt_matrix.tt_cores]
        return utils.wrap(cores, nb)


def bilinear_form(A, b, c, name="t3f_bilinear_form"):  # pylint: disable=invalid-name
    """``b^T A c`` for a TT-matrix A ``[M, N]`` and TT-vectors b ``[M, 1]``,
    c ``[N, 1]`` (TT-matrices with column modes 1).

    Any of the three may be a batch (broadcast as in T3F); the result is a
    scalar or ``[B]``. Cost: O(d r_A r_b r_c (r_b m + r_A m n + r_c n)), the
    dense matrix is never formed.

    Raises:
      ValueError: if the shapes do not fit (naming them).
    """
    utils.check_tt(A, "A", matrix=True)
    utils.check_tt(b, "b", matrix=True)
    utils.check_tt(c, "c", matrix=True)
    for vec, vec_name, axis in ((b, "b", 0), (c, "c", 1)):
        utils.check_same_dtype(A, vec, "A", vec_name)
        utils.check_batch_broadcast(A, vec, "A", vec_name)
        if vec.ndims() != A.ndims() or not (
            vec.get_raw_shape()[0].is_compatible_with(A.get_raw_shape()[axis])
            and all(n in (1, None) for n in vec.get_raw_shape()[1].as_list())
        ):
            raise ValueError(
                "shapes do not match for bilinear_form: A has %s and %s "
                "has %s; %s must be a TT-vector with modes %s x 1"
                % (
                    utils.describe_shape(A),
                    vec_name,
                    utils.describe_shape(vec),
                    vec_name,
                    A.get_raw_shape()[axis].as_list(),
                )
            )
    utils.check_batch_broadcast(b, c, "b", "c")
    with tf.name_scope(name):
        state = tf.ones([1, 1, 1], A.dtype)  # [..., r_b, r_A, r_c]
        for cb, ca, cc in zip(b.tt_cores, A.tt_cores, c.tt_cores):
            cb = cb[..., 0, :]  # [..., r_b, m, r_b']
            cc = cc[..., 0, :]  # [..., r_c, n, r_c']
            tmp = tf.einsum("...xyz,...xmb->...yzmb", state, cb)
            tmp = tf.einsum("...yzmb,...ymnq->...zbnq", tmp, ca)
            state = tf.einsum("...zbnq,...znc->...bqc", tmp, cc)
        return state[..., 0, 0, 0]


def quadratic_form(A, b, c, name="t3f_quadratic_form"):  # pylint: disable=invalid-name
    """T3F's older name for `bilinear_form`: ``b^T A c``."""
    return bilinear_form(A, b, c, name=name)


def bilinear_form_two_mat(x, A, B, y, name="t3f_bilinear_xaby"):  # pylint: disable=invalid-name
    """``x^T A B y`` for TT-matrices A ``[N, M]``, B ``[M, K]`` and TT-vectors
    x ``[N, 1]``, y ``[K, 1]`` (x and y may be batches: result ``[B]``).

    Contracts the four trains core by core without forming ``A B``.
    Cost: O(d r_x r_A r_B r_y (r_x n + r_A n m + r_B m k + r_y k)).

    Raises:
      ValueError: if the shapes do not fit (naming them).
    """
    utils.check_tt(A, "A", matrix=True)
    utils.check_tt(B, "B", matrix=True)
    utils.check_tt(x, "x", matrix=True)
    utils.check_tt(y, "y", matrix=True)
    fits = (
        x.ndims() == A.ndims() == B.ndims() == y.ndims()
        and x.get_raw_shape()[0].is_compatible_with(A.get_raw_shape()[0])
        and A.get_raw_shape()[1].is_compatible_with(B.get_raw_shape()[0])
        and B.get_raw_shape()[1].is_compatible_with(y.get_raw_shape()[0])
        and all(n in (1, None) for vec in (x, y) for n in vec.get_raw_shape()[1].as_list())
    )
    if not fits:
        raise ValueError(
            "shapes do not match for bilinear_form_two_mat: x has "
            "%s, A has %s, B has %s, y has %s; need x [N, 1], "
            "A [N, M], B [M, K], y [K, 1]" % tuple(utils.describe_shape(t) for t in (x, A, B, y))
        )
    for other, other_name in ((A, "A"), (B, "B"), (y, "y")):
        utils.check_same_dtype(x, other, "x", other_name)
    utils.check_batch_broadcast(x, y, "x", "y")
    with tf.name_scope(name):
        state = tf.ones([1, 1, 1, 1], A.dtype)  # [..., r_x, r_A, r_B, r_y]
        for cx, ca, cb, cy in zip(x.tt_cores, A.tt_cores, B.tt_cores, y.tt_cores):
            tmp = tf.einsum("...wxyz,...wnv->...xyznv", state, cx[..., 0, :])
            tmp = tf.einsum("...xyznv,...xnmu->...yzvmu", tmp, ca)
            tmp = tf.einsum("...yzvmu,...ymkt->...zvukt", tmp, cb)
            state = tf.einsum("...zvukt,...zks->...vuts", tmp, cy[..., 0, :])
        return state[..., 0, 0, 0, 0]


def _product_of_slices(slices):
    """``prod_k S_k[p]`` for core slices ``S_k: [..., P, r_{k-1}, r_k]``;
    returns ``[..., P]``. Cost: O(P d r^2)."""
    res = slices[0][..., 0, :]  # [..., P, r_1]
    for piece in slices[1:]:
        res = tf.einsum("...pa,...pab->...pb", res, piece)
    return res[..., 0]


def _mode_first(core, num_batch_dims):
    """A TT-tensor core ``[..., r, n, r']`` as ``[..., n, r, r']``."""
    nb = num_batch_dims
    return tf.transpose(core, list(range(nb)) + [nb + 1, nb, nb + 2])


def _entries_of_each_element(tt, flat_indices):
    """``tt[..., i]`` for the rows i of ``flat_indices`` ``[P, d]`` and every
    batch element: ``[..., P]``."""
    nb = utils.batch_dims(tt)
    return _product_of_slices(
        [
            tf.gather(_mode_first(core, nb), flat_indices[:, k], axis=nb)
            for k, core in enumerate(tt.tt_cores)
        ]
    )


def _check_indices(indices, width, what):
    indices = tf.convert_to_tensor(indices)
    if not indices.dtype.is_integer:
        raise TypeError("indices must be integers, got dtype %s" % indices.dtype.name)
    if indices.shape.rank is None or indices.shape.rank < 1 or (indices.shape[-1] != width):
        raise ValueError(
            "indices must have shape [..., %d] for %s, got shape %s" % (width, what, indices.shape)
        )
    return indices


def gather_nd(tt, indices, name="t3f_gather_nd"):
    """Entries of a TT-tensor (or of a batch) at integer multi-indices, as
    ``tf.gather_nd(full(tt), indices)`` without forming ``full(tt)``.

    Args:
      tt: TT-tensor with d modes, or a batch of them.
      indices: integer tensor-like ``[..., d]``; for a `TensorTrainBatch`
        ``[..., d + 1]`` whose first column is the batch index (as in T3F).
      name: name scope.

    Returns:
      ``indices.shape[:-1]`` values. Cost: O(P d r^2) for P indices.

    Raises:
      TypeError: for non-integer indices. ValueError: for a TT-matrix or a
        wrong last dim of ``indices``.
    """
    utils.check_tt(tt, "tt", matrix=False)
    with tf.name_scope(name):
        d = tt.ndims()
        nb = utils.batch_dims(tt)
        what = (
            "a batch of %d-mode TT-tensors (batch index first)" % d
            if nb
            else "a %d-mode TT-tensor" % d
        )
        indices = _check_indices(indices, d + nb, what)
        flat = tf.reshape(indices, [-1, d + nb])
        if nb:
            entries = _product_of_slices(
                [
                    tf.gather_nd(
                        _mode_first(core, 1), tf.stack([flat[:, 0], flat[:, k + 1]], axis=1)
                    )
                    for k, core in enumerate(tt.tt_cores)
                ]
            )
        else:
            entries = _entries_of_each_element(tt, flat)
        return tf.reshape(entries, tf.shape(indices)[:-1])


def cast(tt, dtype, name="t3f_cast"):
    """The TT object with cores cast to a floating or complex ``dtype`` (from
    any dtype, integer cores included). Cost: O(d n r^2)."""
    utils.check_tt(tt, "tt")
    dtype = tf.as_dtype(dtype)
    if not (dtype.is_floating or dtype.is_complex):
        raise TypeError("dtype must be floating or complex, got %s" % dtype.name)
    with tf.name_scope(name):
        return utils.wrap([tf.cast(core, dtype) for core in tt.tt_cores], utils.batch_dims(tt))


def renormalize_tt_cores(tt, epsilon=1e-8, name="t3f_renormalize_tt_cores"):
    """The same tensor with all cores rescaled to equal Frobenius norms.

    Each core ``G_k`` becomes ``G_k * (prod_j ||G_j||)^{1/d} / ||G_k||``
    (per batch element), which leaves the represented tensor unchanged and
    avoids over/underflow in long trains. As in T3F, a norm is computed as
    ``sqrt(max(||G_k||^2, epsilon))``.
    Cost: O(d n r^2).
    """
    utils.check_tt(tt, "tt")
    with tf.name_scope(name):
        nb = utils.batch_dims(tt)
        epsilon = utils.scalar_as(epsilon, tt.dtype.real_dtype)
        norms = []
        for core in tt.tt_cores:
            axes = list(range(nb, core.shape.rank))
            norms.append(tf.sqrt(tf.maximum(tf.reduce_sum(tf.square(tf.abs(core)), axes), epsilon)))
        log_mean = tf.add_n([tf.math.log(n) for n in norms]) / len(norms)
        cores = []
        for core, norm in zip(tt.tt_cores, norms):
            scale = tf.exp(log_mean) / norm
            scale = tf.reshape(
                tf.cast(scale, tt.dtype),
                tf.concat([tf.shape(scale), [1] * (core.shape.rank - nb)], 0),
            )
            cores.append(core * scale)
        return utils.wrap(cores, nb)
