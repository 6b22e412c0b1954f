"""AdaptiveComputationBlock (ACT and SACT) against a NumPy reference of the halting recursion."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.tf_modes import MODES, run_in_mode
from tfbayes.layers import (
    AdaptiveComputationBlock,
    ProbabilisticAdaptiveComputationBlock,
    ResidualUnit,
)

EPS = 0.01


def _np_conv_same(x, kernel):
    """'same' cross-correlation of ``x`` [B, H, W, C] with an odd ``kernel`` [k, k, C, F]."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, [(0, 0), (pad, pad), (pad, pad), (0, 0)])
    out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
    for i in range(k):
        for j in range(k):
            out += padded[:, i : i + x.shape[1], j : j + x.shape[2], :] @ kernel[i, j]
    return out


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _reference(x, unit_kernels, halting, variant, eps=EPS, rule="act"):
    """The SACT/ACT forward pass, with the halting rule evaluated position by position.

    ``unit_kernels[l]`` is the 3x3 kernel of residual unit ``l`` (F_l = conv), ``halting[l]``
    the weights ``(local_kernel, local_bias, global_w, global_b)`` of unit ``l < L - 1``.
    ``rule='act'`` halts when the cumulative score reaches 1 - eps (Graves); ``rule='pact'``
    at the first unit with h > 1/2, and the output is then the state there.
    Returns the output, rho, N and the halting distribution.
    """
    num = len(unit_kernels)
    map_shape = x.shape[:3] if variant == "sact" else x.shape[:1]
    halt_unit = np.zeros(map_shape, int)  # N (1-based), 0 while running
    cumulative = np.zeros(map_shape)
    states, probas = [], []
    state = x
    for l in range(num):
        running = halt_unit == 0
        mask = running if variant == "sact" else running[:, None, None]
        state = state + mask[..., None] * _np_conv_same(state, unit_kernels[l])
        states.append(state)
        if l < num - 1:
            local_k, local_b, global_w, global_b = halting[l]
            logit = state.mean(axis=(1, 2)) @ global_w + global_b  # [B]
            if variant == "sact":
                logit = _np_conv_same(state, local_k)[..., 0] + local_b + logit[:, None, None]
            h = _sigmoid(logit)
        else:
            h = np.ones(map_shape)
        probas.append(h)
        for idx in np.ndindex(map_shape):
            if halt_unit[idx] == 0:
                cumulative[idx] += h[idx]
                if (cumulative[idx] >= 1 - eps) if rule == "act" else (h[idx] > 0.5):
                    halt_unit[idx] = l + 1
    out = np.zeros_like(x)
    rho = np.zeros(map_shape)
    distribution = np.zeros(map_shape + (num,))
    for idx in np.ndindex(map_shape):
        n = halt_unit[idx]
        if rule == "act":
            p = [probas[l][idx] for l in range(n - 1)]
            remainder = 1.0 - sum(p)
            p.append(remainder)
            rho[idx] = n + remainder
        else:
            p = [0.0] * (n - 1) + [1.0]
            rho[idx] = n
        distribution[idx][:n] = p
        b = idx[0]
        pos = idx[1:] if variant == "sact" else (slice(None), slice(None))
        out[(b,) + pos] = sum(p[l] * states[l][(b,) + pos] for l in range(n))
    return out, rho, halt_unit, distribution


def _block_and_reference_weights(
    variant, dtype, channels=3, num=4, seed=0, cls=AdaptiveComputationBlock
):
    """A block of ``num`` 3x3 conv units with random weights whose halting reads channel 0.

    The units leave channel 0 unchanged and the halting logit has weight 1 on it, so the
    input's channel 0 decides where halting happens: +8 halts at the first unit, -8 never
    halts (until the last unit, where h = 1), values near 0 halt in between.
    """
    rng = np.random.default_rng(seed)
    units = [
        keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, dtype=dtype.__name__)
        for _ in range(num)
    ]
    extra = {"eps": EPS} if cls is AdaptiveComputationBlock else {}
    block = cls(units, variant=variant, tau=0.5, dtype=dtype.__name__, **extra)
    block.build((None, 5, 6, channels))
    unit_kernels, halting = [], []
    for unit in units:
        kernel = 0.3 * rng.normal(size=(3, 3, channels, channels))
        kernel[..., 0] = 0.0
        unit.kernel.assign(kernel.astype(dtype))
        unit_kernels.append(kernel.astype(dtype).astype(np.float64))
    for l in range(num - 1):
        local_k = 0.1 * rng.normal(size=(3, 3, channels, 1))
        global_w = 0.1 * rng.normal(size=(channels, 1))
        global_w[0] = 0.0 if variant == "sact" else 1.0
        if variant == "sact":
            local_k[1, 1, 0, 0] = 1.0
        local_b = rng.normal(scale=0.5)
        global_b = rng.normal(scale=0.3) - 1.5 + 0.7 * l  # later units halt more readily
        if variant == "sact":
            block.halting_local[l].set_weights([local_k.astype(dtype), np.array([local_b], dtype)])
            block.halting_global[l].set_weights([global_w.astype(dtype)])
            global_b = 0.0
        else:
            block.halting_global[l].set_weights(
                [global_w.astype(dtype), np.array([global_b], dtype)]
            )
            local_b = 0.0
        halting.append(
            (
                local_k.astype(dtype).astype(np.float64),
                local_b,
                global_w.astype(dtype).astype(np.float64)[:, 0],
                global_b,
            )
        )
    return block, unit_kernels, halting


