"""Drop-in fidelity with TFP: the seed policy, TFP's API additions and messages, and bad inputs.

References: TFP's own classes (same call, same kind of result or the same error
message), scipy's quantiles and densities, and closed-form moments.
"""

import numpy as np
import pytest
import scipy.stats as st
import tensorflow as tf
import tensorflow_probability as tfp

from tfbayes.distributions import (
    TRIP,
    Beta,
    Dirichlet,
    Gamma,
    VonMises,
    implicit_reparameterization,
)
from tfbayes.layers import TRIPPrior

tfd = tfp.distributions
RNG = np.random.default_rng(0)
TRIP_PARAMS = (RNG.normal(size=(3, 2)), np.full((3, 2), 0.5), RNG.uniform(size=(3, 2, 2, 2)))

# name -> (ours, TFP's counterpart or None), each a function of a float dtype.
DISTRIBUTIONS = {
    "Gamma": (
        lambda dt: Gamma(tf.constant([0.5, 2.0], dt), tf.constant(1.5, dt)),
        lambda dt: tfd.Gamma(tf.constant([0.5, 2.0], dt), tf.constant(1.5, dt)),
    ),
    "Beta": (
        lambda dt: Beta(tf.constant([0.5, 2.0], dt), tf.constant(3.0, dt)),
        lambda dt: tfd.Beta(tf.constant([0.5, 2.0], dt), tf.constant(3.0, dt)),
    ),
    "Dirichlet": (
        lambda dt: Dirichlet(tf.constant([0.5, 2.0, 1.0], dt)),
        lambda dt: tfd.Dirichlet(tf.constant([0.5, 2.0, 1.0], dt)),
    ),
    "VonMises": (
        lambda dt: VonMises(tf.constant(0.3, dt), tf.constant([0.0, 4.0], dt)),
        lambda dt: tfd.VonMises(tf.constant(0.3, dt), tf.constant([0.0, 4.0], dt)),
    ),
    "TRIP": (lambda dt: TRIP(*(tf.constant(p, dt) for p in TRIP_PARAMS)), None),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_seed_policy_is_tfps(name):
    # A [2] seed (tensor, tuple or list) is stateless: the same draws at every
    # call, eagerly and in tf.function. An int or None is stateful, as in TFP:
    # every call draws anew, and tf.random.set_seed replays the sequence.
    make, make_tfp = DISTRIBUTIONS[name]
    dist = make(tf.float32)
    first = dist.sample(3, seed=(4, 5)).numpy()
    np.testing.assert_array_equal(first, dist.sample(3, seed=[4, 5]))
    np.testing.assert_array_equal(first, dist.sample(3, seed=tf.constant([4, 5])))
    np.testing.assert_array_equal(first, tf.function(lambda: dist.sample(3, seed=(4, 5)))())
    assert not np.array_equal(first, dist.sample(3, seed=(4, 6)))
    for seed in (42, None):
        assert not np.array_equal(dist.sample(3, seed=seed), dist.sample(3, seed=seed))
        if make_tfp is not None:
            tfp_dist = make_tfp(tf.float32)
            assert not np.array_equal(tfp_dist.sample(3, seed=seed), tfp_dist.sample(3, seed=seed))
    replays = []
    for _ in range(2):
        tf.random.set_seed(7)
        replays.append(np.stack([dist.sample(3, seed=42), dist.sample(3, seed=42)]))
    np.testing.assert_array_equal(*replays)
    assert not np.array_equal(replays[0][0], replays[0][1])
    with pytest.raises(ValueError, match="`seed`: expected a stateless seed of shape \\[2\\]"):
        dist.sample(2, seed=(1, 2, 3, 4, 5))
    with pytest.raises(TypeError, match="`seed`: expected .* dtype float32"):
        dist.sample(2, seed=[1.5, 2.0])


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_sample_shapes_that_wrap_or_are_negative_are_refused(name):
    dist = DISTRIBUTIONS[name][0](tf.float32)
    for shape in (2**32 + 3, [2**16, 2**16], 2**31):
        with pytest.raises(ValueError, match="`sample_shape`: expected at most 2\\*\\*31 - 1"):
            dist.sample(shape, seed=(1, 2))
    with pytest.raises(
        ValueError, match="`sample_shape`: expected non-negative sizes, got \\[-1\\]"
    ):
        dist.sample(-1, seed=(1, 2))
    assert dist.sample([0, 2], seed=(1, 2)).shape[:2] == [0, 2]


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: Gamma(1.0, log_rate=np.nan, validate_args=True), "log_rate"),
        (lambda: Gamma(np.inf, 1.0, validate_args=True), "concentration"),
        (lambda: Gamma(1.0, rate=np.inf, validate_args=True), "rate"),
        (lambda: Beta(1.0, np.inf, validate_args=True), "concentration0"),
        (lambda: Beta(np.nan, 1.0, validate_args=True), "concentration1"),
        (lambda: Dirichlet([np.inf, 1.0], validate_args=True), "concentration"),
        (lambda: VonMises(np.nan, 1.0, validate_args=True), "loc"),
        (lambda: VonMises(np.inf, 1.0, validate_args=True), "loc"),
        (lambda: VonMises(0.0, np.inf, validate_args=True), "concentration"),
        (lambda: TRIP(TRIP_PARAMS[0] * np.nan, *TRIP_PARAMS[1:], validate_args=True), "locs"),
        (
            lambda: TRIP(
                TRIP_PARAMS[0], TRIP_PARAMS[1] * np.inf, TRIP_PARAMS[2], validate_args=True
            ),
            "scales",
        ),
        (lambda: TRIP(*TRIP_PARAMS[:2], np.zeros((3, 2, 2, 2)), validate_args=True), "cores"),
    ],
)
def test_validate_args_refuses_non_finite_parameters(make, argument):
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"`{argument}`"):
        make()


