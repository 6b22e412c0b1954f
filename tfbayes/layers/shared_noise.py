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
(float16 under ``mixed_float16``), the sample formed from the variables as
Keras casts them inside ``call``.
"""
import keras
from keras import ops


def _sample(layer, name, shape):
    dtype = layer.compute_dtype
    theta = ops.cast(getattr(layer, name), dtype)
    log_sigma2 = ops.cast(getattr(layer, f"{name}_log_sigma2"), dtype)
    noise = keras.random.normal(shape, dtype=dtype, seed=layer.seed_generator)
    return theta + ops.exp(0.5 * log_sigma2) * noise


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