def _inputs(variant, dtype, channels=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3, 5, 6, channels))
    if variant == "sact":
        x[:, :, :, 0] = rng.choice([8.0, -8.0, 0.0, 1.0, 2.0, 3.0], size=(3, 5, 6))
    else:  # example 0 halts at the first unit, example 1 never halts, example 2 in between
        x[0, ..., 0], x[1, ..., 0] = 8.0, -8.0
        x[2, ..., 0] = rng.uniform(0.5, 2.5, size=(5, 6))
    return x.astype(dtype)


@pytest.mark.parametrize("variant", ["sact", "act"])
@pytest.mark.parametrize("mode", MODES)
def test_equals_numpy_reference_of_the_halting_recursion(dtype, variant, mode):
    block, unit_kernels, halting = _block_and_reference_weights(variant, dtype)
    x = _inputs(variant, dtype)
    out, stats = run_in_mode(lambda t: block(t, return_ponder=True), mode, tf.constant(x))
    expected, rho, halt_unit, distribution = _reference(
        x.astype(np.float64), unit_kernels, halting, variant
    )
    # the cases the test is meant to cover all occur
    assert np.any(halt_unit == 1) and np.any(halt_unit == len(unit_kernels))
    assert np.any((halt_unit > 1) & (halt_unit < len(unit_kernels)))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    assert out.dtype == dtype and stats["ponder_cost"].dtype == dtype
    np.testing.assert_array_equal(stats["num_units"].numpy(), halt_unit)
    np.testing.assert_allclose(stats["ponder_cost"].numpy(), rho, **tol)
    np.testing.assert_allclose(stats["halting_distribution"].numpy(), distribution, **tol)
    np.testing.assert_allclose(out.numpy(), expected, **tol)
    np.testing.assert_allclose(stats["halting_distribution"].numpy().sum(-1), 1.0, **tol)


@pytest.mark.parametrize("variant", ["sact", "act"])
def test_ponder_loss_is_tau_times_mean_rho_in_float32_and_its_gradient_flows_through_r(variant):
    block, unit_kernels, halting = _block_and_reference_weights(variant, np.float64)
    x = tf.constant(_inputs(variant, np.float64))
    with tf.GradientTape() as tape:
        block(x, training=True)
        loss = block.losses[0]
    _, rho, halt_unit, _ = _reference(x.numpy(), unit_kernels, halting, variant)
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), 0.5 * rho.mean(), rtol=1e-6)
    # d rho / d bias = -sum_{n<N} h_n (1 - h_n) through R; positive h only lowers the cost.
    grads = tape.gradient(
        loss,
        [
            layer.bias
            for layer in (block.halting_local if variant == "sact" else block.halting_global)
        ],
    )
    assert all(g is not None and g.numpy()[0] <= 0 for g in grads)
    assert grads[0].numpy()[0] < 0


def test_with_halting_forced_off_the_block_is_the_plain_resnet_stack(dtype):
    block = AdaptiveComputationBlock(
        3, variant="sact", halting_bias_initializer=-1e4, dtype=dtype.__name__
    )
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype(dtype)
    out, stats = block(x, return_ponder=True)
    plain = x
    for unit in block.residual_units:
        plain = plain + unit(plain)
    np.testing.assert_array_equal(out.numpy(), plain.numpy())
    np.testing.assert_array_equal(stats["num_units"].numpy(), 3)
    np.testing.assert_array_equal(stats["ponder_cost"].numpy(), 4.0)


