"""VAEAC under Keras's mixed-precision policies and under tf.distribute.MirroredStrategy."""

import textwrap

import keras
import numpy as np
import pytest

from tfbayes.models import VAEAC
from fresh_process import run_script

UNIT_ROUNDOFF = {"mixed_float16": 2.0**-11, "mixed_bfloat16": 2.0**-8}


def _rows(n=256):
    """Two real columns, one on a scale whose raw values overflow float16 (max 65,504), and a
    categorical one; 10 % missing."""
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(size=n), 2e5 + 1e4 * rng.normal(size=n), rng.integers(0, 3, n)]
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_fits_imputes_and_sums_in_float32(policy):
    """The networks run in the policy's 16-bit dtype; variables, normalisation, distributions, the
    bound and the loss stay float32. On the same weights the most probable imputations match a
    float32 model's to within the rounding of the 16-bit forward pass: each of the
    2 (depth + 2) = 8 layers between the inputs and an imputed mean rounds its outputs with relative
    error u, so the imputed means (in standardised units, of order 1) may differ by a few times 8u;
    the bound used is 16 u + 8u · |mean| (1.6 % of a standard deviation in float16, 12 % in
    bfloat16)."""
    x = _rows()
    kwargs = dict(latent_dim=8, width=32, depth=2, seed=0)
    mixed = VAEAC([0, 0, 3], dtype=policy, **kwargs)
    mixed.compile(keras.optimizers.Adam(1e-3))
    loss = mixed.fit(x.astype("float32"), batch_size=32, epochs=2, verbose=0).history["loss"]
    assert np.all(np.isfinite(loss))
    assert mixed.compute_dtype == policy.split("_")[1]
    assert all(v.dtype == "float32" for v in mixed.weights)
    bound = mixed(x[:8].astype("float32"))
    assert bound.dtype == "float32" and np.all(np.isfinite(bound))
    assert all(loss.dtype == "float32" for loss in mixed.losses)

    reference = VAEAC([0, 0, 3], **kwargs)
    reference.adapt(x)
    reference.set_weights(mixed.get_weights())
    query = x[:32].copy()
    query[:, 1] = np.nan
    got = mixed.impute(query, 4, most_probable=True, seed=1)[:, :, 1]
    want = reference.impute(query, 4, most_probable=True, seed=1)[:, :, 1]
    assert np.all(np.isfinite(got))
    std, mean = reference.feature_std.numpy()[1], reference.feature_mean.numpy()[1]
    u = UNIT_ROUNDOFF[policy]
    standardised = (want - mean) / std
    assert np.all(np.abs(got - want) / std <= 16 * u + 8 * u * np.abs(standardised)), np.max(
        np.abs(got - want) / std
    )


DISTRIBUTED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfbayes.models import VAEAC, MCARMask

    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(size=(1024, 2)), rng.integers(0, 3, 1024)].astype("float32")
    x[rng.random(x.shape) < 0.1] = np.nan

    def make(strategy, seed, rate=1.0):
        with strategy.scope():
            model = VAEAC([0, 0, 3], latent_dim=8, width=32, depth=2, seed=seed,
                          mask_generator=MCARMask(rate))
            model.adapt(x)
            model.compile(keras.optimizers.SGD(0.05), jit_compile=False)
        return model

    def weights(model):
        return np.concatenate([v.numpy().ravel() for v in model.trainable_variables])

    # One full-batch SGD step with every feature hidden (a fixed mask): under two replicas the
    # update is the mean of the two halves' gradients, i.e. the one-device update up to the
    # noise of the latent samples.
    single = tf.distribute.OneDeviceStrategy("/cpu:0")
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    initial = make(single, 0)
    start, start_trainable = initial.get_weights(), weights(initial)
    steps = {}
    for name, strategy, seed in [("one_a", single, 1), ("one_b", single, 2),
                                 ("mirrored", mirrored, 3)]:
        model = make(strategy, seed)
        model.set_weights(start)
        model.fit(x, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
        steps[name] = weights(model) - start_trainable

    # Training under two replicas: finite losses, replicas in sync, per-replica training seeds.
    model = make(mirrored, 0, rate=0.2)
    loss = model.fit(x[:256], batch_size=32, epochs=3, verbose=0).history["loss"]
    copies = np.stack([np.concatenate([v.value.values[i].numpy().ravel()
                                       for v in model.trainable_variables]) for i in range(2)])
    seeds = mirrored.experimental_local_results(mirrored.run(model._seed))
    imputed = model.impute(x[:4], 5, seed=0)
    np.savez(sys.argv[1], loss=loss, copies=copies, seeds=np.stack([s.numpy() for s in seeds]),
             imputed=imputed, **steps)
""")


def test_mirrored_strategy_averages_replica_gradients_and_trains(tmp_path):
    """Logical devices must be set before TF starts, so the runs are in a fresh process.

    One SGD step under two replicas must equal the one-device step up to Monte Carlo noise. The
    noise's size is measured by two one-device steps that differ only in their seeds; a
    mirrored step differs from a one-device one by the same kind of noise (bound: 3 times the
    measured spread), while summing instead of averaging the replicas' gradients would double the
    step (a difference as large as the step itself, checked to be far above the bound)."""
    out = tmp_path / "out.npz"
    r = run_script(DISTRIBUTED, out, timeout=600)
    noise = np.linalg.norm(r["one_a"] - r["one_b"])
    assert 3 * noise < np.linalg.norm(r["one_a"])  # the test can tell 1x from 2x steps
    assert np.linalg.norm(r["mirrored"] - r["one_a"]) <= 3 * noise
    assert np.all(np.isfinite(r["loss"])) and r["loss"][-1] < r["loss"][0]
    np.testing.assert_array_equal(r["copies"][0], r["copies"][1])
    assert not np.array_equal(r["seeds"][0], r["seeds"][1])
    assert r["imputed"].shape == (4, 5, 3) and np.all(np.isfinite(r["imputed"]))
