"""Bayesian sparsification benchmarks on real data, offline.

LeNet-300-100 and LeNet-5-Caffe on Fashion-MNIST (Debian's
``dataset-fashion-mnist``), each: a dense baseline, Sparse Variational Dropout
(``SparseVDDense``/``SparseVDConv2D``), Structured Bayesian Pruning
(``SBPDropout``), and TF Model Optimization's magnitude pruning at the same
sparsity as Sparse VD. As in the papers, the sparse models start from the
pretrained dense weights. For every model: test accuracy, compression
(weights total / kept), FLOPs (multiply-adds per example of the weight layers,
dense vs nonzero) and the measured CPU inference time of
``tfbayes.sparsity.compress``'s model vs the dense baseline (median of
several timed runs in the same process).

TF Model Optimization 0.8.1 needs tf_keras (Keras 2); it runs in a subprocess
with ``TF_USE_LEGACY_KERAS=1`` from a venv that this script expects at
``$TFMOT_PYTHON`` (default ``/tmp/venv-tfmot/bin/python``). Create it with

    python -m venv --system-site-packages /tmp/venv-tfmot
    /tmp/venv-tfmot/bin/pip install tensorflow-model-optimization==0.8.1

(``benchmarks/run_sparsification.sh`` does both, then runs this script.)

Run: ``python benchmarks/sparsification.py [--experiments NAME ...] [--quick]``.
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
    """Fashion-MNIST as float32 images in [0, 1], ``[N, 28, 28, 1]``, and int labels."""
    from tfbayes.datasets import load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x_train = (x_train[..., None] / 255.0).astype("float32")
    x_test = (x_test[..., None] / 255.0).astype("float32")
    if quick:
        x_train, y_train, x_test, y_test = x_train[:3000], y_train[:3000], x_test[:1000], y_test[:1000]
    return (x_train, y_train.astype("int64")), (x_test, y_test.astype("int64"))


# --- architectures: one builder per net, parameterised by the layer kind ---

def lenet_300_100(kind, num_examples=None):
    """LeNet-300-100: 784-300-100-10 with ReLU. ``kind`` in {'dense', 'sparse_vd', 'sbp'}."""
    import keras
    from tfbayes import layers as tl

    def dense(units, activation=None):
        if kind == "sparse_vd":
            return [tl.SparseVDDense(units, activation=activation, num_examples=num_examples)]
        return [keras.layers.Dense(units, activation=activation)]

    def sbp():
        return [tl.SBPDropout(num_examples=num_examples)] if kind == "sbp" else []

    return keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Flatten()] + sbp()
        + dense(300, "relu") + sbp() + dense(100, "relu") + sbp() + dense(10),
        name=f"lenet_300_100_{kind}")


def lenet_5(kind, num_examples=None):
    """LeNet-5-Caffe: conv 20@5x5, pool, conv 50@5x5, pool, dense 500, dense 10."""
    import keras
    from tfbayes import layers as tl

    def conv(filters):
        if kind == "sparse_vd":
            return [tl.SparseVDConv2D(filters, 5, activation="relu", num_examples=num_examples)]
        return [keras.layers.Conv2D(filters, 5, activation="relu")]

    def dense(units, activation=None):
        if kind == "sparse_vd":
            return [tl.SparseVDDense(units, activation=activation, num_examples=num_examples)]
        return [keras.layers.Dense(units, activation=activation)]

    def sbp():
        return [tl.SBPDropout(num_examples=num_examples)] if kind == "sbp" else []

    pool = keras.layers.MaxPooling2D
    return keras.Sequential(
        [keras.Input((28, 28, 1))] + conv(20) + sbp() + [pool()] + conv(50) + sbp() + [pool()]
        + [keras.layers.Flatten()] + sbp() + dense(500, "relu") + sbp() + dense(10),
        name=f"lenet_5_{kind}")


ARCHITECTURES = {"lenet_300_100": lenet_300_100, "lenet_5": lenet_5}


def copy_dense_weights(dense_model, sparse_model):
    """Initialises the sparse model's theta and biases from the pretrained dense model."""
    import keras

    source = [l for l in dense_model.layers if isinstance(l, (keras.layers.Dense, keras.layers.Conv2D))]
    target = [l for l in sparse_model.layers if hasattr(l, "kernel")]
    for src, dst in zip(source, target, strict=True):
        dst.kernel.assign(src.kernel)
        dst.bias.assign(src.bias)


