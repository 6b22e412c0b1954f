"""SWA, SWAG and baselines on Fashion-MNIST: accuracy, NLL, ECE, Brier and OOD AUROC (MNIST).

A small CNN with BatchNormalization (conv 16 - BN - ReLU - pool - conv 32 - BN - ReLU - pool
- dense 10) is trained with SGD with momentum 0.9 for one budget of ``--epochs`` epochs by
every method:

* ``sgd``: the reference SGD schedule (constant, then a linear ramp to 1 % of the rate
  from 50 % to 90 % of the budget), i.e. ``swa_learning_rate(epoch, epochs, lr, lr / 100)``;
* ``swa``, ``swag``, ``swag_diag``: one run with the SWA schedule (ramp to ``--swa-lr``,
  collection from the middle of the budget, ``--collect-per-epoch`` times an epoch);
  SWA is the mean with recomputed BN statistics, SWAG averages ``--num-samples``
  predictions at scale 0.5 (rank 20), SWAG-Diag likewise with the diagonal only;
* ``mc_dropout``: the SGD recipe with dropout (0.25) before the last layer, kept on at
  test time, ``--num-samples`` passes;
* ``sgd_temperature``: the SGD model with a temperature fitted on a held-out split;
* ``deep_ensemble_5``: five SGD models from different seeds (five budgets);
* ``fge``: the SGD recipe for the first half of the budget, then FGE cycles (2 epochs,
  1 in quick mode; learning rate 0.01 to 0.0005) for the second half, one snapshot per
  cycle, BN statistics recomputed per snapshot;
* curves: a quadratic Bezier curve fitted between two of the SGD models
  (``--curve-epochs``), and the straight line between them, evaluated on the test set
  at evenly spaced ``t`` with BN statistics recomputed at each ``t``.

Every run feeds a seeded ``tf.data`` pipeline that reshuffles each epoch. OOD inputs are
the 10,000 MNIST digits of ``mnist_10k.npz``; the AUROC separates them from the
Fashion-MNIST test set by predictive entropy. The results file is rewritten after every
method, so a stopped run keeps what it finished.

``--timing-only`` measures the costs instead, on the full training set, and refuses to
start on a loaded machine (``benchmarks/machine.py``): the epoch time with SWAG collection
against a plain SGD epoch (``--timing-epochs`` each, the first dropped as warm-up), the
share of the SWAG epoch spent collecting, and ``predict_bma``'s cost per sample (one BN
update over the training set plus one prediction) against one plain prediction
(the median of 5).

``--width W`` gives the convolutions ``W`` and ``2 W`` filters (default 16, 20,538 weights),
and ``--methods`` runs a subset of the methods (e.g. ``sgd,swa,fge``: three budgets instead of
eight); a width other than 16 writes ``swag_width{W}.json``.

Run: ``python benchmarks/swag.py [--quick] [--seed 0]``. ``--quick`` trains on 10,000
images for 6 epochs (test on 2,000), a smoke run whose numbers are not the benchmark's.
Writes ``benchmarks/results/swag.json`` (``swag_quick.json`` with ``--quick``,
``swag_timing.json`` with ``--timing-only``).
"""

import argparse
import json
import os
import pathlib
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import scipy.optimize  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from machine import LoadLog, add_load_arguments, machine_record, require_idle  # noqa: E402
from tfbayes import metrics  # noqa: E402
from tfbayes.datasets import load_fashion_mnist  # noqa: E402
from tfbayes.swag import (  # noqa: E402
    FGE,
    SWAG,
    Curve,
    SWAGDiag,
    evaluate_curve,
    fit_curve,
    swa_learning_rate,
)

BATCH = 128
LR = 0.05
WEIGHT_DECAY = 5e-4
VALIDATION = 5000
METHODS = ("sgd", "deep_ensemble", "swa", "fge", "curves", "mc_dropout")


def mnist_path(path):
    if path:
        return pathlib.Path(path)
    folder = os.environ.get("TFBAYES_DATA_DIR")
    candidates = ([pathlib.Path(folder) / "mnist_10k.npz"] if folder else []) + [
        ROOT.parent / "shared" / "data" / "mnist_10k.npz"
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"mnist_10k.npz not found; looked in {candidates}. Pass --mnist.")