def test_validate_args_checks_variables_at_each_use():
    loc = tf.Variable(0.0)
    dist = VonMises(loc, 1.0, validate_args=True)
    loc.assign(np.nan)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`loc` must be finite"):
        dist.log_prob(0.0)


@pytest.mark.parametrize(
    "make, pattern, error",
    [
        (
            lambda: Dirichlet(None),
            "Dirichlet: `concentration` must be a float tensor; got None",
            TypeError,
        ),
        (lambda: Gamma(None, 1.0), "Gamma: `concentration`", TypeError),
        (lambda: Beta(1.0, None), "Beta: `concentration0`", TypeError),
        (lambda: VonMises(None, 1.0), "VonMises: `loc`", TypeError),
        (lambda: TRIP(None, *TRIP_PARAMS[1:]), "TRIP: `locs` must be a float tensor", TypeError),
        (
            lambda: TRIP(np.zeros((3, 0)), np.zeros((3, 0)), np.zeros((3, 0, 2, 2))),
            "d=0",
            ValueError,
        ),
        (lambda: TRIP(*TRIP_PARAMS[:2], np.zeros((3, 2, 0, 0))), "r=0", ValueError),
        (lambda: TRIP(np.zeros((0, 2)), np.ones((0, 2)), np.ones((0, 2, 2, 2))), "m=0", ValueError),
        (
            lambda: Gamma([1.0, 2.0], 1.0).log_prob(tf.ones([3])),
            "`value` of shape \\(3,\\)",
            ValueError,
        ),
        (lambda: Beta([1.0, 2.0], 1.0).cdf(tf.ones([3])), "`value` of shape \\(3,\\)", ValueError),
        (lambda: VonMises([1.0, 2.0], 1.0).log_prob(tf.ones([3])), "`value`", ValueError),
        (
            lambda: Dirichlet([1.0, 2.0, 3.0]).log_prob([0.5, 0.5]),
            "`value` of shape \\(2,\\)",
            ValueError,
        ),
        (
            lambda: implicit_reparameterization(
                tf.zeros([2, 3]),
                [tf.zeros([3])],
                standardize=lambda z, m: z - m,
                prob=lambda z, m: z,
            ),
            "`prob` is used only with `cdf`",
            ValueError,
        ),
        (
            lambda: TRIPPrior(3, 2).initialize_from_data(np.array([[0.0, np.nan], [1.0, 2.0]])),
            "`codes` must be finite; got 1 NaN",
            ValueError,
        ),
        (
            lambda: TRIPPrior(3, 2)(tf.constant(1.0)),
            "expected latent codes of shape \\[\\.\\.\\., m\\]",
            ValueError,
        ),
    ],
)
def test_bad_inputs_get_errors_that_name_them(make, pattern, error):
    with pytest.raises(error, match=pattern):
        make()


