"""Compression of trained Dense / Conv2D / Embedding layers into TT layers by TT-SVD.

``from_dense`` reshapes a trained kernel into the TT layer's matrix layout,
runs ``t3f_ext.to_tt_matrix`` (TT-SVD, Oseledets 2011: the truncation error
at each unfolding is optimal, so the result is quasi-optimal in Frobenius
norm) and copies the cores and the bias into a built TT layer that can be
fine-tuned right away. ``compress_model`` does it for a whole model.
"""

import keras
import numpy as np

from t3f_ext.decompositions import to_tt_matrix
from t3f_ext.layers.tt_conv import TTConv2D
from t3f_ext.layers.tt_dense import TTDense
from t3f_ext.layers.tt_embedding import TTEmbedding

COMPRESSIBLE = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Embedding)


def _copy_tt_svd(tt_layer, matrix, bias):
    """Writes the TT-SVD of ``matrix`` (at the built layer's shape and ranks) into its cores."""
    tt = to_tt_matrix(
        matrix, (list(tt_layer.row_dims), list(tt_layer.col_dims)), max_tt_rank=tt_layer.tt_ranks
    )
    for weight, core in zip(tt_layer.cores, tt.tt_cores):
        weight.assign(core)
    if bias is not None:
        tt_layer.bias.assign(bias)
    return tt_layer


def _common_config(layer):
    return {"name": layer.name + "_tt", "dtype": layer.dtype_policy, "trainable": layer.trainable}


def _bias_config(layer):
    return {
        "activation": layer.activation,
        "use_bias": layer.use_bias,
        "bias_initializer": layer.bias_initializer,
        "bias_regularizer": layer.bias_regularizer,
    }


def _built_input_shape(layer, fallback):
    """The shape ``layer`` was called on symbolically, else ``fallback``."""
    try:
        return tuple(layer.input.shape)
    except (AttributeError, ValueError):
        return fallback


def _dense_to_tt(layer, tt_rank, **shape_kwargs):
    kernel = layer.kernel.numpy().astype(np.float64)
    tt_layer = TTDense(
        kernel.shape[1],
        tt_rank=tt_rank,
        **shape_kwargs,
        **_bias_config(layer),
        **_common_config(layer),
    )
    tt_layer.build((None, kernel.shape[0]))
    return _copy_tt_svd(tt_layer, kernel, layer.bias.numpy() if layer.use_bias else None)


def _conv_to_tt(layer, tt_rank, **shape_kwargs):
    if layer.groups != 1:
        raise ValueError(
            f"from_dense: Conv2D layer {layer.name!r} has groups={layer.groups}; "
            "only groups=1 can be written as one TT kernel."
        )
    kernel = layer.kernel.numpy().astype(np.float64)
    kh, kw, in_channels, filters = kernel.shape
    tt_layer = TTConv2D(
        filters,
        (kh, kw),
        tt_rank=tt_rank,
        strides=layer.strides,
        padding=layer.padding,
        data_format=layer.data_format,
        dilation_rate=layer.dilation_rate,
        **shape_kwargs,
        **_bias_config(layer),
        **_common_config(layer),
    )
    fallback = (
        (None, None, None, in_channels)
        if layer.data_format == "channels_last"
        else (None, in_channels, None, None)
    )
    tt_layer.build(_built_input_shape(layer, fallback))
    return _copy_tt_svd(
        tt_layer,
        kernel.reshape(kh * kw * in_channels, filters),
        layer.bias.numpy() if layer.use_bias else None,
    )


def _embedding_to_tt(layer, tt_rank, **shape_kwargs):
    tt_layer = TTEmbedding(
        layer.input_dim,
        layer.output_dim,
        tt_rank=tt_rank,
        mask_zero=layer.mask_zero,
        **shape_kwargs,
        **_common_config(layer),
    )
    tt_layer.build()
    padded = np.zeros((int(np.prod(tt_layer.row_dims)), layer.output_dim))
    padded[: layer.input_dim] = layer.embeddings.numpy()
    return _copy_tt_svd(tt_layer, padded, None)


