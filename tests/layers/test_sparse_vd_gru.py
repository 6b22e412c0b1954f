"""SparseVDGRU: against a NumPy GRU with pruned weights and groups, noise sharing, compress."""

import keras
import numpy as np
import pytest

from tfbayes import sparsity
from tfbayes.layers import SparseVDDense, SparseVDEmbedding, SparseVDGRU
from tf_modes import MODES, run_in_mode

THRESHOLD = 3.0


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_kept(theta, log_sigma2):
    """The inference mask of Sparse VD, computed independently in NumPy (float64)."""
    log_alpha = np.clip(log_sigma2 - np.log(np.asarray(theta, np.float64) ** 2 + 1e-8), -8, 8)
    return log_alpha < THRESHOLD


def numpy_gru(x, kernel, recurrent_kernel, bias, z_x, z_h, z_gate):
    """A plain NumPy loop of the group-scaled GRU (Keras's reset_after=True, gates z, r, h)."""
    batch, time, _ = x.shape
    s = np.zeros((batch, recurrent_kernel.shape[0]))
    outputs = []
    for t in range(time):
        a = ((x[:, t] * z_x) @ kernel) * z_gate + bias[0]
        b = ((s * z_h) @ recurrent_kernel) * z_gate + bias[1]
        a_z, a_r, a_h = np.split(a, 3, axis=-1)
        b_z, b_r, b_h = np.split(b, 3, axis=-1)
        z, r = _sigmoid(a_z + b_z), _sigmoid(a_r + b_r)
        s = z * s + (1 - z) * np.tanh(a_h + r * b_h)
        outputs.append(z_h * s)
    return np.stack(outputs, axis=1), s


def _random_posteriors(model, rng, low=-10.0, high=5.0):
    """Random means and log sigma^2, so that weights, words, inputs, units and gates get pruned."""
    values = {}
    for variable in model.trainable_weights:
        name = variable.path.split("/")[-1]
        if name.endswith("log_sigma2"):
            value = rng.uniform(low, high, size=variable.shape)
        elif name.endswith("group"):
            value = rng.uniform(0.5, 1.5, size=variable.shape)
        else:
            value = rng.normal(scale=0.5, size=variable.shape)
        variable.assign(value.astype(variable.dtype))
        values[name] = value
    return values


@pytest.mark.parametrize("mode", MODES)
def test_inference_equals_numpy_gru_with_pruning(dtype, mode):
    """Random posteriors (many weights, inputs, neurons and gates pruned) against NumPy."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 6)).astype(dtype)
    layer = SparseVDGRU(4, return_sequences=True, return_state=True, dtype=dtype)
    layer(x)
    values = _random_posteriors(layer, rng, high=6.0)
    values["hidden_group_log_sigma2"][1] = 6.0  # log alpha > 6 - log 1.5^2 > 3: unit 1 pruned
    layer.hidden_group_log_sigma2.assign(values["hidden_group_log_sigma2"].astype(dtype))

    def pruned(name):
        return values[name] * _numpy_kept(values[name], values[f"{name}_log_sigma2"])

    assert 0 < _numpy_kept(values["gates_group"], values["gates_group_log_sigma2"]).sum() < 12
    assert 0 < _numpy_kept(values["hidden_group"], values["hidden_group_log_sigma2"]).sum() < 4
    expected, state = numpy_gru(
        x.astype(np.float64),
        pruned("kernel"),
        pruned("recurrent_kernel"),
        values["bias"],
        pruned("inputs_group"),
        pruned("hidden_group"),
        pruned("gates_group"),
    )
    got, got_state = run_in_mode(lambda v: layer(v, training=False), mode, x)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(got), expected, atol=tol, rtol=tol)
    np.testing.assert_allclose(np.asarray(got_state), state, atol=tol, rtol=tol)


def test_training_draw_is_shared_across_steps_and_fresh_across_calls():
    """With constant inputs and a GRU whose update gate is 0 and whose recurrent kernel is 0,
    every step outputs z_h * tanh(z_gate ((x z_x) W_x)): equal at every timestep (one draw per
    sequence), different across sequences and across calls."""
    layer = SparseVDGRU(3, return_sequences=True, seed=5, num_examples=10)
    layer.build((None, None, 2))
    layer.recurrent_kernel.assign(np.zeros((3, 9), "float32"))
    layer.recurrent_kernel_log_sigma2.assign(np.full((3, 9), -80.0, "float32"))
    layer.bias.assign(np.array([[-80.0] * 3 + [0.0] * 6, [0.0] * 9], "float32"))  # z = 0
    for name in ("inputs_group", "hidden_group", "gates_group", "kernel"):
        getattr(layer, f"{name}_log_sigma2").assign(
            np.full(getattr(layer, name).shape, np.log(0.04), "float32")
        )
    x = np.tile(np.array([1.0, -0.5], "float32"), (64, 6, 1))
    first = np.asarray(layer(x, training=True))
    second = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(first, np.repeat(first[:, :1], 6, axis=1), rtol=1e-5, atol=1e-6)
    assert np.std(first[:, 0], axis=0).min() > 1e-3  # groups differ across sequences
    assert np.abs(first - second).max() > 1e-3


@pytest.mark.parametrize("mask_zero", [False, True])
def test_compress_gives_a_smaller_plain_gru(dtype, mask_zero):
    """Embedding -> GRU -> Dense: compress() predicts what the model predicts, with a plain
    keras.layers.GRU that has fewer inputs and units."""
    rng = np.random.default_rng(5)
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            SparseVDEmbedding(40, 8, vocabulary_pruning=True, mask_zero=mask_zero, dtype=dtype),
            SparseVDGRU(6, dtype=dtype, name="gru"),
            SparseVDDense(2, dtype=dtype),
        ]
    )
    _random_posteriors(model, rng)
    gru = model.get_layer("gru")
    gru.inputs_group_log_sigma2.assign(np.where(np.arange(8) < 2, 6.0, -10.0).astype(dtype))
    gru.hidden_group_log_sigma2.assign(np.where(np.arange(6) == 5, 6.0, -10.0).astype(dtype))
    gru.recurrent_kernel_log_sigma2.assign(np.full((6, 18), 6.0, dtype))  # units read nothing
    ids = rng.integers(0, 40, size=(16, 7))
    ids[:3, :2] = 0
    compressed = sparsity.compress(model)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(
        compressed.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=tol, rtol=tol
    )
    _, embedding, plain_gru, dense = compressed.layers
    assert type(plain_gru) is keras.layers.GRU
    structure = gru.kept_structure()
    assert embedding.output_dim == plain_gru.cell.kernel.shape[0] == structure["inputs"].sum() <= 6
    assert plain_gru.units == structure["units"].sum() <= 5
    assert dense.kernel.shape == (plain_gru.units, 2)
    report = sparsity.sparsity_report(model)
    row = next(r for r in report.layers if r["name"] == "gru")
    assert row["groups"]["gates"] == [int(structure["gates"].sum()), 18]
    assert sum(r["weights_total"] for r in report.layers) == 40 * 8 + 8 * 18 + 6 * 18 + 6 * 2
    assert row["flops_before"] == 7 * (8 * 18 + 6 * 18)


def test_reset_after_false_is_refused():
    with pytest.raises(ValueError, match="reset_after"):
        SparseVDGRU(3, reset_after=False)