def compression_curve():
    """A callback recording the total compression (weights total / kept) after every epoch."""
    import keras
    from tfbayes import sparsity

    class CompressionCurve(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.values = []

        def on_epoch_end(self, epoch, logs=None):
            total = sparsity.sparsity_report(self.model).total
            self.values.append(round(total["compression"], 2))
            print(f"epoch {epoch + 1}: compression {total['compression']:.1f}x, "
                  f"groups {total['groups']}", flush=True)

    return CompressionCurve()


def compile_and_fit(model, data, epochs, learning_rate, batch_size=128, callbacks=()):
    """Adam with the step decaying linearly to 5% of ``learning_rate``, so theta can settle.

    XLA is off: on this CPU, XLA-compiled convolution training steps measured ~8x slower.
    """
    import keras

    (x_train, y_train), _ = data
    steps = epochs * int(np.ceil(len(x_train) / batch_size))
    schedule = keras.optimizers.schedules.PolynomialDecay(learning_rate, steps,
                                                          0.05 * learning_rate)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=2,
              callbacks=list(callbacks))
    return time.perf_counter() - start


def accuracy(model, data):
    _, (x_test, y_test) = data
    logits = model.predict(x_test, batch_size=1000, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y_test))


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


CACHE = pathlib.Path(os.environ.get("TFBAYES_BENCH_CACHE",
                                   pathlib.Path(tempfile.gettempdir()) / "tfbayes_sparsification"))


def pretrained_dense(arch, data, epochs):
    """The dense baseline, trained once per architecture and epochs; cached under ``CACHE``.

    Returns the model and its training time in seconds (the cached run's time).
    """
    path = CACHE / f"{arch}_dense_{epochs}ep_{len(data[0][0])}.weights.h5"
    model = ARCHITECTURES[arch]("dense")
    if path.exists():
        model.load_weights(path)
        return model, json.loads(path.with_suffix(".json").read_text())["seconds"]
    seconds = compile_and_fit(model, data, epochs, 1e-3)
    CACHE.mkdir(parents=True, exist_ok=True)
    model.save_weights(path)
    path.with_suffix(".json").write_text(json.dumps({"seconds": seconds}))
    return model, seconds


