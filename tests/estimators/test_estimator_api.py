"""The estimators' interface: modes, dtypes, Keras and training loops, baselines, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfbayes.distributions as tbd
import tfbayes.estimators as est
from tf_modes import MODES, run_in_mode

tfd = tfp.distributions
ESTIMATORS = {
    "score_function": est.score_function,
    "pathwise": est.pathwise,
    "measure_valued": est.measure_valued,
}


def _square(x):
    return tf.reduce_sum(x**2, -1)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_modes_and_dtypes(name, mode, dtype):
    """Value and gradient in every mode; eager and tf.function draw the same samples."""
    loc = tf.Variable(np.array([0.5, -1.0], dtype))
    scale = tf.Variable(np.array([1.0, 0.5], dtype))
    n = 4000

    def run(seed):
        with tf.GradientTape() as tape:
            value = ESTIMATORS[name](_square, tfd.Normal(loc, scale), n, seed=seed)
        return (value,) + tuple(tape.gradient(value, [loc, scale]))

    value, d_loc, d_scale = [t.numpy() for t in run_in_mode(run, mode, tf.constant([1, 2]))]
    assert value.dtype == dtype and d_loc.dtype == dtype
    if mode != "jit":
        eager = [t.numpy() for t in run(tf.constant([1, 2]))]
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(value, eager[0], rtol=rtol)
        np.testing.assert_allclose(d_loc, eager[1], rtol=rtol, atol=rtol)
    # E x^2 = loc^2 + scale^2: value and gradients near the truth (per-sample sd < 8 here).
    tolerance = 5 * 8 / np.sqrt(n)
    np.testing.assert_allclose(value, np.sum(loc.numpy() ** 2 + scale.numpy() ** 2), atol=tolerance)
    np.testing.assert_allclose(d_loc, 2 * loc.numpy(), atol=tolerance)
    np.testing.assert_allclose(d_scale, 2 * scale.numpy(), atol=tolerance)


@pytest.mark.parametrize("mode", MODES)
def test_control_variates_and_baselines_compile(mode):
    """Baselines and control variates in every mode (the moving average under XLA is also
    in the custom training loop below)."""
    loc = tf.Variable([0.3, -0.2], dtype=tf.float64)
    baseline = est.MovingAverageBaseline(0.5, dtype=tf.float64)

    def run(seed):
        with tf.GradientTape() as tape:
            values = [
                est.score_function(_cos_sum, tfd.Normal(loc, 0.5), 8, seed=seed, baseline=baseline),
                est.score_function(
                    _cos_sum,
                    tfd.Normal(loc, 0.5),
                    8,
                    seed=seed,
                    baseline="leave_one_out",
                    control_variate="delta",
                    coefficient="optimal",
                ),
                est.measure_valued(
                    _cos_sum, tfd.Normal(loc, 0.5), 8, seed=seed, control_variate="delta"
                ),
            ]
            total = tf.add_n(values)
        return total, tape.gradient(total, loc)

    total, gradient = run_in_mode(run, mode, tf.constant([3, 4]))
    assert np.all(np.isfinite(gradient.numpy())) and np.isfinite(total.numpy())
    assert baseline.count.numpy() == 1.0


def _cos_sum(x):
    return tf.reduce_sum(tf.cos(x), -1)


@pytest.mark.parametrize("mode", MODES)
def test_gamma_under_pathwise_and_measure_valued(mode):
    """Both Gamma decompositions (the concentration's bisection included) in every mode, and
    our implicit Gamma under pathwise (its sampler's own XLA tests are in tests/distributions)."""
    concentration = tf.Variable([1.5, 0.7], dtype=tf.float64)
    rate = tf.Variable([2.0, 1.2], dtype=tf.float64)

    def run(seed):
        with tf.GradientTape() as tape:
            value = est.measure_valued(_square, tfd.Gamma(concentration, rate), 500, seed=seed)
            if mode != "jit":
                value += est.pathwise(_square, tbd.Gamma(concentration, rate), 2000, seed=seed)
        return tape.gradient(value, [concentration, rate])

    d_a, d_b = [g.numpy() for g in run_in_mode(run, mode, tf.constant([5, 6]))]
    a, b = concentration.numpy(), rate.numpy()
    copies = 1 if mode == "jit" else 2
    # d/da and d/db of a (a + 1) / b^2; per-sample sd below 10 here.
    tolerance = copies * 5 * 10 / np.sqrt(500)
    np.testing.assert_allclose(d_a, copies * (2 * a + 1) / b**2, atol=tolerance)
    np.testing.assert_allclose(d_b, copies * (-2 * a * (a + 1) / b**3), atol=tolerance)


def test_gradient_of_f_variables():
    """f's own variables get the average of their gradients, for every estimator."""
    weight = tf.Variable(2.0, dtype=tf.float64)
    loc = tf.constant([0.4, -0.3], tf.float64)

    def f(x):
        return weight * tf.reduce_sum(x, -1) + weight**2

    for name, estimator in ESTIMATORS.items():
        with tf.GradientTape() as tape:
            value = estimator(f, tfd.Normal(loc, 1.0), 20000, seed=(0, 9))
        # d/dw of w sum(x) + w^2 = sum(x) + 2 w; E sum(x) = 0.1, sd of sum(x) = sqrt(2).
        np.testing.assert_allclose(
            tape.gradient(value, weight).numpy(),
            0.1 + 4.0,
            atol=5 * np.sqrt(2) / np.sqrt(20000),
            err_msg=name,
        )


def test_keras_model_fit_with_the_surrogate_as_loss():
    """A Keras model whose loss is the estimator's surrogate trains under fit(jit_compile)."""

    class GaussianPolicy(keras.Model):
        def __init__(self):
            super().__init__()
            self.loc = self.add_weight(shape=(2,), initializer="zeros", name="loc")
            self.raw_scale = self.add_weight(shape=(2,), initializer="zeros", name="raw_scale")
            self.seeds = keras.random.SeedGenerator(7)

        def call(self, inputs):
            dist = tfd.Normal(self.loc, tf.nn.softplus(self.raw_scale))
            seed = tf.cast(self.seeds.next(), tf.int32)
            loss = est.score_function(
                lambda z: tf.reduce_sum((z - [1.0, -2.0]) ** 2, -1),
                dist,
                16,
                seed=seed,
                baseline="leave_one_out",
            )
            self.add_loss(loss)
            return inputs

    model = GaussianPolicy()
    model.compile(optimizer=keras.optimizers.Adam(0.05), jit_compile=True)
    model.fit(np.zeros((64, 1), np.float32), epochs=20, batch_size=8, verbose=0)
    np.testing.assert_allclose(model.loc.numpy(), [1.0, -2.0], atol=0.3)
    assert np.all(tf.nn.softplus(model.raw_scale).numpy() < 0.5)


def test_custom_training_loop_with_moving_average_baseline():
    logits = tf.Variable(tf.zeros([3], tf.float32))
    baseline = est.MovingAverageBaseline(0.9)
    optimizer = keras.optimizers.Adam(0.1)
    reward = tf.constant([0.0, 1.0, 0.3])

    @tf.function(jit_compile=True)
    def step(seed):
        with tf.GradientTape() as tape:
            loss = -est.score_function(
                lambda x: tf.gather(reward, x),
                tfd.Categorical(logits=logits),
                8,
                seed=seed,
                baseline=baseline,
            )
        optimizer.apply_gradients([(tape.gradient(loss, logits), logits)])
        return loss

    for i in range(150):
        step(tf.constant([0, i]))
    assert baseline.count.numpy() == 150
    assert tf.nn.softmax(logits).numpy()[1] > 0.9
    # The moving average tracks E f = sum p_k r_k.
    np.testing.assert_allclose(baseline.value().numpy(), 1.0, atol=0.15)


def test_moving_average_baseline_is_bias_corrected():
    baseline = est.MovingAverageBaseline(0.8)
    assert baseline.value().numpy() == 0.0
    for _ in range(3):
        baseline.update(tf.constant(2.5))
    np.testing.assert_allclose(baseline.value().numpy(), 2.5, rtol=1e-6)
    assert baseline.get_config() == {"decay": 0.8, "dtype": "float32"}


def test_leave_one_out_baseline_values():
    values = tf.constant([1.0, 2.0, 6.0])
    np.testing.assert_allclose(est.baselines.leave_one_out(values).numpy(), [4.0, 3.5, 1.5])


def test_pathwise_on_implicit_reparameterized():
    loc = tf.Variable(0.7, dtype=tf.float64)
    with tf.GradientTape() as tape:
        dist = tbd.ImplicitReparameterized(tfd.TruncatedNormal(loc, 1.0, -1.0, 3.0))
        value = est.pathwise(lambda x: x, dist, 4, seed=(0, 1))
    assert np.isfinite(tape.gradient(value, loc).numpy())


def test_distribution_parameters_lists_variables_and_tensors():
    variable = tf.Variable([1.0, 2.0])
    scale = tfp.util.TransformedVariable(1.0, tfp.bijectors.Softplus())
    params = est.distribution_parameters(tfd.Normal(variable * 2.0, scale))
    assert len(params) == 2 and isinstance(params[1], tf.Variable)


ERRORS = [
    (
        lambda: est.pathwise(_square, tfd.Bernoulli(logits=[0.0]), 4),
        ValueError,
        "FULLY_REPARAMETERIZED",
    ),
    (
        lambda: est.pathwise(_square, tfd.Poisson(rate=[1.0]), 4),
        ValueError,
        "ImplicitReparameterized",
    ),
    (
        lambda: est.measure_valued(_square, tfd.Beta([1.0], [2.0]), 4),
        ValueError,
        "no weak-derivative decomposition for Beta",
    ),
    (
        lambda: est.measure_valued(_square, tfd.Dirichlet([1.0, 2.0]), 4),
        ValueError,
        "scalar events",
    ),
    (
        lambda: est.score_function(_square, tfd.Normal([0.0], 1.0), 0),
        ValueError,
        "`num_samples`: expected an int >= 1, got 0",
    ),
    (
        lambda: est.score_function(_square, tfd.Normal([0.0], 1.0), 1, baseline="leave_one_out"),
        ValueError,
        ">= 2 for baseline='leave_one_out', got 1",
    ),
    (
        lambda: est.score_function(_square, tfd.Normal([0.0], 1.0), 2.0),
        TypeError,
        "`num_samples`: expected a Python int",
    ),
    (
        lambda: est.pathwise(lambda x: x, tfd.Normal([0.0, 1.0], 1.0), 3),
        ValueError,
        "`f`: expected an output of shape [3]",
    ),
    (
        lambda: est.measure_valued(lambda x: tf.reduce_sum(x), tfd.Normal([0.0], 1.0), 3),
        ValueError,
        "`f`: expected an output of shape",
    ),
    (
        lambda: est.score_function(lambda x: tf.reduce_sum(x, -1) > 0, tfd.Normal([0.0], 1.0), 3),
        TypeError,
        "`f`: expected a floating-point output",
    ),
    (
        lambda: est.score_function(_square, "normal", 3),
        TypeError,
        "`dist`: expected a tfp.distributions.Distribution",
    ),
    (
        lambda: est.score_function(_square, tfd.Normal([0.0], 1.0), 3, baseline="mean"),
        ValueError,
        "`baseline`: expected None, 'leave_one_out'",
    ),
    (
        lambda: est.score_function(_square, tfd.Normal([0.0], 1.0), 3, control_variate="taylor"),
        ValueError,
        "`control_variate`: expected None, 'delta'",
    ),
    (
        lambda: est.score_function(
            _square, tfd.Normal([0.0], 1.0), 3, control_variate="delta", coefficient="best"
        ),
        ValueError,
        "`coefficient`: expected",
    ),
    (
        lambda: est.score_function(
            _square,
            tfd.Normal([0.0], 1.0),
            3,
            control_variate="delta",
            coefficient="optimal",
            num_coefficient_samples=1,
        ),
        ValueError,
        "`num_coefficient_samples`: expected an int >= 2",
    ),
    (
        lambda: est.score_function(
            lambda x: tf.cast(x[:, 0], tf.float32),
            tfd.Bernoulli(logits=[0.0]),
            3,
            control_variate="delta",
        ),
        TypeError,
        "expected a distribution with a floating dtype",
    ),
    (lambda: est.MovingAverageBaseline(decay=1.0), ValueError, "`decay`: expected a float in"),
    (
        lambda: est.gradient_variance(est.pathwise, _square, tfd.Normal([0.0], 1.0), 3, 1),
        ValueError,
        "`num_repeats`: expected an int >= 2",
    ),
]


@pytest.mark.parametrize("call,error,message", ERRORS, ids=[m for _, _, m in ERRORS])
def test_bad_input_errors(call, error, message):
    with pytest.raises(error, match=None) as info:
        call()
    assert message in str(info.value)
