"""The three ways every test runs TF code: eagerly, in ``tf.function``, and compiled by XLA."""

import tensorflow as tf

MODES = ["eager", "function", "jit"]


def run_in_mode(fn, mode, *args):
    """``fn(*args)`` eagerly (``mode="eager"``), in a ``tf.function`` (``"function"``) or in a
    ``tf.function(jit_compile=True)`` (``"jit"``)."""
    if mode == "eager":
        return fn(*args)
    return tf.function(fn, jit_compile=(mode == "jit"))(*args)
