"""The behaviour shared by `TensorTrain` and `TensorTrainBatch`.

A Tensor-Train (TT) object stores a d-dimensional tensor
``A[i_1, ..., i_d] = G_1[:, i_1, :] @ G_2[:, i_2, :] @ ... @ G_d[:, i_d, :]``
as a tuple of d "TT-cores" (Oseledets 2011; T3F, Novikov et al. 2018):

* a TT-tensor core has shape ``[r_{k-1}, n_k, r_k]``;
* a TT-matrix core has shape ``[r_{k-1}, m_k, n_k, r_k]`` and represents the
  ``(m_1 ... m_d) x (n_1 ... n_d)`` matrix whose row index is the mixed-radix
  number ``(i_1, ..., i_d)`` and whose column index is ``(j_1, ..., j_d)``;
* a batch of TT objects has one more leading dimension, the batch size.

The TT-ranks ``r_0 = 1, r_1, ..., r_d = 1`` and the mode sizes must be known
statically (as they are for XLA); only the batch size may be unknown.

Both concrete classes are immutable ``tf.experimental.ExtensionType`` values,
so they cross ``tf.function`` boundaries and compile under
``jit_compile=True``.
"""

import math

import numpy as np
import tensorflow as tf


class TensorTrainBase:
    """Methods common to `TensorTrain` and `TensorTrainBatch` (a mixin).

    Subclasses are ExtensionTypes with the fields ``tt_cores``, ``_raw_shape``
    (a tuple of one `tf.TensorShape` for TT-tensors, two for TT-matrices) and
    ``_tt_ranks`` (a `tf.TensorShape` of length ``d + 1``).
    """

    def get_raw_shape(self):
        """A tuple of `tf.TensorShape`: ``(n_1..n_d,)`` or ``(m_1..m_d, n_1..n_d)``."""
        return self._raw_shape

    def _dense_shape(self):
        """The shape of the represented tensor or matrix, without the batch dim.

        The sizes are exact Python ints (``math.prod``), so a TT-matrix with
        modes ``[10] * 20`` has ``10**20`` rows, not a wrapped-around int64.
        """
        raw = self.get_raw_shape()
        if not self.is_tt_matrix():
            return raw[0]
        dims = []
        for axis_shape in raw:
            dims.append(math.prod(axis_shape.as_list()) if axis_shape.is_fully_defined() else None)
        return tf.TensorShape(dims)

    @property
    def projection_on(self):
        """The identifier of the point whose tangent space this object lies in,
        or None if it is not known to lie in one.

        `t3f_ext.project`, `project_sum`, `project_matmul`,
        `deltas_to_tangent_space`, `gradients` and `add_n_projected` set it (T3F
        stores the point itself). It is a static int, part of the TypeSpec, so
        `add_n_projected` and `pairwise_flat_inner_projected` can refuse vectors
        of different tangent spaces in eager mode, in `tf.function` and under
        XLA alike. Ops that leave the tangent space (``add``, ``multiply``,
        ``round``, ...) return objects without it.
        """
        return self._tangent_space

    def get_tt_ranks(self):
        """The TT-ranks ``[r_0=1, r_1, ..., r_d=1]`` as a `tf.TensorShape`."""
        return self._tt_ranks

    @property
    def dtype(self):
        """The `tf.DType` of the elements."""
        return self.tt_cores[0].dtype

    @property
    def name(self):
        """The name scope of the cores in graph mode; None in eager mode."""
        if tf.executing_eagerly() and hasattr(self.tt_cores[0], "numpy"):
            return None
        core_name = self.tt_cores[0].name
        return core_name[: core_name.rfind("/")]

    def is_variable(self):
        """True if the cores are `tf.Variable`s (a `t3f_ext.get_variable`
        result); `TensorTrain` and `TensorTrainBatch` hold tensors: False."""
        return isinstance(self.tt_cores[0], tf.Variable)

    @property
    def graph(self):
        """The `tf.Graph` (a `tf.function`'s FuncGraph) that holds the cores, or
        None for eager cores and variables, which belong to no graph in TF2."""
        core = self.tt_cores[0]
        if isinstance(core, tf.Variable) or not hasattr(core, "op"):
            return None
        return core.graph

    @property
    def op(self):
        """The `tf.Operation` grouping the ops that compute the cores, inside a
        `tf.function`; None in eager mode, where nothing is deferred."""
        if self.graph is None:
            return None
        return tf.group(*[core.op for core in self.tt_cores])

    def eval(self, feed_dict=None, session=None):
        """The cores' values as a list of NumPy arrays (TF2: eager only).

        Args:
          feed_dict, session: TF1 options with no TF2 meaning; must be None.

        Raises:
          ValueError: inside a `tf.function`, or if a TF1 option is given.
        """
        for arg_name, value in (("feed_dict", feed_dict), ("session", session)):
            if value is not None:
                raise ValueError(
                    "%s: a TF1 session option with no TF2 meaning; "
                    "expected None, got %r" % (arg_name, value)
                )
        if self.graph is not None:
            raise ValueError(
                "eval needs eager execution: the cores are symbolic "
                "tensors of a tf.function; return the TT object from "
                "the function instead"
            )
        return [np.asarray(core) for core in self.tt_cores]

    def ndims(self):
        """The number of TT-cores d."""
        return len(self.tt_cores)

    def num_tensor_axes(self):
        """1 for TT-tensors, 2 for TT-matrices."""
        return len(self.get_raw_shape())

    def is_tt_matrix(self):
        """True if this object represents a matrix (its cores are 4-D)."""
        return self.num_tensor_axes() == 2

    def _batch_dims(self):
        """0 for a single TT object, 1 for a batch."""
        raise NotImplementedError

    @property
    def left_tt_rank_dim(self):
        """The axis of a core that holds the left TT-rank."""
        return self._batch_dims()

    @property
    def right_tt_rank_dim(self):
        """The axis of a core that holds the right TT-rank."""
        return self._batch_dims() + self.num_tensor_axes() + 1

    def _describe(self):
        kind = "TT-matrix" if self.is_tt_matrix() else "TT-tensor"
        raw = " x ".join(str(s.as_list()) for s in self.get_raw_shape())
        return "%s of shape %s (modes %s), TT-ranks %s, dtype %s" % (
            kind,
            self._dense_shape().as_list(),
            raw,
            self.get_tt_ranks().as_list(),
            self.dtype.name,
        )

    # Operators, as in T3F. The imports are local because ops imports this
    # module.
    def __add__(self, other):
        """``self + other``: `t3f_ext.add`."""
        from t3f_ext import ops

        return ops.add(self, other)

    def __sub__(self, other):
        """``self - other``: `t3f_ext.add(self, -1 * other)`."""
        from t3f_ext import ops

        return ops.add(self, ops.multiply(other, -1.0))

    def __neg__(self):
        """``-self``: `t3f_ext.multiply(self, -1)`."""
        from t3f_ext import ops

        return ops.multiply(self, -1.0)

    def __mul__(self, other):
        """``self * other``: element-wise product or product with a scalar."""
        from t3f_ext import ops

        return ops.multiply(self, other)

    def __rmul__(self, other):
        """``other * self`` for a scalar ``other``."""
        from t3f_ext import ops

        return ops.multiply(self, other)