def load_data(quick, mnist):
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    prepare = lambda x: (x.astype(np.float32) / 255.0)[..., None]  # noqa: E731
    x_train, x_test = prepare(x_train), prepare(x_test)
    y_train, y_test = y_train.astype(np.int32), y_test.astype(np.int32)
    with np.load(mnist) as archive:
        x_ood = prepare(archive["x"])
    validation = (x_train[-VALIDATION:], y_train[-VALIDATION:])
    x_train, y_train = x_train[:-VALIDATION], y_train[:-VALIDATION]
    if quick:
        x_train, y_train = x_train[:10000], y_train[:10000]
        validation = (validation[0][:2000], validation[1][:2000])
        x_test, y_test, x_ood = x_test[:2000], y_test[:2000], x_ood[::5]
    return (x_train, y_train), validation, (x_test, y_test), x_ood


def pipeline(x, y, seed):
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(BATCH)
        .prefetch(2)
    )


def train(model, x, y, seed, epochs, callbacks):
    """``epochs`` epochs of ``model``'s optimizer over :func:`pipeline` (seeded, reshuffled)."""
    model.fit(pipeline(x, y, seed), epochs=epochs, verbose=0, shuffle=False, callbacks=callbacks)


class MCDropout(keras.layers.Dropout):
    """Dropout that stays on at prediction time (MC dropout)."""

    def call(self, inputs, training=None):
        return super().call(inputs, training=True)


