"""TT layers: accuracy vs compression on Fashion-MNIST, and layer speed vs Dense and T3F.

Parts, each written into ``benchmarks/results/tt_layers.json`` (parts run
separately are merged into the file):

* ``mlp``: a 784-1024-10 MLP on Fashion-MNIST. Dense baseline, a TT network
  trained from scratch (the hidden layer is a ``TTDense`` at ranks 1..16), and
  the dense network compressed with ``from_dense`` at the same ranks, before
  and after a short fine-tuning. Compression = dense weights of the hidden
  layer / TT parameters of that layer.
* ``budget``: the same MLP with the hidden layer's rank given as a parameter
  budget (``TTDense(1024, tt_rank=0.01)``: at most 1 % of the dense weights;
  ``--budgets``), in its default ``implementation="auto"``.
* ``choices``: for ``TTDense`` at 1024x1024, 4096x4096 and 25088x4096 (ranks
  8 and 16, budgets 1 % and 5 %), the resolved TT-ranks, parameters, FLOPs
  per row against the dense layer's, and the batch size from which
  ``implementation="auto"`` reconstructs the kernel. Counts only, no timing.
* ``speed``: forward + backward time (gradients w.r.t. the input and every
  weight, batch 128, ``tf.function``) of ``TTDense`` vs ``keras.layers.Dense``
  at 1024x1024, 4096x4096 and 25088x4096, ranks 4, 8, 16; ratios measured in
  the same process. Against T3F 1.2.0's ``t3f.nn.KerasDense``: a subprocess in
  its own venv (``/tmp/venv-t3f``, created here if missing, with
  ``TF_USE_LEGACY_KERAS=1`` and the ``np.int = int`` shim T3F needs on NumPy 2)
  times T3F's layer and our contraction (``dense_tt_matmul`` over
  ``tf.Variable`` cores, the same cores and factorization) side by side, and
  T3F with both factorizations sorted ascending (what a T3F user typically
  writes; same factors and ranks, so nearly the same parameter count), which
  shows what the FLOP-ordered factorization buys.
* ``forms``: ``TTDense``'s automatic forward choice against each fixed form:
  ``implementation="factorized"``, ``"reconstructed"`` and ``"auto"`` (three
  layers with the same cores, interleaved in one process) at 1024x1024,
  4096x4096 and 25088x4096 (``--forms-shapes``), ranks ``--forms-ranks`` (default rank 8 and a 5 %
  budget), batch sizes ``--forms-batches`` (default 1, 8, 32, 128, 512), for
  the forward pass alone and forward + backward (``--forms-passes``). A form
  whose intermediates would exceed ``--max-memory-gb`` by the layer's own
  count is skipped and reported as such. ``auto_over_best`` is auto's time
  over the faster fixed form's.
* ``cnn``: a small CNN (conv 32 - pool - conv 64 - pool - dense 128 - 10)
  whose second convolution is a ``TTConv2D`` at several ranks (trained
  without XLA, whose CPU convolutions are slow).

Timing (``speed``, ``forms``) follows ``benchmarks/machine.py``: it refuses
to start when the 1-minute load average is above ``--max-load`` unless
``--allow-load`` is given, records the load before and after every timed
block, and writes the machine record into the part's JSON. The training
times that ``mlp``, ``budget`` and ``cnn`` report along with their accuracies
are kept only when the load stayed under ``--max-load`` (or with
``--allow-load``); otherwise they are ``null``.

Run::

    python benchmarks/tt_layers.py --parts speed,forms   # on an idle machine
    nice -n 10 python benchmarks/tt_layers.py --parts mlp,budget,choices
    nice -n 10 python benchmarks/tt_layers.py --parts cnn --cnn-epochs 2 \
        --cnn-train-size 20000 --cnn-ranks 4,16
    python benchmarks/tt_layers.py --quick --allow-load  # smoke run, nothing saved

Timings are medians of ``--repeats`` runs after a warm-up.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

import machine
import side_venv

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "tt_layers.json"
T3F_VENV = pathlib.Path("/tmp/venv-t3f")
SPEED_SHAPES = [(1024, 1024), (4096, 4096), (25088, 4096)]
SPEED_RANKS = [4, 8, 16]
SPEED_BATCH = 128
CHOICE_RANKS = [8, 16, 0.01, 0.05]
IMPLEMENTATIONS = ("factorized", "reconstructed", "auto")


def paired_median_times(fns, repeats):
    """Median wall time (ms) of each ``fns[name]()``, the calls interleaved.

    One warm-up call each (tracing), then ``repeats`` rounds that call every
    function once, so that load from other jobs hits all of them alike.
    """
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1e3) for name, t in times.items()}


def forward_backward(tf, apply, x, weights):
    """A tf.function computing the gradients of sum(apply(x)^2) w.r.t. x and weights."""

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = apply(x)
            loss = tf.reduce_sum(y * y)
        grads = tape.gradient(loss, [x] + list(weights))
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    return lambda: step().numpy()


# ----------------------------------------------------------------- T3F worker
def t3f_worker(spec):
    """Runs inside the T3F venv: times T3F's KerasDense and our contraction, same cores."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    np.int = int  # T3F 1.2.0 still uses np.int, which NumPy 2 removed.
    import tensorflow as tf
    import t3f

    sys.path.insert(0, str(REPO))
    from t3f_ext.layers.contraction import dense_tt_matmul

    results = []
    for case in spec["cases"]:
        rows, cols, ranks = case["row_dims"], case["col_dims"], case["tt_ranks"]
        x = tf.random.normal([spec["batch"], int(np.prod(rows))])
        layer = t3f.nn.KerasDense(input_dims=rows, output_dims=cols, tt_rank=ranks)
        # The conventional choice of a T3F user: both factorizations ascending.
        usual = t3f.nn.KerasDense(input_dims=sorted(rows), output_dims=sorted(cols), tt_rank=ranks)
        layer(x)
        usual(x)
        cores = [tf.Variable(c) for c in layer.matrix.tt_cores]
        bias = tf.Variable(layer.b)

        def ours(v, cores=cores, bias=bias, rows=rows, cols=cols, rtl=case["right_to_left"]):
            return dense_tt_matmul(v, cores, rows, cols, rtl) + bias

        np.testing.assert_allclose(ours(x).numpy(), layer(x).numpy(), rtol=2e-3, atol=2e-3)
        times = paired_median_times(
            {
                "t3f_ms": forward_backward(tf, layer, x, list(layer.matrix.tt_cores) + [layer.b]),
                "t3f_sorted_ms": forward_backward(
                    tf, usual, x, list(usual.matrix.tt_cores) + [usual.b]
                ),
                "ours_ms": forward_backward(tf, ours, x, cores + [bias]),
            },
            spec["repeats"],
        )
        results.append(
            {
                **case,
                **times,
                "t3f_params": int(sum(np.prod(c.shape) for c in layer.matrix.tt_cores)),
                "t3f_sorted_params": int(sum(np.prod(c.shape) for c in usual.matrix.tt_cores)),
                "t3f_over_ours": times["t3f_ms"] / times["ours_ms"],
                "t3f_sorted_over_ours": times["t3f_sorted_ms"] / times["ours_ms"],
            }
        )
    print("T3F_RESULTS " + json.dumps(results))