def from_dense(layer, tt_rank, num_cores=None, input_factorization=None, output_factorization=None):
    """A TT layer initialised with the TT-SVD of a trained layer's kernel.

    Args:
      layer: a built `keras.layers.Dense`, `Conv2D` (``groups=1``) or
        `Embedding`.
      tt_rank: the maximal TT-ranks (int or list, as in the TT layers), or a
        float parameter budget in ``(0, 1]`` that the TT layer turns into
        ranks. The ranks of the result are at most these, lower where the
        kernel's unfoldings have lower rank. With ranks at their maximum the
        TT layer computes exactly what ``layer`` does (up to round-off).
      num_cores, input_factorization, output_factorization: the TT shape, as
        in `TTDense` (channels for `TTConv2D`, vocabulary rows for
        `TTEmbedding`); default: the layers' automatic choice.

    Returns:
      A built `TTDense`, `TTConv2D` or `TTEmbedding` named ``layer.name + "_tt"``
      with the same activation, bias, strides, padding etc. The cost is one
      TT-SVD: ``d - 1`` SVDs, the first of an ``m_1 n_1 x (M N / m_1 n_1)``
      matrix (float64).

    Raises:
      TypeError: if ``layer`` is not one of the supported kinds.
      ValueError: if it is not built, or for a bad rank / factorization.
    """
    if not isinstance(layer, COMPRESSIBLE):
        raise TypeError(
            f"from_dense: `layer` must be a keras.layers.Dense, Conv2D or Embedding, "
            f"got {type(layer).__name__}."
        )
    if not layer.built:
        raise ValueError(f"from_dense: `layer` {layer.name!r} is not built; call it on data first.")
    shape_kwargs = {
        "num_cores": num_cores,
        "input_factorization": input_factorization,
        "output_factorization": output_factorization,
    }
    if isinstance(layer, keras.layers.Embedding):
        return _embedding_to_tt(layer, tt_rank, **shape_kwargs)
    if isinstance(layer, keras.layers.Conv2D):
        return _conv_to_tt(layer, tt_rank, **shape_kwargs)
    return _dense_to_tt(layer, tt_rank, **shape_kwargs)


def compress_model(model, tt_rank, layer_names=None):
    """A copy of a Sequential or functional model with layers replaced by TT layers.

    Args:
      model: a built `keras.Sequential` or functional `keras.Model`.
      tt_rank: an int (or float budget, see `from_dense`) used for every
        replaced layer, or a dict ``{layer_name: tt_rank}``.
      layer_names: names of the Dense / Conv2D / Embedding layers to replace.
        Default: every such layer whose TT version has fewer parameters than
        it (so tiny output layers stay dense).

    Returns:
      A new model (same inputs and outputs, not compiled) in which the chosen
      layers are `from_dense` copies and every other layer has a copy of its
      trained weights; ``model`` itself is left untouched.

    Raises:
      ValueError: for a subclassed model, an unknown layer name, or a named
        layer of a kind that cannot be compressed.
    """
    by_name = {layer.name: layer for layer in model.layers}
    ranks = tt_rank if isinstance(tt_rank, dict) else None
    if layer_names is not None:
        unknown = [name for name in layer_names if name not in by_name]
        if unknown:
            raise ValueError(
                f"compress_model: `layer_names` {unknown} are not layers of the model; "
                f"its layers are {sorted(by_name)}."
            )
        wrong = [name for name in layer_names if not isinstance(by_name[name], COMPRESSIBLE)]
        if wrong:
            raise ValueError(f"compress_model: layers {wrong} are not Dense, Conv2D or Embedding.")
    replacements = {}
    for layer in model.layers:
        if not isinstance(layer, COMPRESSIBLE):
            continue
        if layer_names is not None and layer.name not in layer_names:
            continue
        if ranks is not None and layer.name not in ranks:
            continue
        tt_layer = from_dense(layer, ranks[layer.name] if ranks is not None else tt_rank)
        if layer_names is not None or tt_layer.count_params() < layer.count_params():
            replacements[layer.name] = tt_layer
    originals = {}

    def clone(layer):
        if layer.name in replacements:
            return replacements[layer.name]
        copy = layer.__class__.from_config(layer.get_config())
        originals[id(copy)] = (copy, layer)
        return copy

    try:
        compressed = keras.models.clone_model(model, clone_function=clone)
    except ValueError as error:
        raise ValueError(
            f"compress_model: `model` must be a Sequential or functional model, got "
            f"{type(model).__name__} ({error}); call from_dense on its layers "
            "instead."
        ) from error
    for copy, original in originals.values():
        copy.set_weights(original.get_weights())
    return compressed
