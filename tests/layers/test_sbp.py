"""SBPDropout and its truncated log-normal math against mpmath quadrature and Monte Carlo."""

import keras
import mpmath
import numpy as np
import pytest
import tensorflow as tf

from tfbayes.layers import SBPDropout, set_num_examples
from tfbayes.layers import sbp

A, B = -20.0, 0.0
# (mu, log sigma) with mu in [a, b]: a near point mass, wide, at either bound, inside.
PARAMS = [
    (0.0, -5.0),
    (-3.0, 0.0),
    (-10.0, 1.0),
    (-19.9, -3.0),
    (-0.5, -2.0),
    (-5.0, 2.5),
    (-20.0, -1.0),
    (-1.0, -12.0),
]


def _mp_truncated_normal(mu, log_sigma):
    """Density of log theta, normalised by quadrature, with mpmath at 30 digits."""
    mpmath.mp.dps = 30
    mu, sigma = mpmath.mpf(mu), mpmath.exp(log_sigma)

    def pdf(t):
        return mpmath.npdf(t, mu, sigma)

    points = sorted({A, B} | {min(max(mu + k * sigma, A), B) for k in (-8, -2, 0, 2, 8)})
    z = mpmath.quad(pdf, points)
    return (lambda t: pdf(t) / z), points


@pytest.fixture(scope="module")
def mp_reference():
    """KL(q || Uniform[a, b] on log theta), E[theta] and SNR(theta) by quadrature."""
    rows = []
    for mu, log_sigma in PARAMS:
        q, points = _mp_truncated_normal(mu, log_sigma)
        kl = mpmath.quad(lambda t: q(t) * mpmath.log(q(t) * (B - A)) if q(t) > 0 else 0, points)
        mean = mpmath.quad(lambda t: q(t) * mpmath.exp(t), points)
        second = mpmath.quad(lambda t: q(t) * mpmath.exp(2 * t), points)
        rows.append((float(kl), float(mean), float(mean / mpmath.sqrt(second - mean**2))))
    return np.array(rows)


def test_kl_mean_and_snr_match_quadrature(mp_reference, dtype):
    mu = tf.constant([p[0] for p in PARAMS], dtype)
    log_sigma = tf.constant([p[1] for p in PARAMS], dtype)

    kl = sbp.truncated_log_normal_kl(mu, log_sigma, A, B).numpy()
    mean, snr = (t.numpy() for t in sbp.truncated_log_normal_mean_snr(mu, log_sigma, A, B))
    assert kl.dtype == dtype
    rtol = 2e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(kl, mp_reference[:, 0], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(mean, mp_reference[:, 1], rtol=rtol)
    # The SNR is formed from log-moments whose difference is ~sigma^2 (e^-24 at worst here),
    # in float64 for both dtypes: that costs ~eps/sigma^2 ~ 1e-5 relative.
    np.testing.assert_allclose(snr, mp_reference[:, 2], rtol=2e-5)


def test_samples_follow_the_truncated_log_normal_and_gradients_are_finite(dtype):
    mu = tf.constant([[p[0] for p in PARAMS]], dtype)
    log_sigma = tf.constant([[p[1] for p in PARAMS]], dtype)
    n = 20000
    tiny = np.finfo(dtype).tiny
    uniform = tf.random.stateless_uniform(
        (n, len(PARAMS)), (1, 2), minval=tiny, maxval=1.0, dtype=dtype
    )
    with tf.GradientTape() as tape:
        tape.watch([mu, log_sigma])
        theta = sbp.sample_truncated_log_normal(mu, log_sigma, A, B, uniform)
        total = tf.reduce_sum(theta) + tf.reduce_sum(
            sbp.truncated_log_normal_kl(mu, log_sigma, A, B)
        )
    grads = tape.gradient(total, [mu, log_sigma])
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)
    theta = theta.numpy().astype(np.float64)
    assert np.all(theta >= np.exp(A) * (1 - 1e-5)) and np.all(theta <= np.exp(B) * (1 + 1e-5))
    mean, snr = (
        t.numpy()[0]
        for t in sbp.truncated_log_normal_mean_snr(
            tf.cast(mu, tf.float64), tf.cast(log_sigma, tf.float64), A, B
        )
    )
    std = mean / snr
    np.testing.assert_array_less(np.abs(theta.mean(0) - mean), 5 * std / np.sqrt(n) + 1e-6 * mean)


def test_log_space_helpers_stay_finite_in_the_tails():
    x = tf.constant([-1e4, -40.0, -5.0, 0.0, 5.0, 40.0], tf.float64)
    np.testing.assert_allclose(
        sbp.log_ndtr(x).numpy()[2:4], [float(mpmath.log(mpmath.ncdf(v))) for v in (-5.0, 0.0)]
    )
    assert np.isfinite(sbp.log_ndtr(x).numpy()).all()
    lo, hi = tf.constant([-41.0, 40.0], tf.float64), tf.constant([-40.0, 41.0], tf.float64)
    with mpmath.workdps(800):  # 1 - Phi(40) ~ 1e-350 must survive the subtraction
        expected = [
            float(mpmath.log(mpmath.ncdf(-40) - mpmath.ncdf(-41))),
            float(mpmath.log(mpmath.ncdf(41) - mpmath.ncdf(40))),
        ]
    np.testing.assert_allclose(sbp.log_diff_ndtr(lo, hi).numpy(), expected, rtol=1e-10)
    log_p = tf.constant([-1.0, -79.0, -81.0, -500.0], tf.float64)
    expected = [
        float(mpmath.findroot(lambda t, v=v: mpmath.log(mpmath.ncdf(t)) - v, -mpmath.sqrt(-2 * v)))
        for v in (-1.0, -79.0, -81.0, -500.0)
    ]
    np.testing.assert_allclose(sbp.ndtri_of_log(log_p).numpy(), expected, rtol=1e-3)


