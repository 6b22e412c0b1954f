"""SparseVDLSTM: against keras.layers.LSTM and a NumPy LSTM, noise sharing, pruning, I/O."""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes import sparsity
from tfbayes.layers import SparseVDDense, SparseVDEmbedding, SparseVDLSTM, set_num_examples
from tf_modes import run_in_mode

THRESHOLD = 3.0


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_kept(theta, log_sigma2):
    """The inference mask of Sparse VD, computed independently in NumPy (float64)."""
    log_alpha = np.clip(log_sigma2 - np.log(np.asarray(theta, np.float64) ** 2 + 1e-8), -8, 8)
    return log_alpha < THRESHOLD


def numpy_lstm(x, kernel, recurrent_kernel, bias, z_x, z_h, z_gate, mask=None):
    """A plain NumPy loop of the group-scaled LSTM (Keras gate order i, f, c, o)."""
    batch, time, _ = x.shape
    units = recurrent_kernel.shape[0]
    h, c = np.zeros((batch, units)), np.zeros((batch, units))
    outputs = []
    for t in range(time):
        pre = ((x[:, t] * z_x) @ kernel + h @ recurrent_kernel) * z_gate + bias
        i, f, g, o = np.split(pre, 4, axis=-1)
        c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h_new = z_h * _sigmoid(o) * np.tanh(c_new)
        keep = np.ones((batch, 1), bool) if mask is None else mask[:, t, None]
        h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        outputs.append(h)
    return np.stack(outputs, axis=1), h, c


def _built(layer, x):
    layer(x)
    return layer


def _copy_keras_weights(ours, reference):
    kernel, recurrent_kernel, bias = reference.get_weights()
    ours.kernel.assign(kernel)
    ours.recurrent_kernel.assign(recurrent_kernel)
    ours.bias.assign(bias)


@pytest.mark.parametrize(
    "go_backwards,return_sequences,masked",
    [(False, False, False), (False, True, True), (True, True, False), (True, False, True)],
)
def test_tiny_noise_equals_keras_lstm(dtype, go_backwards, return_sequences, masked):
    """log sigma^2 -> -inf: inference and training equal keras.layers.LSTM with the same kernels."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 4)).astype(dtype)
    mask = np.ones((3, 6), bool)
    if masked:
        mask[0, 4:] = False
        mask[1, :2] = False
    kwargs = dict(return_sequences=return_sequences, return_state=True, go_backwards=go_backwards)
    reference = _built(keras.layers.LSTM(5, dtype=dtype, **kwargs), x)
    ours = _built(
        SparseVDLSTM(5, dtype=dtype, log_sigma2_initializer=-60.0, num_examples=10, **kwargs), x
    )
    _copy_keras_weights(ours, reference)
    expected = [np.asarray(v) for v in reference(x, mask=mask)]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for training in (False, True):
        got = ours(x, mask=mask, training=training)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(np.asarray(g), e, atol=tol, rtol=tol)


@pytest.mark.parametrize("mode", ["eager", "function", "jit"])
def test_inference_equals_numpy_lstm_with_pruning(dtype, mode):
    """Random posteriors (many weights, inputs, neurons and gates pruned) against NumPy."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 6)).astype(dtype)
    layer = _built(SparseVDLSTM(4, dtype=dtype), x)
    values = {}
    for variable in layer.trainable_weights:
        name = variable.path.split("/")[-1]
        if name.endswith("log_sigma2"):
            value = rng.uniform(-12.0, 6.0, size=variable.shape)
        elif name.endswith("group"):
            value = rng.uniform(0.5, 1.5, size=variable.shape)
        else:
            value = rng.normal(scale=0.5, size=variable.shape)
        variable.assign(value.astype(dtype))
        values[name] = value

    def pruned(name):
        return values[name] * _numpy_kept(values[name], values[f"{name}_log_sigma2"])

    assert 0 < _numpy_kept(values["gates_group"], values["gates_group_log_sigma2"]).sum() < 16
    expected, _, _ = numpy_lstm(
        x.astype(np.float64),
        pruned("kernel"),
        pruned("recurrent_kernel"),
        values["bias"],
        pruned("inputs_group"),
        pruned("hidden_group"),
        pruned("gates_group"),
    )
    got = run_in_mode(lambda v: layer(v, training=False), mode, x)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(np.asarray(got), expected[:, -1], atol=tol, rtol=tol)


