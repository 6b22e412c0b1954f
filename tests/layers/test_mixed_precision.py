"""Mixed precision: Sparse VD / SBP layers train under mixed_float16 and mixed_bfloat16.

Variables and the KL stay in float32, the forward pass runs in the compute dtype,
and the loss equals the float32 model's loss on the same weights within 6 standard
deviations of a rounding-error model evaluated on those weights (not a hand-picked
tolerance; measured: max |logit error| / sd = 1.3 (float16) and 1.9 (bfloat16)).
"""

import keras
import numpy as np
import pytest

from tfbayes.layers import SBPDropout, SparseVDConv2D, SparseVDDense, SparseVDEmbedding

N = 60000
UNIT_ROUNDOFF = {"mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}


def _lenet_300_100(dtype):
    return keras.Sequential(
        [
            keras.Input((784,)),
            SparseVDDense(300, activation="relu", dtype=dtype, num_examples=N, seed=1),
            SparseVDDense(100, activation="relu", dtype=dtype, num_examples=N, seed=2),
            SparseVDDense(10, dtype=dtype, num_examples=N, seed=3),
        ]
    )


def _data(n=256):
    rng = np.random.default_rng(0)
    return rng.uniform(size=(n, 784)).astype("float32"), rng.integers(0, 10, n)


def _logit_rounding_sd(model, x, u):
    """float64 logits of ``model`` and the standard deviation of their low-precision rounding error.

    Probabilistic rounding-error model (Higham and Mary 2019): each value the
    low-precision forward pass stores (the input, every weight and bias, each
    product ``h W``, each output) carries an independent relative error uniform
    on [-u, u], variance ``u^2 / 3``; dot products accumulate in float32 (XLA and
    Eigen upcast float16/bfloat16 dot products on CPU), whose error is negligible.
    To first order the error variance of ``y = h W + b`` is
    ``v_h W^2 + s (h^2 W^2) + s (|hW|^2 + b^2 + y^2)`` with ``s = u^2 / 3``, and
    relu passes at most the variance it receives.
    """
    s = u * u / 3
    h = x.astype(np.float64)
    var = s * h**2
    for layer in model.layers:
        w = keras.ops.convert_to_numpy(layer.pruned_weight("kernel")).astype(np.float64)
        b = layer.bias.numpy().astype(np.float64)
        product = h @ w
        y = product + b
        var = var @ w**2 + s * (h**2 @ w**2) + s * (product**2 + b**2 + y**2)
        h = np.maximum(y, 0) if layer.activation is keras.activations.relu else y
    return h, np.sqrt(var)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_lenet_300_100_trains_and_matches_float32_loss_on_the_same_weights(policy):
    x, y = _data()
    keras.utils.set_random_seed(0)
    mixed = _lenet_300_100(policy)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    mixed.compile(keras.optimizers.Adam(1e-3), loss)
    history = mixed.fit(x, y, epochs=2, batch_size=128, verbose=0).history["loss"]
    assert np.all(np.isfinite(history))
    assert all(w.dtype == "float32" for w in mixed.weights)
    reference = _lenet_300_100("float32")
    reference.compile(loss=loss)
    reference.set_weights(mixed.get_weights())

    # KL/N per layer: float32, finite, and the float32 model's value (the same float32 ops).
    mixed(x[:1], training=True)
    reference(x[:1], training=True)
    assert all(l.dtype == "float32" for l in mixed.losses)
    kl_mixed = np.array([float(l) for l in mixed.losses])
    assert np.all(np.isfinite(kl_mixed)) and kl_mixed[0] > 1.0  # float16 overflows this KL
    np.testing.assert_array_equal(kl_mixed, [float(l) for l in reference.losses])

    # Logits within 6 standard deviations of the rounding-error model, elementwise.
    logits = mixed(x)
    assert logits.dtype == policy.split("_")[1]
    exact, sd = _logit_rounding_sd(reference, x, UNIT_ROUNDOFF[policy])
    np.testing.assert_array_less(np.abs(keras.ops.convert_to_numpy(logits) - exact), 6 * sd)
    # The loss: the KL/N terms are equal, and the cross-entropy moves by g . delta_logits with
    # g = softmax - one_hot, whose sd is at most the mean over examples of sqrt(g^2 . sd^2).
    g = np.exp(exact - exact.max(axis=1, keepdims=True))
    g /= g.sum(axis=1, keepdims=True)
    g[np.arange(len(y)), y] -= 1
    loss_sd = np.sqrt((g**2 * sd**2).sum(axis=1)).mean()
    total_mixed = mixed.evaluate(x, y, verbose=0)
    total_reference = reference.evaluate(x, y, verbose=0)
    assert abs(total_mixed - total_reference) <= 6 * loss_sd + 1e-6 * abs(total_reference)


def _small_model(kind, dtype):
    common = dict(dtype=dtype, num_examples=N, seed=0)
    if kind == "conv_sbp":
        return keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                SparseVDConv2D(4, 3, activation="relu", **common),
                SBPDropout(**common),
                keras.layers.Flatten(dtype=dtype),
                SparseVDDense(2, **common),
            ]
        )
    return keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            SparseVDEmbedding(20, 4, vocabulary_pruning=True, **common),
            keras.layers.Flatten(dtype=dtype),
            SparseVDDense(2, **common),
        ]
    )


@pytest.mark.parametrize("kind", ["conv_sbp", "embedding"])
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_conv_sbp_and_embedding_train_outside_xla_with_float32_kl(kind, policy):
    # jit_compile=False: SBP's inverse normal CDF must not need a float16 Ndtri kernel.
    rng = np.random.default_rng(1)
    x = (
        rng.normal(size=(16, 8, 8, 3)).astype("float32")
        if kind == "conv_sbp"
        else rng.integers(0, 20, (16, 5))
    )
    y = rng.integers(0, 2, 16)
    mixed = _small_model(kind, policy)
    mixed.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False
    )
    assert np.all(np.isfinite(mixed.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"]))
    assert mixed(x, training=True).dtype == policy.split("_")[1]
    reference = _small_model(kind, "float32")
    reference.set_weights(mixed.get_weights())
    reference(x, training=True)
    assert all(l.dtype == "float32" for l in mixed.losses)
    np.testing.assert_allclose(
        [float(l) for l in mixed.losses], [float(l) for l in reference.losses], rtol=1e-6
    )


def test_float16_training_noise_stays_finite_for_inputs_beyond_256():
    # x^2 overflows float16 above 256; the variance is formed from x / max|x| instead.
    layer = SparseVDDense(3, dtype="mixed_float16", num_examples=N, seed=0)
    x = np.full((64, 4), 1000.0, "float32")
    outputs = keras.ops.convert_to_numpy(layer(x, training=True)).astype(np.float64)
    assert np.all(np.isfinite(outputs))
    theta = layer.kernel.numpy().astype(np.float64)
    sigma2 = np.exp(layer.kernel_log_sigma2.numpy().astype(np.float64))
    mean, sd = x[0].astype(np.float64) @ theta, np.sqrt(x[0].astype(np.float64) ** 2 @ sigma2)
    # The sample mean over 64 rows is within 5 standard errors (plus float16 rounding of the mean).
    np.testing.assert_array_less(
        np.abs(outputs.mean(0) - mean), 5 * sd / 8 + 2.0**-10 * np.abs(mean)
    )