# (ours, TFP's, the operation, TFP's message): both must raise with TFP's message.
TFP_MESSAGES = [
    (
        Gamma,
        tfd.Gamma,
        ([-1.0], 1.0),
        lambda d: d.mean(),
        "Argument `concentration` must be positive.",
    ),
    (Gamma, tfd.Gamma, (1.0, [0.0]), lambda d: d.mean(), "Argument `rate` must be positive."),
    (Gamma, tfd.Gamma, (1.0, 1.0), lambda d: d.log_prob(-1.0), "Sample must be non-negative."),
    (
        Gamma,
        tfd.Gamma,
        ([0.5, 2.0], 1.0),
        lambda d: d.mode(),
        "Mode not defined when any concentration <= 1.",
    ),
    (
        Beta,
        tfd.Beta,
        ([-1.0], 1.0),
        lambda d: d.mean(),
        "Concentration parameter must be positive.",
    ),
    (Beta, tfd.Beta, (1.0, 1.0), lambda d: d.log_prob(-0.5), "Sample must be non-negative."),
    (
        Beta,
        tfd.Beta,
        (1.0, 1.0),
        lambda d: d.log_prob(1.5),
        "Sample must be less than or equal to `1`.",
    ),
    (Beta, tfd.Beta, (0.5, 2.0), lambda d: d.mode(), "Mode undefined for concentration1 <= 1."),
    (Beta, tfd.Beta, (2.0, 0.5), lambda d: d.mode(), "Mode undefined for concentration0 <= 1."),
    (
        Dirichlet,
        tfd.Dirichlet,
        ([1.0, -1.0],),
        lambda d: d.mean(),
        "Argument `concentration` must be positive.",
    ),
    (
        Dirichlet,
        tfd.Dirichlet,
        ([1.0, 2.0, 3.0],),
        lambda d: d.prob([0.1, 0.2, 0.8]),
        "Sample last-dimension must sum to `1`.",
    ),
    (
        Dirichlet,
        tfd.Dirichlet,
        ([1.0, 2.0],),
        lambda d: d.prob([-0.5, 1.5]),
        "Samples must be non-negative.",
    ),
    (
        Dirichlet,
        tfd.Dirichlet,
        ([0.5, 2.0],),
        lambda d: d.mode(),
        "Mode undefined when any concentration <= 1",
    ),
    (
        VonMises,
        tfd.VonMises,
        (0.0, -0.01),
        lambda d: d.mean(),
        "Argument `concentration` must be non-negative",
    ),
]


@pytest.mark.parametrize("ours, theirs, args, operation, message", TFP_MESSAGES)
def test_errors_carry_tfps_messages(ours, theirs, args, operation, message):
    for cls in (ours, theirs):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message.replace("`", ".")):
            operation(cls(*args, validate_args=True, allow_nan_stats=False))


def test_dirichlet_validate_args_checks_the_simplex():
    dist = Dirichlet([1.0, 2.0, 3.0], validate_args=True)
    np.testing.assert_allclose(
        dist.prob([0.1, 0.2, 0.7]), st.dirichlet([1.0, 2.0, 3.0]).pdf([0.1, 0.2, 0.7]), rtol=1e-5
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="must sum to `1`"):
        dist.prob([0.1, 0.2, 0.8])


def test_quantiles_match_scipy(dtype):
    p = np.array([1e-6, 0.01, 0.3, 0.5, 0.9, 0.999999], dtype)
    tol = 2e-5 if dtype == np.float32 else 1e-10
    a, b = np.array([0.3, 2.5], dtype)[:, None], np.array([1.7, 0.4], dtype)[:, None]
    gamma = Gamma(a, rate=b)
    np.testing.assert_allclose(gamma.quantile(p), st.gamma(a, scale=1 / b).ppf(p), rtol=tol)
    np.testing.assert_allclose(gamma.cdf(gamma.quantile(p)), np.broadcast_to(p, [2, 6]), rtol=tol)
    np.testing.assert_allclose(
        Gamma(a, log_rate=np.log(b)).quantile(p), gamma.quantile(p), rtol=tol
    )
    # TFP's own Beta.quantile (tfp.math.betaincinv) is 42% off at the median of
    # Beta(0.3, 1.7) in float64; ours refines it. In float32, x is limited by
    # float32's betainc (about 1e-4 relative where the CDF is steep).
    beta = Beta(a, b)
    beta_tol = 1e-3 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(beta.quantile(p), st.beta(a, b).ppf(p), rtol=beta_tol)
    tfp_beta = tfp.distributions.Beta(np.float64(0.3), np.float64(1.7))
    assert abs(tfp_beta.quantile(np.float64(0.5)) - st.beta(0.3, 1.7).ppf(0.5)) > 0.02