def ensure_t3f_venv():
    """/tmp/venv-t3f: t3f 1.2.0 on top of this venv's TensorFlow (see side_venv.py)."""
    return side_venv.ensure(T3F_VENV, "t3f==1.2.0")


def run_t3f(cases, repeats):
    python = ensure_t3f_venv()
    spec = json.dumps({"cases": cases, "batch": SPEED_BATCH, "repeats": repeats})
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [str(python), __file__, "--t3f-worker", spec], capture_output=True, text=True, env=env
    )
    for line in proc.stdout.splitlines():
        if line.startswith("T3F_RESULTS "):
            return json.loads(line[len("T3F_RESULTS ") :])
    return {"error": (proc.stderr or proc.stdout)[-2000:]}


# ----------------------------------------------------------------- speed
def speed_part(args, log):
    import keras
    import tensorflow as tf
    from t3f_ext.layers import TTDense

    shapes = SPEED_SHAPES[:1] if args.quick else SPEED_SHAPES
    ranks = SPEED_RANKS[:1] if args.quick else SPEED_RANKS
    rows_out = []
    for in_dim, out_dim in shapes:
        x = tf.random.normal([SPEED_BATCH, in_dim])
        dense = keras.layers.Dense(out_dim)
        dense.build((None, in_dim))
        layers = {}
        fns = {"dense_ms": forward_backward(tf, dense, x, dense.trainable_weights)}
        for rank in ranks:
            layers[rank] = TTDense(out_dim, tt_rank=rank)
            layers[rank].build((None, in_dim))
            fns[f"tt_ms_rank{rank}"] = forward_backward(
                tf, layers[rank], x, layers[rank].trainable_weights
            )
        with log.block(f"speed {in_dim}x{out_dim}"):
            times = paired_median_times(fns, args.repeats)
        for rank, layer in layers.items():
            tt_params = layer.count_params() - out_dim
            row = {
                "shape": [in_dim, out_dim],
                "tt_rank": rank,
                "row_dims": list(layer.row_dims),
                "col_dims": list(layer.col_dims),
                "tt_ranks": list(layer.tt_ranks),
                "right_to_left": layer.right_to_left,
                "tt_params": tt_params,
                "compression": in_dim * out_dim / tt_params,
                "flops_dense_over_tt": 2 * in_dim * out_dim / layer.flops_per_example,
                "dense_ms": times["dense_ms"],
                "tt_ms": times[f"tt_ms_rank{rank}"],
                "dense_over_tt": times["dense_ms"] / times[f"tt_ms_rank{rank}"],
            }
            print(json.dumps(row), flush=True)
            rows_out.append(row)
    cases = [
        {k: r[k] for k in ("shape", "tt_rank", "row_dims", "col_dims", "tt_ranks", "right_to_left")}
        for r in rows_out
    ]
    with log.block("speed t3f"):
        t3f_results = run_t3f(cases, args.repeats)
    print("t3f:", json.dumps(t3f_results), flush=True)
    return {
        "batch": SPEED_BATCH,
        "repeats": args.repeats,
        "keras_layers": rows_out,
        "vs_t3f": t3f_results,
        "machine": machine.machine_record(args, log),
    }


