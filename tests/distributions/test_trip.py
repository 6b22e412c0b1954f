"""TRIP against brute-force enumeration of its d^m Gaussian components."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import integrate
from scipy.special import logsumexp
from scipy.stats import norm

from tfbayes.distributions import TRIP
from tfbayes.layers import TRIPPrior
from tfbayes.layers.trip_prior import kmeans_1d

MODES = ["eager", "function", "xla"]
RTOL = {np.float32: 1e-4, np.float64: 1e-6}


def run(mode, fn, *args):
    if mode == "function":
        fn = tf.function(fn)
    elif mode == "xla":
        fn = tf.function(fn, jit_compile=True)
    result = fn(*args)
    return tf.nest.map_structure(lambda t: t.numpy(), result)


def random_params(m, d, r, seed=0, batch=()):
    rng = np.random.default_rng(seed)
    locs = rng.normal(size=batch + (m, d)) * 2.0
    scales = rng.uniform(0.3, 1.2, size=batch + (m, d))
    cores = rng.uniform(size=batch + (m, d, r, r))
    return locs, scales, cores


class BruteForce:
    """The d^m-component Gaussian mixture, enumerated in float64."""

    def __init__(self, locs, scales, cores):
        m, d = locs.shape
        self.index = np.array(list(itertools.product(range(d), repeat=m)))  # [d^m, m]
        weights = []
        for s in self.index:
            product = np.eye(cores.shape[-1])
            for k in range(m):
                product = product @ cores[k, s[k]]
            weights.append(np.trace(product))
        self.weights = np.array(weights) / np.sum(weights)
        self.means = locs[np.arange(m), self.index]  # [d^m, m]
        self.stds = scales[np.arange(m), self.index]

    def log_prob(self, x, dims=None):
        """log of the marginal density of x [n, len(dims)] over `dims`."""
        dims = np.arange(self.means.shape[1]) if dims is None else np.asarray(dims)
        log_comp = norm.logpdf(x[:, None, :], self.means[None, :, dims], self.stds[None, :, dims])
        return logsumexp(log_comp.sum(-1) + np.log(self.weights), axis=1)

    def moments(self):
        mean = self.weights @ self.means
        second = np.einsum("c,ck,cl->kl", self.weights, self.means, self.means)
        second += np.diag(self.weights @ self.stds**2)
        return mean, second - np.outer(mean, mean)


def make_trip(dtype, locs, scales, cores, **kwargs):
    return TRIP(locs.astype(dtype), scales.astype(dtype), cores.astype(dtype), **kwargs)


@pytest.mark.parametrize("mode", MODES)
def test_log_prob_matches_brute_force(dtype, mode):
    locs, scales, cores = random_params(m=3, d=3, r=2)
    x = np.random.default_rng(1).normal(size=(7, 3)) * 2.0
    trip = make_trip(dtype, locs, scales, cores, validate_args=True)
    got = run(mode, trip.log_prob, x.astype(dtype))
    expected = BruteForce(locs, scales, cores).log_prob(x)
    assert got.dtype == dtype and got.shape == (7,)
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype])


def test_batched_parameters_broadcast_with_values():
    locs, scales, cores = random_params(m=2, d=3, r=2, batch=(2,))
    trip = TRIP(locs, scales, cores)
    assert trip.batch_shape == [2] and trip.event_shape == [2]
    x = np.random.default_rng(2).normal(size=(5, 2, 2))
    got = trip.log_prob(x).numpy()
    for b in range(2):
        expected = BruteForce(locs[b], scales[b], cores[b]).log_prob(x[:, b])
        np.testing.assert_allclose(got[:, b], expected, rtol=1e-9)
    # Batch slicing and crossing a tf.function boundary as a CompositeTensor.
    np.testing.assert_allclose(trip[1].log_prob(x[:, 1]).numpy(), got[:, 1], rtol=1e-12)
    traced = tf.function(lambda dist, x: dist.log_prob(x))(trip, x).numpy()
    np.testing.assert_allclose(traced, got, rtol=1e-12)


def test_density_integrates_to_one_in_1d_and_2d():
    locs, scales, cores = random_params(m=1, d=4, r=3, seed=3)
    trip1 = TRIP(locs, scales, cores)
    density1 = lambda z: np.exp(trip1.log_prob(z[:, None]).numpy())  # noqa: E731
    total1, _ = integrate.fixed_quad(density1, -12.0, 12.0, n=400)
    assert abs(total1 - 1.0) < 1e-9

    locs, scales, cores = random_params(m=2, d=2, r=2, seed=4)
    trip2 = TRIP(locs, scales, cores)
    grid = np.linspace(-10.0, 10.0, 401)
    zz = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    density2 = np.exp(trip2.log_prob(zz).numpy()).reshape(401, 401)
    total2 = integrate.simpson(integrate.simpson(density2, x=grid, axis=1), x=grid)
    assert abs(total2 - 1.0) < 1e-6


# XLA compilation of the covariance's Hessian is slow, so it is compiled once, in float64.
@pytest.mark.parametrize(
    "dtype,mode", [(np.float32, "eager"), (np.float64, "eager"), (np.float64, "xla")]
)
def test_moments_match_brute_force(dtype, mode):
    locs, scales, cores = random_params(m=3, d=3, r=3, seed=5)
    trip = make_trip(dtype, locs, scales, cores)
    mean, variance, covariance = run(
        mode, lambda: (trip.mean(), trip.variance(), trip.covariance())
    )
    expected_mean, expected_cov = BruteForce(locs, scales, cores).moments()
    atol = {np.float32: 1e-4, np.float64: 1e-10}[dtype]
    np.testing.assert_allclose(mean, expected_mean, atol=atol)
    np.testing.assert_allclose(variance, np.diag(expected_cov), atol=atol)
    np.testing.assert_allclose(covariance, expected_cov, atol=atol)


def test_batched_moments_and_component_probs():
    locs, scales, cores = random_params(m=3, d=2, r=2, seed=6, batch=(2,))
    trip = TRIP(locs, scales, cores)
    covariance = trip.covariance().numpy()
    probs = trip.component_probs().numpy()
    for b in range(2):
        brute = BruteForce(locs[b], scales[b], cores[b])
        np.testing.assert_allclose(covariance[b], brute.moments()[1], atol=1e-10)
        for k in range(3):
            expected = [brute.weights[brute.index[:, k] == i].sum() for i in range(2)]
            np.testing.assert_allclose(probs[b, k], expected, atol=1e-12)


def test_sample_moments_within_monte_carlo_error(dtype):
    locs, scales, cores = random_params(m=3, d=3, r=2, seed=7)
    trip = make_trip(dtype, locs, scales, cores)
    n = 20000
    z = trip.sample(n, seed=[3, 4]).numpy().astype(np.float64)
    assert z.shape == (n, 3)
    mean, cov = BruteForce(locs, scales, cores).moments()
    centered = z - z.mean(0)
    products = centered[:, :, None] * centered[:, None, :]
    mean_se = z.std(0) / np.sqrt(n)
    cov_se = products.std(0) / np.sqrt(n)
    assert np.all(np.abs(z.mean(0) - mean) < 5 * mean_se)
    assert np.all(np.abs(products.mean(0) - cov) < 5 * cov_se + 1e-3 * np.abs(cov).max())


def test_sample_component_frequencies_are_exact():
    # Separated, narrow components: the component of each coordinate is round(z / 10).
    m, d = 3, 3
    _, _, cores = random_params(m=m, d=d, r=2, seed=8)
    locs = np.tile(10.0 * np.arange(d), (m, 1))
    trip = TRIP(locs, np.full((m, d), 0.01), cores)
    n = 30000
    sample = tf.function(lambda: trip.sample(n, seed=[5, 6]), jit_compile=True)().numpy()
    index = np.rint(sample / 10.0).astype(int)
    codes = (index * d ** np.arange(m)[::-1]).sum(1)
    frequencies = np.bincount(codes, minlength=d**m) / n
    brute = BruteForce(locs, np.full((m, d), 0.01), cores)
    brute_codes = (brute.index * d ** np.arange(m)[::-1]).sum(1)
    probs = np.zeros(d**m)
    probs[brute_codes] = brute.weights
    se = np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(frequencies - probs) < 5 * se + 1e-4)


def test_sampling_is_stateless_and_supports_batches():
    locs, scales, cores = random_params(m=4, d=2, r=2, seed=9, batch=(3,))
    trip = TRIP(locs, scales, cores)
    first = trip.sample([2, 5], seed=[7, 8]).numpy()
    assert first.shape == (2, 5, 3, 4)
    np.testing.assert_array_equal(first, trip.sample([2, 5], seed=[7, 8]).numpy())
    assert not np.allclose(first, trip.sample([2, 5], seed=[7, 9]).numpy())


@pytest.mark.parametrize("dims", [[0, 2], [3, 1], [2]])
def test_marginal_matches_brute_force(dims):
    locs, scales, cores = random_params(m=4, d=2, r=3, seed=10)
    trip = TRIP(locs, scales, cores)
    marginal = trip.marginal(dims)
    sorted_dims = np.sort(dims)
    assert marginal.event_shape == [len(dims)]
    x = np.random.default_rng(11).normal(size=(6, len(dims))) * 2.0
    expected = BruteForce(locs, scales, cores).log_prob(x, dims=sorted_dims)
    np.testing.assert_allclose(marginal.log_prob(x).numpy(), expected, rtol=1e-9)


@pytest.mark.parametrize(
    "dtype,mode",
    [(np.float32, "eager"), (np.float64, "eager"), (np.float32, "function"), (np.float64, "xla")],
)
def test_conditional_matches_brute_force(dtype, mode):
    locs, scales, cores = random_params(m=4, d=3, r=2, seed=12)
    trip = make_trip(dtype, locs, scales, cores)
    mask = np.array([True, False, True, False])
    rng = np.random.default_rng(13)
    observed = rng.normal(size=(5, 4)) * 2.0
    z_free = rng.normal(size=(5, 2)) * 2.0

    def conditional_log_prob(observed, z_free):
        conditional = trip.conditional(observed, mask)
        return conditional.log_prob(z_free), conditional.mean()

    got, got_mean = run(mode, conditional_log_prob, observed.astype(dtype), z_free.astype(dtype))
    brute = BruteForce(locs, scales, cores)
    full = observed.copy()
    full[:, ~mask] = z_free
    expected = brute.log_prob(full) - brute.log_prob(observed[:, mask], dims=np.flatnonzero(mask))
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype])
    # Conditional mean: component posterior given the observed coordinates.
    log_post = np.log(brute.weights)[None] + norm.logpdf(
        observed[:, None, mask], brute.means[None][..., mask], brute.stds[None][..., mask]
    ).sum(-1)
    post = np.exp(log_post - logsumexp(log_post, axis=1, keepdims=True))
    np.testing.assert_allclose(
        got_mean, post @ brute.means[:, ~mask], rtol=RTOL[dtype], atol=RTOL[dtype]
    )


def log_space_reference(locs, scales, cores, x):
    """log p(x) with every product done by log-sum-exp in float64 (no rescaling)."""
    log_cores = np.log(cores)
    r = cores.shape[-1]

    def log_ring(log_weights):  # log_weights [m, d]
        log_product = np.where(np.eye(r) > 0, 0.0, -np.inf)
        for k in range(len(log_weights)):
            log_factor = logsumexp(log_cores[k] + log_weights[k][:, None, None], axis=0)
            log_product = logsumexp(log_product[:, :, None] + log_factor[None], axis=1)
        return logsumexp(np.diag(log_product))

    log_z = log_ring(np.zeros(locs.shape))
    return np.array([log_ring(norm.logpdf(xi[:, None], locs, scales)) for xi in x]) - log_z


def test_stable_for_128_dimensions(dtype):
    m, d, r = 128, 3, 3
    rng = np.random.default_rng(14)
    locs, scales = rng.normal(size=(m, d)), rng.uniform(0.2, 0.5, size=(m, d))
    cores = rng.uniform(size=(m, d, r, r)) * 1e-3  # the plain product underflows
    x = rng.normal(size=(4, m)) * 3.0  # densities far below float32's range
    trip = make_trip(dtype, locs, scales, cores)
    got = tf.function(trip.log_prob, jit_compile=True)(x.astype(dtype)).numpy()
    expected = log_space_reference(locs, scales, cores, x)
    assert np.all(np.isfinite(got)) and np.all(expected < -300)
    np.testing.assert_allclose(got, expected, rtol={np.float32: 1e-5, np.float64: 1e-12}[dtype])
    with tf.GradientTape() as tape:
        tape.watch(trip.cores)
        log_prob = tf.reduce_sum(trip.log_prob(x.astype(dtype)))
    assert np.all(np.isfinite(tape.gradient(log_prob, trip.cores).numpy()))


def test_gradients_match_finite_differences():
    locs, scales, cores = random_params(m=3, d=2, r=2, seed=15)
    x = np.random.default_rng(16).normal(size=(4, 3))
    params = [tf.constant(p) for p in (locs, scales, cores)]

    def objective(locs, scales, cores):
        return tf.reduce_sum(TRIP(locs, scales, cores).log_prob(x))

    with tf.GradientTape() as tape:
        tape.watch(params)
        value = objective(*params)
    grads = tape.gradient(value, params)
    eps = 1e-6
    for which, grad in enumerate(grads):
        flat = params[which].numpy().ravel()
        numeric = np.zeros_like(flat)
        for j in range(flat.size):
            shifted = []
            for sign in (1.0, -1.0):
                bumped = flat.copy()
                bumped[j] += sign * eps
                args = list(params)
                args[which] = tf.constant(bumped.reshape(params[which].shape))
                shifted.append(objective(*args).numpy())
            numeric[j] = (shifted[0] - shifted[1]) / (2 * eps)
        np.testing.assert_allclose(grad.numpy().ravel(), numeric, rtol=1e-6, atol=1e-7)


def test_bad_shapes_raise_value_errors_naming_the_shapes():
    locs, scales, cores = random_params(m=3, d=2, r=2)
    with pytest.raises(ValueError, match=r"locs \(3, 2\), scales \(3, 3\)"):
        TRIP(locs, np.ones((3, 3)), cores)
    with pytest.raises(ValueError, match=r"cores \(3, 2, 2, 3\)"):
        TRIP(locs, scales, np.ones((3, 2, 2, 3)))
    with pytest.raises(ValueError, match=r"cores \(4, 2, 2, 2\)"):
        TRIP(locs, scales, np.ones((4, 2, 2, 2)))
    with pytest.raises(ValueError, match="`cores` must have rank >= 4"):
        TRIP(locs, scales, np.ones((3, 2, 2)))
    trip = TRIP(locs, scales, cores)
    with pytest.raises(ValueError, match=r"`value` must have shape \[\.\.\., 3\]"):
        trip.log_prob(np.zeros((5, 4)))
    with pytest.raises(
        ValueError, match=r"`observed_mask` must be a boolean sequence of shape \[3\]"
    ):
        trip.conditional(np.zeros(3), [True, False])
    with pytest.raises(ValueError, match="`observed_mask` must be a boolean"):
        trip.conditional(np.zeros(3), [1, 0, 1])
    with pytest.raises(ValueError, match="at least one must be unobserved"):
        trip.conditional(np.zeros(3), [True, True, True])
    with pytest.raises(ValueError, match=r"`observed_values` must have shape \[\.\.\., 3\]"):
        trip.conditional(np.zeros(2), [True, False, True])
    for dims in ([], [0, 0], [3], [0.5]):
        with pytest.raises(ValueError, match=r"`dims` must be a non-empty sequence of distinct"):
            trip.marginal(dims)


def test_validate_args_checks_scales_and_cores():
    locs, scales, cores = random_params(m=2, d=2, r=2)
    bad_cores = cores.copy()
    bad_cores[0, 0, 0, 0] = -0.1
    with pytest.raises(tf.errors.InvalidArgumentError, match="`cores` must be non-negative"):
        TRIP(locs, scales, bad_cores, validate_args=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`scales` must be positive"):
        TRIP(locs, np.zeros_like(scales), cores, validate_args=True)
    variable = tf.Variable(cores)
    trip = TRIP(locs, scales, variable, validate_args=True)
    variable.assign(bad_cores)
    with pytest.raises(tf.errors.InvalidArgumentError, match="`cores` must be non-negative"):
        trip.log_prob(np.zeros(2))


def test_kmeans_1d_matches_scikit_learn():
    sklearn_cluster = pytest.importorskip("sklearn.cluster")
    rng = np.random.default_rng(17)
    values = np.concatenate(
        [rng.normal(-4, 0.5, 300), rng.normal(0, 0.3, 200), rng.normal(3, 0.8, 500)]
    )
    centers, stds, fractions = kmeans_1d(values, 3)
    reference = sklearn_cluster.KMeans(3, n_init=10, random_state=0).fit(values[:, None])
    np.testing.assert_allclose(centers, np.sort(reference.cluster_centers_[:, 0]), atol=1e-8)
    order = np.argsort(reference.cluster_centers_[:, 0])
    labels = np.argsort(order)[reference.labels_]
    np.testing.assert_allclose(fractions, np.bincount(labels) / values.size)
    np.testing.assert_allclose(stds, [values[labels == j].std() for j in range(3)])


def test_prior_layer_gradients_init_and_serialization(tmp_path):
    rng = np.random.default_rng(18)
    codes = np.concatenate([rng.normal(-2, 0.3, (200, 3)), rng.normal(2, 0.3, (200, 3))])
    prior = TRIPPrior(num_components=2, rank=3)
    prior.build((None, 3))
    before = float(tf.reduce_mean(prior(codes)))
    prior.initialize_from_data(codes)
    after = float(tf.reduce_mean(prior(codes)))
    assert after > before + 1.0
    np.testing.assert_allclose(
        np.sort(prior.loc_params.numpy(), axis=1), np.tile([-2.0, 2.0], (3, 1)), atol=0.1
    )
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(prior(codes))
    grads = tape.gradient(loss, prior.trainable_weights)
    assert len(grads) == 3
    assert all(np.all(np.isfinite(g.numpy())) and np.any(g.numpy() != 0) for g in grads)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, TRIPPrior(num_components=2, rank=3, name="prior")(inputs))
    model.get_layer("prior").initialize_from_data(codes)
    config = model.get_layer("prior").get_config()
    clone = TRIPPrior.from_config(config)
    assert clone.get_config() == config
    path = tmp_path / "trip_prior.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(codes, verbose=0), model.predict(codes, verbose=0), rtol=1e-6
    )


def test_prior_layer_trains_with_xla_fit():
    rng = np.random.default_rng(19)
    codes = np.concatenate([rng.normal(-2, 0.3, (256, 2)), rng.normal(2, 0.3, (256, 2))])
    codes = codes.astype(np.float32)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, TRIPPrior(num_components=2, rank=2)(inputs))
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        jit_compile=True,
        loss=lambda y_true, log_prob: -log_prob,
    )
    history = model.fit(codes, np.zeros(len(codes)), batch_size=128, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.5


def test_prior_layer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`rank` must be a positive int; got 0"):
        TRIPPrior(num_components=2, rank=0)
    with pytest.raises(ValueError, match="`num_components` must be a positive int; got 2.5"):
        TRIPPrior(num_components=2.5, rank=2)
    prior = TRIPPrior(num_components=2, rank=2)
    prior.build((None, 3))
    with pytest.raises(ValueError, match=r"`codes` must have shape \[n, 3\]"):
        prior.initialize_from_data(np.zeros((10, 4)))
