"""TT ops of t3f_ext vs T3F 1.2.0 vs dense: matmul, round, project,
project_matmul and Riemannian gradients, in tf.function and under XLA.

Sizes:

* ``docs``: those of T3F's docs/benchmark page (float64): TT-matrices of
  shape ``10^10 x 10^10`` (modes ``10 x ... x 10``, 10 cores) and TT-rank 10,
  TT "vectors" ``10^10 x 1`` of rank 10 and 100. Rounding takes a rank-100
  vector to rank 10, projection puts rank-10 and rank-100 vectors on the
  tangent space at a rank-10 vector; ``gradients`` is T3F's autodiff
  benchmark case ``x^T A x`` (``0.5 * bilinear_form(A, x, x)``, A rank 10,
  x rank 10, ``runtime_check=False`` for both). ``project_matmul`` projects
  ``A v`` for a batch of 10 rank-10 vectors ``v`` (T3F 1.2.0's
  ``project_matmul`` fails for a single TensorTrain: it asks a TensorTrain
  for its batch size). A dense ``10^10 x 10^10``
  matrix does not fit in memory, so there is no dense column.
* ``small``: modes ``4 x 4 x 4 x 4 x 4 x 4`` (``4096 x 4096`` matrices),
  the same ranks, where the dense equivalent fits: ``W @ B`` for
  ``matmul(W, B)`` with a dense ``4096 x 64`` B, ``W @ v`` and ``W @ W2``
  for TT.TT products of the dense matrices, TT-SVD of the dense tensor for
  ``round``, and the dense Euclidean gradient ``(A + A^T) x / 2`` for
  ``gradients``. The projections have no dense counterpart.

Every op is timed as a ``tf.function`` ("graph") and a
``tf.function(jit_compile=True)`` ("xla"), ours and T3F's (and dense) in the
same process, interleaved: after a warm-up call (tracing/compilation, its time
is recorded), ``--repeats`` rounds (rounded up to a multiple of the number of
implementations, whose order rotates every round) each call every
implementation ``k`` times (``k`` picked so one sample takes >= 20 ms); the
median per-call time is reported. The ratio is T3F's time over ours (> 1: we are faster).

T3F 1.2.0 needs its own environment: this script creates
``/tmp/venv-t3f`` (``benchmarks/side_venv.py``: t3f 1.2.0 on top of this
venv's TensorFlow) if missing, and runs the measurements there in a
subprocess, with the one-line shim ``np.int = int`` that T3F's initializers
need on NumPy 2 (we never call them: all inputs are built from NumPy cores).
Our package is imported from this checkout.

Timing follows ``benchmarks/machine.py``: the script refuses to start when
the 1-minute load average is above ``--max-load`` (default 1.0) unless
``--allow-load`` is given; every row records the load before and after its
timed block, and the JSON's ``machine`` entry describes the last run (its
``allow_load`` says whether the idle rule was overridden).

Run (an idle machine with 2 CPU cores: about 15-25 minutes)::

    python benchmarks/tt_ops.py              # -> benchmarks/results/tt_ops.json
    python benchmarks/tt_ops.py --sizes small --ops project --repeats 3  # a subset

A partial run replaces only the rows it measured in the JSON file.
"""

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

import machine
import side_venv

REPO = pathlib.Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "tt_ops.json"
T3F_VENV = pathlib.Path("/tmp/venv-t3f")
SIZES = {"docs": [10] * 10, "small": [4] * 6}
RANK = 10
BIG_RANK = 100
BATCH = 10
DENSE_COLUMNS = 64
MODES = ("graph", "xla")


def ensure_t3f_venv():
    """/tmp/venv-t3f: t3f 1.2.0 on top of this venv's TensorFlow (see side_venv.py)."""
    return side_venv.ensure(T3F_VENV, "t3f==1.2.0")


def random_cores(rng, row_modes, col_modes, rank):
    """float64 NumPy cores of a TT-matrix, scaled so entries stay O(1).

    The TT-ranks are ``rank`` clipped to what the modes allow,
    ``min(rank, prod_{j<=k} m_j n_j, prod_{j>k} m_j n_j)`` (a larger rank
    would be shrunk by any orthogonalisation anyway).
    """
    d = len(row_modes)
    sizes = [m * n for m, n in zip(row_modes, col_modes)]
    ranks = (
        [1]
        + [min(rank, int(np.prod(sizes[:k])), int(np.prod(sizes[k:]))) for k in range(1, d)]
        + [1]
    )
    return [
        rng.standard_normal((ranks[k], row_modes[k], col_modes[k], ranks[k + 1]))
        / math.sqrt(ranks[k] * row_modes[k])
        for k in range(d)
    ]


def dense_matrix(cores):
    """The dense matrix of TT-matrix cores (NumPy; small sizes only)."""
    res = cores[0]
    for core in cores[1:]:
        res = np.tensordot(res, core, axes=([-1], [0]))
    res = res[0, ..., 0]
    d = len(cores)
    res = res.transpose(list(range(0, 2 * d, 2)) + list(range(1, 2 * d, 2)))
    rows = int(np.prod([c.shape[1] for c in cores]))
    return res.reshape(rows, -1)


