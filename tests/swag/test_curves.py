"""Mode-connecting curves: exact endpoints, the closed-form combination of the bends against
NumPy, the forward pass and evaluation against a NumPy network, training on real data, errors,
saving, and MirroredStrategy against one device."""

import math
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.datasets import load_digits

from numpy_mlp import mlp, mlp_logits, softmax
from tf_modes import MODES, run_in_mode
from tfbayes.swag import Curve, curve_coefficients, evaluate_curve, fit_curve
from fresh_process import run_script

TS = [0.0, 0.1, 1 / 3, 0.5, 0.6, 0.77, 0.999, 1.0]


def _numpy_coefficients(curve, n, t):
    """Bernstein weights from math.comb, or the two weights of the segment holding t."""
    if curve in ("bezier", "line"):
        return np.array([math.comb(n - 1, k) * t**k * (1 - t) ** (n - 1 - k) for k in range(n)])
    i = min(int(np.floor(t * (n - 1))), n - 2)
    s = t * (n - 1) - i
    c = np.zeros(n)
    c[i], c[i + 1] = 1 - s, s
    return c


def _endpoints(dtype, batch_norm=False, seed=0):
    models = []
    for s in (seed, seed + 1):
        keras.utils.set_random_seed(s)
        models.append(mlp(5, 4, 3, batch_norm, dtype))
    return models


def _randomize_bends(curve, seed=0):
    """Middle bends off the straight line, so the combination is not trivially the line."""
    rng = np.random.default_rng(seed)
    for bend in curve.bends[1:-1]:
        for var in bend:
            var.assign(rng.normal(size=var.shape).astype(var.dtype))


@pytest.mark.parametrize(
    "curve,n", [("bezier", 3), ("bezier", 5), ("polychain", 3), ("polychain", 4), ("line", 2)]
)
def test_coefficients_equal_closed_form(curve, n, dtype):
    for t in TS:
        c = curve_coefficients(curve, n, t, dtype).numpy()
        assert c.dtype == dtype
        np.testing.assert_allclose(c, _numpy_coefficients(curve, n, t), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(curve_coefficients(curve, n, 0.0, dtype), np.eye(n)[0])
    np.testing.assert_array_equal(curve_coefficients(curve, n, 1.0, dtype), np.eye(n)[-1])


@pytest.mark.parametrize(
    "curve,n", [("bezier", 3), ("bezier", 4), ("polychain", 3), ("polychain", 5), ("line", 2)]
)
def test_weights_at_equal_bend_combination(curve, n, dtype):
    model_a, model_b = _endpoints(dtype)
    c = Curve(model_a, model_b, curve=curve, num_bends=n)
    _randomize_bends(c)
    assert len(c.trainable_variables) == (n - 2) * len(model_a.trainable_variables)
    np.testing.assert_allclose(c.coefficients(0.3), _numpy_coefficients(curve, n, 0.3), rtol=1e-12)
    # The endpoints exactly.
    for got, want in zip(c.weights_at(0.0), model_a.trainable_variables):
        np.testing.assert_array_equal(got, want.numpy())
    for got, want in zip(c.weights_at(1), model_b.trainable_variables):
        np.testing.assert_array_equal(got, want.numpy())
    # Any t: sum_k c_k(t) theta_k in float64 NumPy.
    bends = [[np.asarray(v.numpy(), np.float64) for v in bend] for bend in c.bends]
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    for t in TS:
        coeffs = _numpy_coefficients(curve, n, t)
        for j, got in enumerate(c.weights_at(t)):
            assert got.dtype == dtype
            want = sum(coeffs[k] * bends[k][j] for k in range(n))
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)


def test_bends_start_on_the_line():
    """Bends initialized at k/(n-1) along the segment: every curve type is the line."""
    model_a, model_b = _endpoints("float64")
    line = Curve(model_a, model_b, curve="line")
    for curve in ("bezier", "polychain"):
        c = Curve(model_a, model_b, curve=curve, num_bends=4)
        for t in TS:
            for got, want in zip(c.weights_at(t), line.weights_at(t)):
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
def test_call_at_t_equals_numpy_network(mode, dtype):
    model_a, model_b = _endpoints(dtype)
    c = Curve(model_a, model_b, curve="bezier", num_bends=4)
    _randomize_bends(c)
    x = np.random.default_rng(1).normal(size=(7, 5)).astype(dtype)
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    for t in (0.0, 0.3, 1.0):
        want = mlp_logits(c.weights_at(t), x)
        got = run_in_mode(lambda x: c(x, t=t), mode, tf.constant(x))
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(c.model_at(t)(x), want, rtol=rtol, atol=rtol)


