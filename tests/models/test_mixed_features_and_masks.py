"""Mixed-feature encoding, likelihood and sampling against NumPy/scipy; the mask generators."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf

from tf_modes import MODES, run_in_mode
from tfbayes.models import (
    ImageHalfMask,
    ImageRectangleMask,
    MaskMixture,
    MCARMask,
    MixedFeatures,
)

SIZES = [0, 3, 1, 2]  # real, 3 categories, real, 2 categories


def _rows(dtype):
    return np.array([[0.5, 2, -1.0, 0], [np.nan, 0, 2.0, np.nan], [1.5, np.nan, np.nan, 1]], dtype)


def test_encode_is_values_then_one_hot_with_missing_as_zeros(dtype):
    encoded = MixedFeatures(SIZES).encode(tf.constant(_rows(dtype))).numpy()
    expected = np.array(
        [[0.5, -1.0, 0, 0, 1, 1, 0], [0.0, 2.0, 1, 0, 0, 0, 0], [1.5, 0.0, 0, 0, 0, 0, 1]], dtype
    )
    np.testing.assert_array_equal(encoded, expected)
    assert MixedFeatures(SIZES).encoded_width == 7 and MixedFeatures(SIZES).param_width == 9


@pytest.mark.parametrize("mode", MODES)
def test_log_prob_equals_scipy(dtype, mode):
    features = MixedFeatures(SIZES, min_scale=0.05)
    rng = np.random.default_rng(0)
    x = _rows(dtype)
    params = rng.normal(size=(3, features.param_width)).astype(dtype)
    weight = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1]], dtype)
    got = run_in_mode(
        features.log_prob, mode, tf.constant(x), tf.constant(params), tf.constant(weight)
    ).numpy()
    mean, raw = params[:, 0:2], params[:, 2:4]
    scale = np.maximum(np.log1p(np.exp(raw)), 0.05)
    expected = np.zeros(3)
    for i in range(3):
        for r, j in enumerate([0, 2]):
            if weight[i, j] and not np.isnan(x[i, j]):
                expected[i] += scipy.stats.norm.logpdf(x[i, j], mean[i, r], scale[i, r])
        for j, k, start in [(1, 3, 4), (3, 2, 7)]:
            if weight[i, j] and not np.isnan(x[i, j]):
                expected[i] += scipy.special.log_softmax(params[i, start : start + k])[int(x[i, j])]
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_beta_nll_weights_real_terms_and_their_mean_gradients(dtype, mode):
    """β-NLL: value sum_j w_j σ_j^{2β} log N(x_j; μ_j, σ_j) (categorical terms unweighted), and
    the gradient in μ_j is w_j (x_j − μ_j) / σ_j^{2 − 2β}, with no gradient through the weight."""
    features = MixedFeatures(SIZES, min_scale=0.05)
    x = np.nan_to_num(_rows(dtype))
    params = np.random.default_rng(1).normal(size=(3, features.param_width)).astype(dtype)
    weight = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [0, 1, 1, 1]], dtype)
    beta = 0.5

    def value_and_mean_grad(params):
        with tf.GradientTape() as tape:
            tape.watch(params)
            value = features.log_prob(tf.constant(x), params, tf.constant(weight), beta)
        return value, tape.gradient(value, params)

    value, grad = run_in_mode(value_and_mean_grad, mode, tf.constant(params))
    mean, scale = params[:, 0:2], np.maximum(np.log1p(np.exp(params[:, 2:4])), 0.05)
    real_x, real_w = x[:, [0, 2]], weight[:, [0, 2]]
    plain = features.log_prob(tf.constant(x), tf.constant(params), tf.constant(weight)).numpy()
    real_terms = real_w * scipy.stats.norm.logpdf(real_x, mean, scale)
    expected = plain - real_terms.sum(1) + (real_terms * scale ** (2 * beta)).sum(1)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value.numpy(), expected, rtol=tol)
    np.testing.assert_allclose(
        grad.numpy()[:, 0:2], real_w * (real_x - mean) / scale ** (2 - 2 * beta), rtol=tol, atol=tol
    )


def test_sample_moments_and_most_probable():
    features = MixedFeatures([0, 3])
    params = np.array([[1.5, np.log(np.expm1(0.5)), 0.0, 1.0, -1.0]], np.float64)
    params = np.repeat(params, 20000, axis=0)
    draws = features.sample(tf.constant(params), tf.constant([1, 2])).numpy()
    # Gaussian: mean 1.5, sd 0.5; tolerance 4 standard errors.
    assert abs(draws[:, 0].mean() - 1.5) < 4 * 0.5 / np.sqrt(20000)
    assert abs(draws[:, 0].std() - 0.5) < 4 * 0.5 / np.sqrt(2 * 20000)
    probs = scipy.special.softmax([0.0, 1.0, -1.0])
    freq = np.bincount(draws[:, 1].astype(int), minlength=3) / 20000
    np.testing.assert_array_less(np.abs(freq - probs), 4 * np.sqrt(probs * (1 - probs) / 20000))
    best = features.sample(tf.constant(params[:1]), tf.constant([1, 2]), most_probable=True)
    np.testing.assert_array_equal(best.numpy(), [[1.5, 1.0]])


def test_bad_layout_and_bad_categories_are_named():
    with pytest.raises(ValueError, match="one_hot_max_sizes"):
        MixedFeatures([0, -1])
    with pytest.raises(ValueError, match="one_hot_max_sizes"):
        MixedFeatures([])
    with pytest.raises(ValueError, match="column 1 is categorical with 3 categories"):
        MixedFeatures(SIZES).check_values(np.array([[0.0, 3.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="column 3"):
        MixedFeatures(SIZES).check_values(np.array([[0.0, 1.0, 0.0, 0.5]]))


@pytest.mark.parametrize("mode", MODES)
def test_mcar_rate_and_determinism(mode):
    draw = lambda s: MCARMask(0.3)(500, 40, s)  # noqa: E731
    mask = run_in_mode(draw, mode, tf.constant([3, 4])).numpy()
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert abs(mask.mean() - 0.3) < 4 * np.sqrt(0.3 * 0.7 / mask.size)
    # The same seed gives the same masks (XLA's stateless generator differs from the kernels').
    np.testing.assert_array_equal(mask, run_in_mode(draw, mode, tf.constant([3, 4])).numpy())


@pytest.mark.parametrize("mode", MODES)
def test_rectangle_mask_is_one_rectangle_within_bounds(mode):
    generator = ImageRectangleMask((10, 12, 2), min_fraction=0.3, max_fraction=0.6)
    masks = run_in_mode(lambda s: generator(200, 240, s), mode, tf.constant([5, 6])).numpy()
    masks = masks.reshape(200, 10, 12, 2)
    np.testing.assert_array_equal(masks[..., 0], masks[..., 1])  # channels hidden together
    for m in masks[..., 0]:
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        assert m.sum() == len(rows) * len(cols)  # a full rectangle
        assert np.all(np.diff(rows) == 1) and np.all(np.diff(cols) == 1)
        assert round(0.3 * 10) <= len(rows) <= round(0.6 * 10)
        assert round(0.3 * 12) <= len(cols) <= round(0.6 * 12)


def test_half_mask_hides_one_half_each_side_about_equally():
    masks = ImageHalfMask((6, 8))(400, 48, tf.constant([1, 1])).numpy().reshape(400, 6, 8)
    halves = {
        "top": np.zeros((6, 8)),
        "bottom": np.zeros((6, 8)),
        "left": np.zeros((6, 8)),
        "right": np.zeros((6, 8)),
    }
    halves["top"][:3] = 1
    halves["bottom"][3:] = 1
    halves["left"][:, :4] = 1
    halves["right"][:, 4:] = 1
    counts = {name: sum(np.array_equal(m, h) for m in masks) for name, h in halves.items()}
    assert sum(counts.values()) == 400
    for count in counts.values():  # each side with probability 1/4: 4 standard errors
        assert abs(count - 100) < 4 * np.sqrt(400 * 0.25 * 0.75)


def test_mask_arguments_are_checked():
    with pytest.raises(ValueError, match="rate"):
        MCARMask(0.0)
    with pytest.raises(ValueError, match="image_shape"):
        ImageHalfMask((28,))
    with pytest.raises(ValueError, match="min_fraction"):
        ImageRectangleMask((4, 4), min_fraction=0.8, max_fraction=0.5)
    with pytest.raises(ValueError, match="expected 16 features"):
        ImageHalfMask((4, 4))(2, 15, tf.constant([0, 0]))


@pytest.mark.parametrize("mode", MODES)
def test_mixture_draws_each_row_from_one_generator_with_its_weight(mode):
    # Two generators whose masks cannot be confused: every feature hidden, or a half image.
    mixture = MaskMixture([MCARMask(1.0), ImageHalfMask((6, 8))], weights=[1, 3])
    draw = lambda s: mixture(1000, 48, s)  # noqa: E731
    masks = run_in_mode(draw, mode, tf.constant([7, 8])).numpy()
    full = masks.all(axis=1)
    assert np.all(masks[~full].sum(axis=1) == 24)  # the other rows are half images
    # P(all hidden) = 1/4: 4 binomial standard errors.
    assert abs(full.mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / 1000)
    np.testing.assert_array_equal(masks, run_in_mode(draw, mode, tf.constant([7, 8])).numpy())
    assert not np.array_equal(masks, run_in_mode(draw, mode, tf.constant([7, 9])).numpy())


def test_mixture_round_trips_and_checks_its_arguments():
    import keras

    mixture = MaskMixture([ImageRectangleMask((4, 4), 0.5, 0.5), MCARMask(0.3)], [2.0, 1.0])
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(mixture))
    assert restored.weights == [2.0, 1.0]
    assert [type(g) for g in restored.generators] == [ImageRectangleMask, MCARMask]
    assert restored.generators[0].min_fraction == 0.5 and restored.generators[1].rate == 0.3
    seed = tf.constant([1, 2])
    np.testing.assert_array_equal(mixture(50, 16, seed).numpy(), restored(50, 16, seed).numpy())
    with pytest.raises(TypeError, match="generators: expected a non-empty list"):
        MaskMixture([])
    with pytest.raises(TypeError, match="generators"):
        MaskMixture([MCARMask(0.2), "half"])
    with pytest.raises(ValueError, match="weights: expected 2 positive numbers"):
        MaskMixture([MCARMask(0.2), MCARMask(0.5)], [1.0])
    with pytest.raises(ValueError, match="weights"):
        MaskMixture([MCARMask(0.2)], [0.0])