# ----------------------------------------------------------------- forward forms
def parse_rank(text):
    """``"8"`` -> 8 (a TT-rank), ``"0.01"`` -> 0.01 (a parameter budget)."""
    return float(text) if "." in text or "e" in text else int(text)


def choices_part(args, log):
    """The ranks, parameters, FLOPs and auto threshold of TTDense (counts, no timing)."""
    from t3f_ext.layers import TTDense

    rows_out = []
    for in_dim, out_dim in SPEED_SHAPES[:1] if args.quick else SPEED_SHAPES:
        for tt_rank in CHOICE_RANKS:
            layer = TTDense(out_dim, tt_rank=tt_rank)
            layer.build((None, in_dim))
            tt_params = layer.count_params() - out_dim
            row = {
                "shape": [in_dim, out_dim],
                "tt_rank": tt_rank,
                "tt_ranks": list(layer.tt_ranks),
                "row_dims": list(layer.row_dims),
                "col_dims": list(layer.col_dims),
                "tt_params": tt_params,
                "compression": in_dim * out_dim / tt_params,
                "factorized_flops_over_dense": layer.flops_per_example / (2 * in_dim * out_dim),
                "reconstruct_from_batch": layer.reconstruct_from_batch,
            }
            print(json.dumps(row), flush=True)
            rows_out.append(row)
    return {"rows": rows_out}


def forward_only(tf, apply, x):
    """A tf.function computing sum(apply(x))."""

    @tf.function
    def step():
        return tf.reduce_sum(apply(x))

    return lambda: step().numpy()


