"""The three networks of :class:`~tfbayes.models.VAEAC`: fully connected, or convolutional for images.

Each kind has an *encoder*, used for the proposal network q(z | x, b) and the prior network
p(z | x_{1-b}, b), and a *generator* p(x_b | z, x_{1-b}, b) that reads the prior network's states
through skip connections (the paper's Section 4; for images a U-Net, as in the reference code's
image models).

* An encoder maps a flat row ``[B, n]`` to a list of states whose last one is ``[B, width]`` (the
  VAEAC turns it into the Gaussian's parameters).
* A generator maps ``z`` ``[B, latent_dim]``, the prior network's input and its states to
  ``[B, param_width]``, the parameters of ``MixedFeatures``.

The convolutional networks see a row of ``g · D`` numbers, ``D = H · W · C`` (pixels in row-major
``(H, W, C)`` order, as ``images.reshape(n, -1)`` gives), as ``g`` stacked images: the values, the
masks, and so on (:func:`rows_to_images`).
"""

import math

import keras
import tensorflow as tf


def _initializer():
    """PyTorch's default initialisation, as in the reference code: uniform with variance
    1 / (3 fan_in). Keras's Glorot default makes the residual stacks' activations grow about 1.5×
    in variance per block, which slows the start of training of the deep networks."""
    return keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform")


def dense(units, name, dtype):
    """A Dense layer with the reference code's initialisation (see ``_initializer``)."""
    return keras.layers.Dense(units, name=name, dtype=dtype, kernel_initializer=_initializer())


def _conv(filters, size, name, dtype):
    """A same-padded Conv2D with the reference code's initialisation."""
    return keras.layers.Conv2D(
        filters, size, padding="same", name=name, dtype=dtype, kernel_initializer=_initializer()
    )


def _leaky_relu(h):
    return keras.activations.leaky_relu(h)


class ResidualMLP(keras.layers.Layer):
    """Dense(width) then ``depth`` residual blocks h + LeakyReLU(Dense(h)); returns every state.

    Cost per row: O(width · (n + width · depth)) multiply-adds for an input of width n.
    """

    def __init__(self, width, depth, **kwargs):
        super().__init__(**kwargs)
        self.stem = dense(width, "stem", self.dtype_policy)
        self.blocks = [dense(width, f"block_{i}", self.dtype_policy) for i in range(depth)]

    def build(self, input_shape):
        self.stem.build(input_shape)
        for block in self.blocks:
            block.build((None, self.stem.units))

    def call(self, inputs):
        h = _leaky_relu(self.stem(inputs))
        states = [h]
        for block in self.blocks:
            h = h + _leaky_relu(block(h))
            states.append(h)
        return states


class MLPGenerator(keras.layers.Layer):
    """z → width, then ``depth + 1`` residual blocks that each read one prior-network state (the
    deepest first), then a Dense over the last state and the prior network's input."""

    def __init__(self, width, depth, param_width, **kwargs):
        super().__init__(**kwargs)
        self.stem = dense(width, "stem", self.dtype_policy)
        self.blocks = [dense(width, f"block_{i}", self.dtype_policy) for i in range(depth + 1)]
        self.head = dense(param_width, "head", self.dtype_policy)

    def build(self, latent_dim, prior_input_width):
        width = self.stem.units
        self.stem.build((None, latent_dim))
        for block in self.blocks:
            block.build((None, 2 * width))
        self.head.build((None, width + prior_input_width))
        self.built = True

    def call(self, z, prior_input, prior_states):
        h = _leaky_relu(self.stem(z))
        for block, skip in zip(self.blocks, reversed(prior_states)):
            h = h + _leaky_relu(block(tf.concat([h, skip], axis=-1)))
        return self.head(tf.concat([h, prior_input], axis=-1))


def resolutions(image_shape):
    """The ``(height, width)`` of each level of the convolutional networks, finest first: the
    image's, then halved while both sides are even and the halves are at least 4 (28 × 28:
    28, 14, 7; 32 × 32: 32, 16, 8, 4)."""
    height, width = image_shape[:2]
    sizes = [(height, width)]
    while height % 2 == 0 and width % 2 == 0 and min(height, width) >= 8:
        height, width = height // 2, width // 2
        sizes.append((height, width))
    return sizes


def _images_per_row(row_width, image_shape):
    """``g``: how many flat images of ``image_shape`` a row of ``row_width`` numbers stacks."""
    return row_width // math.prod(image_shape)


def rows_to_images(rows, image_shape):
    """``[B, g · H · W · C]`` rows of ``g`` stacked flat images → ``[B, H, W, g · C]``."""
    height, width, channels = image_shape
    groups = _images_per_row(rows.shape[-1], image_shape)
    images = tf.reshape(rows, [-1, groups, height, width, channels])
    images = tf.transpose(images, [0, 2, 3, 1, 4])
    return tf.reshape(images, [-1, height, width, groups * channels])


