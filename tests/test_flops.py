"""tfbayes.flops: multiply-add counts against hand counts on small layers and models."""

import keras
import numpy as np
import pytest

from tfbayes.flops import Flops, count_flops, layer_flops
from tfbayes.layers import AdaptiveComputationBlock, PerforatedConv2D


def _built(layer, shape):
    layer.build(shape)
    return layer


@pytest.mark.parametrize(
    "layer, shape, expected",
    [
        # Dense 5 -> 3 on one vector: 15; on 4 time steps: 60.
        (keras.layers.Dense(3), (None, 5), 15),
        (keras.layers.Dense(3), (None, 4, 5), 60),
        # Conv1D k=3, 2 -> 4, 'valid' on 10 steps: 8 outputs * 3*2*4 = 192.
        (keras.layers.Conv1D(4, 3), (None, 10, 2), 192),
        # Conv2D 3x3, 3 -> 2, 'same' stride 2 on 7x7: 4x4 outputs * 3*3*3*2 = 16 * 54 = 864.
        (keras.layers.Conv2D(2, 3, strides=2, padding="same"), (None, 7, 7, 3), 864),
        # Conv2D 1x1 with 2 groups, 4 -> 6 on 2x3: 6 positions * (4/2)*6 = 72.
        (keras.layers.Conv2D(6, 1, groups=2), (None, 2, 3, 4), 72),
        # Depthwise 3x3, 3 channels, multiplier 2, 'valid' on 5x5: 9 positions * 3*3*1*6 = 486.
        (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 5, 5, 3), 486),
        # Layers without weights cost nothing.
        (keras.layers.MaxPooling2D(), (None, 4, 4, 3), 0),
        (keras.layers.BatchNormalization(), (None, 4, 4, 3), 0),
    ],
)
def test_plain_layers_equal_hand_counts(layer, shape, expected):
    assert layer_flops(_built(layer, shape), shape) == Flops(expected, expected)


def test_sequential_sums_its_layers_on_the_shapes_they_see():
    # Conv2D 3x3 'valid' 1 -> 2 on 6x6: 16 * 9 * 2 = 288; pool -> 2x2x2; Flatten 8; Dense 8 -> 3: 24.
    model = keras.Sequential(
        [
            keras.Input((6, 6, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    assert layer_flops(model, (None, 6, 6, 1)) == Flops(312, 312)
    report = count_flops(model)
    assert [(r["name"], r["dense"], r["actual"]) for r in report.layers] == [
        (model.layers[0].name, 288, 288),
        (model.layers[3].name, 24, 24),
    ]
    assert report.total["dense"] == 312 and report.total["speedup"] == 1.0


def test_model_report_has_perforated_and_adaptive_layers_with_measured_savings():
    # PerforatedConv2D 3x3 'same' 1 -> 2 on 4x4, 4 of 16 positions kept: 16*18 = 288 dense,
    # 4*18 = 72 actual. Then an SACT block of 2 ResidualUnits on 4x4x2 whose halting is on
    # from the start: dense 2*1152 + 290 (see test_adaptive_computation), actual 1152 + 290.
    inputs = keras.Input((4, 4, 1))
    x = PerforatedConv2D(2, 3, padding="same", perforation_rate=0.25)(inputs)
    x = AdaptiveComputationBlock(2, variant="sact", halting_bias_initializer=1e4)(x)
    outputs = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(0).normal(size=(3, 4, 4, 1)).astype("float32")
    report = count_flops(model, data)
    rows = {r["class"]: r for r in report.layers}
    assert (rows["PerforatedConv2D"]["dense"], rows["PerforatedConv2D"]["actual"]) == (288, 72)
    assert rows["AdaptiveComputationBlock"]["dense"] == 2 * 1152 + 290
    assert rows["AdaptiveComputationBlock"]["actual"] == 1152 + 290
    assert report.total["dense"] == 288 + 2 * 1152 + 290 + 2
    assert report.total["actual"] == 72 + 1152 + 290 + 2
    assert "AdaptiveComputationBlock" in str(report)
    # Without data the adaptive block's actual count is unknown, and so is the total.
    no_data = count_flops(model)
    assert no_data.total["actual"] is None and no_data.total["dense"] == report.total["dense"]


def test_functional_residual_model_counts_its_convs_and_skips_multi_input_layers():
    # x + conv(x) with a 3x3 conv 2->2 on 5x5 'same': 25 * 9 * 2 * 2 = 900, twice.
    inputs = keras.Input((5, 5, 2))
    x = inputs
    for _ in range(2):
        x = keras.layers.Add()([x, keras.layers.Conv2D(2, 3, padding="same")(x)])
    report = count_flops(keras.Model(inputs, x))
    assert [row["dense"] for row in report.layers] == [900, 900]
    assert report.total["dense"] == report.total["actual"] == 1800


def test_errors_name_what_is_wrong():
    with pytest.raises(TypeError, match="model: expected a keras.Model, got Dense"):
        count_flops(keras.layers.Dense(2))

    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.scale = self.add_weight(shape=(shape[-1],))

    with pytest.raises(ValueError, match=r"Layer 'mystery' \(Scale\): tfbayes.flops has no rule"):
        layer_flops(_built(Scale(name="mystery"), (None, 4)), (None, 4))
