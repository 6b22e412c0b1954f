"""SparseVDLSTM and SparseVDGRU against keras.layers.LSTM/GRU: the recurrent API of Keras.

With every log sigma^2 at -60 (so every log alpha is at its clip, -8) and the
group means at 1, a Sparse-VD recurrent layer is its Keras counterpart, at
inference exactly and in training up to noise of standard deviation e^-30.
"""

import keras
import numpy as np
import pytest

from tfbayes.layers import (
    SparseVDGRU,
    SparseVDGRUCell,
    SparseVDLSTM,
    SparseVDLSTMCell,
    set_num_examples,
)
from tf_modes import MODES, run_in_mode

PAIRS = [(SparseVDLSTM, keras.layers.LSTM), (SparseVDGRU, keras.layers.GRU)]
IDS = ["lstm", "gru"]
QUIET = dict(log_sigma2_initializer=-60.0, num_examples=10)
"""Every log alpha at its minimum: the layer is deterministic, its weights the means."""


def _tol(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def _pair(ours_class, keras_class, dtype, x, **kwargs):
    """Built (ours, reference) with the reference's random weights copied into ours."""
    reference = keras_class(5, dtype=dtype, **kwargs)
    reference(x)
    ours = ours_class(5, dtype=dtype, **QUIET, **kwargs)
    ours(x)
    _copy_weights(ours, reference)
    return ours, reference


def _copy_weights(ours, reference):
    kernel, recurrent_kernel, bias = reference.get_weights()
    ours.kernel.assign(kernel)
    ours.recurrent_kernel.assign(recurrent_kernel)
    ours.bias.assign(bias)


def _states(keras_class, rng, batch, dtype):
    count = 2 if keras_class is keras.layers.LSTM else 1
    return [rng.normal(size=(batch, 5)).astype(dtype) for _ in range(count)]


def _mask(batch, time):
    mask = np.ones((batch, time), bool)
    mask[0, 4:] = False
    mask[1, :2] = False
    return mask


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_equals_keras_at_minimum_log_alpha(ours_class, keras_class, dtype, mode):
    """Sequences and states, with a mask and an initial state, at inference (and in training,
    eagerly: the noise of standard deviation e^-30 is below float64 round-off)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6, 4)).astype(dtype)
    mask, initial = _mask(3, 6), _states(keras_class, rng, 3, dtype)
    ours, reference = _pair(
        ours_class, keras_class, dtype, x, return_sequences=True, return_state=True
    )
    expected = reference(x, mask=mask, initial_state=initial)
    for training in (False, True) if mode == "eager" else (False,):
        got = run_in_mode(
            lambda v, m, *h: ours(v, mask=m, initial_state=list(h), training=training),
            mode,
            x,
            mask,
            *initial,
        )
        assert isinstance(got, tuple) and len(got) == len(expected)
        for e, g in zip(expected, got):
            np.testing.assert_allclose(
                np.asarray(g), np.asarray(e), atol=_tol(dtype), rtol=_tol(dtype)
            )


@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
@pytest.mark.parametrize(
    "options",
    [
        dict(go_backwards=True),
        dict(unroll=True),
        dict(go_backwards=True, unroll=True, return_sequences=True),
    ],
    ids=["backwards", "unroll", "backwards-unroll-sequences"],
)
def test_go_backwards_and_unroll_equal_keras(ours_class, keras_class, options):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 4)).astype("float32")
    ours, reference = _pair(ours_class, keras_class, "float32", x, **options)
    mask = _mask(3, 6)
    np.testing.assert_allclose(
        np.asarray(ours(x, mask=mask)), np.asarray(reference(x, mask=mask)), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_bidirectional_with_initial_state_and_mask_equals_keras(ours_class, keras_class, dtype):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 6, 4)).astype(dtype)
    mask = _mask(3, 6)
    initial = _states(keras_class, rng, 3, dtype) * 2  # forward states, then backward states
    ours = keras.layers.Bidirectional(
        ours_class(5, return_sequences=True, dtype=dtype, **QUIET), dtype=dtype
    )
    reference = keras.layers.Bidirectional(
        keras_class(5, return_sequences=True, dtype=dtype), dtype=dtype
    )
    ours(x)
    reference(x)
    _copy_weights(ours.forward_layer, reference.forward_layer)
    _copy_weights(ours.backward_layer, reference.backward_layer)
    expected = np.asarray(reference(x, mask=mask, initial_state=initial))
    for training in (False, True):
        got = ours(x, mask=mask, initial_state=initial, training=training)
        np.testing.assert_allclose(np.asarray(got), expected, atol=_tol(dtype), rtol=_tol(dtype))
    # Each direction adds its own KL once per call.
    ours(x, training=True)
    assert len(ours.losses) == 2


@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_stateful_continues_the_sequence(ours_class, keras_class):
    """Two calls of a stateful layer on the halves of a sequence equal one call on all of it;
    reset_state starts over; Keras's stateful layer agrees."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 3)).astype("float32")
    ours, reference = _pair(
        ours_class, keras_class, "float32", x[:, :4], stateful=True, return_sequences=True
    )
    whole = ours_class(5, return_sequences=True, **QUIET)
    whole(x)
    whole.set_weights(ours.get_weights())
    ours.reset_state()
    first, second = np.asarray(ours(x[:, :4])), np.asarray(ours(x[:, 4:]))
    np.testing.assert_allclose(
        np.concatenate([first, second], axis=1), np.asarray(whole(x)), atol=1e-5
    )
    np.testing.assert_allclose(second, np.asarray(reference(x[:, 4:])), atol=1e-5)
    ours.reset_state()
    np.testing.assert_allclose(np.asarray(ours(x[:, :4])), first, atol=1e-6)


@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_return_state_model_trains_and_is_saved(ours_class, keras_class, tmp_path):
    """A functional model reading the returned states trains with fit and round-trips through
    a .keras file; the KL is the layer's, added once per call."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 5, 3)).astype("float32")
    y = rng.normal(size=(16, 1)).astype("float32")
    inputs = keras.Input((5, 3))
    output, *states = ours_class(4, return_state=True, seed=1, name="rnn")(inputs)
    outputs = keras.layers.Dense(1)(keras.layers.Concatenate()([output] + states))
    model = keras.Model(inputs, outputs)
    set_num_examples(model, 160)
    model.compile("adam", "mse", jit_compile=False)
    before = [np.array(w) for w in model.trainable_weights]
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert all(np.any(np.asarray(w) != b) for w, b in zip(model.trainable_weights, before))
    model(x, training=True)
    rnn = model.get_layer("rnn")
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]), float(rnn.kl_divergence()) / 160, rtol=1e-6)
    path = tmp_path / "rnn.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.get_layer("rnn").get_config() == rnn.get_config()


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_mixed_precision(ours_class, keras_class, policy):
    """Parameters and KL in float32, outputs in the compute dtype; the KL equals the float32
    model's, and the loss equals it within the compute dtype's precision."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(8, 5, 3)).astype("float32")
    y = rng.normal(size=(8, 1)).astype("float32")

    def model_with(dtype):
        return keras.Sequential(
            [
                keras.Input((5, 3)),
                ours_class(6, num_examples=100, dtype=dtype, seed=0),
                keras.layers.Dense(1, dtype="float32"),
            ]
        )

    reference, model = model_with("float32"), model_with(policy)
    model.set_weights(reference.get_weights())
    layer = model.layers[0]
    compute = keras.mixed_precision.DTypePolicy(policy).compute_dtype
    assert layer.kernel.dtype == "float32" and layer(x).dtype == compute
    model(x, training=True)
    reference(x, training=True)
    assert model.losses[0].dtype == "float32"
    np.testing.assert_allclose(float(model.losses[0]), float(reference.losses[0]), rtol=1e-6)
    eps = float(np.finfo(compute).eps) if compute == "float16" else 2.0**-8
    np.testing.assert_allclose(
        np.asarray(model(x), np.float32), np.asarray(reference(x)), atol=20 * eps
    )
    if policy == "mixed_float16":  # where the KL used to reach add_loss as float16
        model.compile("adam", "mse", jit_compile=False)
        history = model.fit(x, y, epochs=1, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))