def make_inputs(size, seed=0):
    """NumPy inputs of one size; the same for every implementation."""
    rng = np.random.default_rng(seed)
    modes = SIZES[size]
    ones = [1] * len(modes)
    inputs = {
        "W": random_cores(rng, modes, modes, RANK),
        "W2": random_cores(rng, modes, modes, RANK),
        "x": random_cores(rng, modes, ones, RANK),
        "v": random_cores(rng, modes, ones, RANK),
        "v100": random_cores(rng, modes, ones, BIG_RANK),
    }
    batch = [random_cores(rng, modes, ones, RANK) for _ in range(BATCH)]
    inputs["v_batch"] = [np.stack(cores) for cores in zip(*batch)]
    if size == "small":
        n = int(np.prod(modes))
        inputs["B"] = rng.standard_normal((n, DENSE_COLUMNS))
        inputs["W_dense"] = dense_matrix(inputs["W"])
        inputs["W2_dense"] = dense_matrix(inputs["W2"])
        inputs["v_dense"] = dense_matrix(inputs["v"])
        inputs["x_dense"] = dense_matrix(inputs["x"])
        inputs["v100_dense"] = dense_matrix(inputs["v100"]).reshape(modes)
    return inputs


def tt_cases(lib):
    """name -> function(inputs) for a T3F-compatible module ``lib``.

    The inputs are tuples of cores (T3F's TensorTrain cannot cross a
    tf.function boundary); each function returns tensors.
    """
    tt = lib.TensorTrain

    def quadratic(a):
        return lambda z: 0.5 * lib.bilinear_form(a, z, z)

    return {
        "matmul TT.dense": lambda i: lib.matmul(tt(i["W"]), i["B"]),
        "matmul TT.TT (matvec)": lambda i: lib.matmul(tt(i["W"]), tt(i["v"])).tt_cores,
        "matmul TT.TT (matmat)": lambda i: lib.matmul(tt(i["W"]), tt(i["W2"])).tt_cores,
        "round r100->10": lambda i: lib.round(tt(i["v100"]), max_tt_rank=RANK).tt_cores,
        "project r10": lambda i: lib.project(tt(i["v"]), tt(i["x"])).tt_cores,
        "project r100": lambda i: lib.project(tt(i["v100"]), tt(i["x"])).tt_cores,
        "project_matmul (batch)": lambda i: (
            lib.project_matmul(lib.TensorTrainBatch(i["v_batch"]), tt(i["x"]), tt(i["W"])).tt_cores
        ),
        "gradients x^T A x": lambda i: (
            lib.gradients(quadratic(tt(i["W"])), tt(i["x"]), runtime_check=False).tt_cores
        ),
    }


def dense_cases(tf, ours):
    """name -> dense equivalent (small size only)."""

    def euclidean_gradient(i):
        x = i["x_dense"]
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = 0.5 * tf.reduce_sum(x * tf.linalg.matmul(i["W_dense"], x))
        return tape.gradient(value, x)

    return {
        "matmul TT.dense": lambda i: tf.linalg.matmul(i["W_dense"], i["B"]),
        "matmul TT.TT (matvec)": lambda i: tf.linalg.matmul(i["W_dense"], i["v_dense"]),
        "matmul TT.TT (matmat)": lambda i: tf.linalg.matmul(i["W_dense"], i["W2_dense"]),
        "round r100->10": lambda i: ours.to_tt_tensor(i["v100_dense"], max_tt_rank=RANK).tt_cores,
        "gradients x^T A x": euclidean_gradient,
    }


def materialize(result):
    for tensor in result if isinstance(result, (list, tuple)) else [result]:
        tensor.numpy()


