"""Bayesian sparsification benchmarks on real data, offline.

LeNet-300-100 and LeNet-5-Caffe on Fashion-MNIST (Debian's
``dataset-fashion-mnist``), each: a dense baseline, Sparse Variational Dropout
(``SparseVDDense``/``SparseVDConv2D``), Structured Bayesian Pruning
(``SBPDropout``), and TF Model Optimization's magnitude pruning at the same
sparsity and with the same dense and pruning epochs as Sparse VD. The sparse
models start from the dense baseline's weights (as SBP's reference code does;
Sparse VD's takes them optionally and otherwise trains from random weights).
The last 10% of the (shuffled) training images are held out for validation, and
models are selected on it, never on the test set: the dense baseline keeps its
best-validation epoch, a sparse model its best-validation epoch among those
that reach the experiment's target (compression for Sparse VD, FLOPs reduction
for SBP; ``RECIPES``), and then its pruning threshold is chosen on the same
validation split (``select_threshold``; the test accuracy at the default
threshold is reported too). For every model: test accuracy, compression
(weights total / kept), FLOPs (multiply-adds per example of the weight layers,
dense vs nonzero) and the measured CPU inference time of
``tfbayes.sparsity.compress``'s model vs the dense baseline (median of several
timed runs in the same process).

TF Model Optimization 0.8.1 needs tf_keras (Keras 2); it runs in a subprocess
with ``TF_USE_LEGACY_KERAS=1`` from a venv that this script expects at
``$TFMOT_PYTHON`` (default ``/tmp/venv-tfmot/bin/python``). Create it with

    python benchmarks/side_venv.py /tmp/venv-tfmot tensorflow-model-optimization==0.8.1

(``benchmarks/run_sparsification.sh`` does both, then runs this script.)

Run: ``python benchmarks/sparsification.py [--experiments NAME ...] [--quick]
[--epochs E --learning-rate LR ...]`` (the recipe flags override ``RECIPES`` for
the experiments run).
Results are merged into ``benchmarks/results/sparsification.json``, one key
per experiment (other experiments in the file, e.g. the LSTM one, are kept).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results" / "sparsification.json"
TFMOT_PYTHON = os.environ.get("TFMOT_PYTHON", "/tmp/venv-tfmot/bin/python")


def load_data(quick=False):
    """Fashion-MNIST as float32 images in [0, 1], ``[N, 28, 28, 1]``, and int labels.

    Returns ``(train, validation, test)`` pairs ``(x, y)``: the 60,000 training
    images in a fixed shuffled order (seed 0), the last 10% of them held out
    for validation, and the 10,000 test images.
    """
    from tfbayes.datasets import load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    order = np.random.default_rng(0).permutation(len(x_train))
    x_train = (x_train[order, ..., None] / 255.0).astype("float32")
    y_train = y_train[order].astype("int64")
    x_test, y_test = (x_test[..., None] / 255.0).astype("float32"), y_test.astype("int64")
    if quick:
        x_train, y_train, x_test, y_test = (
            x_train[:3000],
            y_train[:3000],
            x_test[:1000],
            y_test[:1000],
        )
    n_fit = int(0.9 * len(x_train))
    return (
        (x_train[:n_fit], y_train[:n_fit]),
        (x_train[n_fit:], y_train[n_fit:]),
        (x_test, y_test),
    )


# --- architectures: one builder per net, parameterised by the layer kind ---


def lenet_300_100(kind, num_examples=None, log_sigma2_init=-10.0):
    """LeNet-300-100: 784-300-100-10 with ReLU. ``kind`` in {'dense', 'sparse_vd', 'sbp'};
    ``log_sigma2_init`` is the Sparse VD layers' initial ``log sigma^2``."""
    import keras
    from tfbayes import layers as tl

    def dense(units, activation=None):
        if kind == "sparse_vd":
            return [
                tl.SparseVDDense(
                    units,
                    activation=activation,
                    num_examples=num_examples,
                    log_sigma2_initializer=log_sigma2_init,
                )
            ]
        return [keras.layers.Dense(units, activation=activation)]

    def sbp():
        return [tl.SBPDropout(num_examples=num_examples)] if kind == "sbp" else []

    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten()]
        + sbp()
        + dense(300, "relu")
        + sbp()
        + dense(100, "relu")
        + sbp()
        + dense(10),
        name=f"lenet_300_100_{kind}",
    )