@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_dropout_is_off_at_inference_and_on_in_training(ours_class, keras_class):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    ours, reference = _pair(ours_class, keras_class, "float32", x)
    noisy = ours_class(5, dropout=0.5, recurrent_dropout=0.3, seed=4, **QUIET)
    noisy(x)
    noisy.set_weights(ours.get_weights())
    np.testing.assert_allclose(np.asarray(noisy(x)), np.asarray(reference(x)), atol=1e-5)
    assert np.abs(np.asarray(noisy(x, training=True)) - np.asarray(reference(x))).max() > 1e-2


@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_config_matches_keras_and_round_trips(ours_class, keras_class):
    kwargs = dict(
        units=3,
        activation="relu",
        return_sequences=True,
        go_backwards=True,
        stateful=False,
        unroll=True,
        dropout=0.25,
        recurrent_dropout=0.1,
        kernel_regularizer="l2",
        recurrent_constraint="non_neg",
        seed=3,
    )
    layer = ours_class(groups=("gates",), prior="ard", threshold=2.5, num_examples=7, **kwargs)
    config = layer.get_config()
    assert ours_class.from_config(config).get_config() == config
    assert set(keras_class(**kwargs).get_config()) <= set(config)


@pytest.mark.parametrize("ours_class,keras_class", PAIRS, ids=IDS)
def test_regularizer_and_constraint_act_on_theta(ours_class, keras_class):
    x = np.ones((2, 3, 4), "float32")
    layer = ours_class(
        3, kernel_regularizer=keras.regularizers.L2(0.5), recurrent_constraint="non_neg"
    )  # no N: no KL among the losses
    layer(x)
    kernel = np.asarray(layer.kernel)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), 0.5 * np.sum(kernel**2), rtol=1e-5)
    assert layer.recurrent_kernel.constraint is not None
    assert layer.kernel_log_sigma2.regularizer is None