class _ConvNetwork(keras.layers.Layer):
    """What the convolutional encoder and generator share: the image shape, the levels of
    :func:`resolutions`, and at each level ``depth`` residual blocks h + LeakyReLU(Conv3×3(h))
    of ``width`` channels. Subclasses create their blocks with :meth:`_level_blocks` in their own
    ``__init__``, between their other layers (the order of creation fixes the initial weights
    drawn under ``keras.utils.set_random_seed``)."""

    def __init__(self, image_shape, width, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)
        self.width = width
        self.levels = resolutions(self.image_shape)

    def _level_blocks(self, depth):
        return [
            [
                _conv(self.width, 3, f"level_{level}_block_{i}", self.dtype_policy)
                for i in range(depth)
            ]
            for level in range(len(self.levels))
        ]

    def _build_level(self, level):
        for block in self.blocks[level]:
            block.build((None, *self.levels[level], self.width))

    def _residual(self, level, h):
        for block in self.blocks[level]:
            h = h + _leaky_relu(block(h))
        return h


class ResidualConvEncoder(_ConvNetwork):
    """A convolutional encoder of images given as flat rows (:func:`rows_to_images`).

    A 1 × 1 convolution to ``width`` channels, then at each level of :func:`resolutions` (after a
    2 × 2 average pooling below the first) ``depth`` residual blocks
    h + LeakyReLU(Conv3×3(h)); last, Dense(width) over the flattened coarsest map. Returns the
    state at the end of every level, finest first, then the ``[B, width]`` vector.

    Cost per image: O(9 · H · W · width² · depth · 4/3) multiply-adds (each level has a quarter
    of the positions of the one above).
    """

    def __init__(self, image_shape, width, depth, **kwargs):
        super().__init__(image_shape, width, **kwargs)
        self.stem = _conv(width, 1, "stem", self.dtype_policy)
        self.blocks = self._level_blocks(depth)
        self.flat = dense(width, "flat", self.dtype_policy)

    def build(self, input_shape):
        height, width, channels = self.image_shape
        groups = _images_per_row(input_shape[-1], self.image_shape)
        self.stem.build((None, height, width, groups * channels))
        for level in range(len(self.levels)):
            self._build_level(level)
        self.flat.build((None, math.prod(self.levels[-1]) * self.width))
        self.built = True

    def call(self, inputs):
        h = _leaky_relu(self.stem(rows_to_images(inputs, self.image_shape)))
        states = []
        for level in range(len(self.levels)):
            if level:
                h = tf.nn.avg_pool2d(h, 2, 2, "VALID")
            h = self._residual(level, h)
            states.append(h)
        coarsest = math.prod(self.levels[-1]) * self.width
        states.append(_leaky_relu(self.flat(tf.reshape(h, [-1, coarsest]))))
        return states


class ConvGenerator(_ConvNetwork):
    """The convolutional generator: a U-Net decoder over the prior network's states.

    z → Dense to the coarsest level's map (``width`` channels). Then, from the coarsest level to
    the finest: the prior network's state of that level concatenated, a 1 × 1 convolution back to
    ``width`` channels, ``depth`` residual blocks h + LeakyReLU(Conv3×3(h)), and a nearest-neighbour
    2 × upsampling to the next level. Last, the prior network's input images concatenated and a
    1 × 1 convolution to 2C channels: each pixel's mean and raw scale, returned as ``[B, 2 D]``
    (every mean, then every raw scale: the ``MixedFeatures`` layout of D real features).

    Cost per image: about that of :class:`ResidualConvEncoder`.
    """

    def __init__(self, image_shape, width, depth, **kwargs):
        super().__init__(image_shape, width, **kwargs)
        policy = self.dtype_policy
        self.stem = dense(math.prod(self.levels[-1]) * width, "stem", policy)
        self.merges = [
            _conv(width, 1, f"level_{level}_merge", policy) for level in range(len(self.levels))
        ]
        self.blocks = self._level_blocks(depth)
        self.head = _conv(2 * self.image_shape[2], 1, "head", policy)

    def build(self, latent_dim, prior_input_width):
        height, width, channels = self.image_shape
        groups = _images_per_row(prior_input_width, self.image_shape)
        self.stem.build((None, latent_dim))
        for level, merge in enumerate(self.merges):
            merge.build((None, *self.levels[level], 2 * self.width))
            self._build_level(level)
        self.head.build((None, height, width, self.width + groups * channels))
        self.built = True

    def call(self, z, prior_input, prior_states):
        h = tf.reshape(_leaky_relu(self.stem(z)), [-1, *self.levels[-1], self.width])
        for level in reversed(range(len(self.levels))):
            h = _leaky_relu(self.merges[level](tf.concat([h, prior_states[level]], axis=-1)))
            h = self._residual(level, h)
            if level:
                h = tf.repeat(tf.repeat(h, 2, axis=1), 2, axis=2)
        params = self.head(tf.concat([h, rows_to_images(prior_input, self.image_shape)], axis=-1))
        mean, raw = tf.split(params, 2, axis=-1)
        pixels = math.prod(self.image_shape)
        return tf.concat([tf.reshape(mean, [-1, pixels]), tf.reshape(raw, [-1, pixels])], axis=-1)
