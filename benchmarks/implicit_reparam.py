"""Implicit reparameterization: ours against TFP, speed and accuracy, in one process.

Throughput: for Gamma, Beta, Dirichlet and VonMises, the time to draw
``--num-samples`` samples and take the gradient of ``sum(z^2)`` with respect to
every parameter, for ``tfbayes.distributions`` and ``tfp.distributions``, eagerly,
in ``tf.function`` and with ``jit_compile=True`` (a configuration that raises is
reported as "fails"). Median of ``--repeats`` timed runs after one warm-up, ours
and TFP taking turns in each mode so that their ratio survives other load. The
seed is a tensor argument that changes at every call, as in training: a Python
constant seed would let XLA fold random numbers that do not depend on the
parameters into compile-time constants.

Accuracy: the maximum relative error of the implicit gradient against mpmath
(30 digits), per dtype:
  * von Mises ``dz/dkappa`` on a grid of kappa in [1e-2, 1e3] (through TFP's 10.5
    switch) and standardized offsets |t| <= 4.75, ours vs TFP;
  * Gamma ``dz/dalpha`` at each implementation's own draws for alpha in
    [1e-3, 1e3], ours vs ``tfp.distributions.Gamma`` vs ``tf.random.gamma``, and the
    fraction of exactly-zero gradients in float32 at alpha = 1e-3 (ours: the
    gradient of ``log_sample``, which is what stays representable there).

Scaling (``--scaling``): throughput in ``tf.function`` (both libraries' fastest
mode) for 1e3 to 1e7 samples, with TensorFlow limited to 1 thread and to 2
threads (``tf.config.threading``, intra- and inter-op, each in a fresh
process), so that the results say where each implementation wins.

Timings follow the idle-machine rule of ``benchmarks/machine.py``: the script
refuses to time when the 1-minute load average is above ``--max-load`` (1.0)
unless ``--allow-load`` is given, and records the load before and after every
timed block.

Usage:
  python benchmarks/implicit_reparam.py [--num-samples 1000000] [--repeats 3] [--scaling]
Writes benchmarks/results/implicit_reparam.json.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import mpmath
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import tfbayes.distributions as ours  # noqa: E402
from machine import LoadLog, add_load_arguments, machine_record, require_idle  # noqa: E402
from tfbayes.distributions.von_mises_numerics import von_mises_cdf, von_mises_prob  # noqa: E402

tfd = tfp.distributions
MODES = ("eager", "function", "jit")
SCALING_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)
SCALING_THREADS = (1, 2)
RESULTS = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "results", "implicit_reparam.json"
)
# name -> (parameter values, constructor(params) for ours, and for TFP).
CASES = {
    "Gamma": ([2.5, 1.0], lambda p: ours.Gamma(p[0], rate=p[1]), lambda p: tfd.Gamma(p[0], p[1])),
    "Beta": ([2.0, 3.0], lambda p: ours.Beta(p[0], p[1]), lambda p: tfd.Beta(p[0], p[1])),
    "Dirichlet": ([[1.0, 2.0, 3.0]], lambda p: ours.Dirichlet(p[0]), lambda p: tfd.Dirichlet(p[0])),
    "VonMises": (
        [0.0, 5.0],
        lambda p: ours.VonMises(p[0], p[1]),
        lambda p: tfd.VonMises(p[0], p[1]),
    ),
}


def _sample_and_gradient(make, values, num_samples):
    params = [tf.Variable(v, dtype=tf.float32) for v in values]

    def step(seed):
        with tf.GradientTape() as tape:
            z = make(params).sample(num_samples, seed=seed)
            loss = tf.reduce_sum(tf.square(z))
        return loss, tape.gradient(loss, params)

    return step


def _time_interleaved(steps, mode, repeats):
    """``{impl: result}``: each step warmed up, then timed in turns (ours, TFP, ours, ...).

    Taking turns keeps the ratio meaningful when other jobs load the machine.
    """
    fns, results = {}, {}
    for impl, step in steps.items():
        fn = (
            step
            if mode == "eager"
            else tf.function(step, jit_compile=(mode == "jit"), autograph=False)
        )
        try:
            _, grads = fn(tf.constant([7, 0], tf.int32))
            if all(np.all(np.isfinite(g.numpy())) for g in grads):
                fns[impl], results[impl] = fn, {"seconds": []}
            else:
                results[impl] = {"error": "non-finite gradient"}
        except Exception as error:  # noqa: BLE001 - a failing configuration is a result
            results[impl] = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"}
    for i in range(1, repeats + 1):
        for impl, fn in fns.items():
            start = time.perf_counter()
            _, grads = fn(tf.constant([7, i], tf.int32))
            [g.numpy() for g in grads]
            results[impl]["seconds"].append(time.perf_counter() - start)
    for result in results.values():
        if "seconds" in result:
            result["median_seconds"] = float(np.median(result["seconds"]))
    return results


def throughput(num_samples, repeats, modes, load_log):
    table = {}
    for name, (values, make_ours, make_tfp) in CASES.items():
        row = {}
        for mode in modes:
            steps = {
                impl: _sample_and_gradient(make, values, num_samples)
                for impl, make in (("ours", make_ours), ("tfp", make_tfp))
            }
            with load_log.block(f"{name} {mode}"):
                timed = _time_interleaved(steps, mode, repeats)
            for impl, result in timed.items():
                if "median_seconds" in result:
                    result["samples_per_second"] = num_samples / result["median_seconds"]
                row[f"{impl}_{mode}"] = result
                print(
                    f"{name:10s} {impl:5s} {mode:9s} "
                    + (
                        f"{result['samples_per_second']:12.4g} samples/s"
                        if "samples_per_second" in result
                        else "fails: " + result["error"]
                    ),
                    flush=True,
                )
        speed = {
            f"{impl}_{mode}": row.get(f"{impl}_{mode}", {}).get("samples_per_second")
            for impl in ("ours", "tfp")
            for mode in MODES
        }
        tfp_best = max((s for k, s in speed.items() if k.startswith("tfp") and s), default=None)
        ours_best = max((s for k, s in speed.items() if k.startswith("ours") and s), default=None)
        ratios = {
            mode: (
                speed[f"ours_{mode}"] / speed[f"tfp_{mode}"]
                if speed[f"ours_{mode}"] and speed[f"tfp_{mode}"]
                else None
            )
            for mode in modes
        }
        ratios["ours_best_vs_tfp_best"] = ours_best / tfp_best if ours_best and tfp_best else None
        row["ratios"] = ratios
        print(
            f"{name:10s} ratios ours/tfp: "
            + ", ".join(f"{k}={v:.3g}" if v else f"{k}=n/a" for k, v in ratios.items()),
            flush=True,
        )
        table[name] = row
    return table


def scaling(repeats, sizes, load_log):
    """``{threads: {name: {size: {ours, tfp (samples/s), ratio}}}}``, one process per thread count."""
    table = {}
    for threads in SCALING_THREADS:
        with load_log.block(f"scaling, {threads} thread(s)"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--scaling-worker",
                    str(threads),
                    "--repeats",
                    str(repeats),
                    "--sizes",
                    *map(str, sizes),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        table[threads] = json.loads(out.strip().splitlines()[-1])
    return table


def _scaling_worker(threads, repeats, sizes):
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    table = {}
    for name, (values, make_ours, make_tfp) in CASES.items():
        table[name] = {}
        for size in sizes:
            steps = {
                impl: _sample_and_gradient(make, values, size)
                for impl, make in (("ours", make_ours), ("tfp", make_tfp))
            }
            timed = _time_interleaved(steps, "function", repeats)
            row = {
                impl: size / r["median_seconds"] if "median_seconds" in r else None
                for impl, r in timed.items()
            }
            row["ratio"] = row["ours"] / row["tfp"] if row["ours"] and row["tfp"] else None
            table[name][size] = row
            print(
                f"{threads} thread(s) {name:10s} {size:>9d}: ours {row['ours']:.3g}/s, "
                f"tfp {row['tfp']:.3g}/s, ratio {row['ratio']:.2f}",
                file=sys.stderr,
                flush=True,
            )
    print(json.dumps(table))


def _von_mises_reference(x, kappa):
    """``dz/dkappa = -(dF/dkappa) / p`` by quadrature at 30 digits (see the tests)."""
    with mpmath.workdps(30):
        x, kappa = mpmath.mpf(x), mpmath.mpf(kappa)
        mean_cos = mpmath.besseli(1, kappa) / mpmath.besseli(0, kappa)
        lower, upper = (-mpmath.pi, x) if x <= 0 else (x, mpmath.pi)
        width = 1 / mpmath.sqrt(kappa)
        inner = (
            [x - j * width for j in (8, 4, 2, 1)]
            if x <= 0
            else [x + j * width for j in (1, 2, 4, 8)]
        )
        points = sorted({lower, upper, *[p for p in inner if lower < p < upper]})
        dcdf = mpmath.quad(
            lambda t: (
                (mpmath.cos(t) - mean_cos) * mpmath.exp(kappa * (mpmath.cos(t) - mpmath.cos(x)))
            ),
            points,
        )
        return float(dcdf if x <= 0 else -dcdf) * -1.0


def von_mises_accuracy():
    kappas = [0.01, 0.1, 1.0, 5.0, 10.0, 10.49, 10.5, 10.51, 11.0, 20.0, 39.99, 40.0, 100.0, 1000.0]
    offsets = [-4.75, -3.0, -1.5, -0.2, 0.01, 1.0, 2.5, 4.75]
    result = {"kappas": kappas, "offsets": offsets}
    for dtype in (np.float32, np.float64):
        grid = [
            (float(dtype(np.clip(t * min(1.0, k**-0.5), -3.1, 3.1))), float(dtype(k)))
            for k in kappas
            for t in offsets
        ]
        x, kappa = (np.array(v) for v in zip(*grid))
        reference = np.array([_von_mises_reference(*point) for point in grid])
        x_t, kappa_t = tf.constant(x, dtype), tf.constant(kappa, dtype)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(kappa_t)
            z = ours.implicit_reparameterization(
                x_t, [kappa_t], cdf=von_mises_cdf, prob=von_mises_prob
            )
            tfp_cdf = tfd.VonMises(tf.zeros([], dtype), kappa_t).cdf(x_t)
        ours_dz = tape.gradient(z, kappa_t).numpy()
        tfp_dz = (
            -tape.gradient(tfp_cdf, kappa_t) / tfd.VonMises(tf.zeros([], dtype), kappa_t).prob(x_t)
        ).numpy()
        for impl, dz in (("ours", ours_dz), ("tfp", tfp_dz)):
            error = np.abs(dz.astype(np.float64) - reference) / np.abs(reference)
            per_kappa = error.reshape(len(kappas), len(offsets)).max(1)
            result[f"{impl}_{np.dtype(dtype).name}_max_rel_error"] = float(error.max())
            result[f"{impl}_{np.dtype(dtype).name}_max_rel_error_per_kappa"] = per_kappa.tolist()
            print(
                f"von Mises dz/dkappa {impl:4s} {np.dtype(dtype).name}: max rel error "
                f"{error.max():.2e}; per kappa " + " ".join(f"{e:.1e}" for e in per_kappa),
                flush=True,
            )
    return result


def _gamma_reference(alpha, log_z):
    """``dlog z/dalpha = -(dP(alpha, z)/dalpha) / (z p(z))`` at 30 digits."""
    with mpmath.workdps(30):
        alpha, log_z = mpmath.mpf(alpha), mpmath.mpf(log_z)
        z = mpmath.exp(log_z)
        dcdf = mpmath.diff(lambda a: mpmath.gammainc(a, 0, z, regularized=True), alpha)
        z_density = mpmath.exp(alpha * log_z - z - mpmath.loggamma(alpha))
        return float(-dcdf / z_density)


def _gamma_draws(impl, alpha):
    """``(log z, dlog z/dalpha, dz/dalpha == 0)`` per element, one draw per entry of ``alpha``.

    Relative errors of ``dlog z/dalpha = (dz/dalpha) / z`` and of ``dz/dalpha`` are equal;
    ours is read from ``log_sample``, which stays finite where ``z`` underflows.
    """
    with tf.GradientTape() as tape:
        tape.watch(alpha)
        if impl == "ours":
            log_z = ours.Gamma(alpha, rate=tf.ones([], alpha.dtype)).log_sample(seed=(3, 4))
            target = log_z
        else:
            if impl == "tfp":
                z = tfd.Gamma(alpha, tf.ones([], alpha.dtype)).sample(seed=(3, 4))
            else:
                z = tf.random.stateless_gamma(
                    alpha.shape, seed=(3, 4), alpha=alpha, dtype=alpha.dtype
                )
            log_z, target = tf.math.log(z), z
    grad = tape.gradient(target, alpha).numpy()
    log_z = log_z.numpy().astype(np.float64)
    zero = grad == 0
    dlog = grad if impl == "ours" else grad / np.exp(log_z)
    return log_z, dlog, zero


def gamma_accuracy(per_alpha=8):
    alphas = np.geomspace(1e-3, 1e3, 7)
    result = {"alphas": alphas.tolist(), "draws_per_alpha": per_alpha}
    for dtype in (np.float32, np.float64):
        alpha = tf.constant(np.repeat(alphas, per_alpha), dtype)
        for impl in ("ours", "tfp", "tf.random.gamma"):
            log_z, dlog, zero = _gamma_draws(impl, alpha)
            errors = [
                abs(g - _gamma_reference(float(a), lz)) / abs(_gamma_reference(float(a), lz))
                for a, lz, g, z0 in zip(alpha.numpy(), log_z, dlog, zero)
                if np.isfinite(lz) and not z0
            ]
            key = f"{impl}_{np.dtype(dtype).name}"
            result[key + "_max_rel_error"] = float(max(errors))
            result[key + "_evaluated"] = len(errors)
            result[key + "_zero_or_underflowed"] = int(len(zero) - len(errors))
            print(
                f"Gamma dz/dalpha {impl:15s} {np.dtype(dtype).name}: max rel error "
                f"{max(errors):.2e} over {len(errors)} of {len(zero)} draws (the rest have "
                "z = 0 or a zero gradient)",
                flush=True,
            )
    tiny = tf.fill([1000], tf.constant(1e-3, tf.float32))
    for impl in ("ours", "tfp", "tf.random.gamma"):
        fraction = float(np.mean(_gamma_draws(impl, tiny)[2]))
        result[f"{impl}_float32_zero_gradient_fraction_alpha_1e-3"] = fraction
        print(
            f"Gamma float32 alpha=1e-3 {impl:15s}: fraction of zero gradients {fraction:.3f}",
            flush=True,
        )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES)
    )
    parser.add_argument("--throughput-only", action="store_true", help="skip the accuracy tables")
    parser.add_argument(
        "--scaling", action="store_true", help="also time 1e3-1e7 samples with 1 and 2 threads"
    )
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=list(SCALING_SIZES),
        help="sample counts of --scaling",
    )
    parser.add_argument("--scaling-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=RESULTS, help="JSON file to write")
    add_load_arguments(parser)
    args = parser.parse_args()
    if args.scaling_worker:
        return _scaling_worker(args.scaling_worker, args.repeats, args.sizes)
    modes = tuple(args.modes.split(","))
    if not set(modes) <= set(MODES):
        parser.error(f"--modes must be a subset of {','.join(MODES)}; got {args.modes}")
    require_idle(args)
    load_log = LoadLog()
    results = {
        "versions": {"tensorflow": tf.__version__, "tensorflow_probability": tfp.__version__},
        "command": "python benchmarks/implicit_reparam.py " + " ".join(sys.argv[1:]),
        "num_samples": args.num_samples,
        "repeats": args.repeats,
        "throughput": throughput(args.num_samples, args.repeats, modes, load_log),
    }
    if args.scaling:
        results["scaling"] = scaling(args.repeats, args.sizes, load_log)
    results["machine"] = machine_record(args, load_log)
    if not args.throughput_only:
        results["von_mises_accuracy"] = von_mises_accuracy()
        results["gamma_accuracy"] = gamma_accuracy()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=1)
    print("wrote", args.output)


if __name__ == "__main__":
    main()
