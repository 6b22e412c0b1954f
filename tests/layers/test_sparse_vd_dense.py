"""SparseVDDense against dense NumPy and Monte Carlo over weight noise, in Keras workflows."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes.layers import SparseVDDense, set_num_examples
from tf_modes import MODES, run_in_mode


def _layer_with_random_posterior(dtype, in_dim=5, units=3, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    layer = SparseVDDense(units, dtype=dtype.__name__, seed=seed, **kwargs)
    layer.build((None, in_dim))
    layer.kernel.assign(rng.normal(size=(in_dim, units)).astype(dtype))
    layer.kernel_log_sigma2.assign(rng.uniform(-4, 2, size=(in_dim, units)).astype(dtype))
    layer.bias.assign(rng.normal(size=units).astype(dtype))
    return layer


def _np_log_alpha(layer):
    theta = layer.kernel.numpy().astype(np.float64)
    return np.clip(layer.kernel_log_sigma2.numpy() - np.log(theta**2 + 1e-8), -8, 8)


@pytest.mark.parametrize("mode", MODES)
def test_training_output_mean_and_variance_match_monte_carlo_over_weights(dtype, mode):
    layer = _layer_with_random_posterior(dtype, num_examples=100)
    x = np.random.default_rng(1).normal(size=(2, 5)).astype(dtype)
    theta = layer.kernel.numpy().astype(np.float64)
    sigma = np.exp(0.5 * layer.kernel_log_sigma2.numpy().astype(np.float64))
    samples = 20000
    # Reference: sample whole weight matrices W ~ N(theta, sigma^2) and compute x W + b.
    weights = theta + sigma * np.random.default_rng(2).normal(size=(samples,) + theta.shape)
    reference = np.einsum("bi,sio->sbo", x.astype(np.float64), weights) + layer.bias.numpy()
    # Ours: the layer's local-reparameterization samples, one per row of a tiled batch.
    tiled = np.tile(x, (samples, 1))
    ours = run_in_mode(lambda t: layer(t, training=True), mode, tf.constant(tiled)).numpy()
    ours = ours.reshape(samples, 2, 3).astype(np.float64)
    for values in (reference, ours):
        mean, var = values.mean(0), values.var(0)
        exact_mean = x.astype(np.float64) @ theta + layer.bias.numpy()
        exact_var = (x.astype(np.float64) ** 2) @ sigma**2
        # Tolerances: 5 standard errors of the sample mean and of the sample variance.
        np.testing.assert_array_less(np.abs(mean - exact_mean), 5 * np.sqrt(exact_var / samples))
        np.testing.assert_array_less(
            np.abs(var - exact_var), 5 * exact_var * np.sqrt(2.0 / (samples - 1))
        )


@pytest.mark.parametrize("mode", MODES)
def test_inference_uses_theta_with_high_log_alpha_weights_removed(dtype, mode):
    layer = _layer_with_random_posterior(dtype, threshold=1.0, activation="relu")
    x = np.random.default_rng(3).normal(size=(4, 5)).astype(dtype)
    mask = _np_log_alpha(layer) < 1.0
    assert 0 < mask.sum() < mask.size
    expected = np.maximum(x @ (layer.kernel.numpy() * mask) + layer.bias.numpy(), 0)
    ours = run_in_mode(lambda t: layer(t, training=False), mode, tf.constant(x)).numpy()
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    assert layer.sparsity_groups() == {"weights": (int(mask.sum()), mask.size)}


@pytest.mark.parametrize("prior", ["log_uniform", "ard"])
def test_kl_loss_is_the_summed_prior_kl_over_n(dtype, prior):
    layer = _layer_with_random_posterior(dtype, prior=prior, num_examples=50)
    la = _np_log_alpha(layer)
    ard = 0.5 * np.log1p(np.exp(-la))
    k1, k2, k3 = 0.63576, 1.87320, 1.48695
    per_weight = ard if prior == "ard" else k1 - k1 / (1 + np.exp(-(k2 + k3 * la))) + ard
    layer(np.ones((1, 5), dtype), training=True)
    np.testing.assert_allclose(float(layer.losses[0]), per_weight.sum() / 50, rtol=1e-5)
    np.testing.assert_allclose(float(layer.kl_divergence()), per_weight.sum(), rtol=1e-5)


def _decaying_adam():
    # A decaying step lets theta of the irrelevant weights settle at 0 instead of jittering by ~lr.
    return keras.optimizers.Adam(keras.optimizers.schedules.PolynomialDecay(0.05, 400, 0.001))


def _planted_regression(n=2000, relevant=3, irrelevant=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, relevant + irrelevant)).astype("float32")
    y = x[:, :relevant] @ np.array([2.0, -3.0, 1.5], "float32")[:relevant, None]
    return x, y + 0.1 * rng.normal(size=y.shape).astype("float32")


def test_planted_irrelevant_inputs_are_pruned_with_model_fit_under_xla():
    keras.utils.set_random_seed(0)
    x, y = _planted_regression()
    model = keras.Sequential([keras.Input((10,)), SparseVDDense(1, seed=0)])
    set_num_examples(model, len(x))
    model.compile(_decaying_adam(), "mse", jit_compile=True)
    model.fit(x, y, batch_size=100, epochs=20, verbose=0)
    layer = model.layers[0]
    kept = layer.weight_mask("kernel").numpy()[:, 0].astype(bool)
    assert kept.tolist() == [True] * 3 + [False] * 7
    np.testing.assert_allclose(layer.kernel.numpy()[:3, 0], [2.0, -3.0, 1.5], atol=0.1)


def test_gradient_tape_loop_in_a_subclassed_model_prunes_planted_inputs():
    keras.utils.set_random_seed(1)
    x, y = _planted_regression(seed=1)

    class Regressor(keras.Model):
        def __init__(self):
            super().__init__()
            self.head = SparseVDDense(1, prior="ard", num_examples=len(x), seed=1)

        def call(self, inputs, training=False):
            return self.head(inputs, training=training)

    model = Regressor()
    model(x[:1])
    optimizer = _decaying_adam()

    @tf.function(jit_compile=True)
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(xb, training=True) - yb)) + tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    for _ in range(20):
        for i in range(0, len(x), 100):
            step(x[i : i + 100], y[i : i + 100])
    kept = model.head.weight_mask("kernel").numpy()[:, 0].astype(bool)
    assert kept.tolist() == [True] * 3 + [False] * 7


def test_functional_model_saves_and_loads_with_identical_predictions(tmp_path):
    inputs = keras.Input((5,))
    outputs = SparseVDDense(
        2, activation="tanh", threshold=2.0, prior="ard", num_examples=10, seed=3
    )(inputs)
    model = keras.Model(inputs, outputs)
    layer = model.layers[1]
    layer.kernel_log_sigma2.assign(np.random.default_rng(0).uniform(-6, 3, (5, 2)))
    x = np.random.default_rng(1).normal(size=(8, 5)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[1].get_config() == layer.get_config()
    clone = SparseVDDense.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.threshold, clone.prior, clone.num_examples) == (2.0, "ard", 10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"units": 0}, "units: expected a positive int, got 0"),
        ({"units": 2, "threshold": float("nan")}, "threshold: expected a finite real number"),
        ({"units": 2, "threshold": "3"}, "threshold: expected a finite real number, got '3'"),
        ({"units": 2, "prior": "gauss"}, "prior: expected one of"),
        ({"units": 2, "num_examples": -5}, "num_examples: expected a positive int"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseVDDense(**kwargs)


def test_training_without_n_and_mismatched_inputs_raise_clear_errors():
    layer = SparseVDDense(2)
    with pytest.raises(ValueError, match="training-set size N is not set"):
        layer(np.ones((1, 3), "float32"), training=True)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 3"):
        layer(np.ones((1, 4), "float32"))
