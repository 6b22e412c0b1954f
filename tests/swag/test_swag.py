"""SWA and SWAG callbacks: moments against NumPy over the recorded weights, the SWAG
Gaussian's samples against its formula, the SWA schedule, saving, and bad input."""

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from tfbayes.swag import SWA, SWAG, SWAGDiag, FlatWeights, swa_learning_rate


class Recorder(keras.callbacks.Callback):
    """Records the flat trainable weights when the SWA/SWAG callback before it collects."""

    def __init__(self, every_n_steps=None, start_epoch=0):
        super().__init__()
        self.every_n_steps, self.start_epoch, self.weights = every_n_steps, start_epoch, []
        self._epoch, self._steps = 0, 0

    def _read(self):
        self.weights.append(
            np.concatenate(
                [np.asarray(v.numpy(), np.float64).ravel() for v in self.model.trainable_variables]
            )
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.every_n_steps and self._epoch >= self.start_epoch:
            self._steps += 1
            if self._steps % self.every_n_steps == 0:
                self._read()

    def on_epoch_end(self, epoch, logs=None):
        if not self.every_n_steps and epoch >= self.start_epoch:
            self._read()


def numpy_swag(weights, max_rank):
    """Mean, biased variance and the last ``max_rank`` deviations w_i - mean(w_1..w_i)."""
    w = np.asarray(weights, np.float64)
    running = np.cumsum(w, 0) / np.arange(1, len(w) + 1)[:, None]
    return w.mean(0), w.var(0), (w - running)[-max_rank:]


def regression_data(n=64, d=3, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(dtype)
    y = (x @ rng.normal(size=(d, 2)) + rng.normal(size=(n, 2))).astype(dtype)
    return x, y


def make_model(kind, dtype="float32", d=3):
    keras.utils.set_random_seed(0)
    if kind == "sequential":
        return keras.Sequential(
            [
                keras.Input((d,), dtype=dtype),
                keras.layers.Dense(4, activation="tanh", dtype=dtype),
                keras.layers.Dense(2, dtype=dtype),
            ]
        )
    if kind == "functional":
        inputs = keras.Input((d,), dtype=dtype)
        hidden = keras.layers.Dense(4, activation="tanh", dtype=dtype)(inputs)
        return keras.Model(inputs, keras.layers.Dense(2, dtype=dtype)(hidden))

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(4, activation="tanh", dtype=dtype)
            self.out = keras.layers.Dense(2, dtype=dtype)

        def call(self, x):
            return self.out(self.hidden(x))

    model = Net()
    model(np.zeros((1, d), dtype))
    return model


def fit(model, callbacks, epochs=5, jit_compile=False, lr=0.1, dtype=np.float32, **kwargs):
    x, y = regression_data(dtype=dtype)
    model.compile(keras.optimizers.SGD(lr), "mse", jit_compile=jit_compile)
    model.fit(
        x, y, batch_size=16, epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks, **kwargs
    )


def assert_moments_match(moments, weights, max_rank, dtype):
    mean, variance, deviations = numpy_swag(weights, max_rank)
    scale = np.abs(np.asarray(weights)).max()
    atol = 100 * np.finfo(dtype).eps * scale
    np.testing.assert_allclose(moments.mean, mean, rtol=0, atol=atol)
    np.testing.assert_allclose(moments.variance(), variance, rtol=0, atol=atol * scale)
    np.testing.assert_allclose(
        moments.second_moment(), np.mean(np.square(weights), 0), rtol=0, atol=atol * scale
    )
    assert moments.deviations().shape == deviations.shape
    np.testing.assert_allclose(moments.deviations(), deviations, rtol=0, atol=atol)


@pytest.mark.parametrize(
    "kind,jit", [("sequential", False), ("functional", True), ("subclassed", False)]
)
def test_moments_equal_numpy_per_epoch(kind, jit, dtype):
    model = make_model(kind, np.dtype(dtype).name)
    swag = SWAG(start_epoch=1, max_rank=3, swa_lr=0.05, set_weights_at_end=False)
    recorder = Recorder(start_epoch=1)
    fit(model, [swag, recorder], epochs=7, jit_compile=jit, dtype=dtype)
    assert swag.moments.count == len(recorder.weights) == 6
    assert swag.moments.dtype == np.dtype(dtype)
    assert_moments_match(swag.moments, recorder.weights, 3, dtype)
    assert np.ptp(np.asarray(recorder.weights), 0).max() > 1e-3  # the weights did move


def test_moments_every_n_steps_and_swa_end_weights():
    model = make_model("sequential")
    swag = SWAG(start_epoch=1, max_rank=4, every_n_steps=2)
    recorder = Recorder(every_n_steps=2, start_epoch=1)
    fit(model, [swag, recorder], epochs=4)
    assert swag.moments.count == len(recorder.weights) == 6  # 3 epochs x 4 steps / 2
    assert_moments_match(swag.moments, recorder.weights, 4, np.float32)
    # At the end the model holds the SWA mean.
    np.testing.assert_allclose(FlatWeights(model).read(), np.mean(recorder.weights, 0), atol=1e-6)


def test_swa_callback_schedule_and_bn():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(5),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(2),
        ]
    )
    x, y = regression_data()

    class LRLog(keras.callbacks.Callback):
        rates = []

        def on_epoch_end(self, epoch, logs=None):
            self.rates.append(float(np.asarray(self.model.optimizer.learning_rate)))

    swa = SWA(start_epoch=5, swa_lr=0.01, bn_data=x)
    recorder = Recorder(start_epoch=5)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.fit(x, y, batch_size=16, epochs=8, verbose=0, callbacks=[swa, recorder, LRLog()])
    # t = epoch / 5: 1 until t = 0.5, then linear to 0.01 / 0.1 at t = 0.9: by hand,
    # t = 0.6 -> 0.1 * (1 - 0.9 * 0.25), t = 0.8 -> 0.1 * (1 - 0.9 * 0.75).
    expected = [0.1, 0.1, 0.1, 0.0775, 0.0325, 0.01, 0.01, 0.01]
    np.testing.assert_allclose(LRLog.rates, expected, rtol=1e-6)
    np.testing.assert_allclose(FlatWeights(model).read(), np.mean(recorder.weights, 0), atol=1e-6)
    assert swa.moments.m2 is None and swa.moments.deviations().shape == (0, swa.moments.size)
    bn = model.layers[1]
    mean, variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    kernel, bias = model.layers[0].get_weights()
    np.testing.assert_allclose(mean, (x @ kernel + bias).mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(variance, (x @ kernel + bias).var(0), rtol=1e-4)


def test_swa_learning_rate_formula():
    rates = [swa_learning_rate(e, 10, 0.2, 0.02) for e in range(12)]
    t = np.arange(12) / 10
    expected = np.where(t <= 0.5, 0.2, np.where(t <= 0.9, 0.2 * (1 - 0.9 * (t - 0.5) / 0.4), 0.02))
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    assert swa_learning_rate(3, 0, 0.2, 0.02) == pytest.approx(0.02)


def _synthetic_swag(dtype, rank, num=7, seed=0):
    """A SWAG callback fed a known weight sequence with very unequal scales."""
    model = keras.Sequential(
        [
            keras.Input((1,), dtype=np.dtype(dtype).name),
            keras.layers.Dense(2, dtype=np.dtype(dtype).name),
        ]
    )  # P = 4
    swag = SWAG(0, max_rank=rank) if rank else SWAGDiag(0)
    swag.set_model(model)
    swag.params = {"epochs": 10}
    swag.on_train_begin()
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(num, 4)) * np.array([0.05, 0.3, 2.0, 4.0]) + [1.0, -2.0, 0.5, 3.0]
    for w in weights:
        swag.moments.update(w)
    return model, swag, weights