@pytest.mark.parametrize(
    "dtype, mode",
    [(np.float32, "eager"), (np.float64, "eager"), (np.float32, "xla")],
    ids=["float32", "float64", "xla"],
)
def test_layer_scales_units_by_their_mean_and_masks_by_snr(dtype, mode):
    layer = SBPDropout(axis=1, dtype=dtype.__name__, num_examples=100, seed=0)
    x = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(dtype)
    layer.build(x.shape)
    mus, log_sigmas = np.array([0.0, -2.0, -9.0, -0.3]), np.array([-4.0, 1.0, 1.5, -2.0])
    layer.mu.assign(mus.astype(dtype))
    layer.log_sigma.assign(log_sigmas.astype(dtype))
    mean, snr = (
        t.numpy()
        for t in sbp.truncated_log_normal_mean_snr(tf.constant(mus), tf.constant(log_sigmas), A, B)
    )
    assert (snr > 1).tolist() == [True, False, False, True]

    def infer(t):
        return layer(t)

    def train(t):
        return layer(t, training=True)

    if mode == "xla":
        infer, train = tf.function(infer, jit_compile=True), tf.function(train, jit_compile=True)
    out = infer(tf.constant(x)).numpy()
    np.testing.assert_allclose(out, x * (mean * (snr > 1))[None, :, None], rtol=1e-5, atol=1e-7)
    assert layer.sparsity_groups() == {"units": (2, 4)}
    # Training: noise per example and unit, shared along the other axes, within [e^a, e^b].
    noisy = train(tf.constant(np.ones((200, 4, 5), dtype))).numpy()
    np.testing.assert_allclose(noisy, noisy[:, :, :1].repeat(5, axis=2))
    assert noisy[:, 1].std() > 0.1 and np.all((noisy > 0) & (noisy <= 1 + 1e-6))
    np.testing.assert_allclose(
        float(layer.kl_divergence()),
        float(
            tf.reduce_sum(
                sbp.truncated_log_normal_kl(tf.constant(mus), tf.constant(log_sigmas), A, B)
            )
        ),
        rtol=1e-4,
    )


def test_planted_irrelevant_inputs_get_low_snr_and_relevant_ones_are_kept():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = 500
    x = rng.normal(size=(n, 10)).astype("float32")
    y = x[:, :3] @ np.array([[2.0], [-3.0], [1.5]], "float32") + 0.1 * rng.normal(size=(n, 1))
    model = keras.Sequential([keras.Input((10,)), SBPDropout(seed=0), keras.layers.Dense(1)])
    set_num_examples(model, n)
    model.compile(keras.optimizers.Adam(0.05), "mse", jit_compile=False)
    model.fit(x, y.astype("float32"), batch_size=50, epochs=20, verbose=0)
    kept = model.layers[0].unit_scale().numpy() > 0
    assert kept.tolist() == [True] * 3 + [False] * 7


def test_config_round_trip_and_keras_file(tmp_path):
    inputs = keras.Input((6, 6, 3))
    hidden = keras.layers.Conv2D(4, 3)(inputs)
    hidden = SBPDropout(
        snr_threshold=0.5, log_theta_min=-10.0, log_theta_max=0.5, num_examples=7, seed=1
    )(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(hidden)))
    layer = model.layers[2]
    layer.mu.assign([0.0, -3.0, -0.1, -8.0])
    layer.log_sigma.assign([-3.0, 1.0, -1.0, 0.0])
    x = np.random.default_rng(0).normal(size=(5, 6, 6, 3)).astype("float32")
    model.save(tmp_path / "sbp.keras")
    loaded = keras.models.load_model(tmp_path / "sbp.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[2].get_config() == layer.get_config()
    assert SBPDropout.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"log_theta_min": 0.0, "log_theta_max": -1.0}, "expected log_theta_min < log_theta_max"),
        ({"log_theta_min": float("-inf")}, "log_theta_min: expected a finite real number"),
        ({"snr_threshold": 0.0}, "snr_threshold: expected a positive number, got 0.0"),
        ({"snr_threshold": "1"}, "snr_threshold: expected a finite real number"),
        ({"axis": "last"}, "axis: expected an int or a non-empty tuple of ints"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SBPDropout(**kwargs)


def test_bad_axes_and_missing_n_are_reported():
    with pytest.raises(ValueError, match="axis: expected distinct non-batch axes"):
        SBPDropout(axis=0)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="axis: expected distinct non-batch axes"):
        SBPDropout(axis=3)(np.ones((2, 3), "float32"))
    with pytest.raises(ValueError, match="training-set size N is not set"):
        SBPDropout()(np.ones((2, 3), "float32"), training=True)
