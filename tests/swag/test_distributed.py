"""SWAG and update_bn under tf.distribute.MirroredStrategy on two logical CPU devices.

Logical devices must be configured before TF initializes, so the runs happen in a fresh
Python process that saves its arrays; the assertions are made here."""

import textwrap

import numpy as np
from fresh_process import run_script

SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from tfbayes.swag import SWAG, update_bn

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            if epoch >= 1:
                self.weights.append(np.concatenate(
                    [v.numpy().ravel() for v in self.model.trainable_variables]))

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x @ rng.normal(size=(3, 2)) + rng.normal(size=(64, 2))).astype(np.float32)

    def run(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                                      keras.layers.Dense(2)])
            model.compile(keras.optimizers.SGD(0.1), "mse")
        swag, recorder = SWAG(1, max_rank=3, set_weights_at_end=False), Recorder()
        model.fit(x, y, batch_size=16, epochs=6, shuffle=False, verbose=0,
                  callbacks=[swag, recorder])
        sample = swag.sample_weights(scale=0.5, seed=tf.constant([1, 2]))
        assigned = np.stack([  # every replica's copy
            np.concatenate([getattr(v.value, "values", [v.value])[i].numpy().ravel()
                            for v in model.trainable_variables])
            for i in range(strategy.num_replicas_in_sync)])
        return swag, np.asarray(recorder.weights), sample, assigned

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    swag_m, weights_m, sample_m, assigned_m = run(mirrored)
    swag_1, _, _, _ = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    with mirrored.scope():
        bn_model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization()])
    update_bn(bn_model, x, batch_size=16)
    np.savez(sys.argv[1], mean_m=swag_m.moments.mean, var_m=swag_m.moments.variance(),
             dev_m=swag_m.moments.deviations(), weights_m=weights_m, mean_1=swag_1.moments.mean,
             var_1=swag_1.moments.variance(), dev_1=swag_1.moments.deviations(),
             sample_m=sample_m, assigned_m=assigned_m,
             bn_mean=bn_model.layers[0].moving_mean.numpy(),
             bn_var=bn_model.layers[0].moving_variance.numpy(), x=x)
""")


def test_mirrored_strategy_moments_equal_single_device(tmp_path):
    out = tmp_path / "out.npz"
    r = run_script(SCRIPT, out, timeout=300)
    w = r["weights_m"].astype(np.float64)
    assert w.shape[0] == 5
    running = np.cumsum(w, 0) / np.arange(1, 6)[:, None]
    # Against NumPy over the distributed run's own weights...
    np.testing.assert_allclose(r["mean_m"], w.mean(0), atol=1e-6)
    np.testing.assert_allclose(r["var_m"], w.var(0), atol=1e-6)
    np.testing.assert_allclose(r["dev_m"], (w - running)[-3:], atol=1e-6)
    # ...and against the single-device run (same data, same global batches).
    np.testing.assert_allclose(r["mean_m"], r["mean_1"], atol=1e-5)
    np.testing.assert_allclose(r["var_m"], r["var_1"], atol=1e-6)
    np.testing.assert_allclose(r["dev_m"], r["dev_1"], atol=1e-5)
    assert r["assigned_m"].shape[0] == 2
    np.testing.assert_array_equal(r["assigned_m"], r["sample_m"][None].repeat(2, 0))
    x = r["x"].astype(np.float64)
    np.testing.assert_allclose(r["bn_mean"], x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r["bn_var"], x.var(0), rtol=1e-5)