def _linear_probe_layer(dtype, groups, kernel_sigma, group_sigma, **kwargs):
    """A 1-unit LSTM whose output is h = z_h * z_gate_c * sum_d x_d z_x,d w_d exactly.

    Linear activations; the input, forget and output gates are the constants
    1, 0, 1 (zero kernels with no noise, biases 1, 0, 1); the cell column of the
    kernel is w with standard deviation ``kernel_sigma``.
    """
    layer = SparseVDLSTM(
        1,
        activation="linear",
        recurrent_activation="linear",
        return_sequences=True,
        groups=groups,
        dtype=dtype,
        seed=7,
        num_examples=100,
        **kwargs,
    )
    layer.build((None, None, 2))
    theta = np.zeros((2, 4))
    theta[:, 2] = [0.8, -0.5]
    log_sigma2 = np.full((2, 4), -80.0)
    log_sigma2[:, 2] = np.log(np.square(kernel_sigma))
    layer.kernel.assign(theta.astype(dtype))
    layer.kernel_log_sigma2.assign(log_sigma2.astype(dtype))
    layer.recurrent_kernel.assign(np.zeros((1, 4), dtype))
    layer.recurrent_kernel_log_sigma2.assign(np.full((1, 4), -80.0, dtype))
    layer.bias.assign(np.array([1.0, 0.0, 0.0, 1.0], dtype))
    means = {"inputs": [1.2, 0.7], "hidden": [0.9], "gates": [1.0, 1.0, 1.1, 1.0]}
    for group in groups:
        getattr(layer, f"{group}_group").assign(np.array(means[group], dtype))
        sigma2 = np.full(len(means[group]), group_sigma**2)
        if group == "gates":  # only the cell candidate's group is noisy
            sigma2[[0, 1, 3]] = np.exp(-80.0)
        getattr(layer, f"{group}_group_log_sigma2").assign(np.log(sigma2).astype(dtype))
    return layer, theta[:, 2], means


def _assert_mc_moments(samples, mean, var):
    """Sample mean and variance within 5 standard errors of the exact moments."""
    n = samples.size
    mean_se = np.sqrt(var / n)
    centered4 = np.mean((samples - samples.mean()) ** 4)
    var_se = np.sqrt(max(centered4 - var**2, 1e-30) / n)
    assert abs(samples.mean() - mean) < 5 * mean_se, (samples.mean(), mean, mean_se)
    assert abs(samples.var() - var) < 5 * var_se, (samples.var(), var, var_se)


def test_group_noise_is_one_draw_per_sequence(dtype):
    """Group variables: the same draw at every timestep, independent draws across sequences."""
    layer, w, means = _linear_probe_layer(
        dtype, ("inputs", "hidden", "gates"), kernel_sigma=1e-30, group_sigma=0.3
    )
    x_step = np.array([1.0, 2.0])
    x = np.tile(x_step, (20000, 4, 1)).astype(dtype)
    h = np.asarray(layer(x, training=True))[..., 0].astype(np.float64)
    # Shared across timesteps: with f = 0 and equal inputs every step gives the same value.
    np.testing.assert_allclose(h, np.repeat(h[:, :1], 4, axis=1), rtol=1e-5, atol=1e-6)
    # Independent across sequences, with the moments of z_h z_gate (sum_d x_d z_x,d w_d).
    s_mean = np.sum(x_step * np.array(means["inputs"]) * w)
    s_var = np.sum(x_step**2 * 0.09 * w**2)
    m_h, m_g = means["hidden"][0], means["gates"][2]
    mean = m_h * m_g * s_mean
    second = (m_h**2 + 0.09) * (m_g**2 + 0.09) * (s_var + s_mean**2)
    _assert_mc_moments(h[:, 0], mean, second - mean**2)