def lenet_5(kind, num_examples=None, log_sigma2_init=-10.0):
    """LeNet-5-Caffe: conv 20@5x5, pool, conv 50@5x5, pool, dense 500, dense 10 (arguments
    as ``lenet_300_100``)."""
    import keras
    from tfbayes import layers as tl

    def conv(filters):
        if kind == "sparse_vd":
            return [
                tl.SparseVDConv2D(
                    filters,
                    5,
                    activation="relu",
                    num_examples=num_examples,
                    log_sigma2_initializer=log_sigma2_init,
                )
            ]
        return [keras.layers.Conv2D(filters, 5, activation="relu")]

    def dense(units, activation=None):
        if kind == "sparse_vd":
            return [
                tl.SparseVDDense(
                    units,
                    activation=activation,
                    num_examples=num_examples,
                    log_sigma2_initializer=log_sigma2_init,
                )
            ]
        return [keras.layers.Dense(units, activation=activation)]

    def sbp():
        return [tl.SBPDropout(num_examples=num_examples)] if kind == "sbp" else []

    pool = keras.layers.MaxPooling2D
    return keras.Sequential(
        [keras.Input((28, 28, 1))]
        + conv(20)
        + sbp()
        + [pool()]
        + conv(50)
        + sbp()
        + [pool()]
        + [keras.layers.Flatten()]
        + sbp()
        + dense(500, "relu")
        + sbp()
        + dense(10),
        name=f"lenet_5_{kind}",
    )


ARCHITECTURES = {"lenet_300_100": lenet_300_100, "lenet_5": lenet_5}


def copy_dense_weights(dense_model, sparse_model):
    """Initialises the sparse model's theta and biases from the pretrained dense model."""
    import keras

    source = [
        l for l in dense_model.layers if isinstance(l, (keras.layers.Dense, keras.layers.Conv2D))
    ]
    target = [l for l in sparse_model.layers if hasattr(l, "kernel")]
    for src, dst in zip(source, target, strict=True):
        dst.kernel.assign(src.kernel)
        dst.bias.assign(src.bias)


def flops_reduction_dense(total):
    """FLOPs before / after ``compress`` counting the compressed layers as dense, from the
    ``total`` row of ``sparsity_report``; None where the report has no FLOPs."""
    return total["flops_before"] / total["dense_flops_after"] if total["flops_before"] else None


def best_epoch_tracker(min_compression=0.0, min_flops_reduction=0.0, track_sparsity=True):
    """A callback that selects the epoch to keep, on validation data only.

    After every epoch it records the model's total compression (weights total /
    kept) and FLOPs reduction (``sparsity_report``; skipped with
    ``track_sparsity=False``, for dense baselines), and keeps the weights of
    the epoch with the best ``val_accuracy`` among those compressed at least
    ``min_compression``-fold whose FLOPs fell at least ``min_flops_reduction``-
    fold. It restores them when training ends; ``epoch`` is then the kept
    epoch (1-based), or ``None`` if no epoch qualified (the last one stays).
    """
    import keras
    from tfbayes import sparsity

    class BestEpochTracker(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.compression, self.flops_reduction, self.val_accuracy = [], [], []
            self.epoch, self.weights, self.best_val_accuracy = None, None, -1.0

        def on_epoch_end(self, epoch, logs=None):
            compression = flops_reduction = np.inf
            if track_sparsity:
                total = sparsity.sparsity_report(self.model).total
                compression = total["compression"]
                flops_reduction = flops_reduction_dense(total)
                self.compression.append(round(compression, 2))
                self.flops_reduction.append(round(flops_reduction, 2))
                print(
                    f"epoch {epoch + 1}: compression {compression:.1f}x, FLOPs reduction "
                    f"{flops_reduction:.2f}x, groups {total['groups']}",
                    flush=True,
                )
            self.val_accuracy.append(float(logs["val_accuracy"]))
            if (
                compression >= min_compression
                and flops_reduction >= min_flops_reduction
                and self.val_accuracy[-1] > self.best_val_accuracy
            ):
                self.epoch, self.best_val_accuracy = epoch + 1, self.val_accuracy[-1]
                self.weights = self.model.get_weights()

        def on_train_end(self, logs=None):
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return BestEpochTracker()


def compile_and_fit(model, data, epochs, learning_rate, batch_size=128, callbacks=()):
    """Adam with the step decaying linearly to 5% of ``learning_rate``, so theta can settle.

    ``data`` is ``(train, validation, test)``; the validation pair is passed to
    ``fit``. XLA is off: on this CPU, XLA-compiled convolution training steps
    measured ~8x slower.
    """
    import keras

    (x_train, y_train), validation, _ = data
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, steps, 0.05 * learning_rate
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        verbose=2,
        validation_data=validation,
        callbacks=list(callbacks),
    )
    return time.perf_counter() - start