def test_force_probs_to_zero_outside_support():
    x = np.array([-1.0, 0.5, 2.0])
    for cls, args in ((Gamma, (2.0, 1.0)), (Beta, (2.0, 3.0))):
        for force in (False, True):
            ours = cls(*args, force_probs_to_zero_outside_support=force)
            theirs = getattr(tfd, cls.__name__)(*args, force_probs_to_zero_outside_support=force)
            assert ours.force_probs_to_zero_outside_support == force
            np.testing.assert_allclose(ours.log_prob(x), theirs.log_prob(x), rtol=1e-6)
    inside = [0.7, 0.2, 0.1]
    for force in (False, True):
        ours = Dirichlet([4.0, 3.0, 2.0], force_probs_to_zero_outside_support=force)
        theirs = tfd.Dirichlet([4.0, 3.0, 2.0], force_probs_to_zero_outside_support=force)
        values = np.array([inside, [0.7, 0.21, 0.1], [1.1, 0.0, -0.1]], np.float32)
        np.testing.assert_allclose(ours.log_prob(values), theirs.log_prob(values), rtol=1e-6)
    np.testing.assert_allclose(
        ours.log_prob(inside), st.dirichlet([4, 3, 2]).logpdf(inside), rtol=1e-5
    )
    assert ours.log_prob([0.7, 0.21, 0.1]) == -np.inf


def test_constructors_from_mean_and_variance():
    mean, variance = np.array([0.3, 2.0]), np.array([0.01, 0.5])
    gamma = Gamma.experimental_from_mean_variance(mean, variance, validate_args=True)
    np.testing.assert_allclose(gamma.mean(), mean, rtol=1e-12)
    np.testing.assert_allclose(gamma.variance(), variance, rtol=1e-12)
    beta = Beta.experimental_from_mean_variance(mean[:1], variance[:1], validate_args=True)
    np.testing.assert_allclose(beta.mean(), mean[:1], rtol=1e-12)
    np.testing.assert_allclose(beta.variance(), variance[:1], rtol=1e-12)
    beta = Beta.experimental_from_mean_concentration(0.25, 8.0)
    np.testing.assert_allclose(
        [tf.convert_to_tensor(beta.concentration1), tf.convert_to_tensor(beta.concentration0)],
        [2.0, 6.0],
    )
    # A variable mean is read at each use and trained through the parameters.
    mean_var = tf.Variable(2.0, dtype=tf.float64)
    gamma = Gamma.experimental_from_mean_variance(mean_var, tf.constant(0.5, tf.float64))
    assert len(gamma.trainable_variables) == 1
    mean_var.assign(3.0)
    np.testing.assert_allclose(gamma.mean(), 3.0)
    with tf.GradientTape() as tape:
        log_prob = gamma.log_prob(tf.constant(2.5, tf.float64))
    assert np.isfinite(tape.gradient(log_prob, mean_var))


def test_gamma_samples_at_and_below_zero_concentration_as_tfp():
    # a = 0 is the point mass at 0; a < 0 is no distribution: NaN, as TFP's sampler.
    concentration = tf.constant([0.0, 2.0, -0.001, -1.0, np.nan])
    dist = Gamma(concentration, 1.0)
    log_z = dist.log_sample(4, seed=(1, 2)).numpy()
    assert np.all(log_z[:, 0] == -np.inf) and np.all(np.isfinite(log_z[:, 1]))
    assert np.all(np.isnan(log_z[:, 2:]))
    z = dist.sample(4, seed=(1, 2)).numpy()
    np.testing.assert_array_equal(z[:, 0], 0.0)
    np.testing.assert_allclose(np.exp(log_z[:, 1]), z[:, 1], rtol=1e-6)  # float32 exp