def test_weight_noise_is_one_draw_per_batch(dtype):
    """Weights: one draw shared by all sequences and timesteps of a batch, fresh per batch."""
    layer, w, _ = _linear_probe_layer(dtype, (), kernel_sigma=0.4, group_sigma=0.0)
    x_step = np.array([1.0, -1.5])
    x = np.tile(x_step, (3, 4, 1)).astype(dtype)
    step = tf.function(lambda v: layer(v, training=True), jit_compile=True)
    draws = []
    for _ in range(600):
        h = np.asarray(step(x))[..., 0].astype(np.float64)
        np.testing.assert_allclose(h, np.full_like(h, h[0, 0]), rtol=1e-5, atol=1e-6)
        draws.append(h[0, 0])
    _assert_mc_moments(np.array(draws), np.sum(x_step * w), np.sum(x_step**2 * 0.16))


def test_input_dropout_mask_is_one_draw_per_sequence(dtype):
    """Keras's dropout of the inputs: one mask per sequence, the same at every timestep, so
    h = sum_d x_d m_d w_d with m_d in {0, 1 / (1 - p)}: mean sum_d x_d w_d, variance
    sum_d (x_d w_d)^2 p / (1 - p)."""
    rate = 0.3
    layer, w, _ = _linear_probe_layer(dtype, (), kernel_sigma=1e-30, group_sigma=0.0, dropout=rate)
    x_step = np.array([1.0, 2.0])
    x = np.tile(x_step, (20000, 4, 1)).astype(dtype)
    h = np.asarray(layer(x, training=True))[..., 0].astype(np.float64)
    np.testing.assert_allclose(h, np.repeat(h[:, :1], 4, axis=1), rtol=1e-5, atol=1e-6)
    _assert_mc_moments(h[:, 0], np.sum(x_step * w), np.sum((x_step * w) ** 2) * rate / (1 - rate))
    np.testing.assert_allclose(
        np.asarray(layer(x[:2], training=False))[..., 0],
        np.full((2, 4), np.sum(x_step * w)),
        rtol=1e-5,
    )


def test_pruned_output_gate_is_constant(dtype):
    """A pruned gate pre-activation makes the gate sigmoid(b) for every input."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 5, 3)).astype(dtype)
    layer = _built(SparseVDLSTM(3, return_state=True, dtype=dtype), x)
    layer.bias.assign(rng.normal(size=12).astype(dtype))
    log_sigma2 = np.full(12, -10.0)
    log_sigma2[9] = 5.0  # the output gate (index 3 * units + 0) of unit 0: log alpha = 5 > 3
    layer.gates_group_log_sigma2.assign(log_sigma2.astype(dtype))
    _, h, c = (np.asarray(v) for v in layer(x, training=False))
    np.testing.assert_allclose(
        h[:, 0], _sigmoid(np.asarray(layer.bias)[9]) * np.tanh(c[:, 0]), rtol=1e-5
    )
    assert layer.sparsity_groups()["gates"] == (11, 12)


def _planted_data(n, rng):
    """Two relevant inputs (0, 1) out of 6: y = [sum_t (x_t0 - x_t1) > 0]."""
    x = rng.normal(size=(n, 5, 6)).astype("float32")
    y = (np.sum(x[:, :, 0] - x[:, :, 1], axis=1) > 0).astype("float32")
    return x, y


def test_planted_irrelevant_inputs_and_neurons_are_pruned():
    """The 2 relevant inputs are kept, the 4 irrelevant ones pruned, and most of the 6 units
    (the task needs one running sum) are removed."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = _planted_data(2000, rng)
    model = keras.Sequential(
        [
            keras.Input((5, 6)),
            SparseVDLSTM(6, seed=1, log_sigma2_initializer=-6.0, name="lstm"),
            SparseVDDense(1, activation="sigmoid", log_sigma2_initializer=-6.0),
        ]
    )
    set_num_examples(model, len(x))
    model.compile(
        keras.optimizers.Adam(0.03), "binary_crossentropy", metrics=["accuracy"], jit_compile=False
    )
    model.fit(x, y, batch_size=50, epochs=30, verbose=0)
    x_test, y_test = _planted_data(1000, rng)
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.93
    lstm = model.get_layer("lstm")
    kept_inputs = lstm.kept_structure()["inputs"]
    assert kept_inputs[:2].all() and not kept_inputs[2:].any(), kept_inputs
    assert 1 <= lstm.sparsity_groups()["units"][0] <= 4


