"""Mask generators for VAEAC: which features of a row are hidden from the model in training.

A mask generator is called as ``generator(batch_size, num_features, seed)`` and returns a float
tensor of shape ``[batch_size, num_features]`` with 1 where a feature is *unobserved* (to be
generated) and 0 where it is observed, the convention of Ivanov et al. 2019 (b in p(x_b | x_{1-b})).
``seed`` is a stateless seed (an int tensor of shape ``[2]``): the same seed gives the same masks, and
the generators compile under XLA.

* :class:`MCARMask` hides each feature independently with probability ``rate`` (missing completely
  at random), the reference's choice for tables (``rate=0.2``).
* :class:`ImageRectangleMask` hides one axis-aligned rectangle per image.
* :class:`ImageHalfMask` hides the top, bottom, left or right half of each image.
* :class:`MaskMixture` draws each row's mask from one of several generators, chosen at random per
  row, as the paper trains its inpainting models on a mix of mask kinds.

Image masks act on flattened images: ``num_features`` must equal ``height * width * channels``,
in row-major (``channels_last``) order, and every channel of a pixel is hidden together.
"""

import keras
import numpy as np
import tensorflow as tf

from tfbayes.layers.base import is_finite_real


class MaskGenerator:
    """Base class: subclasses implement ``__call__`` and ``get_config``."""

    def __call__(self, batch_size, num_features, seed):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_rate(value, name):
    if not is_finite_real(value) or not 0 < value <= 1:
        raise ValueError(f"{name}: expected a number in (0, 1], got {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="tfbayes")
class MCARMask(MaskGenerator):
    """Hides each feature independently with probability ``rate``.

    Args:
      rate: the probability that a feature is hidden, in (0, 1].
    """

    def __init__(self, rate=0.2):
        self.rate = _check_rate(rate, "rate")

    def __call__(self, batch_size, num_features, seed):
        u = tf.random.stateless_uniform([batch_size, num_features], seed=seed)
        return tf.cast(u < self.rate, tf.float32)

    def get_config(self):
        return {"rate": self.rate}


class _ImageMask(MaskGenerator):
    """Shared shape handling of the image masks: a per-pixel mask, broadcast over channels."""

    def __init__(self, image_shape):
        shape = tuple(image_shape) if isinstance(image_shape, (list, tuple)) else None
        if (
            shape is None
            or len(shape) not in (2, 3)
            or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                for s in shape
            )
        ):
            raise ValueError(
                "image_shape: expected (height, width) or (height, width, channels) "
                f"of positive ints, got {image_shape!r}"
            )
        self.image_shape = tuple(int(s) for s in shape)

    def _pixel_mask(self, batch_size, seed):
        raise NotImplementedError

    def __call__(self, batch_size, num_features, seed):
        height, width = self.image_shape[:2]
        channels = self.image_shape[2] if len(self.image_shape) == 3 else 1
        if num_features != height * width * channels:
            raise ValueError(
                f"{type(self).__name__}: expected {height * width * channels} features "
                f"(image_shape {self.image_shape} flattened), got {num_features}"
            )
        rows = tf.range(height)[None, :, None]
        cols = tf.range(width)[None, None, :]
        mask = self._pixel_mask(batch_size, seed, rows, cols)  # [batch, height, width] bool
        mask = tf.repeat(tf.reshape(mask, [batch_size, height * width, 1]), channels, axis=2)
        return tf.cast(tf.reshape(mask, [batch_size, num_features]), tf.float32)

    def get_config(self):
        return {"image_shape": list(self.image_shape)}