def check_tangent_space(tangent_space):
    """None or an int identifier (see `TensorTrainBase.projection_on`)."""
    if tangent_space is not None and (
        isinstance(tangent_space, bool) or not isinstance(tangent_space, (int, np.integer))
    ):
        raise TypeError(
            "tangent_space: expected None or an int identifier, got %r" % (tangent_space,)
        )
    return None if tangent_space is None else int(tangent_space)


def _as_tensor_shape(value, arg_name):
    try:
        return tf.TensorShape(value)
    except (TypeError, ValueError) as err:
        raise ValueError(
            "%s must be a list of ints, got %r (%s)" % (arg_name, value, err)
        ) from None


def clean_raw_shape(shape, name="t3f_clean_raw_shape"):  # pylint: disable=unused-argument
    """Turns a T3F-style shape into a tuple of `tf.TensorShape` (or None).

    Args:
      shape: None, a list of ints / `tf.TensorShape` (a TT-tensor), or a pair of
        them (a TT-matrix), e.g. ``((2, 3), (4, 5))``.
      name: T3F's argument, unused.

    Returns:
      None or a tuple of one or two `tf.TensorShape`.
    """
    if shape is None:
        return None
    if isinstance(shape, tf.TensorShape):
        return (shape,)
    shape = list(shape) if not isinstance(shape, np.ndarray) else shape.tolist()
    if shape and all(isinstance(s, (list, tuple, tf.TensorShape, np.ndarray)) for s in shape):
        return tuple(_as_tensor_shape(s, "shape") for s in shape)
    return (_as_tensor_shape(shape, "shape"),)


