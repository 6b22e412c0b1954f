"""VAEAC against exact references: Gaussian conditionals, multimodal conditionals, the IWAE bound of
a model whose likelihood is known, normalization and NaN handling, serialization and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes.models import VAEAC, ImageHalfMask, MCARMask

COV = np.array([[1.0, 0.8, 0.5], [0.8, 1.0, 0.3], [0.5, 0.3, 1.0]])
MEAN = np.array([1.0, -2.0, 3.0])


def _small(sizes, **kwargs):
    return VAEAC(
        sizes,
        latent_dim=kwargs.pop("latent_dim", 8),
        width=kwargs.pop("width", 64),
        depth=kwargs.pop("depth", 2),
        seed=0,
        **kwargs,
    )


@pytest.fixture(scope="module")
def gaussian_model():
    """A VAEAC trained on a 3-D Gaussian with 10 % of the entries missing."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.multivariate_normal(MEAN, COV, size=6000).astype("float32")
    x[rng.random(x.shape) < 0.1] = np.nan
    model = _small([0, 0, 0], mask_generator=MCARMask(0.5))
    model.compile(keras.optimizers.Adam(2e-3), jit_compile=True)
    model.fit(x, batch_size=128, epochs=12, verbose=0)
    return model


def test_imputations_approach_the_exact_gaussian_conditionals(gaussian_model):
    """For each query the imputed mean and sd are compared with the exact conditional's. The model
    is approximate, so the bound is relative: its error must be under a third of what imputing from
    the marginal would make, and its sd within 25 % of the exact one (the marginal's sd is 1, the
    conditional's 0.57-0.85). Monte Carlo error (2,000 draws: 0.02 sd) is negligible against both."""
    rng = np.random.default_rng(1)
    for hidden in ([2], [0], [1, 2]):
        shown = [j for j in range(3) if j not in hidden]
        for _ in range(3):
            row = rng.multivariate_normal(MEAN, COV)
            s_hh = COV[np.ix_(hidden, hidden)]
            s_hs = COV[np.ix_(hidden, shown)]
            gain = s_hs @ np.linalg.inv(COV[np.ix_(shown, shown)])
            exact_mean = MEAN[hidden] + gain @ (row[shown] - MEAN[shown])
            exact_sd = np.sqrt(np.diag(s_hh - gain @ s_hs.T))
            query = row.copy()
            query[hidden] = np.nan
            draws = gaussian_model.impute(query[None], num_imputations=2000, seed=3)[0][:, hidden]
            error = np.abs(draws.mean(0) - exact_mean)
            marginal_error = np.sqrt((MEAN[hidden] - exact_mean) ** 2 + np.diag(s_hh))
            assert np.all(error < marginal_error / 3), (hidden, error, marginal_error)
            np.testing.assert_allclose(draws.std(0), exact_sd, rtol=0.25)