def test_random_t_is_one_point_of_the_curve():
    """With t=None each call runs the network at one t ~ U(0, 1): the output equals the NumPy
    network at some t, found on a fine grid; the draws spread over [0, 1]."""
    model_a, model_b = _endpoints("float64")
    c = Curve(model_a, model_b, curve="polychain", seed=3)
    _randomize_bends(c)
    x = np.random.default_rng(2).normal(size=(4, 5))
    bends = [[v.numpy() for v in bend] for bend in c.bends]
    grid = np.linspace(0, 1, 501)
    outs = np.stack(
        [
            mlp_logits(
                [
                    sum(
                        ck * bend[j]
                        for ck, bend in zip(_numpy_coefficients("polychain", 3, t), bends)
                    )
                    for j in range(4)
                ],
                x,
            )
            for t in grid
        ]
    )
    found = []
    for _ in range(20):
        err = np.abs(outs - c(x).numpy()).max(axis=(1, 2))
        assert err.min() < 1e-2 * np.abs(outs).max()
        found.append(grid[err.argmin()])
    assert min(found) < 0.25 and max(found) > 0.75


def test_evaluate_curve_with_batch_norm_equals_numpy(dtype):
    """Loss and accuracy at t with BatchNormalization statistics recomputed at t."""
    model_a, model_b = _endpoints(dtype, batch_norm=True)
    c = Curve(model_a, model_b, curve="bezier")
    _randomize_bends(c)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 5)).astype(dtype)
    y = rng.integers(0, 3, size=40)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    result = evaluate_curve(c, (x, y), [0.0, 0.4, 1.0], loss=loss, batch_size=16)
    np.testing.assert_array_equal(result["t"], [0.0, 0.4, 1.0])
    for i, t in enumerate(result["t"]):
        logits = mlp_logits(c.weights_at(t), x, bn_x=x)
        nll = -np.log(softmax(logits)[np.arange(40), y]).mean()
        np.testing.assert_allclose(result["loss"][i], nll, rtol=1e-4)
        assert result["accuracy"][i] == pytest.approx(np.mean(logits.argmax(1) == y))
    # model_at recomputes the statistics the same way.
    model = c.model_at(0.4, bn_data=x, batch_size=16)
    np.testing.assert_allclose(
        model(x), mlp_logits(c.weights_at(0.4), x, bn_x=x), rtol=1e-4, atol=1e-4
    )


