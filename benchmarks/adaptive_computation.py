"""Adaptive and perforated computation on Fashion-MNIST: accuracy against FLOPs, and CPU speed.

Two parts, written into ``benchmarks/results/adaptive_computation.json`` (a part
run on its own is merged into the file):

* **accuracy** (the default): accuracy on the 10,000 test images against the
  mean multiply-adds per image (over the first 2,000 test images), counted by
  :func:`tfbayes.flops.count_flops`
  (one multiply-add of a weight layer = one FLOP; the SACT reference counts
  twice that).

  - *Adaptive computation.* A small pre-activation ResNet: a stride-2 3x3 stem
    to 14x14x``width``, a stage of ``--units`` residual units, a stride-2
    transition to 7x7x``2*width``, a second stage of ``--units`` units, global
    average pooling and a linear classifier. The baseline runs every unit;
    each stage of the other networks is an ``AdaptiveComputationBlock``
    (``variant='act'`` or ``'sact'``) or a
    ``ProbabilisticAdaptiveComputationBlock`` (PACT, SACT-style per-position
    halting) at several ponder weights ``tau``. All are trained with the same
    data, order, optimizer and epochs.
  - *Perforation.* A plain CNN (two 3x3 convs at 28x28, max-pool, two at
    14x14, max-pool, global average pooling, linear) built from
    ``PerforatedConv2D`` at rate 1 (exactly ``Conv2D``) is trained, then
    :func:`tfbayes.layers.perforate` chooses per-layer rates greedily until the
    network needs half of its FLOPs, for the ``grid`` and ``impact`` masks.
    Accuracy is reported right after perforation and after a short fine-tuning.

  The trained models are saved to ``--model-dir`` for the timing part.

* **timing** (``--timing-only``): median CPU wall-clock inference time of the
  saved models (``tf.function``, batch ``--timing-batch``; the perforated CNN
  also under XLA), as ratios to the full network in the same process: the
  baseline ResNet against each adaptive network (whose halted examples skip
  their remaining units), and the plain CNN against its perforated versions.
  Timings are meaningful on an idle machine only: the part refuses to run
  when the load average is above ``--max-load`` (see ``benchmarks/machine.py``).

Budget: the accuracy part is sized to finish within 40 minutes at
``nice -n 19`` on 2 shared CPU cores (width 16, 3 units a stage, 12,000
training images, 3 epochs, one seed); the committed run took 20 minutes at a
load average of about 14. The JSON records the budget and the wall time. The
networks are far smaller than the papers' ResNet-32/101 and AlexNet/VGG, and
trained far shorter, so compare the trade-offs between methods here, not the
absolute accuracies with the papers'.

Run::

    python benchmarks/adaptive_computation.py                   # accuracy part, 20-40 min
    python benchmarks/adaptive_computation.py --perforation-only  # the CNN rows only, ~5 min
    python benchmarks/adaptive_computation.py --timing-only     # on an idle machine
    python benchmarks/adaptive_computation.py --quick --output /tmp/ac.json \\
        --model-dir /tmp/ac_models                              # smoke run, ~2 min
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

sys.path[:0] = [
    str(pathlib.Path(__file__).resolve().parent),
    str(pathlib.Path(__file__).resolve().parent.parent),
]
import machine  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfbayes.datasets import load_fashion_mnist  # noqa: E402
from tfbayes.flops import count_flops, model_input  # noqa: E402
from tfbayes.layers import (  # noqa: E402
    AdaptiveComputationBlock,
    PerforatedConv2D,
    ProbabilisticAdaptiveComputationBlock,
    ResidualUnit,
)
from tfbayes.layers.perforated_conv import estimate_impact, perforate, perforated_layers  # noqa: E402
from tfbayes.swag import update_bn  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "adaptive_computation.json"
BUDGET_MINUTES = 40


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="time the saved models instead of training (idle machine only)",
    )
    parser.add_argument(
        "--perforation-only",
        action="store_true",
        help="redo only the perforation rows of the accuracy part (the plain CNN, "
        "perforated and fine-tuned), keeping the adaptive rows of --output",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (~2 min)")
    parser.add_argument("--train-size", type=int, default=12000)
    parser.add_argument("--test-size", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--units", type=int, default=3, help="residual units per stage")
    parser.add_argument("--act-taus", default="0.05,0.2")
    parser.add_argument("--sact-taus", default="0.01,0.05,0.2")
    parser.add_argument("--pact-taus", default="0.01,0.1")
    parser.add_argument("--masks", default="grid,impact", help="perforation mask strategies")
    parser.add_argument(
        "--perforation-target",
        type=float,
        default=0.5,
        help="the fraction of the plain CNN's FLOPs to perforate down to",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--model-dir", default="/tmp/tfbayes_adaptive_computation_models")
    parser.add_argument("--output", default=str(RESULTS))
    machine.add_load_arguments(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.train_size, args.test_size, args.epochs = 1024, 512, 1
        args.width, args.units = 4, 2
        args.act_taus, args.sact_taus, args.pact_taus = "0.01", "0.01", "0.01"
        args.masks, args.repeats, args.timing_batch = "grid", 3, 64
    return args


def taus(text):
    return [float(t) for t in text.split(",") if t]


def fashion_mnist(args):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    rng = np.random.default_rng(args.seed)
    train = rng.permutation(len(x_train))[: args.train_size]
    scale = lambda x: (x[..., None].astype("float32") / 255.0 - 0.286) / 0.353  # noqa: E731
    return (
        scale(x_train[train]),
        y_train[train].astype("int32"),
        scale(x_test[: args.test_size]),
        y_test[: args.test_size].astype("int32"),
    )


# ------------------------------------------------------------------ networks


def stage(kind, tau, units, name, seed):
    """One stage of ``units`` residual units: plain (baseline), ACT, SACT or PACT."""
    if kind == "baseline":
        unit_layers = [ResidualUnit(name=f"{name}_unit_{i + 1}") for i in range(units)]

        def apply(x):
            for unit in unit_layers:
                x = keras.layers.Add(name=f"{unit.name}_add")([x, unit(x)])
            return x

        return apply
    if kind == "pact":
        return ProbabilisticAdaptiveComputationBlock(
            units, variant="sact", tau=tau, seed=seed, name=name
        )
    return AdaptiveComputationBlock(units, variant=kind, tau=tau, name=name)


def resnet(kind, tau, args):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(args.width, 3, strides=2, padding="same", use_bias=False, name="stem")(
        inputs
    )
    for index, width in enumerate((args.width, 2 * args.width)):
        if index:
            x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
            x = keras.layers.Conv2D(
                width, 3, strides=2, padding="same", use_bias=False, name="transition"
            )(x)
        x = stage(kind, tau, args.units, f"stage_{index + 1}", args.seed + index)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(
        inputs, keras.layers.Dense(10, name="classifier")(x), name=f"{kind}_tau_{tau}"
    )


def cnn(args):
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for index, (filters, pool) in enumerate(
        [(args.width, False), (args.width, True), (2 * args.width, False), (2 * args.width, True)]
    ):
        x = PerforatedConv2D(
            filters, 3, padding="same", activation="relu", name=f"conv_{index + 1}"
        )(x)
        if pool:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="classifier")(x), name="cnn")


# ------------------------------------------------------------------ training


def compile_model(model, lr):
    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train(model, data, epochs, args, lr=2e-3):
    """Adam with a cosine decay over ``epochs``; a reshuffled seeded ``tf.data`` order.

    Afterwards the batch-normalization statistics are recomputed on the training
    images (:func:`tfbayes.swag.update_bn`): after a few hundred steps Keras's
    moving averages (momentum 0.99) still lag the final weights.
    """
    x_train, y_train = data[:2]
    steps = epochs * int(np.ceil(len(x_train) / 128))
    compile_model(model, keras.optimizers.schedules.CosineDecay(lr, steps))
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=args.seed, reshuffle_each_iteration=True)
        .batch(128)
    )
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, verbose=0)
    update_bn(model, x_train)
    return time.perf_counter() - start


def accuracy(model, data):
    logits = model.predict(data[2], batch_size=500, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == data[3]))


def score(model, data, reference_flops=None):
    report = count_flops(model, data[2][:2000])
    row = {
        "accuracy": accuracy(model, data),
        "dense_flops": report.total["dense"],
        "mean_flops": report.total["actual"],
    }
    if reference_flops:
        row["flops_fraction"] = row["mean_flops"] / reference_flops
    blocks = [layer for layer in model.layers if isinstance(layer, AdaptiveComputationBlock)]
    for layer in blocks:
        inputs = keras.Model(model.inputs[0], layer.input)(data[2][:2000], training=False)
        _, stats = layer(inputs, training=False, return_ponder=True)
        row[f"{layer.name}_mean_units"] = float(np.mean(stats["num_units"]))
    return row


def accuracy_part(args, data):
    keras.utils.set_random_seed(args.seed)
    model_dir = pathlib.Path(args.model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    baseline = resnet("baseline", 0.0, args)
    seconds = train(baseline, data, args.epochs, args)
    row = {
        "method": "ResNet (all units)",
        "kind": "baseline",
        "tau": None,
        "train_seconds": round(seconds, 1),
        **score(baseline, data),
    }
    reference = row["mean_flops"]
    row["flops_fraction"] = 1.0
    rows.append(row)
    print(_line(row), flush=True)
    baseline.save(model_dir / "baseline.keras")
    for kind, kind_taus in (
        ("sact", taus(args.sact_taus)),
        ("pact", taus(args.pact_taus)),
        ("act", taus(args.act_taus)),
    ):
        for tau in kind_taus:
            keras.utils.set_random_seed(args.seed)
            model = resnet(kind, tau, args)
            seconds = train(model, data, args.epochs, args)
            row = {
                "method": kind.upper(),
                "kind": kind,
                "tau": tau,
                "train_seconds": round(seconds, 1),
                **score(model, data, reference),
            }
            rows.append(row)
            print(_line(row), flush=True)
            model.save(model_dir / f"{kind}_tau_{tau}.keras")
    return rows


def perforation_part(args, data):
    keras.utils.set_random_seed(args.seed)
    model_dir = pathlib.Path(args.model_dir)
    plain = cnn(args)
    seconds = train(plain, data, args.epochs, args)
    plain.save(model_dir / "cnn.keras")
    base = score(plain, data)
    rows = [
        {
            "method": "CNN (plain)",
            "mask": None,
            "finetuned": False,
            "train_seconds": round(seconds, 1),
            **base,
            "flops_fraction": 1.0,
        }
    ]
    print(_line(rows[0]), flush=True)
    x_choose, y_choose = data[0][:1000], data[1][:1000]
    for strategy in args.masks.split(","):
        model = keras.models.clone_model(
            plain, clone_function=lambda layer: _with_mask(layer, strategy)
        )
        model.set_weights(plain.get_weights())
        compile_model(model, 1e-3)
        if strategy == "impact":
            for layer in perforated_layers(model):
                layer.set_impact(estimate_impact(model, layer, x_choose, y_choose))
        start = time.perf_counter()
        rates = perforate(model, x_choose, y_choose, args.perforation_target * base["mean_flops"])
        choose_seconds = time.perf_counter() - start
        for finetuned in (False, True):
            if finetuned:
                seconds = train(model, data, args.finetune_epochs, args, lr=5e-4)
            row = {
                "method": f"CNN perforated ({strategy} mask)",
                "mask": strategy,
                "finetuned": finetuned,
                "rates": rates,
                "perforate_seconds": round(choose_seconds, 1),
                **score(model, data, base["mean_flops"]),
            }
            if finetuned:
                row["finetune_seconds"] = round(seconds, 1)
                row["finetune_epochs"] = args.finetune_epochs
            rows.append(row)
            print(_line(row), flush=True)
        model.save(model_dir / f"cnn_perforated_{strategy}.keras")
    return rows


def _with_mask(layer, strategy):
    config = layer.get_config()
    if isinstance(layer, PerforatedConv2D):
        config["mask"] = strategy
    return layer.__class__.from_config(config)


def _line(row):
    text = (
        f"{row['method']:<28} tau={row.get('tau')!s:<6} acc={row['accuracy']:.4f} "
        f"FLOPs={row['mean_flops']:,.0f} ({row.get('flops_fraction', 1.0):.2f})"
    )
    if "finetuned" in row:
        text += f" finetuned={row['finetuned']}"
    return text


# ------------------------------------------------------------------ timing


def median_times(fns, x, repeats, log):
    """Median wall time (ms) of each ``fns[name](x)``, interleaved, after one warm-up each."""
    for fn in fns.values():
        fn(x)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            with log.block(name):
                start = time.perf_counter()
                np.asarray(fn(x))
                times[name].append(1000 * (time.perf_counter() - start))
    return {name: float(np.median(t)) for name, t in times.items()}


def timing_part(args, data):
    model_dir = pathlib.Path(args.model_dir)
    files = sorted(model_dir.glob("*.keras"))
    if not files:
        sys.exit(f"--model-dir {model_dir}: no saved models; run the accuracy part first")
    machine.require_idle(args)
    log = machine.LoadLog()
    x = data[2][: args.timing_batch]
    models = {f.stem: keras.models.load_model(f) for f in files}
    result = {
        "batch": args.timing_batch,
        "repeats": args.repeats,
        "adaptive": [],
        "perforation": [],
    }
    adaptive = {name: m for name, m in models.items() if not name.startswith("cnn")}
    fns = {name: tf.function(lambda v, m=m: m(v, training=False)) for name, m in adaptive.items()}
    times = median_times(fns, x, args.repeats, log)
    base = models["baseline"]
    base_flops = count_flops(base, x).total["actual"]
    for name, model in adaptive.items():
        flops = count_flops(model, x).total["actual"]
        result["adaptive"].append(
            {
                "model": name,
                "ms": round(times[name], 2),
                "speedup": times["baseline"] / times[name],
                "flops_speedup": base_flops / flops,
            }
        )
        print(result["adaptive"][-1], flush=True)
    cnns = {name: m for name, m in models.items() if name.startswith("cnn")}
    plain_flops = count_flops(models["cnn"], x).total["actual"]
    for jit in (False, True):
        fns = {
            name: tf.function(lambda v, m=m: m(v, training=False), jit_compile=jit)
            for name, m in cnns.items()
        }
        times = median_times(fns, x, args.repeats, log)
        for name, model in cnns.items():
            flops = count_flops(model, x).total["actual"]
            result["perforation"].append(
                {
                    "model": name,
                    "jit_compile": jit,
                    "ms": round(times[name], 2),
                    "speedup": times["cnn"] / times[name],
                    "flops_speedup": plain_flops / flops,
                    # the perforated layers (rate < 1) computed by one strided convolution;
                    # the others gather patches
                    "strided_conv_layers": [
                        layer.name
                        for layer in perforated_layers(model)
                        if layer.uses_strided_conv and layer.num_kept < np.prod(layer.output_hw)
                    ],
                }
            )
            print(result["perforation"][-1], flush=True)
    result["perforated_layers"] = layer_times(cnns, x, args.repeats, log)
    result["machine"] = machine.machine_record(args, log)
    return result


def layer_times(cnns, x, repeats, log):
    """Where a perforated CNN's time goes: each perforated layer alone, on its real input.

    For every layer with a rate below 1: the layer as it is, the same layer unperforated
    (``Conv2D`` with its weights), and the nearest-neighbour filling alone (the gather of
    ``[batch, K, filters]`` kept values to every position), each in ``tf.function`` and
    under XLA (median wall ms).
    """
    rows = []
    for name, model in cnns.items():
        for layer in perforated_layers(model):
            if layer.num_kept == int(np.prod(layer.output_hw)):
                continue
            inputs = keras.Model(model_input(model), layer.input)(x, training=False)
            plain = PerforatedConv2D.from_config({**layer.get_config(), "perforation_rate": 1.0})
            plain.build(inputs.shape)
            plain.kernel.assign(layer.kernel)
            if layer.use_bias:
                plain.bias.assign(layer.bias)
            kept = tf.zeros((x.shape[0], layer.num_kept, layer.filters))
            index = tf.constant(layer.nearest_index.numpy())
            for jit in (False, True):
                fns = {
                    "perforated": tf.function(layer, jit_compile=jit),
                    "plain": tf.function(plain, jit_compile=jit),
                    "filling": tf.function(
                        lambda inputs, kept=kept, index=index: tf.gather(kept, index, axis=1),
                        jit_compile=jit,
                    ),
                }
                times = median_times(fns, inputs, repeats, log)
                rows.append(
                    {
                        "model": name,
                        "layer": layer.name,
                        "jit_compile": jit,
                        "kept_fraction": layer.num_kept / int(np.prod(layer.output_hw)),
                        "strided_conv": layer.uses_strided_conv,
                        **{f"{k}_ms": round(v, 3) for k, v in times.items()},
                    }
                )
                print(rows[-1], flush=True)
    return rows


def main(argv=None):
    args = parse_args(argv)
    data = fashion_mnist(args)
    output = pathlib.Path(args.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    if args.timing_only:
        results["timing"] = timing_part(args, data)
    elif args.perforation_only:
        if "accuracy" not in results:
            sys.exit(f"--output {output}: no accuracy part to update; run it in full first")
        pathlib.Path(args.model_dir).mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        results["accuracy"]["perforation"] = perforation_part(args, data)
        results["accuracy"]["perforation_command"] = (
            "python benchmarks/adaptive_computation.py " + " ".join(sys.argv[1:])
        )
        results["accuracy"]["perforation_wall_minutes"] = round(
            (time.perf_counter() - start) / 60, 1
        )
    else:
        start = time.perf_counter()
        adaptive = accuracy_part(args, data)
        perforation = perforation_part(args, data)
        results["accuracy"] = {
            "command": "python benchmarks/adaptive_computation.py " + " ".join(sys.argv[1:]),
            "config": {
                k: getattr(args, k)
                for k in (
                    "train_size",
                    "test_size",
                    "epochs",
                    "finetune_epochs",
                    "width",
                    "units",
                    "act_taus",
                    "sact_taus",
                    "pact_taus",
                    "masks",
                    "perforation_target",
                    "seed",
                    "quick",
                )
            },
            "budget_minutes": BUDGET_MINUTES,
            "wall_minutes": round((time.perf_counter() - start) / 60, 1),
            "load_average_1m_at_end": round(machine.load_average(), 2),
            "flops_unit": "multiply-adds of weight layers per test image (tfbayes.flops)",
            "adaptive": adaptive,
            "perforation": perforation,
        }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