def test_flops_equal_hand_counts():
    # 3 ResidualUnits on 4x4x2 states. Per unit: two 3x3 convs 2->2 at 16 positions
    # = 2 * 16 * 9 * 2 * 2 = 1152; halting of units 1-2: the 3x3 conv 2->1 at 16 positions
    # (288) plus the global dense 2->1 (2) = 290.
    x = np.random.default_rng(0).normal(size=(1, 4, 4, 2)).astype("float32")
    never = AdaptiveComputationBlock(3, variant="sact", halting_bias_initializer=-1e4)
    _, stats = never(x, return_ponder=True)
    assert never.flops(x.shape) == (3 * 1152 + 2 * 290, None)
    assert stats["flops"].numpy().tolist() == [3 * 1152 + 2 * 290]
    at_once = AdaptiveComputationBlock(3, variant="sact", halting_bias_initializer=1e4)
    _, stats = at_once(x, return_ponder=True)
    assert stats["flops"].numpy().tolist() == [1152 + 290]
    np.testing.assert_array_equal(stats["num_units"].numpy(), 1)


def test_masked_residual_unit_flops_count_the_dilated_mask_for_the_first_conv():
    # One active position in the corner of a 4x4 map: conv2 at 1 position, conv1 at the
    # 2x2 positions a 3x3 kernel around the corner reads; per position 3*3*2*2 = 36.
    unit = ResidualUnit()
    unit.build((None, 4, 4, 2))
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, 0] = True
    assert unit.masked_flops((None, 4, 4, 2), mask).numpy().tolist() == [36 * (1 + 4)]


def test_units_after_halting_are_skipped_at_inference():
    class Poison(keras.layers.Layer):
        def call(self, inputs):
            return inputs * np.float32(np.nan)

    block = AdaptiveComputationBlock(
        [ResidualUnit(), Poison()], variant="sact", halting_bias_initializer=1e4, tau=0.0
    )
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
    for mode in MODES:
        out = run_in_mode(lambda t: block(t), mode, tf.constant(x))
        assert np.all(np.isfinite(out.numpy())), mode
    # In training every unit runs (masked), so the poisoned unit is evaluated.
    assert np.all(np.isnan(block(x, training=True).numpy()))


@pytest.mark.parametrize(
    "cls, variant, rule",
    [
        (AdaptiveComputationBlock, "sact", "act"),
        (AdaptiveComputationBlock, "act", "act"),
        (ProbabilisticAdaptiveComputationBlock, "sact", "pact"),
    ],
)
def test_inference_runs_each_unit_only_on_the_examples_still_running(cls, variant, rule):
    block, unit_kernels, halting = _block_and_reference_weights(variant, np.float64, cls=cls)
    x = _inputs(variant, np.float64)
    x[0, ..., 0], x[1, ..., 0] = 8.0, -8.0  # example 0 halts everywhere at unit 1, 1 never halts
    seen = []  # (unit index, batch size it was called with)
    for index, unit in enumerate(block.residual_units):
        unit.call = lambda t, call=unit.call, index=index: (
            seen.append((index, int(t.shape[0]))),
            call(t),
        )[1]
    out, stats = block(tf.constant(x), return_ponder=True)
    expected, _, halt_unit, _ = _reference(x, unit_kernels, halting, variant, rule=rule)
    num = len(unit_kernels)
    running = halt_unit.reshape(3, -1)  # N per position of each example
    assert running[0].max() == 1 and running[1].min() == num
    assert [size for _, size in seen] == [3] + [
        int(np.sum(running.max(1) > l)) for l in range(1, num)
    ]
    assert [index for index, _ in seen] == list(range(num))
    np.testing.assert_array_equal(stats["num_units"].numpy(), halt_unit)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    # The same outputs as the dense evaluation under XLA, where every example runs every unit.
    dense = tf.function(lambda t: block(t), jit_compile=True)(tf.constant(x))
    np.testing.assert_allclose(out.numpy(), dense.numpy(), rtol=1e-12, atol=1e-12)
    # FLOPs by hand: each unit (a 3x3 conv 3->3, 81 multiply-adds per position) at the
    # running positions; after unit l < L the halting layers of the examples still running:
    # the global dense 3->1 (3) and, for SACT, the 3x3 conv 3->1 at the running positions (27).
    positions = x.shape[1] * x.shape[2]
    hand = np.zeros(3, np.int64)
    for l in range(num):
        active = (running > l).sum(1) if variant == "sact" else (running[:, 0] > l) * positions
        hand += 81 * active
        if l < num - 1:
            hand += 3 * (active > 0) + (27 * active if variant == "sact" else 0)
    np.testing.assert_array_equal(stats["flops"].numpy(), hand)