def test_config_round_trip_and_keras_file(tmp_path):
    x = np.random.default_rng(3).normal(size=(2, 4, 3)).astype("float32")
    layer = SparseVDLSTM(
        5,
        activation="relu",
        return_sequences=True,
        go_backwards=True,
        groups=("gates",),
        prior="ard",
        threshold=2.5,
        seed=3,
        num_examples=7,
    )
    clone = SparseVDLSTM.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    model = keras.Sequential([keras.Input((4, 3)), layer, keras.layers.Dense(2)])
    model.layers[0].kernel_log_sigma2.assign(
        np.random.default_rng(4).uniform(-10, 5, size=(3, 20)).astype("float32")
    )
    path = tmp_path / "lstm.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


LEGACY = pathlib.Path(__file__).parent / "data" / "sparse_vd_lstm_v1"
"""A .keras file written by the SparseVDLSTM of tfbayes 93972ad (one ``tf.scan`` loop, no cell):
Input(5, 3) -> SparseVDLSTM(4, return_sequences, go_backwards, groups=("hidden", "gates"),
prior="ard", threshold=2.5, seed=3, num_examples=7) -> SparseVDLSTM(3, num_examples=7) ->
Dense(2), random means and log sigma^2 (normal(0, 0.5), groups uniform(0.5, 1.5), log sigma^2
uniform(-10, 5)), the first layer's kl_weight at 0.25; with its inputs ``x`` and the
predictions ``y`` of that code in the .npz."""


