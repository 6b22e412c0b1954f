"""Weight regularizers for TT objects that work in TF 2 (T3F's use TF 1's
``name_scope(name, default, values)`` signature and fail).

Each factory returns a function ``tt -> scalar tensor`` suited to
``model.add_loss`` or a custom training loop.
"""

import numpy as np
import tensorflow as tf

from t3f_ext import ops
from t3f_ext import utils


def _check_scale(scale):
    if np.ndim(scale) != 0 or isinstance(scale, bool) or not np.isreal(scale) or (scale < 0):
        raise ValueError("scale must be a non-negative number, got %r" % (scale,))


def l2_regularizer(scale, scope=None):
    """``tt -> scale * ||tt||_F^2`` (summed over a batch).

    The norm is `frobenius_norm_squared(tt, differentiable=True)`, whose
    gradient is ``2 scale tt`` without NaNs. Cost: O(d n r^3).

    Args:
      scale: non-negative number.
      scope: optional name scope (default "l2_regularizer").
    """
    _check_scale(scale)

    def regularizer(tt):
        utils.check_tt(tt, "tt")
        with tf.name_scope(scope or "l2_regularizer"):
            norm = ops.frobenius_norm_squared(tt, differentiable=True)
            return utils.scalar_as(scale, tt.dtype) * tf.reduce_sum(norm)

    return regularizer


def cores_regularizer(core_regularizer, scale, scope=None):
    """``tt -> scale * sum_k core_regularizer(G_k)`` over the TT-cores.

    Args:
      core_regularizer: a callable on one core tensor returning a scalar, e.g.
        ``tf.nn.l2_loss``.
      scale: non-negative number.
      scope: optional name scope (default "cores_regularizer").
    """
    if not callable(core_regularizer):
        raise TypeError(
            "core_regularizer must be callable, got %s" % type(core_regularizer).__name__
        )
    _check_scale(scale)

    def regularizer(tt):
        utils.check_tt(tt, "tt")
        with tf.name_scope(scope or "cores_regularizer"):
            total = tf.add_n([core_regularizer(core) for core in tt.tt_cores])
            return utils.scalar_as(scale, tt.dtype) * total

    return regularizer