def test_mixed_precision_keeps_variables_float32_and_the_ponder_loss_float32():
    block = AdaptiveComputationBlock(2, variant="sact", dtype="mixed_float16")
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype("float32")
    out, stats = block(x, training=True, return_ponder=True)
    assert out.dtype == tf.float16 and stats["ponder_cost"].dtype == tf.float32
    assert block.losses[0].dtype == tf.float32
    assert all(w.dtype == "float32" for w in block.weights)
    full = AdaptiveComputationBlock(2, variant="sact")
    full.build(x.shape)
    full.set_weights(block.get_weights())
    np.testing.assert_allclose(out.numpy(), full(x, training=True).numpy(), rtol=2e-2, atol=2e-2)


def test_fit_with_jit_lowers_the_ponder_cost_and_the_model_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4, 4, 2)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((4, 4, 2)),
            AdaptiveComputationBlock(2, tau=1.0),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    block = model.layers[0]

    def mean_rho():
        return float(np.mean(block(x, return_ponder=True)[1]["ponder_cost"].numpy()))

    before = mean_rho()
    model.compile(keras.optimizers.Adam(0.2), "mse", jit_compile=True)
    model.fit(x, y, batch_size=16, epochs=12, verbose=0)
    assert mean_rho() < before - 0.3  # rho is in [2, 3) for two units
    path = tmp_path / "act.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert json.loads(json.dumps(loaded.layers[0].get_config())) == json.loads(
        json.dumps(block.get_config())
    )


def test_ponder_map_is_a_functional_model_output_and_survives_saving(tmp_path):
    inputs = keras.Input((5, 5, 2))
    features, stats = AdaptiveComputationBlock(3, variant="sact", name="sact")(
        inputs, return_ponder=True
    )
    logits = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, [logits, stats["ponder_cost"], stats["num_units"]])
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 2)).astype("float32")
    _, ponder, num_units = model.predict(x, verbose=0)
    _, direct = model.get_layer("sact")(x, return_ponder=True)
    assert ponder.shape == (4, 5, 5) and num_units.dtype == np.int32
    np.testing.assert_allclose(ponder, direct["ponder_cost"].numpy(), rtol=1e-6)
    path = tmp_path / "ponder.keras"
    model.save(path)
    for ours, theirs in zip(
        keras.models.load_model(path).predict(x, verbose=0), model.predict(x, verbose=0)
    ):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("variant", ["sact", "act"])
@pytest.mark.parametrize("mode", MODES)
def test_pact_inference_equals_numpy_reference_of_the_deterministic_rule(dtype, variant, mode):
    block, unit_kernels, halting = _block_and_reference_weights(
        variant, dtype, cls=ProbabilisticAdaptiveComputationBlock
    )
    x = _inputs(variant, dtype)
    if variant == "act":  # pick example 2's control value so that it halts in between
        for value in np.linspace(-3, 3, 121):
            x[2, ..., 0] = value
            if (
                1
                < _reference(x.astype(np.float64), unit_kernels, halting, variant, rule="pact")[2][
                    2
                ]
                < len(unit_kernels)
            ):
                break
    out, stats = run_in_mode(lambda t: block(t, return_ponder=True), mode, tf.constant(x))
    expected, rho, halt_unit, distribution = _reference(
        x.astype(np.float64), unit_kernels, halting, variant, rule="pact"
    )
    assert np.any(halt_unit == 1) and np.any(halt_unit == len(unit_kernels))
    assert np.any((halt_unit > 1) & (halt_unit < len(unit_kernels)))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(stats["num_units"].numpy(), halt_unit)
    np.testing.assert_array_equal(stats["ponder_cost"].numpy(), rho)
    np.testing.assert_array_equal(stats["halting_distribution"].numpy(), distribution)
    np.testing.assert_allclose(out.numpy(), expected, **tol)


