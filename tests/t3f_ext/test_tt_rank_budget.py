"""A float ``tt_rank`` (a fraction of the dense weights) in TTConv2D and TTEmbedding.

Reference: brute force over the layers themselves. The budget's rank fits, and
building the same shape at the next int rank that changes the cores does not.
"""

import keras
import numpy as np
import pytest

from t3f_ext.layers import TTConv2D, TTEmbedding, compress_model


def conv(tt_rank, **kwargs):
    layer = TTConv2D(16, 3, tt_rank=tt_rank, padding="same", **kwargs)
    layer.build((None, 6, 6, 12))
    return layer, 3 * 3 * 12 * 16, layer.count_params() - 16


def embedding(tt_rank, **kwargs):
    layer = TTEmbedding(1000, 64, tt_rank=tt_rank, **kwargs)
    layer.build()
    return layer, 1000 * 64, layer.count_params()  # the unpadded table, not 10 x 10 x 10


@pytest.mark.parametrize("make", [conv, embedding], ids=["TTConv2D", "TTEmbedding"])
@pytest.mark.parametrize("budget", [0.05, 0.2, 1.0])
def test_budget_gives_the_largest_uniform_rank_that_fits(make, budget):
    layer, dense_size, params = make(budget)
    assert params <= budget * dense_size
    rank = max(layer.tt_ranks)
    first = 1 if make is conv else 0  # a TTConv2D's first core is the spatial one
    shape = {
        "input_factorization": list(layer.row_dims[first:]),
        "output_factorization": list(layer.col_dims[first:]),
    }
    exact, _, exact_params = make(rank, **shape)
    assert (exact.tt_ranks, exact_params) == (layer.tt_ranks, params)
    for bigger in range(rank + 1, rank + 40):
        other, _, other_params = make(bigger, **shape)
        if other.tt_ranks != layer.tt_ranks:
            assert other_params > budget * dense_size
            break


@pytest.mark.parametrize("make", [conv, embedding], ids=["TTConv2D", "TTEmbedding"])
def test_bad_or_too_small_budgets_raise_naming_tt_rank(make):
    with pytest.raises(ValueError, match=r"`tt_rank` as a float .* must be in \(0, 1\], got 1.5"):
        make(1.5)
    with pytest.raises(
        ValueError,
        match=r"`tt_rank`=1e-05 allows \d+ of the \d+ dense "
        r"parameters, but TT-rank 1 already needs \d+",
    ):
        make(1e-5)


@pytest.mark.parametrize("make", [conv, embedding], ids=["TTConv2D", "TTEmbedding"])
def test_config_of_a_budget_layer_round_trips(make):
    layer, _, _ = make(0.2)
    config = layer.get_config()
    assert config["tt_rank"] == layer.tt_ranks
    clone = type(layer).from_config(config)
    if make is conv:
        clone.build((None, 6, 6, 12))
    assert clone.get_config() == config


def test_compress_model_takes_a_budget():
    model = keras.Sequential(
        [
            keras.Input((6, 6, 12)),
            keras.layers.Conv2D(16, 3, padding="same", name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, name="hidden"),
        ]
    )
    compressed = compress_model(model, 0.1)
    assert [type(layer).__name__ for layer in compressed.layers] == [
        "TTConv2D",
        "Flatten",
        "TTDense",
    ]
    for original, tt in (
        (model.layers[0], compressed.layers[0]),
        (model.layers[2], compressed.layers[2]),
    ):
        dense_weights = original.count_params() - original.bias.shape[0]
        assert tt.count_params() - tt.bias.shape[0] <= 0.1 * dense_weights
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 12)).astype("float32")
    assert compressed(x).shape == (2, 64)
