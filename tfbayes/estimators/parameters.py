"""The parameters of a distribution: the float tensors and variables it is built from.

A TFP distribution is a composite tensor: ``tf.nest.flatten(dist,
expand_composites=True)`` lists the tensors and variables it holds, including
those of nested distributions and of deferred tensors such as
``tfp.util.TransformedVariable`` (whose underlying variable is listed). The
floating-point ones are "the parameters" wherever an estimator needs them one
by one (the per-parameter optimal control-variate coefficient and
``gradient_variance``). A distribution that is not a composite tensor lists no
parameters; pass the variables explicitly then.
"""

import tensorflow as tf

__all__ = ["distribution_parameters"]


def distribution_parameters(dist):
    """The floating-point tensors and variables ``dist`` is built from, in flattening order.

    Variables are returned as variables, so that gradients with respect to them
    are the gradients a ``tf.GradientTape`` gives for the user's variables.
    """
    seen, params = set(), []
    for part in tf.nest.flatten(dist, expand_composites=True):
        if isinstance(part, (tf.Tensor, tf.Variable)) and part.dtype.is_floating:
            key = id(part)
            if key not in seen:
                seen.add(key)
                params.append(part)
    return params
