"""TT objects with given entries or random cores (T3F's initializers).

Shapes follow T3F: a TT-tensor shape is ``[n_1, ..., n_d]``; a TT-matrix
shape is ``((m_1..m_d), (n_1..n_d))`` where either half may be None for a
vector. ``tt_rank`` is an int r (ranks ``[1, r, ..., r, 1]``) or a list of
d + 1 ints. The layer initializers (`glorot_initializer`, `he_initializer`,
`lecun_initializer`) cap ranks above the largest useful ones for the shape
(the ranks of the unfoldings of a full tensor, ``min(n_1..n_k,
n_{k+1}..n_d)``), as `t3f_ext.layers.TTDense` does. The other random
initializers keep the ranks asked for, as T3F does (an over-parametrized TT
is a valid input to `orthogonalize_tt_cores` or `round`); every one refuses,
naming ``tt_rank``, cores too large to allocate (checked before allocating).

All random initializers take an optional ``seed`` (an int or a
shape-[2] int tensor); with a seed they use stateless sampling (reproducible,
XLA-friendly), without one they draw from TF's global generator. ``seed``
is keyword-only: the positional arguments are T3F's, in T3F's order.
"""

import math

import numpy as np
import tensorflow as tf

from t3f_ext import ops
from t3f_ext import utils
from t3f_ext.tensor_train_base import TensorTrainBase


def _filled_cores(modes_per_axis, fill, dtype, batch_size=None):
    """Rank-1 cores ``fill(n)`` of shape ``[1, n(, m), 1]``."""
    cores = []
    for dims in zip(*modes_per_axis):
        core = tf.reshape(fill(dims), [1] + list(dims) + [1])
        if batch_size is not None:
            core = tf.tile(core[tf.newaxis], [batch_size] + [1] * core.shape.rank)
        cores.append(tf.cast(core, dtype))
    return cores


def tensor_ones(shape, dtype=tf.float32, name="t3f_tensor_ones"):
    """The all-ones TT-tensor of ``shape`` (TT-ranks 1). Cost O(d n)."""
    with tf.name_scope(name):
        modes = utils.tensor_modes(shape, "shape")
        return utils.wrap(_filled_cores([modes], tf.ones, dtype), 0)


def tensor_zeros(shape, dtype=tf.float32, name="t3f_tensor_zeros"):
    """The all-zeros TT-tensor of ``shape`` (TT-ranks 1). Cost O(d n)."""
    with tf.name_scope(name):
        modes = utils.tensor_modes(shape, "shape")
        return utils.wrap(_filled_cores([modes], tf.zeros, dtype), 0)


def matrix_ones(shape, dtype=tf.float32, name="t3f_matrix_ones"):
    """The all-ones TT-matrix, ``shape=((m_1..m_d), (n_1..n_d))``, ranks 1."""
    with tf.name_scope(name):
        rows, cols = utils.matrix_modes(shape, "shape")
        return utils.wrap(_filled_cores([rows, cols], tf.ones, dtype), 0)


def matrix_zeros(shape, dtype=tf.float32, name="t3f_matrix_zeros"):
    """The all-zeros TT-matrix, ``shape=((m_1..m_d), (n_1..n_d))``, ranks 1."""
    with tf.name_scope(name):
        rows, cols = utils.matrix_modes(shape, "shape")
        return utils.wrap(_filled_cores([rows, cols], tf.zeros, dtype), 0)


def eye(shape, dtype=tf.float32, name="t3f_eye"):
    """The identity TT-matrix of size ``prod(shape)``, cores ``I_{n_k}``.

    Args:
      shape: ``[n_1, ..., n_d]``; the matrix is ``(n_1..n_d) x (n_1..n_d)``.
    """
    with tf.name_scope(name):
        modes = utils.tensor_modes(shape, "shape")
        return utils.wrap(_filled_cores([modes, modes], lambda dims: tf.eye(dims[0]), dtype), 0)


def ones_like(tt, name="t3f_ones_like"):
    """All-ones TT object of the same shape, type and batch size as ``tt``.

    Raises:
      ValueError: if ``tt`` is not a TT object (T3F's error type).
    """
    return _filled_like(tt, tf.ones, name)


def zeros_like(tt, name="t3f_zeros_like"):
    """All-zeros TT object of the same shape, type and batch size as ``tt``.

    Raises:
      ValueError: if ``tt`` is not a TT object (T3F's error type).
    """
    return _filled_like(tt, tf.zeros, name)


ones_like_tt = ones_like  # The earlier t3f_ext names.
zeros_like_tt = zeros_like


def _filled_like(tt, fill, name):
    if not isinstance(tt, TensorTrainBase):
        raise ValueError(
            "tt: expected a TensorTrain or TensorTrainBatch, got %s" % type(tt).__name__
        )
    with tf.name_scope(name):
        nb = utils.batch_dims(tt)
        if nb and tt.batch_size is None:
            raise ValueError("tt must have a static batch size, got None")
        modes = [s.as_list() for s in tt.get_raw_shape()]
        cores = _filled_cores(modes, fill, tt.dtype, batch_size=tt.batch_size if nb else None)
        return utils.wrap(cores, nb)