def accuracy(model, pair):
    """The accuracy of ``model`` on one ``(x, y)`` pair of ``load_data``."""
    x, y = pair
    logits = model.predict(x, batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y))


THRESHOLD_GRIDS = {
    # kind: (layer setting, what it buys); the grids are tfbayes.sparsity.THRESHOLD_GRIDS
    # (lower log-alpha thresholds and higher SNR thresholds prune more).
    "sparse_vd": ("threshold", "compression"),
    "sbp": ("snr_threshold", "flops_reduction"),
}


def select_threshold(
    model,
    kind,
    validation_accuracy,
    dense_validation_accuracy,
    max_loss_pt,
    validation_size,
    test_accuracy,
):
    """Chooses the pruning threshold of a trained model on validation data only.

    ``tfbayes.sparsity.select_threshold`` over its default grid for ``kind``: the
    threshold kept buys the most (compression for Sparse VD, FLOPs reduction for
    SBP) among those whose validation accuracy is at most ``max_loss_pt`` points,
    less one standard error of the dense accuracy on ``validation_size`` examples,
    below ``dense_validation_accuracy``. (The margin keeps the choice from spending
    the whole budget on validation noise: without it, LeNet-5 seed 0 took a
    threshold 0.40 pt below dense on validation, 0.78 pt on test.) ``test_accuracy``
    is recorded for every threshold, to show the whole trade-off, and never used to
    choose; the sweep is printed.

    Returns ``(model at that threshold, the threshold, the sweep as a list of dicts)``.
    """
    from tfbayes import sparsity

    setting, target = THRESHOLD_GRIDS[kind]
    model, chosen, sweep = sparsity.select_threshold(
        model,
        validation_accuracy,
        dense_validation_accuracy,
        max_loss_pt,
        validation_size=validation_size,
        setting=setting,
        objective=target,
        record={"test_accuracy": test_accuracy},
    )
    for row in sweep:
        print(
            f"{setting} {row['threshold']}: val accuracy {row['val_accuracy']:.4f} (test "
            f"{row['test_accuracy']:.4f}), compression {row['compression']:.1f}x, "
            f"FLOPs reduction {row['flops_reduction'] or 0:.2f}x",
            flush=True,
        )
    return model, chosen, sweep


def inference_seconds(models, x, repeats=21):
    """Median wall time of one forward pass over ``x`` for each model, timed interleaved.

    The models take turns within every repeat, so a load spike on the shared CPU
    hits them alike; the medians and their ratio are what to read.
    """
    import tensorflow as tf

    forwards = [tf.function(lambda batch, m=m: m(batch, training=False)) for m in models]
    for forward in forwards:
        forward(x)  # trace and warm up
    times = [[] for _ in models]
    for _ in range(repeats):
        for forward, record in zip(forwards, times):
            start = time.perf_counter()
            forward(x).numpy()
            record.append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


CACHE = pathlib.Path(
    os.environ.get(
        "TFBAYES_BENCH_CACHE", pathlib.Path(tempfile.gettempdir()) / "tfbayes_sparsification"
    )
)


def pretrained_dense(arch, data, epochs):
    """The dense baseline at its best-validation epoch, trained once per architecture,
    epochs and split; cached under ``CACHE``.

    Returns the model, its training time in seconds and the kept epoch (those
    of the cached run).
    """
    path = CACHE / f"{arch}_dense_{epochs}ep_{len(data[0][0])}_val.weights.h5"
    model = ARCHITECTURES[arch]("dense")
    if path.exists():
        model.load_weights(path)
        info = json.loads(path.with_suffix(".json").read_text())
        return model, info["seconds"], info["epoch"]
    tracker = best_epoch_tracker(track_sparsity=False)
    seconds = compile_and_fit(model, data, epochs, 1e-3, callbacks=[tracker])
    CACHE.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    path.with_suffix(".json").write_text(json.dumps({"seconds": seconds, "epoch": tracker.epoch}))
    return model, seconds, tracker.epoch