@pytest.mark.parametrize("ours_class", [SparseVDLSTM, SparseVDGRU], ids=IDS)
@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(units=0), "units"),
        (dict(units=2.5), "units"),
        (dict(units=3, groups=("hidden", "neurons")), "groups"),
        (dict(units=3, groups="gates"), "groups"),
        (dict(units=3, dropout=1.0), "dropout"),
        (dict(units=3, recurrent_dropout=-0.1), "recurrent_dropout"),
        (dict(units=3, dropout="half"), "dropout"),
        (dict(units=3, use_cudnn=True), "use_cudnn"),
        (dict(units=3, threshold=float("nan")), "threshold"),
        (dict(units=3, prior="gaussian"), "prior"),
    ],
)
def test_bad_arguments(ours_class, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ours_class(**kwargs)


@pytest.mark.parametrize("ours_class", [SparseVDLSTM, SparseVDGRU], ids=IDS)
def test_bad_inputs(ours_class):
    with pytest.raises(ValueError, match="input_dim"):
        ours_class(3).build((None, 4, None))
    with pytest.raises(ValueError, match="ndim=3"):
        ours_class(3)(np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="num_examples"):
        ours_class(3)(np.zeros((2, 3, 4), "float32"), training=True)
    with pytest.raises(ValueError, match="batch size must be static"):
        keras.Sequential([keras.Input((3, 4)), ours_class(3, stateful=True)])


@pytest.mark.parametrize("cell_class", [SparseVDLSTMCell, SparseVDGRUCell], ids=IDS)
def test_cell_outside_a_sparse_vd_layer_names_the_missing_draw(cell_class):
    """keras.layers.RNN does not draw the shared noise before its loop: the cell says so."""
    with pytest.raises(RuntimeError, match="shared noise.*SparseVDRNN"):
        keras.layers.RNN(cell_class(3))(np.zeros((2, 3, 4), "float32"))