def forms_part(args, log):
    """Times TTDense's auto choice against each fixed form; see the module docstring."""
    import tensorflow as tf
    from t3f_ext.layers import TTDense

    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.forms_shapes.split(",")]
    shapes = shapes[:1] if args.quick else shapes
    ranks = [parse_rank(r) for r in args.forms_ranks.split(",")]
    batches = [int(b) for b in args.forms_batches.split(",")]
    passes = args.forms_passes.split(",")
    max_elements = args.max_memory_gb * 2**30 / 4  # float32
    rows_out = []
    for in_dim, out_dim in shapes:
        for tt_rank in ranks:
            layers = {}
            for implementation in IMPLEMENTATIONS:
                layers[implementation] = TTDense(
                    out_dim, tt_rank=tt_rank, implementation=implementation
                )
                layers[implementation].build((None, in_dim))
            weights = layers["factorized"].get_weights()
            for layer in layers.values():
                layer.set_weights(weights)
            auto = layers["auto"]
            for batch in batches:
                costs = auto.forward_costs(batch)
                x = tf.random.normal([batch, in_dim])
                # Memory of a training step: the forward intermediates, kept for the backward.
                feasible = {name: costs[name]["memory"] <= max_elements for name in costs}
                chosen = auto.implementation_for(batch)
                run = [
                    name for name in IMPLEMENTATIONS if feasible[chosen if name == "auto" else name]
                ]
                if feasible["factorized"] and feasible["reconstructed"]:
                    np.testing.assert_allclose(
                        layers["factorized"](x).numpy(),
                        layers["reconstructed"](x).numpy(),
                        rtol=1e-3,
                        atol=1e-3,
                    )
                for pass_ in passes:
                    fns = {
                        f"{name}_ms": (
                            forward_only(tf, layers[name], x)
                            if pass_ == "forward"
                            else forward_backward(
                                tf, layers[name], x, layers[name].trainable_weights
                            )
                        )
                        for name in run
                    }
                    with log.block(
                        f"forms {in_dim}x{out_dim} rank {tt_rank} batch {batch} {pass_}"
                    ):
                        times = paired_median_times(fns, args.repeats) if fns else {}
                    row = {
                        "shape": [in_dim, out_dim],
                        "tt_rank": tt_rank,
                        "tt_ranks": list(auto.tt_ranks),
                        "batch": batch,
                        "pass": pass_,
                        "reconstruct_from_batch": auto.reconstruct_from_batch,
                        "auto_choice": chosen,
                        "counts": costs,
                        **times,
                        "skipped": [name for name in IMPLEMENTATIONS if name not in run],
                    }
                    fixed = [
                        times[f"{name}_ms"]
                        for name in ("factorized", "reconstructed")
                        if f"{name}_ms" in times
                    ]
                    if "auto_ms" in times and len(fixed) == 2:
                        row["faster_fixed_form"] = (
                            "factorized" if fixed[0] <= fixed[1] else "reconstructed"
                        )
                        row["auto_over_best"] = times["auto_ms"] / min(fixed)
                    print(json.dumps({k: v for k, v in row.items() if k != "counts"}), flush=True)
                    rows_out.append(row)
    return {
        "repeats": args.repeats,
        "dtype": "float32",
        "max_memory_gb": args.max_memory_gb,
        "rows": rows_out,
        "machine": machine.machine_record(args, log),
    }


# ----------------------------------------------------------------- data
def fashion_mnist(args, images=False, train_size=None):
    from tfbayes.datasets import load_fashion_mnist

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    x_train = x_train.astype("float32") / 255.0
    x_test = x_test.astype("float32") / 255.0
    if args.quick:
        x_train, y_train, x_test, y_test = (
            x_train[:2000],
            y_train[:2000],
            x_test[:1000],
            y_test[:1000],
        )
    elif train_size:
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    shape = (-1, 28, 28, 1) if images else (-1, 784)
    return x_train.reshape(shape), y_train, x_test.reshape(shape), y_test


def fit_and_score(model, data, epochs, args, log, name, lr=1e-3, jit_compile=True):
    """Test accuracy after ``epochs`` of Adam, and the training seconds.

    The seconds are None unless the load average stayed at most ``--max-load``
    before and after training (or ``--allow-load`` was given).
    """
    import keras

    x_train, y_train, x_test, y_test = data
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=jit_compile,
    )
    with log.block(name):
        start = time.perf_counter()
        if epochs:
            model.fit(x_train, y_train, epochs=epochs, batch_size=128, verbose=0)
        seconds = time.perf_counter() - start
    block = log.blocks[-1]
    idle = max(block["load_before"], block["load_after"]) <= args.max_load
    accuracy = float(model.evaluate(x_test, y_test, batch_size=1000, verbose=0)[1])
    return accuracy, (seconds if idle or args.allow_load else None)