@pytest.mark.parametrize("mode", MODES)
def test_pact_training_samples_concrete_halting_with_the_right_probability(mode):
    # Three Dense units on vectors. For a binary Concrete sample P(z~ > 1/2) = sigmoid(logit)
    # = h_1 exactly, at any temperature. The residual masks are r_1 = 1 - z~_1 = 1 - w_1 and
    # r_2 = (1 - z~_1)(1 - z~_2) = w_3.
    n = 4000
    units = [keras.layers.Dense(3, dtype="float64") for _ in range(3)]
    block = ProbabilisticAdaptiveComputationBlock(
        units,
        variant="act",
        tau=0.3,
        temperature=0.7,
        halting_bias_initializer=0.0,
        seed=1,
        dtype="float64",
    )
    x = np.repeat(np.random.default_rng(0).normal(size=(1, 3)), n, axis=0)
    block.build(x.shape)
    out, stats = run_in_mode(
        lambda t: block(t, training=True, return_ponder=True), mode, tf.constant(x)
    )
    w = stats["halting_distribution"].numpy()
    x1 = x + units[0](x).numpy()
    x2 = x1 + (1 - w[:, :1]) * units[1](x1).numpy()
    x3 = x2 + w[:, 2:] * units[2](x2).numpy()
    h1 = 1 / (1 + np.exp(-(block.halting_global[0](x1[:1]).numpy()[0, 0])))
    assert 0.01 < h1 < 0.99
    assert abs(np.mean(w[:, 0] > 0.5) - h1) < 5 * np.sqrt(h1 * (1 - h1) / n)
    assert len(np.unique(w[:, 0])) > n // 2  # relaxed, not hard, samples
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(stats["ponder_cost"].numpy(), w @ [1.0, 2.0, 3.0], rtol=1e-12)
    np.testing.assert_allclose(out.numpy(), x3, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(stats["num_units"].numpy(), 3)


def test_pact_ponder_loss_rewards_halting_and_the_block_round_trips(tmp_path):
    block = ProbabilisticAdaptiveComputationBlock(2, variant="sact", tau=0.5, seed=3)
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 2)).astype("float32")
    with tf.GradientTape() as tape:
        _, stats = block(x, training=True, return_ponder=True)
        loss = block.losses[0]
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), 0.5 * stats["ponder_cost"].numpy().mean(), rtol=1e-6)
    # ponder = 2 - z~_1 and z~_1 grows with the halting logit
    assert tape.gradient(loss, block.halting_local[0].bias).numpy()[0] < 0
    model = keras.Sequential([keras.Input((5, 5, 2)), block])
    path = tmp_path / "pact.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert json.loads(json.dumps(loaded.layers[0].get_config())) == json.loads(
        json.dumps(block.get_config())
    )
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eps": 0.0}, r"eps: expected a number in \(0, 1\), got 0.0"),
        ({"eps": 1.0}, r"eps: expected a number in \(0, 1\), got 1.0"),
        ({"eps": "small"}, "eps: expected a finite real number, got 'small'"),
        ({"tau": -0.1}, "tau: expected a non-negative number, got -0.1"),
        ({"variant": "pact"}, r"variant: expected one of \('act', 'sact'\), got 'pact'"),
        ({"units": 0}, "units: expected a positive int or a list of layers, got 0"),
        ({"units": []}, "units: expected a positive int or a non-empty list of Keras layers"),
        ({"halting_kernel_size": 2}, "halting_kernel_size: expected a positive odd int, got 2"),
        ({"halting_bias_initializer": float("nan")}, "halting_bias_initializer: expected a finite"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveComputationBlock(**{"units": 2, **kwargs})


def test_pact_gradients_stay_finite_for_saturated_halting_logits():
    # TFP's RelaxedBernoulli sampler overflows exp() for |logit / temperature| > ~88 in
    # float32 and returns NaN gradients; the block's sampler must not.
    for bias in (-300.0, 300.0):
        block = ProbabilisticAdaptiveComputationBlock(
            2, variant="sact", tau=1.0, seed=0, halting_bias_initializer=bias
        )
        x = np.random.default_rng(0).normal(size=(2, 4, 4, 2)).astype("float32")
        with tf.GradientTape() as tape:
            out = block(x, training=True)
            loss = tf.reduce_sum(out) + block.losses[0]
        grads = tape.gradient(loss, block.trainable_weights)
        assert all(np.all(np.isfinite(g.numpy())) for g in grads if g is not None), bias


def test_pact_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature: expected a positive number, got 0.0"):
        ProbabilisticAdaptiveComputationBlock(2, temperature=0.0)


def test_bad_inputs_are_reported():
    with pytest.raises(ValueError, match="variant 'sact' expects a 4-D input"):
        AdaptiveComputationBlock(2)(np.ones((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="expected residual units that keep the input's shape"):
        AdaptiveComputationBlock([keras.layers.Dense(4)], variant="act")(np.ones((2, 3), "float32"))