def make_cnn(seed, width=16, dropout=0.0):
    """The benchmark's CNN: convolutions of ``width`` and ``2 * width`` filters."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    h = inputs
    for filters in (width, 2 * width):
        h = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Flatten()(h)
    if dropout:
        h = MCDropout(dropout, seed=seed)(h)
    model = keras.Model(inputs, keras.layers.Dense(10)(h))
    model.compile(
        keras.optimizers.SGD(LR, momentum=0.9, weight_decay=WEIGHT_DECAY),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def sgd_schedule(epochs):
    return keras.callbacks.LearningRateScheduler(
        lambda epoch: swa_learning_rate(epoch, epochs, LR, LR / 100)
    )


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


class TimedSWAG(SWAG):
    """SWAG that records the time spent collecting."""

    collect_seconds = 0.0

    def collect(self):
        start = time.perf_counter()
        super().collect()
        self.collect_seconds += time.perf_counter() - start


def softmax(logits):
    return tf.nn.softmax(np.asarray(logits, np.float64)).numpy()


def evaluate(probs_test, y_test, probs_ood):
    return {
        "accuracy": float(np.mean(probs_test.argmax(-1) == y_test)),
        "nll": metrics.negative_log_likelihood(y_test, probs_test),
        "ece": metrics.expected_calibration_error(y_test, probs_test, num_bins=15),
        "brier": metrics.brier_score(y_test, probs_test),
        "ood_auroc": metrics.ood_auroc(probs_test, probs_ood),
    }


def fit_temperature(logits, labels):
    """The temperature minimizing the validation NLL (Guo et al. 2017)."""

    def nll(log_t):
        return metrics.negative_log_likelihood(labels, softmax(logits / np.exp(log_t)))

    return float(np.exp(scipy.optimize.minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def measure_costs(args, x_train, y_train, x_eval):
    """Epoch time with and without SWAG collection, and ``predict_bma`` against ``predict``."""
    require_idle(args)
    log, epochs = LoadLog(), args.timing_epochs
    sgd_timer, swag_timer = EpochTimer(), EpochTimer()
    model = make_cnn(args.seed)
    with log.block(f"sgd, {epochs} epochs"):
        train(model, x_train, y_train, args.seed, epochs, [sgd_schedule(epochs), sgd_timer])
    model.predict(x_eval, batch_size=512, verbose=0)  # warm-up
    with log.block("predict, 5 runs"):
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            model.predict(x_eval, batch_size=512, verbose=0)
            runs.append(time.perf_counter() - start)
        predict_seconds = float(np.median(runs))
    swag = TimedSWAG(0, max_rank=20, swa_lr=args.swa_lr, lr_init=LR, set_weights_at_end=False)
    model = make_cnn(args.seed)
    with log.block(f"swag, {epochs} epochs"):
        train(model, x_train, y_train, args.seed, epochs, [swag, swag_timer])
    num_samples = 5
    with log.block(f"predict_bma, {num_samples} samples"):
        start = time.perf_counter()
        swag.predict_bma(
            x_eval,
            num_samples,
            bn_data=x_train,
            seed=tf.constant([args.seed, 1]),
            batch_size=512,
            from_logits=True,
        )
        bma_seconds = time.perf_counter() - start
    costs = {
        "swag_epoch_over_sgd_epoch": float(
            np.median(swag_timer.times[1:]) / np.median(sgd_timer.times[1:])
        ),
        "swag_collect_fraction_of_epoch": swag.collect_seconds / sum(swag_timer.times),
        "predict_bma_per_sample_over_predict": bma_seconds / num_samples / predict_seconds,
        "sgd_epoch_seconds": sgd_timer.times,
        "swag_epoch_seconds": swag_timer.times,
        "predict_seconds_median_of_5": predict_seconds,
        "predict_bma_seconds_per_sample": bma_seconds / num_samples,
        "train_size": len(x_train),
        "eval_size": len(x_eval),
    }
    print(json.dumps(costs, indent=1))
    out = ROOT / "benchmarks" / "results" / "swag_timing.json"
    out.write_text(
        json.dumps({"costs": costs, "machine": machine_record(args, log)}, indent=1) + "\n"
    )
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a data subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="budget (default 40; quick 6)")
    parser.add_argument("--swa-lr", type=float, default=0.01)
    parser.add_argument("--num-samples", type=int, default=None, help="default 30; quick 10")
    parser.add_argument("--collect-per-epoch", type=int, default=None, help="default 1; quick 4")
    parser.add_argument("--curve-epochs", type=int, default=None, help="default 20; quick 2")
    parser.add_argument("--mnist", default=None, help="path of mnist_10k.npz")
    parser.add_argument(
        "--width", type=int, default=16, help="filters of the first convolution (the second: 2x)"
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (swa also gives swag and swag_diag)",
    )
    parser.add_argument("--timing-only", action="store_true", help="measure the costs only")
    parser.add_argument("--timing-epochs", type=int, default=4, help="epochs per timed run")
    add_load_arguments(parser)
    args = parser.parse_args()
    methods = set(args.methods.split(","))
    if not methods <= set(METHODS):
        parser.error(f"--methods: expected a subset of {METHODS}, got {args.methods!r}")
    if args.width < 1:
        parser.error(f"--width: expected a positive int, got {args.width}")
    epochs = args.epochs or (6 if args.quick else 40)
    num_samples = args.num_samples or (10 if args.quick else 30)
    per_epoch = args.collect_per_epoch or (4 if args.quick else 1)
    curve_epochs = args.curve_epochs or (2 if args.quick else 20)
    (x_train, y_train), (x_val, y_val), (x_test, y_test), x_ood = load_data(
        args.quick, mnist_path(args.mnist)
    )
    x_eval = np.concatenate([x_test, x_ood])  # one prediction pass for test + OOD
    if args.timing_only:
        return measure_costs(args, x_train, y_train, x_eval)
    n_test = len(x_test)
    bn_data = x_train if not args.quick else x_train[:5000]
    steps = int(np.ceil(len(x_train) / BATCH))
    start_epoch = epochs // 2
    every = None if per_epoch == 1 else steps // per_epoch
    config = {
        "quick": args.quick,
        "seed": args.seed,
        "width": args.width,
        "parameters": make_cnn(args.seed, args.width).count_params(),
        "methods": sorted(methods),
        "epochs": epochs,
        "lr": LR,
        "weight_decay": WEIGHT_DECAY,
        "swa_lr": args.swa_lr,
        "start_epoch": start_epoch,
        "collect_every_n_steps": every,
        "num_samples": num_samples,
        "batch_size": BATCH,
        "train_size": len(x_train),
        "test_size": n_test,
        "ood_size": len(x_ood),
        "bn_data_size": len(bn_data),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    name = (
        "swag"
        + ("" if args.width == 16 else f"_width{args.width}")
        + ("_quick" if args.quick else "")
    )
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    results = {}

    def save():
        out.write_text(json.dumps({"config": config, "results": results}, indent=1) + "\n")

    def record(name, probs, extra=None):
        results[name] = dict(evaluate(probs[:n_test], y_test, probs[n_test:]), **(extra or {}))
        print(
            f"{name:>16}: " + ", ".join(f"{k} {v:.4f}" for k, v in results[name].items()),
            flush=True,
        )
        save()

    # SGD and the ensemble members (two of them are the curves' endpoints).
    members, endpoints = [], []
    count = 5 if "deep_ensemble" in methods else 2 if "curves" in methods else 1
    for member in range(count if methods & {"sgd", "deep_ensemble", "curves"} else 0):
        model = make_cnn(args.seed + member, args.width)
        train(model, x_train, y_train, args.seed + member, epochs, [sgd_schedule(epochs)])
        logits = model.predict(x_eval, batch_size=512, verbose=0)
        members.append(softmax(logits))
        if member < 2:
            endpoints.append(model)
        if member == 0 and "sgd" in methods:
            record("sgd", softmax(logits))
            temperature = fit_temperature(model.predict(x_val, batch_size=512, verbose=0), y_val)
            record("sgd_temperature", softmax(logits / temperature), {"temperature": temperature})
    if "deep_ensemble" in methods:
        record("deep_ensemble_5", np.mean(members, 0), {"budgets": 5})
    if "swa" in methods:
        swa_swag_and_diag(
            args, start_epoch, every, bn_data, x_train, y_train, x_eval, epochs, num_samples, record
        )
    if "fge" in methods:
        fge_ensemble(args, bn_data, x_train, y_train, x_eval, epochs, record)
    if "curves" in methods:
        results["curves"] = curves(
            args, endpoints, bn_data, x_train, y_train, x_test, y_test, curve_epochs
        )
        save()
    if "mc_dropout" in methods:
        model = make_cnn(args.seed, args.width, dropout=0.25)
        train(model, x_train, y_train, args.seed, epochs, [sgd_schedule(epochs)])
        record(
            "mc_dropout",
            np.mean(
                [
                    softmax(model.predict(x_eval, batch_size=512, verbose=0))
                    for _ in range(num_samples)
                ],
                0,
            ),
            {"num_samples": num_samples},
        )
    print(f"wrote {out}")


def swa_swag_and_diag(
    args, start_epoch, every, bn_data, x_train, y_train, x_eval, epochs, num_samples, record
):
    """SWA, SWAG and SWAG-Diag from one run of the SWA schedule."""
    swag = SWAG(
        start_epoch,
        max_rank=20,
        swa_lr=args.swa_lr,
        lr_init=LR,
        every_n_steps=every,
        bn_data=bn_data,
        set_weights_at_end=False,
    )
    diag = SWAGDiag(start_epoch, every_n_steps=every, set_weights_at_end=False)
    model = make_cnn(args.seed, args.width)
    train(model, x_train, y_train, args.seed, epochs, [swag, diag])
    swag.set_average_weights(bn_data=bn_data)
    record(
        "swa",
        softmax(model.predict(x_eval, batch_size=512, verbose=0)),
        {"collected": swag.moments.count},
    )
    probs = swag.predict_bma(
        x_eval,
        num_samples,
        scale=0.5,
        bn_data=bn_data,
        seed=tf.constant([args.seed, 1]),
        batch_size=512,
        from_logits=True,
    )
    record("swag", probs, {"num_samples": num_samples, "scale": 0.5, "rank": 20})
    record(
        "swag_diag",
        diag.predict_bma(
            x_eval,
            num_samples,
            scale=0.5,
            bn_data=bn_data,
            seed=tf.constant([args.seed, 2]),
            batch_size=512,
            from_logits=True,
        ),
        {"num_samples": num_samples},
    )


def fge_ensemble(args, bn_data, x_train, y_train, x_eval, epochs, record):
    """FGE at the same budget: the SGD recipe for half of it, then cycles."""
    fge_epochs = epochs // 2
    model = make_cnn(args.seed, args.width)
    train(
        model, x_train, y_train, args.seed, epochs - fge_epochs, [sgd_schedule(epochs - fge_epochs)]
    )
    fge = FGE(cycle_epochs=1 if args.quick else 2, lr_max=0.01, lr_min=0.0005)
    train(model, x_train, y_train, args.seed + 100, fge_epochs, [fge])
    record(
        "fge",
        fge.predict(x_eval, bn_data=bn_data, batch_size=512, from_logits=True),
        {"snapshots": len(fge.snapshots)},
    )


def curves(args, endpoints, bn_data, x_train, y_train, x_test, y_test, curve_epochs):
    """A Bezier curve fitted between two SGD models, and the straight line, along ``t``."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    bezier = fit_curve(
        endpoints[0],
        endpoints[1],
        pipeline(x_train, y_train, args.seed),
        curve="bezier",
        num_bends=3,
        epochs=curve_epochs,
        loss=loss,
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        seed=args.seed,
    )
    ts = np.linspace(0.0, 1.0, 5 if args.quick else 11)
    result = {"t": ts.tolist(), "curve_epochs": curve_epochs}
    for name, curve in (("bezier", bezier), ("line", Curve(endpoints[0], endpoints[1], "line"))):
        along = evaluate_curve(
            curve, (x_test, y_test), ts, loss=loss, bn_data=bn_data, batch_size=512
        )
        result[f"{name}_test_error"] = (1.0 - along["accuracy"]).tolist()
        print(
            f"{name:>16}: test error along t "
            + " ".join(f"{e:.4f}" for e in result[f"{name}_test_error"]),
            flush=True,
        )
    return result


if __name__ == "__main__":
    main()
