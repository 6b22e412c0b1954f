"""PerforatedConv2D against a NumPy convolution with nearest-neighbour filling."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.tf_modes import MODES, run_in_mode
from tfbayes.flops import count_flops
from tfbayes.layers import PerforatedConv2D, estimate_impact, perforate, perforation_mask
from tfbayes.layers.perforated_conv import regular_grid


def _np_conv2d(x, kernel, bias, strides, padding, dilation):
    """Cross-correlation of ``x`` [B, H, W, C] with ``kernel`` [kh, kw, C, F], as Keras defines it."""
    (kh, kw), (sh, sw), (dh, dw) = kernel.shape[:2], strides, dilation
    height, width = x.shape[1:3]
    span_h, span_w = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if padding == "same":
        out_h, out_w = -(-height // sh), -(-width // sw)
        pad_h = max((out_h - 1) * sh + span_h - height, 0)
        pad_w = max((out_w - 1) * sw + span_w - width, 0)
        x = np.pad(
            x, [(0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)]
        )
    else:
        out_h, out_w = (height - span_h) // sh + 1, (width - span_w) // sw + 1
    out = np.zeros((x.shape[0], out_h, out_w, kernel.shape[-1])) + bias
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * sh : i * sh + span_h : dh, j * sw : j * sw + span_w : dw, :]
            out[:, i, j] += np.einsum("bhwc,hwcf->bf", patch, kernel)
    return out


def _nearest_fill(full, mask):
    """Every position takes the value of its nearest kept position (first in row-major on ties)."""
    kept = [(i, j) for i in range(mask.shape[0]) for j in range(mask.shape[1]) if mask[i, j]]
    out = np.empty_like(full)
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            best = min(kept, key=lambda p: (p[0] - i) ** 2 + (p[1] - j) ** 2)  # first minimum
            out[:, i, j] = full[:, best[0], best[1]]
    return out


CONFIGS = [
    dict(padding="same"),
    dict(padding="same", strides=2),
    dict(padding="valid", dilation_rate=2),
    dict(padding="valid", kernel_size=(3, 2)),
]


def _layer(dtype, x_shape, seed=0, **kwargs):
    kwargs = {"filters": 4, "kernel_size": 3, **kwargs}
    layer = PerforatedConv2D(dtype=dtype.__name__, **kwargs)
    layer.build(x_shape)
    rng = np.random.default_rng(seed)
    layer.kernel.assign(rng.normal(size=layer.kernel.shape).astype(dtype))
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype(dtype))
    return layer


@pytest.mark.parametrize("config", CONFIGS)
def test_rate_one_equals_conv2d_with_the_same_weights(dtype, config):
    x = np.random.default_rng(1).normal(size=(2, 9, 8, 3)).astype(dtype)
    layer = _layer(dtype, x.shape, activation="relu", **config)
    conv_config = {
        k: v
        for k, v in layer.get_config().items()
        if k not in ("perforation_rate", "mask", "pooling", "seed")
    }
    conv = keras.layers.Conv2D.from_config(conv_config)
    conv.build(x.shape)
    conv.set_weights(layer.get_weights()[:2])
    np.testing.assert_array_equal(layer(x).numpy(), conv(x).numpy())
    assert layer.compute_output_shape(x.shape) == conv.compute_output_shape(x.shape)


@pytest.mark.parametrize(
    "strategy, config",
    [
        ("grid", CONFIGS[0]),
        ("uniform", CONFIGS[1]),
        ("pooling", CONFIGS[2]),
        ("uniform", CONFIGS[3]),
        ("pooling", CONFIGS[0]),
    ],
)
def test_equals_the_conv_at_kept_positions_and_their_nearest_neighbours_elsewhere(
    dtype, strategy, config
):
    x = np.random.default_rng(2).normal(size=(2, 9, 8, 3)).astype(dtype)
    layer = _layer(
        dtype, x.shape, perforation_rate=0.3, mask=strategy, seed=3, activation="tanh", **config
    )
    mask = layer.perforation_mask.numpy().astype(bool)
    assert 0 < mask.sum() < mask.size
    kernel = layer.kernel.numpy().astype(np.float64)
    full = np.tanh(
        _np_conv2d(
            x.astype(np.float64),
            kernel,
            layer.bias.numpy(),
            layer.strides,
            layer.padding,
            layer.dilation_rate,
        )
    )
    expected = _nearest_fill(full, mask)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for mode in MODES:
        ours = run_in_mode(layer, mode, tf.constant(x)).numpy()
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, expected, rtol=tol, atol=tol, err_msg=mode)


# A convolution, its output on a 9x7 input, and a regular grid (r0, t_h, c0, t_w) on that output:
# rows r0, r0 + t_h, ... and columns c0, c0 + t_w, ...; whether one strided convolution computes it.
GRID_CASES = [
    (dict(padding="same"), (1, 2, 0, 3), True),
    (dict(padding="same", strides=2), (0, 2, 1, 2), True),
    (dict(padding="valid", kernel_size=(3, 2), strides=(2, 1)), (1, 1, 0, 3), True),
    # dilation 2 divides the grid's step 2: every other input row, then a stride-1 convolution
    (dict(padding="valid", dilation_rate=2), (0, 2, 1, 2), True),
    (dict(padding="same", dilation_rate=2), (0, 2, 1, 2), True),  # the first tap in the padding
    # a dilation 2 that does not divide the step 3 or 1: the patch gather instead
    (dict(padding="same", dilation_rate=2), (1, 3, 0, 2), False),
    (dict(padding="same", dilation_rate=2), (2, 1, 0, 1), False),
]


def _grid_layer(dtype, x_shape, grid, config):
    output_hw = PerforatedConv2D(4, **{"kernel_size": 3, **config}).compute_output_shape(x_shape)[
        1:3
    ]
    mask = np.zeros(output_hw, bool)
    mask[grid[0] :: grid[1], grid[2] :: grid[3]] = True
    return _layer(dtype, x_shape, mask=mask, activation="tanh", **config), mask


@pytest.mark.parametrize("config, grid, strided", GRID_CASES)
def test_a_regular_grid_equals_the_conv_at_kept_positions_and_the_patch_gather(
    dtype, config, grid, strided
):
    x = np.random.default_rng(4).normal(size=(2, 9, 7, 3)).astype(dtype)
    layer, mask = _grid_layer(dtype, x.shape, grid, config)
    assert layer.uses_strided_conv is strided and 0 < mask.sum() < mask.size
    full = _np_conv2d(
        x.astype(np.float64),
        layer.kernel.numpy().astype(np.float64),
        layer.bias.numpy(),
        layer.strides,
        layer.padding,
        layer.dilation_rate,
    )
    expected = _nearest_fill(np.tanh(full), mask)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for mode in MODES:
        ours = run_in_mode(layer, mode, tf.constant(x)).numpy()
        assert ours.dtype == dtype
        np.testing.assert_allclose(ours, expected, rtol=tol, atol=tol, err_msg=mode)
    patches = _grid_layer(dtype, x.shape, grid, config)[0]
    patches._plan = None  # the same mask computed by the patch gather
    np.testing.assert_allclose(patches(x).numpy(), ours, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", [1, 3])
def test_the_strided_conv_has_the_gradients_of_the_patch_gather(case):
    config, grid, _ = GRID_CASES[case]
    x = tf.constant(np.random.default_rng(5).normal(size=(2, 9, 7, 3)))
    gradients = []
    for strided in (True, False):
        layer = _grid_layer(np.float64, x.shape, grid, config)[0]
        if not strided:
            layer._plan = None

        def loss_gradients(x, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x) ** 2)
            return tape.gradient(loss, [x, layer.kernel, layer.bias])

        gradients.append(run_in_mode(loss_gradients, "function", x))
    for ours, reference in zip(*gradients):
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-12, atol=1e-12)


def test_regular_grid_recognises_exactly_the_products_of_constant_step_rows_and_columns():
    mask = np.zeros((7, 9), bool)
    mask[1::3, 2::2] = True
    assert regular_grid(mask) == (1, 3, 2, 2, 2, 4)
    mask = np.zeros((7, 9), bool)
    mask[4, 3] = True  # one row and one column: step 1
    assert regular_grid(mask) == (4, 1, 1, 3, 1, 1)
    mask[np.ix_([0, 1, 3], [3, 5])] = True  # a product of rows 0, 1, 3: steps 1 and 2
    assert regular_grid(mask) is None
    mask = np.zeros((7, 9), bool)
    mask[::2, ::2] = True
    mask[0, 0] = False  # not a product
    assert regular_grid(mask) is None


def test_the_grid_strategy_keeps_the_closest_regular_grid():
    # On 28 positions, steps 1, 2, 3, 4 keep 28, 14, 10, 7 rows (every t-th, centred). The
    # fractions of the near-square grids: 1, 1/2 (1x2), 1/4, 140/784 = 0.179 (2x3),
    # 100/784 = 0.128, 70/784 = 0.089 (3x4), 49/784 = 0.0625.
    kept = {1.0: 784, 0.8: 784, 0.6: 392, 0.5: 392, 0.4: 392, 0.3: 196, 0.25: 196, 0.2: 140}
    kept.update({0.15: 100, 0.1: 70, 0.07: 49})
    for rate, count in kept.items():
        mask = perforation_mask("grid", (28, 28), rate)
        assert mask.sum() == count, rate
        assert regular_grid(mask) is not None
    mask = perforation_mask("grid", (28, 28), 0.2)
    np.testing.assert_array_equal(np.flatnonzero(mask.any(1)), np.arange(1, 28, 2))
    np.testing.assert_array_equal(np.flatnonzero(mask.any(0)), np.arange(0, 28, 3))
    layer = PerforatedConv2D(2, 3, padding="same", perforation_rate=0.2)
    layer.build((None, 28, 28, 1))
    assert layer.uses_strided_conv and layer.num_kept == 140


def test_mask_strategies_keep_the_stated_positions():
    grid = perforation_mask("grid", (8, 6), 0.25)
    rows, cols = np.flatnonzero(grid.any(1)), np.flatnonzero(grid.any(0))
    assert grid.sum() == len(rows) * len(cols) == 4 * 3
    np.testing.assert_array_equal(grid, np.outer(grid.any(1), grid.any(0)))
    np.testing.assert_array_equal(rows, [1, 3, 5, 7])
    np.testing.assert_array_equal(cols, [1, 3, 5])
    uniform = perforation_mask("uniform", (8, 6), 0.25, seed=5)
    assert uniform.sum() == 12
    np.testing.assert_array_equal(uniform, perforation_mask("uniform", (8, 6), 0.25, seed=5))
    # 3x3 windows with stride 2 over 5 rows start at 0 and 2: row 2 is read twice.
    pooling = perforation_mask("pooling", (5, 5), 1 / 25, pooling=(3, 2))
    assert pooling.sum() == 1 and pooling[2, 2]
    pooling = perforation_mask("pooling", (5, 5), 5 / 25, pooling=(3, 2))
    np.testing.assert_array_equal(np.argwhere(pooling), [[0, 2], [1, 2], [2, 0], [2, 1], [2, 2]])


def test_impact_keeps_the_largest_and_an_explicit_mask_is_used_as_given():
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype("float32")
    layer = _layer(np.float32, x.shape, perforation_rate=0.25, mask="impact", padding="same")
    impact = np.arange(16.0).reshape(4, 4)[::-1]
    layer.set_impact(impact)
    np.testing.assert_array_equal(
        np.argwhere(layer.perforation_mask.numpy()), [[0, 0], [0, 1], [0, 2], [0, 3]]
    )
    mask = np.zeros((4, 4), bool)
    mask[3, 3] = True
    explicit = _layer(np.float32, x.shape, mask=mask, padding="same")
    out = explicit(x).numpy()
    np.testing.assert_allclose(out, np.broadcast_to(out[:, 3:, 3:], out.shape))


def test_flops_equal_hand_counts():
    # 9x8 input, 3x3 'same' conv 3 -> 4: 72 positions * 3*3*3*4 = 108 multiply-adds each.
    layer = _layer(
        np.float32, (None, 9, 8, 3), perforation_rate=0.3, mask="uniform", padding="same"
    )
    assert layer.num_kept == round(0.3 * 72) == 22
    assert layer.flops((None, 9, 8, 3)) == (72 * 108, 22 * 108)


def test_fit_with_jit_trains_and_the_model_round_trips_with_its_mask(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 2)).astype("float32")
    y = x.mean(axis=(1, 2, 3))[:, None] * 3
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            PerforatedConv2D(
                4,
                3,
                padding="same",
                perforation_rate=0.4,
                mask="uniform",
                seed=1,
                activation="relu",
            ),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.Adam(0.02), "mse", jit_compile=True)
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0).history["loss"]
    assert history[-1] < 0.3 * history[0]
    layer = model.layers[0]
    layer.set_impact(rng.uniform(size=(6, 6)))  # a mask no strategy would give
    path = tmp_path / "perforated.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        loaded.layers[0].perforation_mask.numpy(), layer.perforation_mask.numpy()
    )
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.layers[0].get_config() == layer.get_config()
    assert not loaded.layers[0].uses_strided_conv
    grid = np.zeros((6, 6), bool)
    grid[1::2, ::3] = True
    layer.set_mask(grid)
    model.save(path)
    loaded = keras.models.load_model(path)
    assert layer.uses_strided_conv and loaded.layers[0].uses_strided_conv
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_mixed_precision_computes_in_float16_with_float32_weights():
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype("float32")
    layer = PerforatedConv2D(4, 3, padding="same", perforation_rate=0.5, dtype="mixed_float16")
    out = layer(x)
    assert out.dtype == tf.float16 and layer.kernel.dtype == "float32"
    reference = PerforatedConv2D(4, 3, padding="same", perforation_rate=0.5)
    reference.build(x.shape)
    reference.set_weights(layer.get_weights())
    np.testing.assert_allclose(out.numpy(), reference(x).numpy(), rtol=1e-2, atol=1e-2)


def test_impact_is_the_exact_loss_change_of_removing_a_position_for_a_linear_head():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4, 4, 2)).astype("float64")
    model = keras.Sequential(
        [
            keras.Input((4, 4, 2), dtype="float64"),
            PerforatedConv2D(3, 3, padding="same", perforation_rate=0.25, dtype="float64"),
            keras.layers.Flatten(dtype="float64"),
            keras.layers.Dense(1, dtype="float64"),
        ]
    )
    layer, dense = model.layers[0], model.layers[2]
    mask = layer.perforation_mask.numpy().copy()
    impact = estimate_impact(model, layer, x, None, loss=lambda y, p: p[:, 0])
    # The loss is linear in the layer's output V, so removing (i, j) changes example b's loss by
    # exactly sum_c V[b, i, j, c] * w[i, j, c].
    v = _np_conv2d(x, layer.kernel.numpy(), layer.bias.numpy(), (1, 1), "same", (1, 1))
    w = dense.kernel.numpy()[:, 0].reshape(4, 4, 3)
    np.testing.assert_allclose(impact, np.abs((v * w).sum(-1)).mean(0), rtol=1e-10)
    np.testing.assert_array_equal(layer.perforation_mask.numpy(), mask)  # restored


def _two_layer_model():
    model = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            PerforatedConv2D(3, 3, padding="same", name="constant"),
            PerforatedConv2D(3, 3, padding="same", name="informative"),
            keras.layers.Flatten(),
            keras.layers.Dense(1),
        ]
    )
    # A zero kernel makes the first layer's output its bias everywhere: perforating it is free.
    model.layers[0].kernel.assign(np.zeros(model.layers[0].kernel.shape, "float32"))
    return model


def test_perforate_greedily_takes_the_free_savings_first_and_reaches_the_target():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6, 6, 2)).astype("float32")
    model = _two_layer_model()
    y = model.predict(x, verbose=0)  # the loss is 0 unperforated; perforating can only raise it
    dense = count_flops(model).total["dense"]
    # Per position: 3*3*2*3 = 54 (first layer), 3*3*3*3 = 81 (second); 36 positions.
    # The regular grids of a 6x6 output keep 36, 18, 9, 6 or 4 positions (steps 1, 1x2, 2, 2x3,
    # 3); rate 0.1 is the first of the ladder whose closest grid keeps 2x2 = 4 positions,
    # saving 32 * 54 = 1728; the greedy stops at the first rate that reaches the target.
    rates = perforate(model, x, y, dense - 32 * 54, loss="mse")
    assert rates == {"constant": 0.1, "informative": 1.0} and model.layers[0].num_kept == 4
    assert count_flops(model, x).total["actual"] == dense - 32 * 54
    # Further savings must come from the second layer.
    rates = perforate(model, x, y, dense - 32 * 54 - 10 * 81, loss="mse")
    assert rates["constant"] == 0.1 and rates["informative"] < 1.0
    assert count_flops(model, x).total["actual"] <= dense - 32 * 54 - 10 * 81


def test_perforate_reports_bad_targets():
    model = _two_layer_model()
    x, y = np.ones((2, 6, 6, 2), "float32"), np.ones((2, 1), "float32")
    with pytest.raises(
        ValueError,
        match="target_flops: expected a number of multiply-adds reachable with rates down to 0.5",
    ):
        perforate(model, x, y, 100, loss="mse", rates=(1.0, 0.5))
    with pytest.raises(ValueError, match="target_flops: expected a positive number, got -1"):
        perforate(model, x, y, -1, loss="mse")
    with pytest.raises(ValueError, match="rates: expected a decreasing sequence"):
        perforate(model, x, y, 100, loss="mse", rates=(0.5, 1.0))
    with pytest.raises(ValueError, match="loss: expected a Keras loss"):
        perforate(model, x, y, 100)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"perforation_rate": 0.0}, r"perforation_rate: expected a number in \(0, 1\], got 0.0"),
        ({"perforation_rate": 1.5}, r"perforation_rate: expected a number in \(0, 1\], got 1.5"),
        ({"mask": "random"}, r"mask: expected one of \('grid', 'uniform', 'pooling', 'impact'\)"),
        ({"mask": np.zeros((3, 3), bool)}, "mask: expected a strategy name or a 2-D boolean array"),
        ({"pooling": (3, 0)}, r"pooling: expected a pair of positive ints \(size, stride\)"),
        ({"groups": 2}, "groups: expected 1"),
        ({"data_format": "channels_first"}, "data_format: expected 'channels_last'"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PerforatedConv2D(4, 3, **kwargs)


def test_a_mask_that_does_not_fit_the_output_is_reported():
    with pytest.raises(
        ValueError,
        match=r"mask: expected a boolean array of the output's spatial "
        r"shape \(3, 3\) .* got bool array of shape \(5, 5\)",
    ):
        PerforatedConv2D(4, 3, mask=np.ones((5, 5), bool))(np.ones((1, 5, 5, 2), "float32"))
    with pytest.raises(ValueError, match="expected a 4-D input with known height"):
        layer = PerforatedConv2D(4, 3)
        layer.build((None, None, None, 2))
