"""VAEAC with convolutional networks (``image_shape``): the row/image layout against NumPy, the
levels, a model that completes hidden halves from the visible ones, serialization and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfbayes.models import VAEAC, ImageHalfMask
from tfbayes.models.vaeac_networks import resolutions, rows_to_images


def test_rows_to_images_stacks_each_flat_image_as_channels():
    rng = np.random.default_rng(0)
    values, masks = rng.random((2, 4, 6, 3)), rng.random((2, 4, 6, 3))  # [B, H, W, C]
    rows = np.concatenate([values.reshape(2, -1), masks.reshape(2, -1)], axis=1)
    images = rows_to_images(tf.constant(rows), (4, 6, 3)).numpy()
    np.testing.assert_array_equal(images, np.concatenate([values, masks], axis=-1))


def test_resolutions_halve_while_even():
    assert resolutions((28, 28, 1)) == [(28, 28), (14, 14), (7, 7)]
    assert resolutions((32, 16, 3)) == [(32, 16), (16, 8), (8, 4)]
    assert resolutions((5, 5, 1)) == [(5, 5)]


def _row_images(rng, n):
    """8 × 8 images whose rows are constant: the left half tells the right half exactly."""
    return np.broadcast_to(rng.random((n, 8, 1)), (n, 8, 8)).reshape(n, 64)


def test_completes_a_hidden_half_from_the_visible_one(tmp_path):
    rng = np.random.default_rng(0)
    x = (_row_images(rng, 2048) + 0.02 * rng.normal(size=(2048, 64))).astype("float32")
    keras.utils.set_random_seed(0)
    model = VAEAC(
        [0] * 64,
        latent_dim=4,
        width=8,
        depth=1,
        image_shape=(8, 8),
        mask_generator=ImageHalfMask((8, 8)),
        normalization="none",
        nll_beta=0.5,
        seed=0,
    )
    model.compile(keras.optimizers.Adam(3e-3), jit_compile=True)
    model.fit(x, batch_size=64, epochs=15, verbose=0)
    truth = _row_images(rng, 200)
    hidden = np.zeros((200, 8, 8), bool)
    hidden[:, :, 4:] = True
    hidden = hidden.reshape(200, 64)
    rows = np.where(hidden, np.nan, truth)
    completion = model.impute(rows, 5, most_probable=True, seed=0).mean(axis=1)
    error = np.mean((completion - truth)[hidden] ** 2)
    mean_image_error = np.mean((x.mean(axis=0) - truth)[hidden] ** 2)  # about 1/12
    assert error < 0.5 * mean_image_error, (error, mean_image_error)

    path = tmp_path / "conv.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.image_shape == (8, 8, 1)
    np.testing.assert_array_equal(
        loaded.impute(rows[:3], 2, seed=1), model.impute(rows[:3], 2, seed=1)
    )


def test_image_shape_errors_are_named():
    with pytest.raises(ValueError, match=r"image_shape: \(8, 8, 1\) holds 64 pixels, but .* 63"):
        VAEAC([0] * 63, image_shape=(8, 8))
    with pytest.raises(ValueError, match="image_shape: convolutional networks need real features"):
        VAEAC([0] * 3 + [2], image_shape=(2, 2))
    with pytest.raises(ValueError, match="image_shape: expected None, \\(height, width\\)"):
        VAEAC([0] * 4, image_shape=4)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_convolutions_train_in_16_bits(policy):
    x = np.random.default_rng(0).random((128, 16)).astype("float32")
    model = VAEAC(
        [0] * 16, latent_dim=4, width=8, depth=1, image_shape=(4, 4), dtype=policy, seed=0
    )
    model.compile(keras.optimizers.Adam(1e-3))
    loss = model.fit(x, batch_size=32, epochs=1, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss))
    assert model.proposal_network.compute_dtype == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in model.weights)
    rows = np.where(np.arange(16) < 8, x[:4], np.nan)
    assert np.all(np.isfinite(model.impute(rows, 2, seed=0)))