def time_side_by_side(fns, args, repeats, min_sample_s=0.02):
    """Median per-call seconds of each compiled ``fns[name](args)``.

    Returns ``(median_s, first_call_s, calls_per_sample, errors)``; an
    implementation whose warm-up call raises is reported in ``errors`` and not
    timed.
    """
    first_call_s, single_s, errors = {}, {}, {}
    for name, fn in list(fns.items()):
        try:
            start = time.perf_counter()
            materialize(fn(args))
            first_call_s[name] = time.perf_counter() - start
        except Exception as err:  # pylint: disable=broad-except
            errors[name] = "%s: %s" % (type(err).__name__, str(err)[:300])
            continue
        start = time.perf_counter()
        materialize(fn(args))
        single_s[name] = time.perf_counter() - start
    calls = {name: max(1, int(min_sample_s / max(t, 1e-6))) for name, t in single_s.items()}
    samples = {name: [] for name in calls}
    # The order rotates every round, over a whole number of rotations: the
    # implementation timed right after the dense one measured ~12% slower
    # whichever it was, so no implementation may always take that place.
    names = list(calls)
    rounds = -(-repeats // len(names)) * len(names)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            start = time.perf_counter()
            for _ in range(calls[name]):
                materialize(fns[name](args))
            samples[name].append((time.perf_counter() - start) / calls[name])
    median_s = {name: float(np.median(s)) for name, s in samples.items()}
    return median_s, first_call_s, calls, errors


def worker(args):
    """Runs inside the T3F venv: times ours, T3F and dense side by side."""
    sizes, repeats, ops = args.sizes, args.repeats, args.ops
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    np.int = int  # T3F 1.2.0 uses np.int, which NumPy 2 removed.
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import t3f  # pylint: disable=import-outside-toplevel

    sys.path.insert(0, str(REPO))
    import t3f_ext  # pylint: disable=import-outside-toplevel

    libs = {"ours": t3f_ext, "t3f": t3f}
    cases = {name: tt_cases(lib) for name, lib in libs.items()}
    dense = dense_cases(tf, t3f_ext)
    log = machine.LoadLog()
    rows = []
    for size in sizes:
        np_inputs = make_inputs(size)
        inputs = {
            k: (tuple(tf.constant(c) for c in v) if isinstance(v, list) else tf.constant(v))
            for k, v in np_inputs.items()
        }
        for case in cases["ours"]:
            if case == "matmul TT.dense" and "B" not in np_inputs:
                continue  # A 10^10 x 64 dense operand does not fit in memory.
            if ops and not any(op in case for op in ops):
                continue
            for mode in MODES:
                fns = {
                    name: tf.function(cases[name][case], jit_compile=(mode == "xla"))
                    for name in libs
                }
                if size == "small" and case in dense:
                    fns["dense"] = tf.function(dense[case], jit_compile=(mode == "xla"))
                row = {
                    "size": size,
                    "op": case,
                    "mode": mode,
                    "repeats": repeats,
                    "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                }
                with log.block("%s %s %s" % (size, case, mode)):
                    median, first_call_s, calls, errors = time_side_by_side(fns, inputs, repeats)
                row["load_before"] = log.blocks[-1]["load_before"]
                row["load_after"] = log.blocks[-1]["load_after"]
                for name in median:
                    row[name + "_ms"] = 1e3 * median[name]
                    row[name + "_first_call_s"] = first_call_s[name]
                    row[name + "_calls_per_sample"] = calls[name]
                if errors:
                    row["errors"] = errors
                if "t3f_ms" in row:
                    row["t3f_over_ours"] = row["t3f_ms"] / row["ours_ms"]
                if "dense_ms" in row:
                    row["dense_over_ours"] = row["dense_ms"] / row["ours_ms"]
                rows.append(row)
                print(format_row(row), flush=True)
    with open(args.worker_out, "w") as f:
        json.dump(
            {
                "rows": rows,
                "tf_version": tf.__version__,
                "t3f_version": getattr(t3f, "__version__", "1.2.0"),
                "machine": machine.machine_record(args, log),
            },
            f,
        )


def format_row(row):
    def ms(key):
        return "%9.3f" % row[key] if key in row else "%9s" % "-"

    def ratio(key):
        return "%7.2fx" % row[key] if key in row else "%8s" % "-"

    text = "%-5s %-22s %-5s ours %s ms  t3f %s ms  dense %s ms  t3f/ours %s" % (
        row["size"],
        row["op"],
        row["mode"],
        ms("ours_ms"),
        ms("t3f_ms"),
        ms("dense_ms"),
        ratio("t3f_over_ours"),
    )
    for name, error in row.get("errors", {}).items():
        text += "  [%s failed: %s]" % (name, error[:120])
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--ops", nargs="+", default=None, help="only the ops whose name contains one of these"
    )
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    machine.add_load_arguments(parser)
    args = parser.parse_args()
    if args.worker_out:
        worker(args)
        return
    machine.require_idle(args)
    python = ensure_t3f_venv()
    tmp_out = pathlib.Path("/tmp/tt_ops_worker.json")
    subprocess.run(
        [
            str(python),
            __file__,
            "--sizes",
            *args.sizes,
            "--repeats",
            str(args.repeats),
            "--worker-out",
            str(tmp_out),
            "--max-load",
            str(args.max_load),
        ]
        + (["--allow-load"] if args.allow_load else [])
        + (["--ops", *args.ops] if args.ops else []),
        check=True,
    )
    result = json.loads(tmp_out.read_text())
    result.update(
        {
            "date of the last (partial) run": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "dtype": "float64",
            "timing": "median per-call wall time after a warm-up call; ours, T3F "
            "and dense interleaved in one process",
        }
    )
    # Rows measured now replace the same (size, op, mode) of earlier runs.
    out = pathlib.Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}

    def key(row):
        return row["size"], row["op"], row["mode"]

    new = {key(row): row for row in result["rows"]}
    old_rows = previous.get("rows", [])
    result["rows"] = [new.pop(key(row), row) for row in old_rows] + list(new.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("\nwrote %s" % out)
    for row in result["rows"]:
        print(format_row(row))


if __name__ == "__main__":
    main()