def _normal(shape, seed, index, mean, stddev, dtype):
    if seed is None:
        return tf.random.normal(shape, mean, stddev, dtype=dtype)
    seed = tf.convert_to_tensor([seed, 0] if np.ndim(seed) == 0 else seed, dtype=tf.int64)
    # Philox explicitly: "auto_select" picks another algorithm under XLA, and
    # the same seed must give the same cores everywhere.
    core_seed = tf.random.experimental.stateless_fold_in(seed, index, alg="philox")
    return tf.random.stateless_normal(shape, core_seed, mean, stddev, dtype=dtype, alg="philox")


def _check_batch_size(batch_size):
    if not utils.is_int(batch_size) or batch_size < 1:
        raise ValueError("batch_size must be a positive int, got %r" % (batch_size,))


def _check_stddev(stddev, mean):
    for value, value_name in ((stddev, "stddev"), (mean, "mean")):
        if np.ndim(value) != 0 or not np.isreal(value) or not np.isfinite(value):
            raise ValueError("%s: expected a finite real number, got %r" % (value_name, value))
    if stddev < 0:
        raise ValueError("stddev: expected a non-negative number, got %r" % (stddev,))


def _ranks(tt_rank, modes_per_axis, cap):
    """`utils.canonical_ranks`; with ``cap``, capped at the largest useful
    ranks (ranks above the full rank of an unfolding add nothing)."""
    d = len(modes_per_axis[0])
    ranks = utils.canonical_ranks(tt_rank, d, "tt_rank")
    if not cap:
        return ranks
    return utils.cap_ranks(ranks, [math.prod(dims) for dims in zip(*modes_per_axis)])


def _random_cores(modes_per_axis, tt_rank, batch_size, mean, stddev, dtype, seed, cap=False):
    """Cores with i.i.d. N(mean, stddev^2) entries and the given TT-ranks."""
    ranks = _ranks(tt_rank, modes_per_axis, cap)
    _check_stddev(stddev, mean)
    lead = [] if batch_size is None else [batch_size]
    shapes = [
        lead + [ranks[k]] + list(dims) + [ranks[k + 1]]
        for k, dims in enumerate(zip(*modes_per_axis))
    ]
    utils.check_dense_size(
        sum(math.prod(s) for s in shapes), dtype, "tt_rank", "TT-cores of shapes %s" % shapes
    )
    cores = []
    for k, core_shape in enumerate(shapes):
        cores.append(_normal(core_shape, seed, k, mean, stddev, dtype))
    return utils.wrap(cores, int(batch_size is not None))


def tensor_with_random_cores(
    shape,
    tt_rank=2,
    mean=0.0,
    stddev=1.0,
    dtype=tf.float32,
    name="t3f_tensor_with_random_cores",
    *,
    seed=None,
):
    """TT-tensor whose core entries are i.i.d. ``N(mean, stddev^2)``."""
    with tf.name_scope(name):
        modes = utils.tensor_modes(shape, "shape")
        return _random_cores([modes], tt_rank, None, mean, stddev, dtype, seed)


def tensor_batch_with_random_cores(
    shape,
    tt_rank=2,
    batch_size=1,
    mean=0.0,
    stddev=1.0,
    dtype=tf.float32,
    name="t3f_tensor_batch_with_random_cores",
    *,
    seed=None,
):
    """Batch of TT-tensors with i.i.d. ``N(mean, stddev^2)`` core entries."""
    with tf.name_scope(name):
        modes = utils.tensor_modes(shape, "shape")
        _check_batch_size(batch_size)
        return _random_cores([modes], tt_rank, batch_size, mean, stddev, dtype, seed)


def matrix_with_random_cores(
    shape,
    tt_rank=2,
    mean=0.0,
    stddev=1.0,
    dtype=tf.float32,
    name="t3f_matrix_with_random_cores",
    *,
    seed=None,
):
    """TT-matrix whose core entries are i.i.d. ``N(mean, stddev^2)``."""
    with tf.name_scope(name):
        rows, cols = utils.matrix_modes(shape, "shape")
        return _random_cores([rows, cols], tt_rank, None, mean, stddev, dtype, seed)


def matrix_batch_with_random_cores(
    shape,
    tt_rank=2,
    batch_size=1,
    mean=0.0,
    stddev=1.0,
    dtype=tf.float32,
    name="t3f_matrix_batch_with_random_cores",
    *,
    seed=None,
):
    """Batch of TT-matrices with i.i.d. ``N(mean, stddev^2)`` core entries."""
    with tf.name_scope(name):
        rows, cols = utils.matrix_modes(shape, "shape")
        _check_batch_size(batch_size)
        return _random_cores([rows, cols], tt_rank, batch_size, mean, stddev, dtype, seed)