def test_multimodal_conditionals_cover_every_mode():
    """x2 = ±1 + N(0, 0.1²) whatever x1. A single-point imputer puts every x2 at one value, and a
    model whose generator ignores z (posterior collapse) imputes from about N(0, 1), with 38 % of
    the mass in |x2| < 0.5. The VAEAC must put at least a quarter on each mode and under a fifth
    between them (measured: 37/51 % and 44/46 % on the modes, 10-11 % between)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = 2000
    x1 = rng.uniform(-1, 1, n)
    x2 = rng.choice([-1.0, 1.0], n) + 0.1 * rng.normal(size=n)
    model = _small([0, 0], latent_dim=4, mask_generator=MCARMask(0.5))
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=True)
    model.fit(np.c_[x1, x2].astype("float32"), batch_size=32, epochs=40, verbose=0)
    draws = model.impute(np.array([[0.3, np.nan], [-0.6, np.nan]]), 1000, seed=1)[:, :, 1]
    for row in draws:
        upper, lower = np.mean(row > 0.5), np.mean(row < -0.5)
        assert upper > 0.25 and lower > 0.25, (upper, lower)
        assert 1 - upper - lower < 0.2, (upper, lower)


def _z_blind_model(dtype="float32"):
    """A model whose generative network ignores z (zero stem kernel), so that
    p(x_b | z, x_{1-b}, b) = c does not depend on z and log p(x_b | x_{1-b}, b) = c exactly."""
    model = _small([0, 0, 3], dtype=dtype)
    x = np.array([[0.2, -1.0, 2.0], [1.0, 0.5, 0.0]])
    model.adapt(x)
    stem = model.generative_network.stem
    stem.kernel.assign(np.zeros(stem.kernel.shape))
    return model, x


def test_iwae_is_below_the_likelihood_and_tightens_with_k():
    """With z ignored, IWAE_K = c + log mean_k p(z_k)/q(z_k): E[IWAE_1] = c - KL(q || p) exactly,
    E[IWAE_K] rises with K and stays below c (Jensen)."""
    model, x = _z_blind_model("float64")
    mask = np.array([[True, False, True], [False, True, True]])
    xn = model._normalize(tf.constant(x))
    proposal, prior, prior_input, states = model._distributions(xn, tf.constant(mask, tf.float64))
    z = proposal.sample(seed=[0, 1])
    params = model.generative_network(z, prior_input, states)
    exact = model.features.log_prob(xn, params, tf.constant(mask, tf.float64)).numpy()
    kl = tfd_kl(proposal, prior)
    repeats = 400
    estimates = {
        k: np.array([model.iwae(x, mask, k, seed=[k, r]) for r in range(repeats)])
        for k in (1, 10, 100)
    }
    one = estimates[1]
    np.testing.assert_allclose(
        one.mean(0), exact - kl, atol=4 * one.std(0).max() / np.sqrt(repeats) + 1e-9
    )
    means = {k: e.mean(0) for k, e in estimates.items()}
    assert np.all(means[1] < means[10]) and np.all(means[10] < means[100])
    assert np.all(means[100] <= exact + 4 * estimates[100].std(0) / np.sqrt(repeats))


def tfd_kl(q, p):
    import tensorflow_probability as tfp

    return tfp.distributions.kl_divergence(q, p).numpy()


def test_adapt_matches_numpy_on_observed_values(dtype):
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(3, 2, 500), rng.integers(0, 4, 500), rng.normal(-1, 0.5, 500)]
    x[rng.random(x.shape) < 0.2] = np.nan
    model = _small([0, 4, 1], dtype="float64" if dtype == np.float64 else "float32")
    model.adapt(x)
    np.testing.assert_allclose(
        model.feature_mean.numpy()[[0, 2]], np.nanmean(x[:, [0, 2]], 0), rtol=1e-6
    )
    np.testing.assert_allclose(
        model.feature_std.numpy()[[0, 2]], np.nanstd(x[:, [0, 2]], 0), rtol=1e-6
    )
    assert model.feature_mean.numpy()[1] == 0 and model.feature_std.numpy()[1] == 1


def test_shared_and_no_normalization(tmp_path):
    rng = np.random.default_rng(1)
    x = np.c_[rng.normal(3, 2, 300), rng.integers(0, 4, 300), rng.normal(-1, 0.5, 300)]
    x[rng.random(x.shape) < 0.2] = np.nan
    shared = _small([0, 4, 0], normalization="shared")
    shared.adapt(x)
    real = x[:, [0, 2]]
    np.testing.assert_allclose(shared.feature_mean.numpy()[[0, 2]], np.nanmean(real), rtol=1e-6)
    np.testing.assert_allclose(shared.feature_std.numpy()[[0, 2]], np.nanstd(real), rtol=1e-6)
    assert shared.feature_mean.numpy()[1] == 0 and shared.feature_std.numpy()[1] == 1
    # "none" keeps the values: no adapt is needed, also before a tf.data fit.
    plain = _small([0, 4, 0], normalization="none")
    data = tf.data.Dataset.from_tensor_slices(x[:256].astype("float32")).batch(64)
    plain.compile(keras.optimizers.Adam(1e-3))
    plain.fit(data, epochs=1, verbose=0)
    plain.adapt(x)
    np.testing.assert_array_equal(plain.feature_mean.numpy(), 0)
    np.testing.assert_array_equal(plain.feature_std.numpy(), 1)
    plain.save(tmp_path / "plain.keras")
    assert keras.models.load_model(tmp_path / "plain.keras").normalization == "none"
    with pytest.raises(ValueError, match="normalization: expected one of"):
        _small([0], normalization="global")
    categorical = _small([3, 2], normalization="shared")  # no real column: nothing to normalise
    categorical.adapt(np.array([[0.0, 1.0], [2.0, 0.0]]))
    np.testing.assert_array_equal(categorical.feature_std.numpy(), 1)
    with pytest.raises(ValueError, match="the real columns have no observed value"):
        _small([0, 0], normalization="shared").adapt(np.full((2, 2), np.nan))


def test_impute_keeps_observed_entries_and_fills_valid_values(dtype):
    model, x = _z_blind_model("float64" if dtype == np.float64 else "float32")
    rows = np.array([[0.3, np.nan, np.nan], [np.nan, np.nan, np.nan], [1.0, 2.0, 1.0]])
    out = model.impute(rows, num_imputations=5, seed=0)
    assert out.shape == (3, 5, 3) and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out[0, :, 0], 0.3)  # observed entries are copied
    np.testing.assert_array_equal(out[2], np.repeat(rows[2:], 5, 0))
    assert set(np.unique(out[:, :, 2])) <= {0.0, 1.0, 2.0}  # categories stay categories
    np.testing.assert_array_equal(out, model.impute(rows, 5, seed=0))  # the seed fixes them
    assert not np.array_equal(out, model.impute(rows, 5, seed=1))


def test_conditional_samples_and_scores():
    model, x = _z_blind_model()
    rows = np.array([[0.3, np.nan, np.nan]])
    dist = model.conditional(rows, num_importance_samples=20, seed=0)
    assert dist.batch_shape == [1] and dist.event_shape == [3]
    draws = dist.sample(4, seed=[1, 2]).numpy()
    assert draws.shape == (4, 1, 3)
    np.testing.assert_array_equal(draws[..., 0], 0.3)
    expected = np.stack([model.iwae(d, np.isnan(rows), 20, seed=0) for d in draws])
    np.testing.assert_allclose(dist.log_prob(draws).numpy(), expected, rtol=1e-5)


def test_fit_from_tf_data_under_jit_and_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(size=(256, 2)), rng.integers(0, 3, 256)].astype("float32")
    model = _small([0, 0, 3])
    with pytest.raises(ValueError, match="adapt"):
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=1, verbose=0)
    model.adapt(x)
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=True)
    history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    path = tmp_path / "vaeac.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    rows = np.array([[0.5, np.nan, np.nan]])
    np.testing.assert_array_equal(loaded.impute(rows, 3, seed=7), model.impute(rows, 3, seed=7))
    assert loaded.get_config()["one_hot_max_sizes"] == [0, 0, 3]


def test_nll_beta_changes_the_training_loss_not_the_bound(tmp_path):
    """With the same weights and seed, calling the model returns the same lower bound for every
    nll_beta; only the loss differs (β-NLL weights σ^{2β} < 1 here shrink the real terms)."""
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    plain, weighted = (
        _small([0, 0, 0], normalization="none"),
        _small([0, 0, 0], normalization="none", nll_beta=0.5),
    )
    plain(x[:1]), weighted(x[:1])
    weighted.set_weights(plain.get_weights())
    bounds, losses = [], []
    for model in (plain, weighted):  # both seed=0, called once: the same masks and z
        bounds.append(model(x).numpy())
        losses.append(float(sum(model.losses)))
    np.testing.assert_allclose(bounds[0], bounds[1], rtol=1e-6)
    assert losses[0] == pytest.approx(-bounds[0].mean() / 3, rel=1e-5)
    assert losses[1] != pytest.approx(losses[0], rel=1e-3)
    path = tmp_path / "beta.keras"
    weighted.save(path)
    assert keras.models.load_model(path).nll_beta == 0.5


def test_image_masks_train_a_model_on_flat_images():
    images = np.random.default_rng(0).random((64, 16)).astype("float32")
    model = _small([0] * 16, mask_generator=ImageHalfMask((4, 4)))
    model.compile(keras.optimizers.Adam(1e-3))
    assert np.isfinite(model.fit(images, batch_size=32, epochs=1, verbose=0).history["loss"][0])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="one_hot_max_sizes"):
        VAEAC([])
    with pytest.raises(ValueError, match="latent_dim"):
        VAEAC([0], latent_dim=0)
    with pytest.raises(ValueError, match="min_scale"):
        VAEAC([0], min_scale=-1.0)
    with pytest.raises(ValueError, match=r"nll_beta: expected a number in \[0, 1\], got 2"):
        VAEAC([0], nll_beta=2)
    with pytest.raises(TypeError, match="mask_generator"):
        VAEAC([0], mask_generator=0.2)
    model, x = _z_blind_model()
    with pytest.raises(ValueError, match=r"x: expected an array of shape \[n, 3\]"):
        model.impute(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="column 2 is categorical with 3 categories"):
        model.impute(np.array([[0.0, 0.0, 5.0]]))
    with pytest.raises(ValueError, match="mask: expected the shape of x"):
        model.iwae(x, np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="num_imputations"):
        model.impute(x, num_imputations=0)
    with pytest.raises(ValueError, match="seed"):
        model.impute(x, seed=(1, 2, 3))
    with pytest.raises(ValueError, match="real column 0 has no observed value"):
        _small([0, 0]).adapt(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="expected 3 features"):
        model(tf.zeros((2, 5)))
