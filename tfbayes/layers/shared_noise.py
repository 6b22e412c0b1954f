"""Sparse-VD noise shared across timesteps, for the recurrent and embedding layers.

The local reparameterization trick draws fresh noise for every pre-activation,
which in a recurrent network means fresh weights at every timestep. Lobacheva,
Chirkova and Vetrov (2017, arXiv 1708.00077, Sec. 3) instead sample the
weights once for a whole mini-batch and use that sample at every timestep;
the group (multiplicative) variables of neurons, gates and words are sampled
once per sequence (Lobacheva et al. 2018, arXiv 1812.05692; Chirkova et al.
2018, arXiv 1810.10927). Both are draws from ``N(theta, sigma^2)``, with
``theta`` and ``log sigma^2`` as created by
:meth:`tfbayes.layers.sparse_vd.SparseVDLayer.add_variational_weight`.
At inference both functions return the pruned means
``theta * [log alpha < threshold]``. Both return the layer's compute dtype
(float16 under ``mixed_float16``); the sample is formed in the dtype in which the
variables are read (as Keras casts them inside ``call``, or their own dtype under
:class:`SharedNoiseRNNCell`, which reads them uncast).

:class:`SharedNoiseRNNCell` packages this for a recurrent cell, the way
Keras's ``DropoutRNNCell`` packages dropout masks: the noise is drawn once
before the time loop and every step reads the same draw.
"""

import keras
from keras import ops
from keras.src import backend

GROUP_SUFFIX = "_group"
"""A variational weight whose name ends with this is a group variable (one draw per sequence)."""


def _is_group(name):
    return name.endswith(GROUP_SUFFIX)


def _sample(layer, name, shape):
    """``theta + sigma * eps`` in the dtype the variables are read in, cast to the compute dtype."""
    theta = getattr(layer, name)
    log_sigma2 = ops.cast(getattr(layer, f"{name}_log_sigma2"), theta.dtype)
    noise = keras.random.normal(shape, dtype=theta.dtype, seed=layer.seed_generator)
    return ops.cast(theta + ops.exp(0.5 * log_sigma2) * noise, layer.compute_dtype)


def shared_weight(layer, name, training):
    """The variational weight ``name`` of ``layer``, sampled once for the whole batch.

    Returns a tensor of the weight's shape: one draw of ``theta + sigma * eps``
    in training, else ``layer.pruned_weight(name)``. Cost: O(#weights).
    """
    if training:
        return _sample(layer, name, tuple(getattr(layer, name).shape))
    return ops.cast(layer.pruned_weight(name), layer.compute_dtype)


def per_sequence_group(layer, name, batch_size, training):
    """The group variables ``name`` of ``layer``, one draw per sequence of the batch.

    Returns ``[batch_size, n]`` in training (independent draws per row) and the
    pruned means as ``[1, n]`` otherwise, for ``n`` group variables.
    Cost: O(batch_size * n).
    """
    if training:
        shape = (batch_size,) + tuple(getattr(layer, name).shape)
        return _sample(layer, name, shape)
    return ops.cast(layer.pruned_weight(name), layer.compute_dtype)[None]


class SharedNoiseRNNCell:
    """Mixin for a recurrent cell whose Sparse-VD noise is drawn once and reused at every step.

    Not a cell by itself: it is mixed into a
    :class:`~tfbayes.layers.sparse_vd.SparseVDLayer` that is a recurrent cell,
    as Keras's ``DropoutRNNCell`` is mixed into ``LSTMCell``. The recurrent
    layer calls :meth:`draw_shared_noise` before the time loop and
    :meth:`reset_shared_noise` after it (:class:`tfbayes.layers.SparseVDRNN`
    does both), and each step reads the draws with :meth:`shared_noise`. Drawing
    outside the loop is what makes the draw shared: a draw inside the loop body
    would be a new one at every step.

    Of the cell's variational weights, those named ``*_group`` are group
    variables, drawn once per sequence (``[batch, n]``); the others are
    weights, drawn once per batch (their own shape). At inference both are the
    pruned means (``[1, n]`` for groups). The draws are made in the variables'
    dtype (float32 under a mixed-precision policy) and cast to the cell's
    compute dtype.
    """

    def draw_shared_noise(self, batch_size, training):
        """Draws the noise of every variational weight for a batch of ``batch_size`` sequences.

        Cost: O(#weights + batch_size * #group variables).
        """
        noise = {}
        # Read theta and log sigma^2 in their own dtype. (AutocastScope(None) would report a
        # float64 variable's dtype as float32.)
        with backend.AutocastScope(self.variable_dtype):
            # The groups first, then the weights: the order SparseVDLSTM has always drawn
            # in, so that a seeded run repeats.
            for name in sorted(self._variational_names, key=lambda n: not _is_group(n)):
                noise[name] = (
                    per_sequence_group(self, name, batch_size, training)
                    if _is_group(name)
                    else shared_weight(self, name, training)
                )
        self._shared_noise = {
            name: ops.cast(value, self.compute_dtype) for name, value in noise.items()
        }

    def shared_noise(self, name):
        """The draw of the variational weight ``name`` made by :meth:`draw_shared_noise`."""
        noise = getattr(self, "_shared_noise", None)
        if noise is None:
            raise RuntimeError(
                f"Layer {self.name!r}: the shared noise of this cell has not been drawn; run the "
                "cell inside tfbayes.layers.SparseVDRNN (or call draw_shared_noise(batch_size, "
                "training) before the time loop)"
            )
        return noise[name]

    def reset_shared_noise(self):
        """Forgets the draws, so that the next sequence batch gets new ones."""
        self._shared_noise = None