def sparsify(arch, kind, data, recipe):
    """Trains the dense baseline, then the ``kind`` model from its weights; returns a result dict.

    ``recipe``: ``dense_epochs``, ``epochs``, ``learning_rate``, ``warmup_epochs``
    (KL weight ramped 0 -> ``kl_weight``: 1 for the ELBO, else a tempered one),
    ``log_sigma2_init`` (Sparse VD's initial ``log sigma^2``),
    and the selection targets ``min_compression`` and
    ``min_flops_reduction`` (see ``best_epoch_tracker``).
    """
    import keras
    from tfbayes import sparsity
    from tfbayes.layers import KLWarmup

    keras.utils.set_random_seed(recipe.get("seed", 0))  # noise, batches: a rerun repeats
    dense, dense_seconds, dense_epoch = pretrained_dense(arch, data, recipe["dense_epochs"])
    (x_train, _), _, (x_test, _) = data
    model = ARCHITECTURES[arch](
        kind, num_examples=len(x_train), log_sigma2_init=recipe["log_sigma2_init"]
    )
    model.build((None, 28, 28, 1))
    copy_dense_weights(dense, model)
    tracker = best_epoch_tracker(recipe["min_compression"], recipe["min_flops_reduction"])
    warmup = KLWarmup(recipe["warmup_epochs"], end=recipe["kl_weight"])
    seconds = compile_and_fit(
        model, data, recipe["epochs"], recipe["learning_rate"], callbacks=[warmup, tracker]
    )
    if tracker.epoch is None:
        print("no epoch reached the recipe's targets; reporting the last one", flush=True)
    dense_val_accuracy = accuracy(dense, data[1])
    trained = model
    model, threshold, sweep = select_threshold(
        trained,
        kind,
        lambda m: accuracy(m, data[1]),
        dense_val_accuracy,
        recipe["max_loss_pt"],
        len(data[1][0]),
        lambda m: accuracy(m, data[2]),
    )
    compressed = sparsity.compress(model)
    report = sparsity.sparsity_report(model)
    batch = x_test[:1000]
    dense_time, compressed_time = inference_seconds([dense, compressed], x_test)
    total = report.total
    result = {
        "dense_accuracy": accuracy(dense, data[2]),
        "accuracy": accuracy(model, data[2]),
        "compressed_accuracy": accuracy(compressed, data[2]),
        "threshold": threshold,
        "threshold_sweep": sweep,
        "dense_val_accuracy": dense_val_accuracy,
        "accuracy_at_default_threshold": accuracy(trained, data[2]),
        "max_abs_diff_compressed_vs_model": float(
            np.max(np.abs(compressed.predict(batch, verbose=0) - model.predict(batch, verbose=0)))
        ),
        "weights_kept": total["weights_kept"],
        "weights_total": total["weights_total"],
        "compression": total["compression"],
        "groups": total["groups"],
        "flops_dense": total["flops_before"],
        "flops_nonzero_after": total["flops_after"],
        "flops_dense_after": total["dense_flops_after"],
        "flops_reduction_nonzero": total["flops_before"] / total["flops_after"],
        "flops_reduction_dense": flops_reduction_dense(total),
        "inference_seconds_dense_10000": dense_time,
        "inference_seconds_compressed_10000": compressed_time,
        "cpu_speedup": dense_time / compressed_time,
        "layers": [
            {
                k: row[k]
                for k in (
                    "name",
                    "weights_kept",
                    "weights_total",
                    "groups",
                    "flops_before",
                    "flops_after",
                )
            }
            for row in report.layers
        ],
        "compression_per_epoch": tracker.compression,
        "flops_reduction_per_epoch": tracker.flops_reduction,
        "val_accuracy_per_epoch": tracker.val_accuracy,
        "selected_epoch": tracker.epoch,
        "dense_selected_epoch": dense_epoch,
        "recipe": recipe,
        "train_size": len(x_train),
        "validation_size": len(data[1][0]),
        "test_size": len(x_test),
        "train_seconds_dense": dense_seconds,
        "train_seconds": seconds,
    }
    result["accuracy_loss_pt"] = 100 * (result["dense_accuracy"] - result["accuracy"])
    print(report)
    return result