@pytest.mark.parametrize("rank", [0, 3])
def test_samples_have_swag_mean_and_covariance(dtype, rank):
    """Monte Carlo check of N(mean, scale (diag(var) + D D^T / (K - 1))) with variances far
    from 1, so noise multiplied by the variance instead of the std is caught."""
    _, swag, weights = _synthetic_swag(dtype, rank)
    scale = 0.5
    mean, variance, deviations = numpy_swag(weights, rank)
    cov = np.diag(variance)
    if rank:
        cov = cov + deviations.T @ deviations / (rank - 1)
    cov = scale * cov
    n = 40000
    samples = swag.posterior(scale).sample(n, seed=[1, 2]).numpy().astype(np.float64)
    assert samples.dtype == np.float64 and swag.posterior(scale).dtype == dtype
    sd = np.sqrt(np.diag(cov))
    np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 5 * sd / np.sqrt(n))
    emp = np.cov(samples.T)
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(emp - cov), 5 * se)
    # The closed-form moments and the density.
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(swag.posterior(scale).mean(), mean, rtol=rtol)
    np.testing.assert_allclose(swag.posterior(scale).stddev(), sd, rtol=rtol)
    point = samples[:5].astype(dtype)
    np.testing.assert_allclose(
        swag.posterior(scale).log_prob(point),
        scipy.stats.multivariate_normal(mean, cov).logpdf(point),
        rtol=10 * rtol,
    )


def test_sample_weights_sets_the_posterior_sample():
    model, swag, _ = _synthetic_swag(np.float64, 3)
    seed = tf.constant([3, 4])
    sample = swag.sample_weights(scale=0.3, seed=seed)
    np.testing.assert_array_equal(sample, swag.posterior(0.3).sample(seed=seed).numpy())
    kernel, bias = model.layers[0].get_weights()
    np.testing.assert_array_equal(np.concatenate([kernel.ravel(), bias]), sample)
    np.testing.assert_array_equal(swag.sample_weights(scale=0.0, seed=1), swag.moments.mean)