def validate_cores(tt_cores, shape, tt_ranks, convert_to_tensors, batch_dims, batch_size=None):
    """Checks and converts TT-cores for the constructors.

    Args:
      tt_cores: a sequence of core tensors (see the module docstring).
      shape: None or a T3F raw shape (see `clean_raw_shape`).
      tt_ranks: None or a list of ``d + 1`` ints.
      convert_to_tensors: if False, every core must already be a tensor or a
        variable (`tf.Variable` or Keras 3 variable).
      batch_dims: 0 for `TensorTrain`, 1 for `TensorTrainBatch`.
      batch_size: None or the expected batch size.

    Returns:
      ``(cores, raw_shape, tt_ranks, batch_size)``: a tuple of tensors, a tuple
      of `tf.TensorShape`, a `tf.TensorShape` and an int or None.

    Raises:
      TypeError: cores that are not tensors (``convert_to_tensors=False``), of
        different dtypes, or of a non-floating dtype.
      ValueError: cores of the wrong rank or with inconsistent TT-ranks, mode
        sizes or batch sizes.
    """
    if isinstance(tt_cores, (tf.Tensor, np.ndarray)) or not hasattr(tt_cores, "__len__"):
        raise TypeError(
            "tt_cores must be a list or tuple of tensors, got %s" % type(tt_cores).__name__
        )
    if len(tt_cores) == 0:
        raise ValueError("tt_cores must contain at least one core, got none")
    cores = []
    for k, core in enumerate(tt_cores):
        if not convert_to_tensors and not tf.is_tensor(core):
            raise TypeError(
                "with convert_to_tensors=False, tt_cores[%d] must be a "
                "tensor or variable, got %s" % (k, type(core).__name__)
            )
        cores.append(tf.convert_to_tensor(core))
    dtype = cores[0].dtype
    if not (dtype.is_floating or dtype.is_complex or dtype.is_integer):
        raise TypeError(
            "tt_cores must have a floating, complex or integer dtype "
            "(integer cores are for t3f_ext.cast), got %s" % dtype.name
        )
    for k, core in enumerate(cores):
        if core.dtype != dtype:
            raise TypeError(
                "all tt_cores must have the same dtype: tt_cores[0] is "
                "%s but tt_cores[%d] is %s" % (dtype.name, k, core.dtype.name)
            )
    core_ndims = cores[0].shape.rank
    if core_ndims not in (batch_dims + 3, batch_dims + 4):
        raise ValueError(
            "tt_cores[0] must have %d dims (TT-tensor) or %d dims (TT-matrix), "
            "got shape %s" % (batch_dims + 3, batch_dims + 4, cores[0].shape)
        )
    num_axes = core_ndims - batch_dims - 2
    d = len(cores)
    for k, core in enumerate(cores):
        if core.shape.rank != core_ndims:
            raise ValueError(
                "all tt_cores must have %d dims like tt_cores[0]; "
                "tt_cores[%d] has shape %s" % (core_ndims, k, core.shape)
            )
    # Static TT-ranks, checked for consistency between neighbours.
    ranks = [tf.compat.dimension_value(cores[0].shape[batch_dims])]
    for k in range(d):
        left = tf.compat.dimension_value(cores[k].shape[batch_dims])
        right = tf.compat.dimension_value(cores[k].shape[-1])
        if left is not None and ranks[k] is not None and left != ranks[k]:
            raise ValueError(
                "TT-ranks of neighbouring cores differ: tt_cores[%d] has shape %s "
                "and tt_cores[%d] has shape %s" % (k - 1, cores[k - 1].shape, k, cores[k].shape)
            )
        ranks[k] = left if left is not None else ranks[k]
        ranks.append(right)
    if ranks[0] not in (None, 1) or ranks[-1] not in (None, 1):
        raise ValueError("the first and last TT-ranks must be 1, got ranks %s" % ranks)
    ranks[0] = ranks[-1] = 1
    inferred_ranks = tf.TensorShape(ranks)
    if tt_ranks is not None:
        given = _as_tensor_shape(tt_ranks, "tt_ranks")
        if (
            given.rank is not None
            and given.rank > d + 1
            and all(r in (1, None) for r in given[d + 1 :].as_list())
        ):
            # T3F reads only the first d + 1 entries; trailing 1s are tolerated.
            given = given[: d + 1]
        if given.rank != d + 1 or not given.is_compatible_with(inferred_ranks):
            raise ValueError(
                "tt_ranks %s do not match the cores, whose TT-ranks are "
                "%s" % (given, inferred_ranks)
            )
        inferred_ranks = inferred_ranks.merge_with(given)
    raw_shape = tuple(
        tf.TensorShape([core.shape[batch_dims + 1 + axis] for core in cores])
        for axis in range(num_axes)
    )
    given_shape = clean_raw_shape(shape)
    if given_shape is not None:
        if len(given_shape) != num_axes or not all(
            g.is_compatible_with(r) for g, r in zip(given_shape, raw_shape)
        ):
            raise ValueError(
                "shape %s does not match the cores, whose mode sizes "
                "are %s" % ([s.as_list() for s in given_shape], [s.as_list() for s in raw_shape])
            )
        raw_shape = tuple(r.merge_with(g) for r, g in zip(raw_shape, given_shape))
    if batch_dims:
        batch_shape = tf.TensorShape([batch_size])
        for k, core in enumerate(cores):
            if not batch_shape.is_compatible_with(core.shape[:1]):
                raise ValueError(
                    "all tt_cores must have the batch size %s; "
                    "tt_cores[%d] has shape %s" % (batch_shape[0], k, core.shape)
                )
            batch_shape = batch_shape.merge_with(core.shape[:1])
        batch_size = tf.compat.dimension_value(batch_shape[0])
    return tuple(cores), raw_shape, inferred_ranks, batch_size
