"""TT objects whose cores are `tf.Variable`s: T3F's ``get_variable`` and
``assign`` in their TF2 sense.

T3F 1.2.0 built these on TF1's variable scopes and collections. TF2 has
neither, so here `get_variable` always creates new variables (as TF1 does
eagerly), and the object it returns, a `TensorTrainVariable`, holds them:
every op reads their current values, a `tf.GradientTape` watches them, and
`assign` (or `TensorTrainVariable.assign`) writes new cores into them.
`TensorTrain` and `TensorTrainBatch` stay immutable values; ``value()``
takes one of them as a snapshot.
"""

import tensorflow as tf

from t3f_ext import utils
from t3f_ext.tensor_train_base import TensorTrainBase
from t3f_ext.tensor_train_batch import TensorTrainBatch


class TensorTrainVariable(TensorTrainBase):
    """A `TensorTrain` or `TensorTrainBatch` whose cores are `tf.Variable`s.

    It has the metadata methods of both (``get_shape``, ``get_raw_shape``,
    ``get_tt_ranks``, ``ndims``, ``batch_size`` for a batch, indexing) and is
    accepted by every t3f_ext op, which reads the variables' current values.
    Its mode sizes, TT-ranks and batch size are fixed: `assign` takes values
    of the same structure.

    Create it with `get_variable`.
    """

    def __init__(self, initializer, name, dtype=None, trainable=True):
        utils.check_tt(initializer, "initializer")
        if isinstance(initializer, TensorTrainVariable):
            initializer = initializer.value()
        if dtype is not None and tf.as_dtype(dtype) != initializer.dtype:
            raise TypeError(
                "dtype: expected the initializer's dtype %s or None, "
                "got %s" % (initializer.dtype.name, tf.as_dtype(dtype).name)
            )
        self._variables = tuple(
            tf.Variable(core, trainable=trainable, name="%s/core_%d" % (name, k))
            for k, core in enumerate(initializer.tt_cores)
        )
        self._raw_shape = initializer.get_raw_shape()
        self._tt_ranks = initializer.get_tt_ranks()
        self._is_batch = isinstance(initializer, TensorTrainBatch)
        self._batch_size = initializer.batch_size if self._is_batch else None
        self._name = name
        self.regularization_loss = None

    @property
    def tt_cores(self):
        """The cores: a tuple of `tf.Variable`s."""
        return self._variables

    @property
    def name(self):
        """The name given to `get_variable`."""
        return self._name

    @property
    def batch_size(self):
        """The static batch size of a batch variable (None for a single TT)."""
        return self._batch_size

    def _batch_dims(self):
        return int(self._is_batch)

    def get_shape(self):
        """The dense shape, with the batch size first for a batch."""
        if self._is_batch:
            return tf.TensorShape([self._batch_size]).concatenate(self._dense_shape())
        return self._dense_shape()

    def value(self):
        """The current cores as an immutable `TensorTrain` / `TensorTrainBatch`."""
        return utils.wrap([v.read_value() for v in self._variables], self._batch_dims())

    def assign(self, value):
        """Writes the cores of ``value`` into the variables; returns ``self``.

        Args:
          value: a TT object with the same raw shape, TT-ranks, batch size and
            dtype.

        Raises:
          ValueError / TypeError: naming ``value`` if its structure differs.
        """
        utils.check_tt(value, "value")
        utils.check_same_raw_shape(self, value, "ref", "value")
        utils.check_same_dtype(self, value, "ref", "value")
        if (
            utils.batch_dims(value) != self._batch_dims()
            or value.get_tt_ranks() != self.get_tt_ranks()
            or (self._is_batch and value.batch_size != self._batch_size)
        ):
            raise ValueError(
                "value: expected a %s with TT-ranks %s like ref, got "
                "%s with TT-ranks %s"
                % (
                    type(self.value()).__name__,
                    self.get_tt_ranks().as_list(),
                    utils.describe_shape(value),
                    value.get_tt_ranks().as_list(),
                )
            )
        for var, core in zip(self._variables, value.tt_cores):
            var.assign(core)
        return self

    def __getitem__(self, slice_spec):
        return self.value()[slice_spec]

    def __str__(self):
        prefix = ("A batch of %s " % self._batch_size) if self._is_batch else "A "
        return "%s%s, held in variables %r" % (prefix, self._describe(), self._name)


def get_variable(
    name,
    dtype=None,
    initializer=None,
    regularizer=None,
    trainable=True,
    collections=None,
    caching_device=None,
    validate_shape=True,
):
    """A `TensorTrainVariable` with new `tf.Variable` cores set to
    ``initializer``'s (T3F's signature; TF2 semantics).

    Args:
      name: the variables are named ``name/core_k``.
      dtype: None or the initializer's dtype.
      initializer: the `TensorTrain` / `TensorTrainBatch` to start from.
        Required: TF2 has no variable scopes to reuse a variable from.
      regularizer: optional callable on the new object; TF2 has no
        REGULARIZATION_LOSSES collection, so its result is kept in the
        object's ``regularization_loss`` attribute (None without one).
      trainable: whether the variables are trainable.
      collections, caching_device, validate_shape: TF1 graph options with no
        TF2 meaning; only None / True are accepted.

    Returns:
      `TensorTrainVariable`.

    Raises:
      ValueError: without an initializer, or for TF1-only options.
    """
    if initializer is None:
        raise ValueError(
            "initializer: expected a TensorTrain or TensorTrainBatch "
            "(TF2 has no variable scope to reuse %r from), got None" % (name,)
        )
    for arg_name, value, default in (
        ("collections", collections, None),
        ("caching_device", caching_device, None),
        ("validate_shape", validate_shape, True),
    ):
        if value is not default:
            raise ValueError(
                "%s: a TF1 graph option with no TF2 meaning; expected "
                "%r, got %r" % (arg_name, default, value)
            )
    variable = TensorTrainVariable(initializer, name, dtype=dtype, trainable=trainable)
    variable.regularization_loss = None if regularizer is None else regularizer(variable)
    return variable


def assign(ref, value, validate_shape=None, use_locking=None, name=None):
    """Writes the cores of ``value`` into the variable TT ``ref``.

    Args:
      ref: a `TensorTrainVariable` (from `get_variable`).
      value: a TT object of the same structure (raw shape, TT-ranks, batch
        size, dtype).
      validate_shape, use_locking, name: accepted for T3F's signature; TF2's
        `tf.Variable.assign` always validates the shape.

    Returns:
      The values written, as a `TensorTrain` / `TensorTrainBatch`.
    """
    if not isinstance(ref, TensorTrainVariable):
        raise TypeError(
            "ref: expected a TensorTrainVariable (from get_variable), got %s" % type(ref).__name__
        )
    return ref.assign(value).value()