# ----------------------------------------------------------------- MLP
def mlp_part(args, log, ranks=None, compress=True):
    """The MLP part; with ``ranks`` (e.g. budgets) and ``compress=False``, the budget part."""
    import keras
    from t3f_ext.layers import TTDense, from_dense

    data = fashion_mnist(args)
    epochs = 1 if args.quick else args.epochs
    ranks = ranks or ([2, 8] if args.quick else [1, 2, 4, 8, 16])
    keras.utils.set_random_seed(0)
    dense_model = keras.Sequential(
        [
            keras.Input((784,)),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    dense_acc, dense_s = fit_and_score(dense_model, data, epochs, args, log, "mlp dense")
    hidden = dense_model.layers[0]
    results = {
        "epochs": epochs,
        "dense": {"accuracy": dense_acc, "hidden_params": 784 * 1024, "train_seconds": dense_s},
        "tt": [],
    }
    print(json.dumps(results["dense"]), flush=True)
    for rank in ranks:
        keras.utils.set_random_seed(0)
        tt_layer = TTDense(1024, tt_rank=rank, activation="relu")
        model = keras.Sequential(
            [keras.Input((784,)), tt_layer, keras.layers.Dense(10, activation="softmax")]
        )
        scratch_acc, scratch_s = fit_and_score(
            model, data, epochs, args, log, f"mlp tt_rank {rank}"
        )
        tt_params = tt_layer.count_params() - 1024
        row = {
            "tt_rank": rank,
            "tt_ranks": list(tt_layer.tt_ranks),
            "row_dims": list(tt_layer.row_dims),
            "col_dims": list(tt_layer.col_dims),
            "hidden_tt_params": tt_params,
            "compression": 784 * 1024 / tt_params,
            "reconstruct_from_batch": tt_layer.reconstruct_from_batch,
            "scratch_accuracy": scratch_acc,
            "scratch_train_seconds": scratch_s,
        }
        if compress:
            compressed_layer = from_dense(hidden, rank)
            compressed = keras.Sequential(
                [
                    keras.Input((784,)),
                    compressed_layer,
                    keras.layers.Dense(10, activation="softmax"),
                ]
            )
            compressed.layers[-1].set_weights(dense_model.layers[-1].get_weights())
            before_acc, _ = fit_and_score(compressed, data, 0, args, log, "from_dense")
            finetune_epochs = args.finetune_epochs if not args.quick else 1
            finetuned_acc, _ = fit_and_score(
                compressed, data, finetune_epochs, args, log, f"mlp fine-tune tt_rank {rank}"
            )
            row.update(
                {
                    "from_dense_accuracy": before_acc,
                    "from_dense_finetuned_accuracy": finetuned_acc,
                    "finetune_epochs": finetune_epochs,
                }
            )
        print(json.dumps(row), flush=True)
        results["tt"].append(row)
    results["load"] = log.blocks
    return results


def budget_part(args, log):
    return mlp_part(
        args, log, ranks=[parse_rank(b) for b in args.budgets.split(",")], compress=False
    )


# ----------------------------------------------------------------- CNN
def cnn_model(conv2):
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            conv2,
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )


def cnn_part(args, log):
    import keras
    from t3f_ext.layers import TTConv2D

    data = fashion_mnist(args, images=True, train_size=args.cnn_train_size)
    epochs = 1 if args.quick else args.cnn_epochs
    ranks = [4] if args.quick else [int(r) for r in args.cnn_ranks.split(",")]
    keras.utils.set_random_seed(0)
    dense = cnn_model(keras.layers.Conv2D(64, 3, padding="same", activation="relu"))
    # XLA's CPU convolutions are slow; both CNNs train without it.
    acc, seconds = fit_and_score(dense, data, epochs, args, log, "cnn dense", jit_compile=False)
    conv_params = 3 * 3 * 32 * 64
    results = {
        "epochs": epochs,
        "train_size": len(data[0]),
        "dense": {
            "accuracy": acc,
            "conv2_params": conv_params,
            "model_params": dense.count_params(),
            "train_seconds": seconds,
        },
        "tt": [],
    }
    print(json.dumps(results["dense"]), flush=True)
    for rank in ranks:
        keras.utils.set_random_seed(0)
        conv2 = TTConv2D(64, 3, tt_rank=rank, padding="same", activation="relu")
        model = cnn_model(conv2)
        acc, seconds = fit_and_score(
            model, data, epochs, args, log, f"cnn tt_rank {rank}", jit_compile=False
        )
        tt_params = conv2.count_params() - 64
        row = {
            "tt_rank": rank,
            "channel_row_dims": list(conv2.row_dims[1:]),
            "channel_col_dims": list(conv2.col_dims[1:]),
            "conv2_tt_params": tt_params,
            "conv2_compression": conv_params / tt_params,
            "model_params": model.count_params(),
            "accuracy": acc,
            "train_seconds": seconds,
        }
        print(json.dumps(row), flush=True)
        results["tt"].append(row)
    results["load"] = log.blocks
    return results


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if "mlp" in results:
        mlp = results["mlp"]
        comp = [r["compression"] for r in mlp["tt"]]
        axes[0].plot(
            comp,
            [100 * r["scratch_accuracy"] for r in mlp["tt"]],
            "o-",
            label="TTDense from scratch",
        )
        axes[0].plot(
            comp,
            [100 * r["from_dense_finetuned_accuracy"] for r in mlp["tt"]],
            "s-",
            label="from_dense + fine-tune",
        )
        axes[0].axhline(100 * mlp["dense"]["accuracy"], color="k", ls="--", label="dense")
        axes[0].set(
            xscale="log",
            xlabel="compression of the 784x1024 layer",
            ylabel="test accuracy (%)",
            title="MLP on Fashion-MNIST",
        )
        axes[0].legend()
    if "cnn" in results:
        cnn = results["cnn"]
        axes[1].plot(
            [r["conv2_compression"] for r in cnn["tt"]],
            [100 * r["accuracy"] for r in cnn["tt"]],
            "o-",
            label="TTConv2D",
        )
        axes[1].axhline(100 * cnn["dense"]["accuracy"], color="k", ls="--", label="Conv2D")
        axes[1].set(
            xscale="log",
            xlabel="compression of the 3x3x32x64 conv",
            ylabel="test accuracy (%)",
            title="CNN on Fashion-MNIST",
        )
        axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


TIMING_PARTS = ("speed", "forms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="speed,mlp,cnn")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument(
        "--budgets",
        default="0.001,0.01,0.05",
        help="parameter budgets (fractions) of the budget part",
    )
    parser.add_argument(
        "--forms-ranks",
        default="8,0.05",
        help="TT-ranks (ints) and budgets (floats) of the forms part",
    )
    parser.add_argument("--forms-shapes", default="1024x1024,4096x4096,25088x4096")
    parser.add_argument("--forms-batches", default="1,8,32,128,512")
    parser.add_argument("--forms-passes", default="forward,train")
    parser.add_argument(
        "--max-memory-gb",
        type=float,
        default=2.0,
        help="forms part: skip a form whose counted intermediates exceed this",
    )
    parser.add_argument("--cnn-epochs", type=int, default=3)
    parser.add_argument(
        "--cnn-train-size",
        type=int,
        default=None,
        help="train the CNNs on the first N images (default: all 60,000)",
    )
    parser.add_argument("--cnn-ranks", default="2,4,8,16")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; results not saved")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--t3f-worker", help=argparse.SUPPRESS)
    machine.add_load_arguments(parser)
    args = parser.parse_args()
    if args.t3f_worker:
        t3f_worker(json.loads(args.t3f_worker))
        return
    sys.path.insert(0, str(REPO))
    names = args.parts.split(",")
    parts = {
        "speed": speed_part,
        "forms": forms_part,
        "choices": choices_part,
        "mlp": mlp_part,
        "budget": budget_part,
        "cnn": cnn_part,
    }
    unknown = [name for name in names if name not in parts]
    if unknown:
        parser.error(f"--parts: expected names from {sorted(parts)}, got {unknown}")
    if any(name in TIMING_PARTS for name in names):
        machine.require_idle(args)
    out = pathlib.Path(args.out)
    results = json.loads(out.read_text()) if out.exists() and not args.quick else {}
    for name in names:
        results[name] = parts[name](args, machine.LoadLog())
        if not args.quick:
            out.write_text(json.dumps(results, indent=1))
    if not args.quick:
        plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