@keras.saving.register_keras_serializable(package="tfbayes")
class ImageRectangleMask(_ImageMask):
    """Hides one axis-aligned rectangle per image.

    The rectangle's height and width are drawn uniformly from
    ``[min_fraction, max_fraction]`` of the image's (rounded to whole pixels, at least 1), and its
    position uniformly among those that fit.

    Args:
      image_shape: ``(height, width)`` or ``(height, width, channels)``.
      min_fraction, max_fraction: bounds of the rectangle's sides as fractions of the image's,
        with 0 < min_fraction <= max_fraction <= 1.
    """

    def __init__(self, image_shape, min_fraction=0.25, max_fraction=0.75):
        super().__init__(image_shape)
        self.min_fraction = _check_rate(min_fraction, "min_fraction")
        self.max_fraction = _check_rate(max_fraction, "max_fraction")
        if self.min_fraction > self.max_fraction:
            raise ValueError(
                "min_fraction, max_fraction: expected min_fraction <= max_fraction, "
                f"got {min_fraction!r} > {max_fraction!r}"
            )

    def _pixel_mask(self, batch_size, seed, rows, cols):
        height, width = self.image_shape[:2]
        u = tf.random.stateless_uniform([4, batch_size, 1, 1], seed=seed)
        fraction = self.min_fraction + (self.max_fraction - self.min_fraction) * u[:2]
        size_h = tf.maximum(1, tf.cast(tf.round(fraction[0] * height), tf.int32))
        size_w = tf.maximum(1, tf.cast(tf.round(fraction[1] * width), tf.int32))
        top = tf.cast(tf.floor(u[2] * tf.cast(height - size_h + 1, tf.float32)), tf.int32)
        left = tf.cast(tf.floor(u[3] * tf.cast(width - size_w + 1, tf.float32)), tf.int32)
        return ((rows >= top) & (rows < top + size_h)) & ((cols >= left) & (cols < left + size_w))

    def get_config(self):
        return {
            **super().get_config(),
            "min_fraction": self.min_fraction,
            "max_fraction": self.max_fraction,
        }


@keras.saving.register_keras_serializable(package="tfbayes")
class ImageHalfMask(_ImageMask):
    """Hides the top, bottom, left or right half of each image, each with probability 1/4.

    Args:
      image_shape: ``(height, width)`` or ``(height, width, channels)``.
    """

    def _pixel_mask(self, batch_size, seed, rows, cols):
        height, width = self.image_shape[:2]
        side = tf.random.stateless_uniform([batch_size, 1, 1], seed=seed, maxval=4, dtype=tf.int32)
        return tf.where(
            side == 0,
            rows < height // 2,
            tf.where(
                side == 1,
                rows >= height // 2,
                tf.where(side == 2, cols < width // 2, cols >= width // 2),
            ),
        )


@keras.saving.register_keras_serializable(package="tfbayes")
class MaskMixture(MaskGenerator):
    """Each row's mask comes from one of ``generators``, the i-th chosen with probability
    ``weights[i] / sum(weights)``, independently per row.

    Every generator draws a full batch from its own seed (split from ``seed``) and a categorical
    draw picks one of them per row, so the cost is that of all the generators together.

    Args:
      generators: a non-empty list of :class:`MaskGenerator`.
      weights: one positive number per generator (default: equal weights).

    Example:

    ```python
    mixture = MaskMixture([ImageRectangleMask((28, 28)), ImageHalfMask((28, 28))], [0.5, 0.5])
    masks = mixture(64, 784, tf.constant([0, 1]))   # [64, 784], 1 = hidden
    ```
    """

    def __init__(self, generators, weights=None):
        generators = list(generators) if isinstance(generators, (list, tuple)) else None
        if not generators or not all(isinstance(g, MaskGenerator) for g in generators):
            raise TypeError(
                f"generators: expected a non-empty list of MaskGenerator, got {generators!r}"
            )
        if weights is None:
            weights = [1.0] * len(generators)
        weights = list(weights) if isinstance(weights, (list, tuple, np.ndarray)) else None
        if (
            weights is None
            or len(weights) != len(generators)
            or not all(is_finite_real(w) and w > 0 for w in weights)
        ):
            raise ValueError(
                f"weights: expected {len(generators)} positive numbers (one per generator), "
                f"got {weights!r}"
            )
        self.generators = generators
        self.weights = [float(w) for w in weights]

    def __call__(self, batch_size, num_features, seed):
        seeds = tf.random.experimental.stateless_split(seed, len(self.generators) + 1)
        masks = tf.stack(
            [g(batch_size, num_features, seeds[i]) for i, g in enumerate(self.generators)]
        )  # [components, batch, features]
        logits = tf.math.log(tf.constant([self.weights], tf.float32))
        choice = tf.random.stateless_categorical(
            logits, batch_size, seed=seeds[-1], dtype=tf.int32
        )[0]
        return tf.gather(tf.transpose(masks, [1, 0, 2]), choice, axis=1, batch_dims=1)

    def get_config(self):
        return {
            "generators": [keras.saving.serialize_keras_object(g) for g in self.generators],
            "weights": self.weights,
        }

    @classmethod
    def from_config(cls, config):
        generators = [keras.saving.deserialize_keras_object(g) for g in config["generators"]]
        return cls(generators, config["weights"])