def test_keras_file_saved_before_the_cell_rebuild_loads(tmp_path):
    reference = np.load(f"{LEGACY}.npz")
    model = keras.models.load_model(f"{LEGACY}.keras")
    np.testing.assert_allclose(model.predict(reference["x"], verbose=0), reference["y"], atol=1e-6)
    first, second = model.layers[0], model.layers[1]
    assert (first.groups, first.go_backwards, first.prior, first.threshold, first.num_examples) == (
        ("hidden", "gates"),
        True,
        "ard",
        2.5,
        7,
    )
    assert float(first.kl_weight) == 0.25 and float(second.kl_weight) == 1.0
    assert first.sparsity_groups()["weights"][0] < 3 * 16 + 4 * 16  # pruned weights came back
    path = tmp_path / "resaved.keras"  # and it is saved again in the layout of today
    model.save(path)
    np.testing.assert_array_equal(
        keras.models.load_model(path).predict(reference["x"], verbose=0),
        model.predict(reference["x"], verbose=0),
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(units=0), "units"),
        (dict(units=2.5), "units"),
        (dict(units=3, groups=("hidden", "neurons")), "groups"),
        (dict(units=3, groups="gates"), "groups"),
        (dict(units=3, threshold=float("nan")), "threshold"),
        (dict(units=3, prior="gaussian"), "prior"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseVDLSTM(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="input_dim"):
        SparseVDLSTM(3).build((None, 4, None))
    with pytest.raises(ValueError, match="ndim=3"):
        SparseVDLSTM(3)(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="num_examples"):
        SparseVDLSTM(3)(np.zeros((2, 3, 4), "float32"), training=True)


def _random_posteriors(model, rng):
    """Random means and log sigma^2, so that weights, words, inputs, units and gates get pruned."""
    for variable in model.trainable_weights:
        name = variable.path.split("/")[-1]
        if name.endswith("log_sigma2"):
            value = rng.uniform(-10.0, 5.0, size=variable.shape)
        elif name.endswith("group"):
            value = rng.uniform(0.5, 1.5, size=variable.shape)
        else:
            value = rng.normal(scale=0.5, size=variable.shape)
        variable.assign(value.astype(variable.dtype))


@pytest.mark.parametrize("mask_zero", [False, True])
def test_compress_equals_inference_and_is_smaller(dtype, mask_zero):
    """Embedding -> LSTM -> Dense: compress() predicts what the model predicts, with fewer
    words, embedding columns, LSTM inputs and units; constant gates keep only their bias."""
    rng = np.random.default_rng(5)
    model = keras.Sequential(
        [
            keras.Input((7,), dtype="int32"),
            SparseVDEmbedding(40, 8, vocabulary_pruning=True, mask_zero=mask_zero, dtype=dtype),
            SparseVDLSTM(6, dtype=dtype, name="lstm"),
            SparseVDDense(2, dtype=dtype),
        ]
    )
    _random_posteriors(model, rng)
    lstm = model.get_layer("lstm")
    lstm.inputs_group_log_sigma2.assign(np.where(np.arange(8) < 2, 6.0, -10.0).astype(dtype))
    lstm.hidden_group_log_sigma2.assign(np.where(np.arange(6) == 5, 6.0, -10.0).astype(dtype))
    ids = rng.integers(0, 40, size=(16, 7))
    ids[:3, :2] = 0
    compressed = sparsity.compress(model)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(
        compressed.predict(ids, verbose=0), model.predict(ids, verbose=0), atol=tol, rtol=tol
    )
    remap, embedding, plain_lstm, dense = compressed.layers
    assert isinstance(remap, keras.layers.IntegerLookup)
    words_kept = model.layers[0].sparsity_groups()["words"][0]
    assert words_kept < 40 and embedding.input_dim == words_kept + 1 + mask_zero
    structure = lstm.kept_structure()
    assert embedding.output_dim == plain_lstm.cell.kernel.shape[0] == structure["inputs"].sum() <= 6
    assert plain_lstm.units <= 5 and dense.kernel.shape == (plain_lstm.units, 2)
    # A gate that is constant in the model has zero kernel columns in the compressed LSTM.
    kept_units = np.flatnonzero(structure["units"])[: plain_lstm.units]
    constant = ~structure["gates"].reshape(4, -1)[:, kept_units]
    columns = np.concatenate(
        [np.asarray(plain_lstm.cell.kernel), np.asarray(plain_lstm.cell.recurrent_kernel)]
    ).reshape(-1, 4, plain_lstm.units)
    assert constant.any()
    assert not np.any(columns[:, constant])


def test_sparsity_report_counts_words_units_and_gates():
    rng = np.random.default_rng(6)
    model = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            SparseVDEmbedding(30, 4, vocabulary_pruning=True),
            SparseVDLSTM(3, name="lstm"),
            keras.layers.Dense(1),
        ]
    )
    _random_posteriors(model, rng)
    report = sparsity.sparsity_report(model)
    structure = model.get_layer("lstm").kept_structure()
    row = report.layers[1]
    assert row["weights_kept"] == structure["kernel"].sum() + structure["recurrent_kernel"].sum()
    assert row["groups"] == {
        "inputs": [int(structure["inputs"].sum()), 4],
        "units": [int(structure["units"].sum()), 3],
        "gates": [int(structure["gates"].sum()), 12],
    }
    assert report.total["groups"]["words"] == [int(model.layers[0].word_mask().sum()), 30]


def test_plain_equivalent_rejects_return_state():
    layer = SparseVDLSTM(2, return_state=True, name="stateful_output")
    layer.build((None, 4, 3))
    with pytest.raises(ValueError, match="stateful_output.*return_state"):
        layer.plain_equivalent()
