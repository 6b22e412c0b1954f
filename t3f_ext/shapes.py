"""Shape queries on TT objects, static ("lazy_*": NumPy when known) and
dynamic (int32 tensors), and batch-dim helpers, with T3F's names.

Every function takes T3F's ``name`` argument; TF2 needs no name scope for
these metadata reads, so it is accepted and unused."""

import numpy as np
import tensorflow as tf

from t3f_ext import utils
from t3f_ext.tensor_train import TensorTrain
from t3f_ext.tensor_train_base import clean_raw_shape  # noqa: F401  (T3F name)
from t3f_ext.tensor_train_batch import TensorTrainBatch


def tt_ranks(tt, name="t3f_tt_ranks"):  # pylint: disable=unused-argument
    """The TT-ranks as an int32 tensor ``[d + 1]``."""
    utils.check_tt(tt, "tt")
    nb = utils.batch_dims(tt)
    ranks = [tf.shape(core)[nb] for core in tt.tt_cores]
    return tf.stack(ranks + [tf.shape(tt.tt_cores[-1])[-1]])


def raw_shape(tt, name="t3f_raw_shape"):  # pylint: disable=unused-argument
    """The mode sizes as an int32 tensor ``[1 or 2, d]`` (2 for TT-matrices)."""
    utils.check_tt(tt, "tt")
    nb = utils.batch_dims(tt)
    axes = range(nb + 1, nb + 1 + tt.num_tensor_axes())
    return tf.stack([tf.stack([tf.shape(core)[axis] for core in tt.tt_cores]) for axis in axes])


def shape(tt, name="t3f_shape"):  # pylint: disable=unused-argument
    """The dense shape (with the batch size first for a batch) as a tensor.

    int32 like T3F's, or int64 when a TT-matrix's row or column count exceeds
    int32 (the product of the mode sizes would otherwise wrap around).

    Raises:
      ValueError: if a dimension exceeds int64; `lazy_shape` and
        ``tt.get_shape()`` give it as an exact Python int.
    """
    utils.check_tt(tt, "tt")
    dims = raw_shape(tt)
    if tt.is_tt_matrix():
        largest = max(utils.static_size(s) for s in tt.get_raw_shape())
        if largest > utils.INT64_MAX:
            raise ValueError(
                "tt: a dimension of its shape %s does not fit int64; "
                "use lazy_shape(tt) or tt.get_shape() for exact "
                "Python ints" % tt.get_shape()
            )
        if largest > np.iinfo(np.int32).max:
            dims = tf.cast(dims, tf.int64)
        dims = tf.reduce_prod(dims, axis=1)
    else:
        dims = dims[0]
    if utils.batch_dims(tt):
        dims = tf.concat([[tf.cast(batch_size(tt), dims.dtype)], dims], 0)
    return dims


def batch_size(tt, name="t3f_batch_size"):  # pylint: disable=unused-argument
    """The batch size of a `TensorTrainBatch` as an int32 scalar tensor."""
    _check_batch(tt)
    return tf.shape(tt.tt_cores[0])[0]


def lazy_tt_ranks(tt, name="t3f_lazy_tt_ranks"):  # pylint: disable=unused-argument
    """Static TT-ranks as a NumPy array if known, else `tt_ranks(tt)`."""
    utils.check_tt(tt, "tt")
    static = tt.get_tt_ranks()
    return np.array(static.as_list()) if static.is_fully_defined() else (tt_ranks(tt))


def lazy_raw_shape(tt, name="t3f_lazy_raw_shape"):  # pylint: disable=unused-argument
    """Static raw shape ``[1 or 2, d]`` as a NumPy array if known."""
    utils.check_tt(tt, "tt")
    static = tt.get_raw_shape()
    if all(s.is_fully_defined() for s in static):
        return np.array([s.as_list() for s in static])
    return raw_shape(tt)


def lazy_shape(tt, name="t3f_lazy_shape"):  # pylint: disable=unused-argument
    """Static dense shape as a NumPy array if known, else `shape(tt)`.

    The entries are exact: a size beyond int64 makes it an object array of
    Python ints."""
    utils.check_tt(tt, "tt")
    static = tt.get_shape()
    return np.array(static.as_list()) if static.is_fully_defined() else (shape(tt))


def lazy_batch_size(tt, name="t3f_lazy_batch_size"):  # pylint: disable=unused-argument
    """The static batch size (int) if known, else `batch_size(tt)`."""
    _check_batch(tt)
    return tt.batch_size if tt.batch_size is not None else batch_size(tt)


def is_batch_broadcasting_possible(tt_a, tt_b):
    """True unless both are batches of known, different sizes, neither 1."""
    utils.check_tt(tt_a, "tt_a")
    utils.check_tt(tt_b, "tt_b")
    try:
        utils.check_batch_broadcast(tt_a, tt_b, "tt_a", "tt_b")
    except ValueError:
        return False
    return True


def expand_batch_dim(tt, name="t3f_expand_batch_dim"):  # pylint: disable=unused-argument
    """A `TensorTrain` as a `TensorTrainBatch` of size 1 (a batch unchanged)."""
    utils.check_tt(tt, "tt")
    if utils.batch_dims(tt):
        return tt
    return TensorTrainBatch(
        [core[tf.newaxis] for core in tt.tt_cores], tangent_space=tt.projection_on
    )


def squeeze_batch_dim(tt, name="t3f_squeeze_batch_dim"):  # pylint: disable=unused-argument
    """A batch of static size 1 as a `TensorTrain`; anything else unchanged."""
    utils.check_tt(tt, "tt")
    if utils.batch_dims(tt) and tt.batch_size == 1:
        return TensorTrain([core[0] for core in tt.tt_cores], tangent_space=tt.projection_on)
    return tt


def _check_batch(tt):
    utils.check_batch(tt, "tt")