def sparsify(arch, kind, data, dense_epochs, epochs, learning_rate):
    """Trains the dense baseline, then the ``kind`` model from its weights; returns a result dict."""
    from tfbayes import sparsity
    from tfbayes.layers import KLWarmup

    dense, dense_seconds = pretrained_dense(arch, data, dense_epochs)
    (x_train, _), (x_test, _) = data
    model = ARCHITECTURES[arch](kind, num_examples=len(x_train))
    model.build((None, 28, 28, 1))
    copy_dense_weights(dense, model)
    curve = compression_curve()
    seconds = compile_and_fit(model, data, epochs, learning_rate,
                              callbacks=[KLWarmup(max(1, epochs // 4)), curve])
    compressed = sparsity.compress(model)
    report = sparsity.sparsity_report(model)
    batch = x_test[:1000]
    dense_time, compressed_time = inference_seconds([dense, compressed], x_test)
    total = report.total
    result = {
        "dense_accuracy": accuracy(dense, data),
        "accuracy": accuracy(model, data),
        "compressed_accuracy": accuracy(compressed, data),
        "max_abs_diff_compressed_vs_model": float(np.max(np.abs(
            compressed.predict(batch, verbose=0) - model.predict(batch, verbose=0)))),
        "weights_kept": total["weights_kept"], "weights_total": total["weights_total"],
        "compression": total["compression"], "groups": total["groups"],
        "flops_dense": total["flops_before"], "flops_nonzero_after": total["flops_after"],
        "flops_dense_after": total["dense_flops_after"],
        "flops_reduction_nonzero": total["flops_before"] / total["flops_after"],
        "flops_reduction_dense": total["flops_before"] / total["dense_flops_after"],
        "inference_seconds_dense_10000": dense_time,
        "inference_seconds_compressed_10000": compressed_time,
        "cpu_speedup": dense_time / compressed_time,
        "layers": [{k: row[k] for k in ("name", "weights_kept", "weights_total", "groups",
                                        "flops_before", "flops_after")} for row in report.layers],
        "compression_per_epoch": curve.values,
        "dense_epochs": dense_epochs, "epochs": epochs, "learning_rate": learning_rate,
        "train_seconds_dense": dense_seconds, "train_seconds": seconds,
    }
    result["accuracy_loss_pt"] = 100 * (result["dense_accuracy"] - result["accuracy"])
    print(report)
    return result


def tfmot_magnitude_pruning(arch, sparsity_level, data_quick, dense_epochs, epochs):
    """Runs TF-MOT magnitude pruning to ``sparsity_level`` in the tf_keras venv (subprocess)."""
    if not pathlib.Path(TFMOT_PYTHON).exists():
        return {"skipped": f"no tf_keras venv with tensorflow-model-optimization at {TFMOT_PYTHON}"}
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1")
    args = json.dumps({"arch": arch, "sparsity": sparsity_level, "quick": data_quick,
                       "dense_epochs": dense_epochs, "epochs": epochs})
    out = subprocess.run([TFMOT_PYTHON, __file__, "--tfmot-worker", args], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _tfmot_worker(args):
    """Inside the tf_keras venv: dense training, then magnitude pruning; prints a JSON line."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    data = load_data(args["quick"])
    (x_train, y_train), (x_test, y_test) = data
    layers = tf_keras.layers
    if args["arch"] == "lenet_300_100":
        body = [layers.Flatten(), layers.Dense(300, activation="relu"),
                layers.Dense(100, activation="relu"), layers.Dense(10)]
    else:
        body = [layers.Conv2D(20, 5, activation="relu"), layers.MaxPooling2D(),
                layers.Conv2D(50, 5, activation="relu"), layers.MaxPooling2D(), layers.Flatten(),
                layers.Dense(500, activation="relu"), layers.Dense(10)]
    model = tf_keras.Sequential([layers.InputLayer((28, 28, 1))] + body)
    loss = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(tf_keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=args["dense_epochs"], verbose=0)
    dense_acc = model.evaluate(x_test, y_test, verbose=0)[1]
    steps = int(np.ceil(len(x_train) / 128)) * args["epochs"]
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.0, args["sparsity"], begin_step=0,
                                                    end_step=int(0.7 * steps))
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=schedule)
    pruned.compile(tf_keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    pruned.fit(x_train, y_train, batch_size=128, epochs=args["epochs"], verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    stripped.compile(loss=loss, metrics=["accuracy"])
    kernels = [w.numpy() for w in stripped.weights if "kernel" in w.name]
    kept = sum(int(np.count_nonzero(k)) for k in kernels)
    total = sum(k.size for k in kernels)
    print(json.dumps({"dense_accuracy": float(dense_acc),
                      "accuracy": float(stripped.evaluate(x_test, y_test, verbose=0)[1]),
                      "target_sparsity": args["sparsity"], "weights_kept": kept,
                      "weights_total": total, "compression": total / kept,
                      "dense_epochs": args["dense_epochs"], "epochs": args["epochs"]}))


# --- experiments: each returns a JSON-able dict ---

def _epochs(quick, full):
    return 1 if quick else full


def lenet_300_100_sparse_vd(data, quick):
    return sparsify("lenet_300_100", "sparse_vd", data, _epochs(quick, 8), _epochs(quick, 30), 3e-3)


def lenet_5_sparse_vd(data, quick):
    return sparsify("lenet_5", "sparse_vd", data, _epochs(quick, 5), _epochs(quick, 10), 3e-3)


def lenet_5_sbp(data, quick):
    return sparsify("lenet_5", "sbp", data, _epochs(quick, 5), _epochs(quick, 20), 1e-2)


def _tfmot_at_sparse_vd_level(arch, quick):
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    key = f"{arch}_sparse_vd"
    if key not in previous:
        return {"skipped": f"run the {key} experiment first (its sparsity is the target)"}
    level = 1.0 - previous[key]["weights_kept"] / previous[key]["weights_total"]
    return tfmot_magnitude_pruning(arch, round(level, 4), quick, _epochs(quick, 10),
                                   _epochs(quick, 10))


def lenet_300_100_tfmot(data, quick):
    return _tfmot_at_sparse_vd_level("lenet_300_100", quick)


def lenet_5_tfmot(data, quick):
    return _tfmot_at_sparse_vd_level("lenet_5", quick)


from sparsification_lstm import lstm_sentiment  # noqa: E402  (the LSTM experiment, its own module)

EXPERIMENTS = {f.__name__: f for f in (lenet_300_100_sparse_vd, lenet_5_sparse_vd, lenet_5_sbp,
                                       lenet_300_100_tfmot, lenet_5_tfmot, lstm_sentiment)}


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
    parser.add_argument("--experiments", nargs="*", default=list(EXPERIMENTS),
                        choices=list(EXPERIMENTS))
    parser.add_argument("--quick", action="store_true", help="a smoke run on a data subset")
    parser.add_argument("--tfmot-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tfmot_worker:
        _tfmot_worker(json.loads(args.tfmot_worker))
        return
    data = load_data(args.quick)
    for name in args.experiments:
        print(f"=== {name}", flush=True)
        result = EXPERIMENTS[name](data, args.quick)
        result["machine"] = "2 shared CPU cores"
        print(json.dumps(result, indent=1), flush=True)
        if not args.quick:
            save_result(name, result)


if __name__ == "__main__":
    main()