def _digits_endpoints():
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    models = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = mlp(64, 32, 10, batch_norm=False)
        model.compile(
            keras.optimizers.Adam(1e-2),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(x, y, epochs=15, batch_size=128, verbose=0)
        models.append(model)
    return x, y, models


def test_fit_curve_beats_the_line_on_digits():
    """A quadratic Bezier curve trained between two MLPs on sklearn's digits (jit-compiled
    training steps): its midpoint loss is far below the straight line's, the endpoints stay.

    Measured with these seeds: endpoint losses 0.060 and 0.063 (train accuracy 99.0 and
    98.6 %), line midpoint 0.361 (89.1 %), curve midpoint 0.075 (98.7 %)."""
    x, y, (model_a, model_b) = _digits_endpoints()
    line = Curve(model_a, model_b, curve="line")
    on_line = evaluate_curve(line, (x, y), [0.0, 0.5, 1.0], loss=model_a.loss)
    curve = fit_curve(
        model_a,
        model_b,
        (x, y),
        curve="bezier",
        epochs=10,
        batch_size=128,
        optimizer=keras.optimizers.Adam(1e-2),
        seed=0,
        jit_compile=True,
    )
    assert curve.jit_compile
    on_curve = evaluate_curve(curve, (x, y), [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(on_curve["loss"][[0, 2]], on_line["loss"][[0, 2]])
    assert on_curve["loss"][1] < on_line["loss"][1] / 2
    assert on_curve["loss"][1] < 2 * on_curve["loss"][[0, 2]].max()
    assert on_curve["accuracy"][1] > on_line["accuracy"][1] + 0.05
    for bend, model in ((curve.bends[0], model_a), (curve.bends[-1], model_b)):
        for var, want in zip(bend, model.trainable_variables):
            np.testing.assert_array_equal(var.numpy(), want.numpy())


def test_fit_curve_trains_the_middle_bend_from_a_dataset_without_warnings():
    """A batched tf.data pipeline is used as it is: the middle bend moves, the endpoints stay,
    and Keras does not warn that a dataset ignores shuffle=True."""
    model_a, model_b = _endpoints("float32")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 5)).astype("float32"), rng.integers(0, 3, 64)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    before = [v.numpy() for v in Curve(model_a, model_b, seed=0).bends[1]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curve = fit_curve(model_a, model_b, data, epochs=1, loss=loss, seed=0)
    assert any(not np.allclose(v.numpy(), b) for v, b in zip(curve.bends[1], before))
    for bend, model in ((curve.bends[0], model_a), (curve.bends[-1], model_b)):
        for var, want in zip(bend, model.trainable_variables):
            np.testing.assert_array_equal(var.numpy(), want.numpy())


def test_errors():
    model_a, model_b = _endpoints("float32")
    wider = mlp(5, 6, 3, batch_norm=False)
    with pytest.raises(
        ValueError,
        match=r"model_b: expected the architecture of model_a.*"
        r"\(5, 6\)",
    ):
        Curve(model_a, wider)
    with pytest.raises(ValueError, match="model_b: expected the architecture of model_a"):
        Curve(model_a, mlp(5, 4, 3, batch_norm=True))
    with pytest.raises(ValueError, match="model_b: expected the architecture of model_a"):
        Curve(model_a, mlp(5, 4, 3, batch_norm=False, dtype="float64"))
    with pytest.raises(TypeError, match="model_a: expected a Keras model, got ndarray"):
        Curve(np.zeros(3), model_b)
    with pytest.raises(ValueError, match="model_b: expected a built model"):
        Curve(model_a, keras.Sequential([keras.layers.Dense(3)]))
    for curve, n, match in [
        ("spline", None, "curve: expected one of"),
        ("bezier", 2, r"num_bends: expected an int >= 3.*got 2"),
        ("polychain", 3.0, "num_bends: expected an int >= 3"),
        ("bezier", True, "num_bends: expected an int >= 3"),
        ("line", 3, "num_bends: the line has 2 bends"),
    ]:
        with pytest.raises(ValueError, match=match):
            Curve(model_a, model_b, curve=curve, num_bends=n)
    c = Curve(model_a, model_b)
    for t in (-0.1, 1.5, float("nan"), "0.5", True):
        with pytest.raises(ValueError, match=r"t: expected a number in \[0, 1\]"):
            c.weights_at(t)
        with pytest.raises(ValueError, match=r"t: expected a number in \[0, 1\]"):
            c.model_at(t)
        with pytest.raises(ValueError, match=r"t: expected a number in \[0, 1\]"):
            c(np.zeros((1, 5), "float32"), t=t)
    x, y = np.zeros((4, 5), "float32"), np.zeros(4, "int64")
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(ValueError, match=r"ts: expected a number in \[0, 1\], got 2"):
        evaluate_curve(c, (x, y), [0.5, 2], loss=loss)
    with pytest.raises(ValueError, match="ts: expected a non-empty sequence"):
        evaluate_curve(c, (x, y), [], loss=loss)
    with pytest.raises(ValueError, match="loss: the curve was not compiled with a loss"):
        evaluate_curve(c, (x, y), [0.5])
    with pytest.raises(TypeError, match="curve: expected a tfbayes.swag.Curve, got Functional"):
        evaluate_curve(model_a, (x, y), [0.5], loss=loss)
    with pytest.raises(ValueError, match="loss: model_a was not compiled with a loss"):
        fit_curve(model_a, model_b, (x, y))
    with pytest.raises(ValueError, match="curve: the line has no bends to train"):
        fit_curve(model_a, model_b, (x, y), curve="line", loss=loss)
    bn_a, bn_b = _endpoints("float32", batch_norm=True)
    with pytest.raises(ValueError, match="bn_data: the model has BatchNormalization layers"):
        Curve(bn_a, bn_b).model_at(0.5)


def test_save_and_load(tmp_path):
    model_a, model_b = _endpoints("float32", batch_norm=True)
    curve = Curve(model_a, model_b, curve="polychain", num_bends=4, seed=5)
    _randomize_bends(curve)
    curve.save(tmp_path / "curve.keras")
    loaded = keras.saving.load_model(tmp_path / "curve.keras")
    assert isinstance(loaded, Curve)
    assert (loaded.curve, loaded.num_bends, loaded.seed) == ("polychain", 4, 5)
    assert len(loaded.trainable_variables) == len(curve.trainable_variables)
    for t in (0.0, 0.3, 0.8, 1.0):
        for got, want in zip(loaded.weights_at(t), curve.weights_at(t)):
            np.testing.assert_array_equal(got, want)
    # model_a's BatchNormalization statistics travel with the curve.
    x = np.random.default_rng(4).normal(size=(6, 5)).astype("float32")
    for got, want in zip(loaded.endpoint_state, model_a.non_trainable_weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_allclose(
        loaded.model_at(0.3, bn_data=x)(x), curve.model_at(0.3, bn_data=x)(x), rtol=1e-6, atol=1e-6
    )


DISTRIBUTED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfbayes.swag import evaluate_curve, fit_curve

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=64)

    def endpoint(seed):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                                  keras.layers.Dense(2)])
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    def run(strategy):
        with strategy.scope():
            model_a, model_b = endpoint(1), endpoint(2)
            curve = fit_curve(model_a, model_b, (x, y), epochs=2, batch_size=16, seed=0,
                              optimizer=keras.optimizers.SGD(0.1))
        along = evaluate_curve(curve, (x, y), [0.0, 0.5, 1.0])
        return np.concatenate([v.numpy().ravel() for v in curve.bends[1]]), along["loss"]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    bend_m, loss_m = run(mirrored)
    bend_1, loss_1 = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    np.savez(sys.argv[1], bend_m=bend_m, loss_m=loss_m, bend_1=bend_1, loss_1=loss_1)
""")


def test_mirrored_strategy_equals_single_device(tmp_path):
    """fit_curve and evaluate_curve under two replicas: the same trained bend (the replicas
    share each batch's t) and losses as on one device."""
    out = tmp_path / "out.npz"
    r = run_script(DISTRIBUTED, out, timeout=300)
    assert np.abs(r["bend_1"]).max() > 0
    np.testing.assert_allclose(r["bend_m"], r["bend_1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r["loss_m"], r["loss_1"], rtol=1e-5)