def _core_stddev(stddev, ranks):
    """Core std so that the full tensor's entries have std ``stddev``.

    An entry is a sum of ``prod_k r_k`` products of d independent N(0, s^2)
    numbers, so its variance is ``s^{2d} prod_k r_k``; solve for s.
    """
    d = len(ranks) - 1
    return float(stddev) ** (1.0 / d) * float(np.prod(ranks)) ** (-1.0 / (2 * d))


def _random_with_entry_std(
    modes_per_axis, tt_rank, batch_size, mean, stddev, dtype, seed, cap=False
):
    ranks = _ranks(tt_rank, modes_per_axis, cap)
    _check_stddev(stddev, mean)
    tt = _random_cores(
        modes_per_axis, ranks, batch_size, 0.0, _core_stddev(stddev, ranks), dtype, seed
    )
    if mean == 0:
        return tt
    # Entries with mean `mean`: add mean * ones, which raises the ranks by 1.
    ones = utils.wrap(_filled_cores(modes_per_axis, tf.ones, dtype), 0)
    return ops.add(tt, ops.multiply(ones, mean))


def random_tensor(
    shape, tt_rank=2, mean=0.0, stddev=1.0, dtype=tf.float32, name="t3f_random_tensor", *, seed=None
):
    """Random TT-tensor whose entries have mean ``mean`` and std ``stddev``.

    The cores are Gaussian with the std of `_core_stddev`; a non-zero mean adds
    ``mean * tensor_ones`` (TT-ranks + 1). Cost: O(d n r^2).
    """
    with tf.name_scope(name):
        modes = utils.tensor_modes(shape, "shape")
        return _random_with_entry_std([modes], tt_rank, None, mean, stddev, dtype, seed)


def random_tensor_batch(
    shape,
    tt_rank=2,
    batch_size=1,
    mean=0.0,
    stddev=1.0,
    dtype=tf.float32,
    name="t3f_random_tensor_batch",
    *,
    seed=None,
):
    """Batch of `random_tensor` samples. Cost: O(B d n r^2)."""
    with tf.name_scope(name):
        modes = utils.tensor_modes(shape, "shape")
        _check_batch_size(batch_size)
        return _random_with_entry_std([modes], tt_rank, batch_size, mean, stddev, dtype, seed)


def random_matrix(
    shape, tt_rank=2, mean=0.0, stddev=1.0, dtype=tf.float32, name="t3f_random_matrix", *, seed=None
):
    """Random TT-matrix whose entries have mean ``mean`` and std ``stddev``.

    Args:
      shape: ``((m_1..m_d), (n_1..n_d))``, either half may be None.
    Cost: O(d m n r^2).
    """
    with tf.name_scope(name):
        rows, cols = utils.matrix_modes(shape, "shape")
        return _random_with_entry_std([rows, cols], tt_rank, None, mean, stddev, dtype, seed)


def random_matrix_batch(
    shape,
    tt_rank=2,
    batch_size=1,
    mean=0.0,
    stddev=1.0,
    dtype=tf.float32,
    name="t3f_random_matrix_batch",
    *,
    seed=None,
):
    """Batch of `random_matrix` samples. Cost: O(B d m n r^2)."""
    with tf.name_scope(name):
        rows, cols = utils.matrix_modes(shape, "shape")
        _check_batch_size(batch_size)
        return _random_with_entry_std([rows, cols], tt_rank, batch_size, mean, stddev, dtype, seed)


def _fan_scaled_matrix(shape, tt_rank, dtype, seed, variance):
    rows, cols = utils.matrix_modes(shape, "shape")
    stddev = np.sqrt(variance(math.prod(rows), math.prod(cols)))
    return _random_with_entry_std([rows, cols], tt_rank, None, 0.0, stddev, dtype, seed, cap=True)


def glorot_initializer(
    shape, tt_rank=2, dtype=tf.float32, name="t3f_glorot_initializer", *, seed=None
):
    """Random TT-matrix ``[fan_in, fan_out]`` with entry variance
    ``2 / (fan_in + fan_out)`` (Glorot & Bengio 2010); fan_in = prod m_k."""
    with tf.name_scope(name):
        return _fan_scaled_matrix(
            shape, tt_rank, dtype, seed, lambda fan_in, fan_out: 2.0 / (fan_in + fan_out)
        )


def he_initializer(shape, tt_rank=2, dtype=tf.float32, name="t3f_he_initializer", *, seed=None):
    """Random TT-matrix with entry variance ``2 / fan_in`` (He et al. 2015)."""
    with tf.name_scope(name):
        return _fan_scaled_matrix(shape, tt_rank, dtype, seed, lambda fan_in, fan_out: 2.0 / fan_in)


def lecun_initializer(
    shape, tt_rank=2, dtype=tf.float32, name="t3f_lecun_initializer", *, seed=None
):
    """Random TT-matrix with entry variance ``1 / fan_in`` (LeCun 1998)."""
    with tf.name_scope(name):
        return _fan_scaled_matrix(shape, tt_rank, dtype, seed, lambda fan_in, fan_out: 1.0 / fan_in)
