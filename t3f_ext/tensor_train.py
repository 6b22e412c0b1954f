"""`TensorTrain`: one TT-tensor or TT-matrix, as an immutable ExtensionType."""

import typing

import tensorflow as tf

from t3f_ext import tensor_train_base
from t3f_ext.tensor_train_base import TensorTrainBase


class TensorTrain(TensorTrainBase, tf.experimental.ExtensionType):
    """A TT-tensor (cores ``[r_{k-1}, n_k, r_k]``) or TT-matrix
    (cores ``[r_{k-1}, m_k, n_k, r_k]``).

    It is an immutable `tf.experimental.ExtensionType`: pass it to and return it
    from a `tf.function` (also with ``jit_compile=True``); its TypeSpec records
    the static mode sizes and TT-ranks.

    Memory: ``sum_k r_{k-1} n_k r_k`` numbers instead of ``prod_k n_k``.

    Example:
    >>> import t3f_ext as t3f
    >>> a = t3f.TensorTrain([tf.ones((1, 2, 3)), tf.ones((3, 4, 1))])
    >>> a.get_shape(), a.get_tt_ranks()
    (TensorShape([2, 4]), TensorShape([1, 3, 1]))
    """

    tt_cores: typing.Tuple[tf.Tensor, ...]
    _raw_shape: typing.Tuple[tf.TensorShape, ...]
    _tt_ranks: tf.TensorShape
    _tangent_space: typing.Optional[int] = None

    class Spec:  # pylint: disable=missing-class-docstring
        def __init__(self, tt_cores, _raw_shape, _tt_ranks, _tangent_space=None):
            # The tangent-space identifier is optional, as before it existed.
            self.tt_cores = tt_cores
            self._raw_shape = _raw_shape
            self._tt_ranks = _tt_ranks
            self._tangent_space = _tangent_space

    def __init__(
        self,
        tt_cores,
        shape=None,
        tt_ranks=None,
        convert_to_tensors=True,
        name="TensorTrain",
        *,
        tangent_space=None,
    ):
        """Creates a `TensorTrain`.

        Args:
          tt_cores: a list or tuple of d tensor-likes (NumPy arrays, tensors or
            variables; variables are read), each ``[r_{k-1}, n_k, r_k]`` or each
            ``[r_{k-1}, m_k, n_k, r_k]``, with ``r_0 = r_d = 1``.
          shape: optional raw shape to check the cores against: ``[n_1..n_d]``
            or ``[[m_1..m_d], [n_1..n_d]]``.
          tt_ranks: optional list of the ``d + 1`` TT-ranks to check against
            (as in T3F, a longer list is accepted if the extra entries are 1).
          convert_to_tensors: if False, the cores must already be tensors or
            variables (NumPy arrays are refused).
          name: T3F's argument, accepted and unused: a TF2 value has no name
            scope of its own.
          tangent_space: for `t3f_ext.riemannian` only: the identifier of the
            point whose tangent space this object lies in (see
            ``projection_on``), or None.

        Raises:
          TypeError / ValueError: if the cores are invalid or inconsistent with
            ``shape`` / ``tt_ranks`` (the message names the offending core).
        """
        cores, raw_shape, ranks, _ = tensor_train_base.validate_cores(
            tt_cores, shape, tt_ranks, convert_to_tensors, batch_dims=0
        )
        self.tt_cores = cores
        self._raw_shape = raw_shape
        self._tt_ranks = ranks
        self._tangent_space = tensor_train_base.check_tangent_space(tangent_space)

    def _batch_dims(self):
        return 0

    def get_shape(self):
        """The `tf.TensorShape` of the dense tensor, ``[M, N]`` for a matrix."""
        return self._dense_shape()

    def __str__(self):
        return "A " + self._describe()

    def __getitem__(self, slice_spec):
        """Basic indexing of a TT-tensor, one index or slice per mode.

        ``tt[1, :, 2:4]`` drops the first and third modes' other entries; a mode
        indexed by an integer is contracted into its neighbour. If every mode is
        indexed by an integer the result is a scalar `tf.Tensor`, otherwise a
        `TensorTrain`. Cost: O(d r^3) for the contractions plus the slicing.

        Raises:
          TypeError: for TT-matrices.
          ValueError: if the number of indices is not d.
        """
        from t3f_ext import utils

        if self.is_tt_matrix():
            raise TypeError(
                "indexing is defined for TT-tensors only; got a "
                "TT-matrix of shape %s" % self.get_shape()
            )
        if not isinstance(slice_spec, tuple):
            slice_spec = (slice_spec,)
        if len(slice_spec) != self.ndims():
            raise ValueError(
                "a TT-tensor with %d modes needs %d indices, got %d: %r"
                % (self.ndims(), self.ndims(), len(slice_spec), slice_spec)
            )
        return utils.slice_cores(self.tt_cores, slice_spec, batch_dims=0)
