"""FGE: the learning rate per step against the paper's formula, the SGD trajectory and the
snapshots against a NumPy simulation, the ensemble's prediction against NumPy, errors, and
MirroredStrategy against one device."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from numpy_mlp import mlp, mlp_logits, softmax
from tfbayes.swag import FGE, fge_learning_rate
from fresh_process import run_script


def _numpy_schedule(step, c, lr_max, lr_min):
    """The triangle written independently: lr_max - (lr_max - lr_min) (1 - |2t - 1|)."""
    t = (np.mod(step, c) + 1) / c
    return lr_max - (lr_max - lr_min) * (1 - np.abs(2 * t - 1))


@pytest.mark.parametrize("c", [2, 5, 8, 31])
def test_schedule_equals_formula(c):
    steps = np.arange(3 * c)
    got = np.array([fge_learning_rate(s, c, 0.05, 0.001) for s in steps])
    np.testing.assert_allclose(got, _numpy_schedule(steps, c, 0.05, 0.001), rtol=1e-12)
    # Minimum lr_min at mid-cycle (t = 1/2, even c), back to lr_max at each cycle's end.
    if c % 2 == 0:
        np.testing.assert_allclose(got[c // 2 - 1 :: c], 0.001, rtol=1e-12)
    np.testing.assert_allclose(got[c - 1 :: c], 0.05, rtol=1e-12)
    assert got.argmin() == c // 2 - 1


class _Recorder(keras.callbacks.Callback):
    """The learning rate each step used and the kernel after each step."""

    def __init__(self):
        super().__init__()
        self.rates, self.kernels = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append(float(np.asarray(self.model.optimizer.learning_rate)))
        self.kernels.append(self.model.get_weights()[0].copy())


@pytest.mark.parametrize("jit", [False, True])
@pytest.mark.parametrize("n,cycle_epochs", [(20, 2), (25, 1)])
def test_trajectory_and_snapshots_equal_numpy_sgd(n, cycle_epochs, jit, dtype):
    """Linear least squares with plain SGD in batches of 5 (in order): every step uses the
    FGE rate, and the snapshots are the weights after the steps with the smallest rate.
    n = 20: 4 steps an epoch, c = 8, snapshots after steps 3, 11, 19. n = 25: c = 5 (odd),
    snapshots after steps 1, 6, 11, 16, 21."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(dtype)
    y = (x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n)).astype(dtype)[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,), dtype=dtype), keras.layers.Dense(1, use_bias=False, dtype=dtype)]
    )
    model.compile(keras.optimizers.SGD(0.5), "mse", jit_compile=jit)
    w = np.asarray(model.get_weights()[0], np.float64)
    fge, recorder = FGE(cycle_epochs, lr_max=0.1, lr_min=0.005), _Recorder()
    model.fit(x, y, epochs=5, batch_size=5, shuffle=False, verbose=0, callbacks=[fge, recorder])
    c = cycle_epochs * n // 5
    assert fge.cycle_steps == c
    steps = np.arange(5 * n // 5)
    rates = _numpy_schedule(steps, c, 0.1, 0.005)
    np.testing.assert_allclose(recorder.rates, rates, rtol=1e-6)
    trajectory = []
    for s in steps:
        xb, yb = (np.asarray(a, np.float64) for a in (x[s * 5 % n :][:5], y[s * 5 % n :][:5]))
        w = w - rates[s] * 2 / 5 * xb.T @ (xb @ w - yb)
        trajectory.append(w)
    # Keras keeps the learning rate and the loss in float32, also for a float64 model
    # (measured: 7e-6 relative after 20 float64 steps).
    rtol = 1e-4 if dtype == np.float32 else 2e-5
    np.testing.assert_allclose(np.stack(recorder.kernels), np.stack(trajectory), rtol=rtol)
    minima = [
        s for s in steps if rates[s] == rates[:c].min() and (s % c == 0 or rates[s - 1] > rates[s])
    ]
    assert minima == list(steps[c // 2 - 1 :: c])
    assert len(fge.snapshots) == len(minima)
    for snapshot, s in zip(fge.snapshots, minima):
        np.testing.assert_allclose(snapshot[0], trajectory[s], rtol=rtol)


def _fge_on_blobs(batch_norm, output_activation=None, dtype="float32"):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, size=60)
    x = (rng.normal(size=(60, 4)) + np.eye(3, 4)[y] * 2).astype(dtype)
    keras.utils.set_random_seed(1)
    model = mlp(4, 8, 3, batch_norm, dtype, output_activation)
    model.compile(
        keras.optimizers.SGD(momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=output_activation is None),
    )
    fge = FGE(cycle_epochs=2, lr_max=0.2, lr_min=0.01)
    model.fit(x, y, epochs=6, batch_size=20, verbose=0, callbacks=[fge])
    return x, model, fge


def test_predict_equals_numpy_mean_of_snapshots(dtype):
    x, model, fge = _fge_on_blobs(batch_norm=False, dtype=dtype)
    assert len(fge.snapshots) == 3
    before = model.get_weights()
    want = np.mean([softmax(mlp_logits(s, x)) for s in fge.snapshots], axis=0)
    rtol = 1e-5 if dtype == np.float32 else 1e-6  # model.predict casts arrays to float32
    np.testing.assert_allclose(fge.predict(x, from_logits=True), want, rtol=rtol, atol=1e-7)
    for got, kept in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, kept)
    # The snapshots differ: the ensemble is not one model repeated.
    assert np.abs(fge.snapshots[0][0] - fge.snapshots[-1][0]).max() > 1e-3


def test_predict_probabilities_output():
    x, model, fge = _fge_on_blobs(batch_norm=False, output_activation="softmax")
    want = np.mean([softmax(mlp_logits(s, x)) for s in fge.snapshots], axis=0)
    np.testing.assert_allclose(fge.predict(x, batch_size=16), want, rtol=1e-5, atol=1e-7)


def test_predict_with_batch_norm_equals_numpy():
    """With bn_data each snapshot gets exact statistics over bn_data; without, it keeps the
    moving statistics it had when it was taken."""
    x, model, fge = _fge_on_blobs(batch_norm=True)
    bn_x = x[:45]
    # get_weights order: kernel, bias, gamma, beta, moving mean, moving variance, kernel, bias.
    trainable = [[s[i] for i in (0, 1, 2, 3, 6, 7)] for s in fge.snapshots]
    with_update = np.mean([softmax(mlp_logits(w, x, bn_x=bn_x)) for w in trainable], axis=0)
    kept = np.mean(
        [
            softmax(mlp_logits(w, x, bn_stats=(s[4], s[5])))
            for w, s in zip(trainable, fge.snapshots)
        ],
        axis=0,
    )
    assert np.abs(with_update - kept).max() > 1e-3  # the two are distinguishable
    np.testing.assert_allclose(
        fge.predict(x, bn_data=bn_x, from_logits=True), with_update, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(fge.predict(x, from_logits=True), kept, rtol=1e-4, atol=1e-6)


def _linear(**compile_kwargs):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(compile_kwargs.pop("optimizer", "sgd"), "mse", **compile_kwargs)
    return model


def test_errors():
    for args, match in [
        ((0, 0.1, 0.01), "cycle_epochs: expected an int >= 1, got 0"),
        ((1.5, 0.1, 0.01), "cycle_epochs: expected an int >= 1, got 1.5"),
        ((True, 0.1, 0.01), "cycle_epochs: expected an int >= 1, got True"),
        ((2, 0.0, 0.0), "lr_max: expected a positive finite number, got 0.0"),
        ((2, float("nan"), 0.0), "lr_max: expected a finite real number"),
        ((2, 0.1, 0.2), r"lr_min: expected a number in \[0, lr_max\]"),
        ((2, 0.1, -0.01), r"lr_min: expected a number in \[0, lr_max\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            FGE(*args)
    with pytest.raises(ValueError, match="steps_per_epoch: expected an int >= 1, got 0"):
        FGE(2, 0.1, 0.01, steps_per_epoch=0)
    x, y = np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32")
    fge = FGE(1, 0.1, 0.01)
    with pytest.raises(ValueError, match="FGE has no snapshots yet"):
        fge.predict(x)
    with pytest.raises(
        ValueError, match="cycle_epochs: expected a cycle of at least 2 steps, got 1 epoch"
    ):
        _linear().fit(x, y, batch_size=4, verbose=0, callbacks=[fge])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    with pytest.raises(ValueError, match="model: the optimizer's learning rate is a schedule"):
        _linear(optimizer=keras.optimizers.SGD(schedule)).fit(
            x, y, batch_size=1, verbose=0, callbacks=[fge]
        )
    with pytest.raises(
        ValueError,
        match="model: FGE sets the learning rate before every step and needs steps_per_execution=1",
    ):
        _linear(steps_per_execution=2).fit(x, y, batch_size=1, verbose=0, callbacks=[fge])
    unsized = tf.data.Dataset.from_generator(
        lambda: iter([(x, y)]), output_signature=(tf.TensorSpec((4, 2)), tf.TensorSpec((4, 1)))
    )
    with pytest.raises(ValueError, match="steps_per_epoch: model.fit does not know"):
        _linear().fit(unsized, shuffle=False, verbose=0, callbacks=[FGE(2, 0.1, 0.01)])
    # With steps_per_epoch given, an unsized dataset works: c = 2, snapshots after steps 0, 2.
    fge = FGE(2, 0.1, 0.01, steps_per_epoch=1)
    _linear().fit(
        unsized.repeat(), epochs=3, steps_per_epoch=1, shuffle=False, verbose=0, callbacks=[fge]
    )
    assert fge.cycle_steps == 2 and len(fge.snapshots) == 2


DISTRIBUTED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfbayes.swag import FGE

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=64)

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                                      keras.layers.Dense(2)])
            model.compile(keras.optimizers.SGD(0.1),
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        fge = FGE(2, lr_max=0.1, lr_min=0.01)
        model.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=[fge])
        return np.stack([np.concatenate([w.ravel() for w in s]) for s in fge.snapshots]), \\
            fge.predict(x, from_logits=True)

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    snaps_m, probs_m = run(mirrored)
    snaps_1, probs_1 = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    np.savez(sys.argv[1], snaps_m=snaps_m, probs_m=probs_m, snaps_1=snaps_1, probs_1=probs_1)
""")


def test_mirrored_strategy_equals_single_device(tmp_path):
    """Two replicas (batches of 16 split in two): the same snapshots and ensemble as one
    device, up to float32 summation order."""
    out = tmp_path / "out.npz"
    r = run_script(DISTRIBUTED, out, timeout=300)
    assert r["snaps_m"].shape == r["snaps_1"].shape == (2, 3 * 4 + 4 + 4 * 2 + 2)
    np.testing.assert_allclose(r["snaps_m"], r["snaps_1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r["probs_m"], r["probs_1"], rtol=1e-5, atol=1e-6)