def tfmot_magnitude_pruning(arch, sparsity_level, data_quick, dense_epochs, epochs):
    """Runs TF-MOT magnitude pruning to ``sparsity_level`` in the tf_keras venv (subprocess).

    The dense net trains ``dense_epochs`` on the same 54k images, then
    ``prune_low_magnitude`` raises the sparsity polynomially over the first 70%
    of ``epochs`` and fine-tunes at it for the rest; both phases use Adam 1e-3
    decaying linearly to 5%, as ``compile_and_fit`` does. No epoch is selected.
    """
    if not pathlib.Path(TFMOT_PYTHON).exists():
        return {"skipped": f"no tf_keras venv with tensorflow-model-optimization at {TFMOT_PYTHON}"}
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    args = json.dumps(
        {
            "arch": arch,
            "sparsity": sparsity_level,
            "quick": data_quick,
            "dense_epochs": dense_epochs,
            "epochs": epochs,
        }
    )
    out = subprocess.run(
        [TFMOT_PYTHON, __file__, "--tfmot-worker", args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tfmot_worker(args):
    """Inside the tf_keras venv: dense training, then magnitude pruning; prints a JSON line."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    (x_train, y_train), _, (x_test, y_test) = load_data(args["quick"])
    layers = tf_keras.layers
    if args["arch"] == "lenet_300_100":
        body = [
            layers.Flatten(),
            layers.Dense(300, activation="relu"),
            layers.Dense(100, activation="relu"),
            layers.Dense(10),
        ]
    else:
        body = [
            layers.Conv2D(20, 5, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(50, 5, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(500, activation="relu"),
            layers.Dense(10),
        ]
    model = tf_keras.Sequential([layers.InputLayer((28, 28, 1))] + body)
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    steps_per_epoch = int(np.ceil(len(x_train) / 128))

    def adam(epochs):  # the step schedule of compile_and_fit: 1e-3 decaying linearly to 5%
        return tf_keras.optimizers.Adam(
            tf_keras.optimizers.schedules.PolynomialDecay(1e-3, epochs * steps_per_epoch, 5e-5)
        )

    model.compile(adam(args["dense_epochs"]), loss, metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=args["dense_epochs"], verbose=0)
    dense_acc = model.evaluate(x_test, y_test, verbose=0)[1]
    steps = steps_per_epoch * args["epochs"]
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        0.0, args["sparsity"], begin_step=0, end_step=int(0.7 * steps)
    )
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(adam(args["epochs"]), loss, metrics=["accuracy"])
    pruned.fit(
        x_train,
        y_train,
        batch_size=128,
        epochs=args["epochs"],
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    stripped.compile(loss=loss, metrics=["accuracy"])
    kernels = [w.numpy() for w in stripped.weights if "kernel" in w.name]
    kept = sum(int(np.count_nonzero(k)) for k in kernels)
    total = sum(k.size for k in kernels)
    print(
        json.dumps(
            {
                "dense_accuracy": float(dense_acc),
                "accuracy": float(stripped.evaluate(x_test, y_test, verbose=0)[1]),
                "target_sparsity": args["sparsity"],
                "weights_kept": kept,
                "weights_total": total,
                "compression": total / kept,
                "dense_epochs": args["dense_epochs"],
                "epochs": args["epochs"],
            }
        )
    )


# --- experiments: each returns a JSON-able dict ---

RECIPES = {
    "lenet_300_100_sparse_vd": dict(
        dense_epochs=30,
        epochs=200,
        learning_rate=2e-3,
        warmup_epochs=20,
        kl_weight=1.0,
        log_sigma2_init=-10.0,
        min_compression=30.0,
        min_flops_reduction=0.0,
        max_loss_pt=0.5,
    ),
    "lenet_5_sparse_vd": dict(
        dense_epochs=30,
        epochs=200,
        learning_rate=1e-3,
        warmup_epochs=5,
        kl_weight=1.0,
        log_sigma2_init=-10.0,
        min_compression=100.0,
        min_flops_reduction=0.0,
        max_loss_pt=0.5,
    ),
    "lenet_5_sbp": dict(
        dense_epochs=30,
        epochs=40,
        learning_rate=1.2e-2,
        warmup_epochs=5,
        kl_weight=1.0,
        log_sigma2_init=-10.0,
        min_compression=0.0,
        min_flops_reduction=5.0,
        max_loss_pt=1.0,
    ),
}
"""Per experiment: the training recipe, the targets an epoch must reach to be selected, and
the validation-accuracy budget of the threshold selection (``select_threshold``)."""

QUICK_RECIPE = dict(
    dense_epochs=1, epochs=1, warmup_epochs=1, min_compression=0.0, min_flops_reduction=0.0
)


def _sparsify_experiment(name, arch, kind):
    def experiment(data, quick, overrides=None):
        recipe = dict(RECIPES[name], **(overrides or {}), **(QUICK_RECIPE if quick else {}))
        return sparsify(arch, kind, data, recipe)

    experiment.__name__ = name
    return experiment


lenet_300_100_sparse_vd = _sparsify_experiment(
    "lenet_300_100_sparse_vd", "lenet_300_100", "sparse_vd"
)
lenet_5_sparse_vd = _sparsify_experiment("lenet_5_sparse_vd", "lenet_5", "sparse_vd")
lenet_5_sbp = _sparsify_experiment("lenet_5_sbp", "lenet_5", "sbp")


def _tfmot_at_sparse_vd_level(arch, quick):
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = f"{arch}_sparse_vd"
    if key not in previous:
        return {"skipped": f"run the {key} experiment first (its sparsity is the target)"}
    level = 1.0 - previous[key]["weights_kept"] / previous[key]["weights_total"]
    recipe = previous[key]["recipe"]  # the same training budget as that Sparse VD run
    dense_epochs, epochs = (1, 1) if quick else (recipe["dense_epochs"], recipe["epochs"])
    return tfmot_magnitude_pruning(arch, round(level, 4), quick, dense_epochs, epochs)


def lenet_300_100_tfmot(data, quick, overrides=None):
    return _tfmot_at_sparse_vd_level("lenet_300_100", quick)


def lenet_5_tfmot(data, quick, overrides=None):
    return _tfmot_at_sparse_vd_level("lenet_5", quick)


from sparsification_lstm import lstm_sentiment  # noqa: E402  (the LSTM experiment, its own module)

EXPERIMENTS = {
    f.__name__: f
    for f in (
        lenet_300_100_sparse_vd,
        lenet_5_sparse_vd,
        lenet_5_sbp,
        lenet_300_100_tfmot,
        lenet_5_tfmot,
        lstm_sentiment,
    )
}


def save_result(name, result):
    """Merges ``{name: result}`` into the results file (under a lock: runs may be concurrent)."""
    import fcntl

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(pathlib.Path(tempfile.gettempdir()) / "tfbayes_sparsification.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[name] = result
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--experiments", nargs="*", default=list(EXPERIMENTS), choices=list(EXPERIMENTS)
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run on a data subset")
    parser.add_argument("--tfmot-worker", help=argparse.SUPPRESS)
    for key, kind in (
        ("dense_epochs", int),
        ("epochs", int),
        ("learning_rate", float),
        ("warmup_epochs", int),
        ("kl_weight", float),
        ("log_sigma2_init", float),
        ("min_compression", float),
        ("min_flops_reduction", float),
        ("max_loss_pt", float),
        ("seed", int),
    ):
        parser.add_argument(
            "--" + key.replace("_", "-"),
            type=kind,
            help="overrides this entry of the experiments' recipes",
        )
    args = parser.parse_args()
    overrides = {
        k: v
        for k, v in vars(args).items()
        if v is not None and k not in ("experiments", "quick", "tfmot_worker")
    }
    if args.tfmot_worker:
        _tfmot_worker(json.loads(args.tfmot_worker))
        return
    data = load_data(args.quick)
    for name in args.experiments:
        print(f"=== {name}", flush=True)
        result = EXPERIMENTS[name](data, args.quick, overrides)
        result["machine"] = "2 shared CPU cores"
        print(json.dumps(result, indent=1), flush=True)
        if not args.quick:  # a run with another seed than 0 is kept beside the main one
            save_result(f"{name}_seed{args.seed}" if args.seed else name, result)


if __name__ == "__main__":
    main()