def test_predict_bma_with_bn():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(6),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        ]
    )
    x, _ = regression_data()
    labels = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0)
    swag = SWAG(start_epoch=1, max_rank=3, bn_data=x)
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    model.fit(x, labels, batch_size=16, epochs=5, verbose=0, callbacks=[swag])
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="bn_data: the model has BatchNormalization"):
        swag.predict_bma(x, num_samples=2)
    probs = swag.predict_bma(x, num_samples=3, bn_data=x, seed=[5, 6], from_logits=True)
    for w, b in zip(model.get_weights(), before):  # restored, BN statistics included
        np.testing.assert_array_equal(w, b)
    manual = 0
    for s in tf.unstack(
        tf.convert_to_tensor(__import__("tensorflow_probability").random.split_seed([5, 6], n=3))
    ):
        swag.sample_weights(scale=0.5, seed=s, bn_data=x)
        manual = manual + tf.nn.softmax(model.predict(x, verbose=0)).numpy() / 3
    np.testing.assert_allclose(probs, manual, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    # scale 0: every sample is the SWA mean, with BN statistics for it.
    zero = swag.predict_bma(x, num_samples=2, scale=0.0, bn_data=x, from_logits=True)
    swag.set_average_weights(bn_data=x)
    np.testing.assert_allclose(zero, tf.nn.softmax(model.predict(x, verbose=0)), rtol=1e-5)


def test_swa_beats_last_iterate_on_linear_regression():
    """Constant-LR SGD on least squares: the iterates bounce around the optimum; their average
    lands far closer."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 5)).astype(np.float32)
    y = (x @ rng.normal(size=(5, 1)) + rng.normal(size=(512, 1))).astype(np.float32)
    optimum = np.linalg.lstsq(np.c_[x, np.ones(512)], y, rcond=None)[0].ravel()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05), "mse")
    data = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(512, seed=0, reshuffle_each_iteration=True)
        .batch(8)
    )
    swa = SWA(start_epoch=3, every_n_steps=1, set_weights_at_end=False)
    model.fit(data, epochs=12, verbose=0, shuffle=False, callbacks=[swa])
    last = np.linalg.norm(FlatWeights(model).read() - optimum)
    average = np.linalg.norm(swa.moments.mean - optimum)
    assert average < last / 5, (average, last)


def test_save_load_resume(tmp_path):
    model = make_model("sequential")
    swag = SWAG(start_epoch=1, max_rank=3, swa_lr=0.05, set_weights_at_end=False)
    recorder = Recorder(start_epoch=1)
    fit(model, [swag, recorder], epochs=4)
    swag.save(tmp_path / "swag.npz")
    loaded = SWAG.load(tmp_path / "swag.npz")
    assert loaded.get_config() == swag.get_config()
    np.testing.assert_array_equal(loaded.posterior().mean(), swag.posterior().mean())
    np.testing.assert_array_equal(loaded.moments.deviations(), swag.moments.deviations())
    fit(model, [loaded, recorder], epochs=7, initial_epoch=4)
    assert loaded.moments.count == 6
    assert_moments_match(loaded.moments, recorder.weights, 3, np.float32)
    with pytest.raises(ValueError, match="expected a saved SWAGDiag, got a saved SWAG"):
        SWAGDiag.load(tmp_path / "swag.npz")
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="model: expected trainable weights of shapes"):
        loaded.sample_weights(other)
    diag = SWAGDiag(start_epoch=0, set_weights_at_end=False)
    fit(make_model("sequential"), [diag], epochs=3)
    diag.save(tmp_path / "diag")  # NumPy appends .npz
    np.testing.assert_array_equal(
        SWAGDiag.load(tmp_path / "diag").posterior().stddev(), diag.posterior().stddev()
    )


def test_bad_input():
    with pytest.raises(ValueError, match="max_rank: expected an int >= 1, got 0"):
        SWAG(3, max_rank=0)
    with pytest.raises(ValueError, match="start_epoch: expected a non-negative int, got -1"):
        SWA(-1)
    with pytest.raises(ValueError, match="swa_lr: expected a positive finite number, got 0"):
        SWA(1, swa_lr=0)
    with pytest.raises(ValueError, match="start_epoch: expected an epoch before 4"):
        fit(make_model("sequential"), [SWAG(4)], epochs=5)
    with pytest.raises(ValueError, match="start_epoch: expected an epoch before 5"):
        fit(make_model("sequential"), [SWA(5, every_n_steps=2)], epochs=5)
    _, swag, _ = _synthetic_swag(np.float32, 2)
    with pytest.raises(ValueError, match="scale: expected a non-negative finite number, got -1"):
        swag.sample_weights(scale=-1.0)
    with pytest.raises(ValueError, match="scale: expected a non-negative finite number"):
        swag.predict_bma(np.zeros((2, 1), np.float32), scale=-0.5)
    with pytest.raises(ValueError, match="num_samples: expected an int >= 1, got 0"):
        swag.predict_bma(np.zeros((2, 1), np.float32), num_samples=0)
    frozen = make_model("sequential")
    frozen.trainable = False
    with pytest.raises(ValueError, match="model: expected a built model with trainable weights"):
        fit(frozen, [SWAG(1)], epochs=3)
    with pytest.raises(ValueError, match="SWAG: expected at least 2 collected"):
        SWAG(1).posterior()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    model = make_model("sequential")
    model.compile(keras.optimizers.SGD(schedule), "mse")
    with pytest.raises(ValueError, match="swa_lr: the optimizer's learning rate is a schedule"):
        model.fit(*regression_data(), epochs=3, verbose=0, callbacks=[SWA(1, swa_lr=0.01)])
    bn_model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    with pytest.raises(ValueError, match="bn_data: the model has BatchNormalization"):
        fit(bn_model, [SWA(1)], epochs=3)


def test_variance_never_negative_or_nan():
    """Constant coordinates with a large offset: E[w^2] - E[w]^2 would cancel in float32."""
    _, swag, _ = _synthetic_swag(np.float32, 2, num=0)
    for _ in range(50):
        swag.moments.update(np.array([1e4 + 1e-3, 3.0, -7.0, 0.1], np.float32))
    variance = swag.moments.variance(swag.var_floor)
    assert np.all(variance >= swag.var_floor) and np.all(np.isfinite(variance))
    assert np.all(np.isfinite(swag.posterior().log_prob(swag.moments.mean)))


def test_mixed_precision_collects_float32_variables():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4, dtype="mixed_float16"),
            keras.layers.Dense(2, dtype="float32"),
        ]
    )
    swag, recorder = SWAG(0, max_rank=2, set_weights_at_end=False), Recorder()
    fit(model, [swag, recorder], epochs=3)
    assert swag.moments.dtype == np.float32
    assert_moments_match(swag.moments, recorder.weights, 2, np.float32)
    sample = swag.sample_weights(seed=[0, 1])
    np.testing.assert_array_equal(FlatWeights(model).read(), sample)
    assert all(v.dtype == "float32" for v in model.trainable_variables)


def test_training_stopped_before_averaging_warns_and_keeps_weights():
    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    model, recorder = make_model("sequential"), Recorder()
    with pytest.warns(UserWarning, match="SWA: training ended before any weights were averaged"):
        fit(model, [SWA(2), recorder, Stop()], epochs=5)
    assert len(recorder.weights) == 1
    np.testing.assert_array_equal(FlatWeights(model).read(), recorder.weights[0])


def test_average_predictions_restores_weights():
    from tfbayes.swag import average_predictions

    model = make_model("sequential")
    flat = FlatWeights(model)
    start = flat.read()
    x = regression_data()[0][:5]
    settings = [start + 0.1, start - 0.3]
    expected = np.mean([tf.nn.softmax(_predict_with(flat, w, x)).numpy() for w in settings], 0)
    probs = average_predictions(
        model, [lambda w=w: flat.assign(w) for w in settings], x, from_logits=True
    )
    np.testing.assert_allclose(probs, expected, rtol=1e-6)
    np.testing.assert_array_equal(flat.read(), start)

    def failing():
        flat.assign(start * 0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        average_predictions(model, [failing], x)
    np.testing.assert_array_equal(flat.read(), start)
    with pytest.raises(ValueError, match="weight_setters: expected at least one"):
        average_predictions(model, [], x)


def _predict_with(flat, w, x):
    """The model's output for the flat weights ``w``, by NumPy: a tanh layer, then linear."""
    k1, b1, k2, b2 = flat.unflatten(w)
    return np.tanh(x @ k1 + b1) @ k2 + b2


@pytest.mark.parametrize("rank", [1, 3, 10])
def test_posterior_covariance_formula(rank):
    """Dense check of scale (diag(var) + D D^T / max(K - 1, 1)), K = deviations held
    (7 collected: with max_rank 10 the buffer holds K = 7)."""
    _, swag, weights = _synthetic_swag(np.float64, rank)
    _, variance, deviations = numpy_swag(weights, rank)
    k = deviations.shape[0]
    assert k == min(rank, 7)
    expected = 0.3 * (np.diag(variance) + deviations.T @ deviations / max(k - 1, 1))
    np.testing.assert_allclose(swag.posterior(0.3).covariance(), expected, rtol=1e-12)
