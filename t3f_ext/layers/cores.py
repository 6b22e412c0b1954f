"""TT-cores as Keras weights, and their variance-preserving initialization.

Every TT layer owns ``d`` cores ``[r_{k-1}, m_k, n_k, r_k]``, each one Keras
weight made by ``add_weight`` (so ``model.summary()`` counts
``sum_k r_{k-1} m_k n_k r_k`` parameters and ``fit`` trains every core).

Initialization: an entry of the full matrix is a sum of ``r_1 ... r_{d-1}``
products of ``d`` independent ``N(0, s^2)`` core entries, so its variance is
``s^{2d} r_1 ... r_{d-1}``. Choosing ``s`` from the target variance of the
full matrix (Glorot: ``2 / (fan_in + fan_out)``, He: ``2 / fan_in``, LeCun:
``1 / fan_in``) gives a TT-matrix whose product has exactly that variance,
as T3F's ``glorot_initializer`` does (the rule is ``t3f_ext.initializers``').
"""

import math

import keras

from t3f_ext.initializers import _core_stddev  # the one copy of the variance rule
from t3f_ext.tensor_train import TensorTrain

TARGET_VARIANCES = {
    "glorot": lambda fan_in, fan_out: 2.0 / (fan_in + fan_out),
    "he": lambda fan_in, fan_out: 2.0 / fan_in,
    "lecun": lambda fan_in, fan_out: 1.0 / fan_in,
}


def check_kernel_initializer(initializer, arg_name="kernel_initializer"):
    """Accepts ``"glorot"``, ``"he"``, ``"lecun"`` or a positive float (the std of a full-matrix entry)."""
    if isinstance(initializer, str):
        if initializer not in TARGET_VARIANCES:
            raise ValueError(
                f"`{arg_name}` must be one of {sorted(TARGET_VARIANCES)} or a positive float "
                f"(the std of the full matrix entries), got {initializer!r}."
            )
        return initializer
    if (
        isinstance(initializer, (int, float))
        and not isinstance(initializer, bool)
        and initializer > 0
    ):
        return float(initializer)
    raise ValueError(
        f"`{arg_name}` must be one of {sorted(TARGET_VARIANCES)} or a positive float "
        f"(the std of the full matrix entries), got {initializer!r}."
    )


def core_stddev(initializer, fan_in, fan_out, ranks):
    """Std of every core entry so that the full TT-matrix entries have the target variance."""
    if isinstance(initializer, str):
        target_std = math.sqrt(TARGET_VARIANCES[initializer](fan_in, fan_out))
    else:
        target_std = initializer
    return _core_stddev(target_std, ranks)


def add_tt_matrix_cores(layer, row_dims, col_dims, ranks, stddev, regularizer):
    """Adds the cores ``[r_{k-1}, m_k, n_k, r_k]`` as trainable ``N(0, stddev^2)`` weights.

    The weights are named ``core_0 .. core_{d-1}``; returns them as a list.
    """
    return [
        layer.add_weight(
            name=f"core_{k}",
            shape=(ranks[k], row_dims[k], col_dims[k], ranks[k + 1]),
            initializer=keras.initializers.RandomNormal(stddev=stddev),
            regularizer=regularizer,
            trainable=True,
        )
        for k in range(len(row_dims))
    ]


def add_optional_bias(layer, size):
    """Adds ``layer``'s ``[size]`` bias weight when ``layer.use_bias``; returns it or None."""
    if not layer.use_bias:
        return None
    return layer.add_weight(
        name="bias",
        shape=(size,),
        initializer=layer.bias_initializer,
        regularizer=layer.bias_regularizer,
    )


def cores_as_tensor_train(cores):
    """The current values of Keras core weights as a `t3f_ext.TensorTrain`."""
    return TensorTrain([core.value for core in cores])
