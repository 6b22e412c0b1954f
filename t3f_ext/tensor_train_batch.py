"""`TensorTrainBatch`: a batch of TT objects of equal shape and TT-ranks."""

import typing

import tensorflow as tf

from t3f_ext import tensor_train_base
from t3f_ext.tensor_train import TensorTrain
from t3f_ext.tensor_train_base import TensorTrainBase


class TensorTrainBatch(TensorTrainBase, tf.experimental.ExtensionType):
    """A batch of B TT-tensors (cores ``[B, r_{k-1}, n_k, r_k]``) or TT-matrices
    (cores ``[B, r_{k-1}, m_k, n_k, r_k]``) sharing mode sizes and TT-ranks.

    An immutable `tf.experimental.ExtensionType`, like `TensorTrain`. The batch
    size may be unknown (None) statically.

    ``batch[i]`` is a `TensorTrain`; ``batch[i:j]`` is a `TensorTrainBatch`;
    ``batch[i, ...mode indices]`` also indexes the modes (see
    `TensorTrain.__getitem__`).
    """

    tt_cores: typing.Tuple[tf.Tensor, ...]
    _raw_shape: typing.Tuple[tf.TensorShape, ...]
    _tt_ranks: tf.TensorShape
    _batch_size: typing.Optional[int]
    _tangent_space: typing.Optional[int] = None

    class Spec:  # pylint: disable=missing-class-docstring
        def __init__(self, tt_cores, _raw_shape, _tt_ranks, _batch_size, _tangent_space=None):
            # The tangent-space identifier is optional, as before it existed.
            self.tt_cores = tt_cores
            self._raw_shape = _raw_shape
            self._tt_ranks = _tt_ranks
            self._batch_size = _batch_size
            self._tangent_space = _tangent_space

    def __init__(
        self,
        tt_cores,
        shape=None,
        tt_ranks=None,
        batch_size=None,
        convert_to_tensors=True,
        name="TensorTrainBatch",
        *,
        tangent_space=None,
    ):
        """Creates a `TensorTrainBatch`.

        Args:
          tt_cores: a list or tuple of d tensor-likes, each
            ``[B, r_{k-1}, n_k, r_k]`` or each ``[B, r_{k-1}, m_k, n_k, r_k]``.
          shape: optional raw shape (without the batch size) to check against.
          tt_ranks: optional list of the ``d + 1`` TT-ranks to check against
            (as in T3F, a longer list is accepted if the extra entries are 1).
          batch_size: optional int B to check against.
          convert_to_tensors: if False, the cores must already be tensors.
          name: T3F's argument, accepted and unused.
          tangent_space: the identifier of the point whose tangent space the
            elements lie in (see ``projection_on``), or None.

        Raises:
          TypeError / ValueError: if the cores are invalid or inconsistent.
        """
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 0):
            raise ValueError(
                "batch_size must be a non-negative int or None, got %r" % (batch_size,)
            )
        cores, raw_shape, ranks, batch_size = tensor_train_base.validate_cores(
            tt_cores, shape, tt_ranks, convert_to_tensors, batch_dims=1, batch_size=batch_size
        )
        self.tt_cores = cores
        self._raw_shape = raw_shape
        self._tt_ranks = ranks
        self._batch_size = batch_size
        self._tangent_space = tensor_train_base.check_tangent_space(tangent_space)

    def _batch_dims(self):
        return 1

    @property
    def batch_size(self):
        """The static batch size B (an int), or None if unknown."""
        return self._batch_size

    def get_shape(self):
        """``[B] + shape of one element`` as a `tf.TensorShape`."""
        return tf.TensorShape([self._batch_size]).concatenate(self._dense_shape())

    def __str__(self):
        return "A batch of %s %s" % (self._batch_size, self._describe())

    def __getitem__(self, slice_spec):
        """``batch[i]`` -> `TensorTrain`, ``batch[i:j]`` -> `TensorTrainBatch`,
        ``batch[i, modes...]`` indexes the modes as well (TT-tensors only)."""
        from t3f_ext import utils

        if not isinstance(slice_spec, tuple):
            slice_spec = (slice_spec,)
        batch_spec, mode_specs = slice_spec[0], slice_spec[1:]
        cores = [core[batch_spec] for core in self.tt_cores]
        keeps_batch = cores[0].shape.rank == self.tt_cores[0].shape.rank
        if not mode_specs:  # Elements of a tangent space stay in it.
            cls = TensorTrainBatch if keeps_batch else TensorTrain
            return cls(cores, tangent_space=self._tangent_space)
        if self.is_tt_matrix():
            raise TypeError(
                "indexing the modes is defined for TT-tensors only; got "
                "a batch of TT-matrices of shape %s" % self.get_shape()
            )
        if len(mode_specs) != self.ndims():
            raise ValueError(
                "a batch of TT-tensors with %d modes needs 1 + %d "
                "indices, got %d: %r" % (self.ndims(), self.ndims(), len(slice_spec), slice_spec)
            )
        return utils.slice_cores(cores, mode_specs, batch_dims=int(keeps_batch))
