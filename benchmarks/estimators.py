"""Monte Carlo gradient estimators: variance study and Bayesian logistic regression.

Two studies of Mohamed et al. 2020 (arXiv 1906.10652):

1. Section 3: for ``x ~ Normal(mu, sigma)`` and ``f`` in ``{x, x^2, exp(-x^2),
   cos x}``, the variance of one sample's gradient estimate with respect to
   ``mu`` and ``sigma`` for the score function (plain and with the delta-method
   control variate, optimal coefficient), pathwise and measure-valued
   (coupled) estimators, as ``mu`` varies (``sigma = 1``) and as ``sigma``
   varies (``mu = 0.5``). Measured by ``gradient_variance`` and compared
   with scipy quadrature (for the control variate: the oracle optimal
   coefficient, which the estimated one approaches from above).
2. Section 8.3's Bayesian logistic regression on scikit-learn's breast
   cancer data (569 x 30, standardized, 80/20 split, a bias column): prior
   ``N(0, I)``, mean-field Gaussian posterior, negative ELBO
   ``E_q[log q(w) - log p(w) - (n/B) sum_b log p(y_b | x_b, w)]``; batch 32,
   50 samples per step, Adam 1e-3 with cosine decay, 5000 steps. For each
   estimator, ours and TFP's ``tfp.vi`` SCORE_FUNCTION and REPARAMETERIZATION
   on the same objective: the gradient variance (averaged over the 62
   variational parameters, 50 repeats on a fixed batch) at checkpoints, the
   final ELBO (full data, 2000 samples) and the test accuracy of the
   posterior mean.

3. The cost of one gradient estimate on that model (loss and its gradient with
   respect to the 62 variational parameters, batch 32, 50 samples), ours
   against TFP's where both compute the same thing: ``score_function`` against
   ``tfp.vi`` SCORE_FUNCTION and ``pathwise`` against REPARAMETERIZATION, each
   compiled with ``tf.function``, with and without XLA. Medians of several
   runs and their ratio. This part times, so it follows the idle-machine rule
   of ``benchmarks/machine.py``: it refuses to run on a loaded machine unless
   ``--allow-load`` is given (which the JSON records). Run it alone with
   ``--timing-only``.

Parts 1 and 2 report no timings. Results go to
``benchmarks/results/estimators.json`` (each part writes its own key and keeps
the others) and a figure to ``benchmarks/results/estimators_section3.png``.

Usage::

    python benchmarks/estimators.py [--quick] [--steps N] [--skip-section3] [--skip-regression]
                                    [--estimators NAME ...] [--skip-timing]
    python benchmarks/estimators.py --timing-only [--max-load L | --allow-load]

The JSON is rewritten after each part (and after each estimator of part 2), so
an interrupted run keeps what it measured.
"""

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_probability as tfp  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import tfbayes.estimators as est  # noqa: E402
from tfbayes.estimators.quadrature import gaussian_estimator_variances  # noqa: E402
from machine import LoadLog, add_load_arguments, machine_record, require_idle  # noqa: E402

tfd = tfp.distributions
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

FUNCTIONS = {
    "x": (lambda x: x, lambda x: x, lambda x: 1.0 + 0 * x, lambda x: 0.0 * x),
    "x^2": (lambda x: x**2, lambda x: x**2, lambda x: 2 * x, lambda x: 2.0 + 0 * x),
    "exp(-x^2)": (
        lambda x: tf.exp(-(x**2)),
        lambda x: np.exp(-(x**2)),
        lambda x: -2 * x * np.exp(-(x**2)),
        lambda x: (4 * x**2 - 2) * np.exp(-(x**2)),
    ),
    "cos(x)": (tf.cos, np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x)),
}


# ---------------------------------------------------------------- Section 3 quadrature


def quadrature_variances(name, mu, sigma):
    """Per-sample gradient variances ``{estimator: (d mu, d sigma)}`` by numerical integration."""
    _, h, dh, d2h = FUNCTIONS[name]
    return gaussian_estimator_variances(h, dh, mu, sigma, d2h=d2h)


def section3(quick):
    mus = [-1.0, 0.0, 0.5, 1.0, 2.0] if not quick else [0.0, 1.0]
    sigmas = [0.25, 0.5, 1.0, 1.5, 2.0] if not quick else [0.5, 1.5]
    repeats, samples = (400, 10) if not quick else (60, 10)
    estimators = {
        "score_function": (est.score_function, {}),
        "score_function+delta": (
            est.score_function,
            {"control_variate": "delta", "coefficient": "optimal", "num_coefficient_samples": 50},
        ),
        "pathwise": (est.pathwise, {}),
        "measure_valued": (est.measure_valued, {}),
    }
    rows = []
    points = [(m, 1.0, "mu") for m in mus] + [(0.5, s, "sigma") for s in sigmas]
    for name in FUNCTIONS:
        tf_h = FUNCTIONS[name][0]

        def f(x, tf_h=tf_h):
            return tf.reduce_sum(tf_h(x), -1)

        for mu, sigma, axis in points:
            reference = quadrature_variances(name, mu, sigma)
            params = [tf.constant([mu], tf.float64), tf.constant([sigma], tf.float64)]
            for label, (estimator, options) in estimators.items():
                stats = est.gradient_variance(
                    estimator,
                    f,
                    tfd.Normal(*params),
                    samples,
                    repeats,
                    seed=17,
                    parameters=params,
                    **options,
                )
                measured = [float(v.numpy()[0]) * samples for v in stats.variance]
                rows.append(
                    {
                        "f": name,
                        "varied": axis,
                        "mu": mu,
                        "sigma": sigma,
                        "estimator": label,
                        "variance_mu": measured[0],
                        "variance_sigma": measured[1],
                        "quadrature_mu": reference[label][0],
                        "quadrature_sigma": reference[label][1],
                        "cost_per_sample": stats.cost / samples,
                    }
                )
    return rows


def plot_section3(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(FUNCTIONS)
    fig, axes = plt.subplots(4, 4, figsize=(16, 13))
    for i, name in enumerate(names):
        for j, (axis, param) in enumerate(
            [("mu", "mu"), ("mu", "sigma"), ("sigma", "mu"), ("sigma", "sigma")]
        ):
            ax = axes[i, j]
            for label in ("score_function", "score_function+delta", "pathwise", "measure_valued"):
                sel = [
                    r
                    for r in rows
                    if r["f"] == name and r["varied"] == axis and r["estimator"] == label
                ]
                xs = [r[axis] for r in sel]
                (line,) = ax.plot(xs, [r["variance_" + param] for r in sel], "o", label=label)
                ax.plot(xs, [r["quadrature_" + param] for r in sel], "-", color=line.get_color())
            ax.set_yscale("symlog", linthresh=1e-4)
            ax.set_title(f"f = {name}: Var d/d{param}, varying {axis}", fontsize=9)
            ax.set_xlabel(axis)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Per-sample gradient variance: markers measured, lines numerical integration")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


# ---------------------------------------------------------------- logistic regression


def load_breast_cancer(seed=0):
    from sklearn.datasets import load_breast_cancer as load

    data = load()
    x, y = data.data.astype(np.float64), data.target.astype(np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    split = int(0.8 * len(y))
    mean, std = x[:split].mean(0), x[:split].std(0)
    x = np.concatenate([(x - mean) / std, np.ones((len(y), 1))], 1)
    return (x[:split], y[:split]), (x[split:], y[split:])


class LogisticRegressionVI:
    """Mean-field Gaussian posterior over the weights; the negative ELBO as ``E_q[f]``."""

    def __init__(self, x_train, y_train, dtype=tf.float32):
        self.x = tf.constant(x_train, dtype)
        self.y = tf.constant(y_train, dtype)
        self.n, dim = x_train.shape
        self.mu = tf.Variable(tf.zeros([dim], dtype))
        self.rho = tf.Variable(tf.fill([dim], tf.constant(-3.0, dtype)))
        self.prior = tfd.Normal(tf.zeros([dim], dtype), tf.ones([dim], dtype))

    def q(self):
        return tfd.Normal(self.mu, tf.nn.softplus(self.rho))

    def target(self, w, xb, yb):
        """``log p(w) + (n / B) sum_b log p(y_b | x_b, w)`` for ``w`` of shape ``[S, D]``."""
        logits = tf.linalg.matmul(w, xb, transpose_b=True)
        loglik = -tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.broadcast_to(yb, tf.shape(logits)), logits=logits
            ),
            -1,
        )
        scale = tf.cast(self.n, w.dtype) / tf.cast(tf.shape(xb)[0], w.dtype)
        return tf.reduce_sum(self.prior.log_prob(w), -1) + scale * loglik

    def objective(self, xb, yb):
        """``f(w) = log q(w) - target(w)``; ``q``'s parameters enter ``f`` too."""

        def f(w):
            return tf.reduce_sum(self.q().log_prob(w), -1) - self.target(w, xb, yb)

        return f


def tfp_estimator(model, xb, yb, kind):
    """TFP's ``monte_carlo_variational_loss`` on the same objective, in our signature."""

    def estimator(f, dist, num_samples, seed=None):
        del f
        posterior = tfd.Independent(dist, 1)
        return tfp.vi.monte_carlo_variational_loss(
            lambda w: model.target(w, xb, yb),
            posterior,
            sample_size=num_samples,
            gradient_estimator=kind,
            seed=seed,
        )

    return estimator


def estimators_for_regression(model, xb, yb):
    gradient_estimators = tfp.vi.GradientEstimators
    return {
        "tfp SCORE_FUNCTION": (
            tfp_estimator(model, xb, yb, gradient_estimators.SCORE_FUNCTION),
            {},
        ),
        "tfp REPARAMETERIZATION": (
            tfp_estimator(model, xb, yb, gradient_estimators.REPARAMETERIZATION),
            {},
        ),
        "score_function": (est.score_function, {}),
        "score_function+leave_one_out": (est.score_function, {"baseline": "leave_one_out"}),
        "score_function+delta(optimal)": (
            est.score_function,
            {"control_variate": "delta", "coefficient": "optimal"},
        ),
        "score_function+leave_one_out+delta(optimal)": (
            est.score_function,
            {"baseline": "leave_one_out", "control_variate": "delta", "coefficient": "optimal"},
        ),
        "pathwise": (est.pathwise, {}),
        "pathwise+delta(optimal)": (
            est.pathwise,
            {"control_variate": "delta", "coefficient": "optimal"},
        ),
        "measure_valued": (est.measure_valued, {}),
    }


def gradient_variance_now(model, estimator, options, xb, yb, samples, repeats, seed):
    stats = est.gradient_variance(
        estimator,
        model.objective(xb, yb),
        model.q(),
        samples,
        repeats,
        seed=seed,
        parameters=[model.mu, model.rho],
        jit_compile=True,
        **options,
    )
    return float(np.mean([np.mean(v.numpy()) for v in stats.variance])), stats.cost


def train(name, make_estimator, data, steps, quick, samples=50, batch=32, seed=0):
    (x_train, y_train), (x_test, y_test) = data
    model = LogisticRegressionVI(x_train, y_train)
    import keras

    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-3, steps))
    dataset = (
        tf.data.Dataset.from_tensor_slices((x_train.astype(np.float32), y_train.astype(np.float32)))
        .shuffle(len(y_train), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch, drop_remainder=True)
    )
    fixed_x, fixed_y = (
        tf.constant(x_train[:batch], tf.float32),
        tf.constant(y_train[:batch], tf.float32),
    )

    @tf.function(jit_compile=True)
    def step(xb, yb, step_seed):
        estimator, options = make_estimator(model, xb, yb)
        with tf.GradientTape() as tape:
            loss = estimator(model.objective(xb, yb), model.q(), samples, seed=step_seed, **options)
        grads = tape.gradient(loss, [model.mu, model.rho])
        optimizer.apply_gradients(zip(grads, [model.mu, model.rho]))
        return loss

    start = time.time()
    checkpoints = sorted({0, steps // 4, steps // 2, 3 * steps // 4, steps - 1})
    variances, cost = [], None
    repeats = 50 if not quick else 20
    for i, (xb, yb) in enumerate(dataset.take(steps)):
        if i in checkpoints:
            estimator, options = make_estimator(model, fixed_x, fixed_y)
            variance, cost = gradient_variance_now(
                model, estimator, options, fixed_x, fixed_y, samples, repeats, seed=1000 + i
            )
            variances.append({"step": i, "mean_gradient_variance": variance})
        step(xb, yb, tf.constant([seed, i]))
        if (i + 1) % 500 == 0:
            print(
                f"    {name}: {i + 1}/{steps} steps, {time.time() - start:.0f} s wall", flush=True
            )
    # Final ELBO on the full training set, and test accuracy of the posterior mean.
    w = model.q().sample(2000, seed=[9, 9])
    full = tf.constant(x_train, tf.float32), tf.constant(y_train, tf.float32)
    elbo = -float(tf.reduce_mean(model.objective(*full)(w)).numpy())
    logits = x_test @ model.mu.numpy().astype(np.float64)
    accuracy = float(np.mean((logits > 0) == (y_test > 0.5)))
    return {
        "estimator": name,
        "gradient_variance": variances,
        "final_elbo": elbo,
        "test_accuracy": accuracy,
        "evaluations_of_f_per_estimate": cost,
    }


def logistic_regression(quick, steps, save, names=None, results=()):
    """Trains with each estimator in ``names`` (default all); ``results`` are kept, by name."""
    data = load_breast_cancer()
    names = names or list(estimators_for_regression(None, None, None))
    results = [r for r in results if r["estimator"] not in names]
    for name in names:

        def make(model, xb, yb, name=name):
            return estimators_for_regression(model, xb, yb)[name]

        start = time.time()
        result = train(name, make, data, steps, quick)
        result["steps"] = steps
        results.append(result)
        save(results)
        final_variance = result["gradient_variance"][-1]["mean_gradient_variance"]
        print(
            f"  {name:45s} var@end {final_variance:.3g}"
            f"  ELBO {result['final_elbo']:.2f}  test acc {result['test_accuracy']:.3f}"
            f"  ({time.time() - start:.0f} s wall, not a timing)",
            flush=True,
        )
    return results


# ---------------------------------------------------------------- cost per estimate

TIMED_PAIRS = (("score_function", "tfp SCORE_FUNCTION"), ("pathwise", "tfp REPARAMETERIZATION"))


def time_gradient_step(name, jit_compile, runs, calls, samples=50, batch=32, log=None):
    """Median seconds per gradient estimate of one estimator, over ``runs`` runs of ``calls``."""
    (x_train, y_train), _ = load_breast_cancer()
    model = LogisticRegressionVI(x_train, y_train)
    xb = tf.constant(x_train[:batch], tf.float32)
    yb = tf.constant(y_train[:batch], tf.float32)
    estimator, options = estimators_for_regression(model, xb, yb)[name]

    @tf.function(jit_compile=jit_compile)
    def gradient(step_seed):
        with tf.GradientTape() as tape:
            loss = estimator(model.objective(xb, yb), model.q(), samples, seed=step_seed, **options)
        return tape.gradient(loss, [model.mu, model.rho])

    seeds = [tf.constant([7, i]) for i in range(calls)]
    for g in gradient(seeds[0]):  # compile and warm up outside the timed blocks
        g.numpy()
    times = []
    for run in range(runs):
        with log.block(f"{name}, jit_compile={jit_compile}, run {run}"):
            start = time.perf_counter()
            for s in seeds:
                out = gradient(s)
            for g in out:
                g.numpy()
            times.append((time.perf_counter() - start) / calls)
    return float(np.median(times)), times


def timing(args):
    """Ours against TFP, per gradient estimate; the ratio of medians, ours / TFP."""
    require_idle(args)
    log = LoadLog()
    rows = []
    for jit_compile in (False, True):
        for ours, theirs in TIMED_PAIRS:
            measured = {
                n: time_gradient_step(n, jit_compile, args.timing_runs, args.timing_calls, log=log)
                for n in (ours, theirs)
            }
            row = {
                "ours": ours,
                "tfp": theirs,
                "jit_compile": jit_compile,
                "seconds_ours": measured[ours][0],
                "seconds_tfp": measured[theirs][0],
                "runs_ours": measured[ours][1],
                "runs_tfp": measured[theirs][1],
                "ratio_ours_over_tfp": measured[ours][0] / measured[theirs][0],
            }
            rows.append(row)
            print(
                f"  jit_compile={jit_compile!s:5s} {ours:15s} {row['seconds_ours'] * 1e3:.3f} ms"
                f"  {theirs:22s} {row['seconds_tfp'] * 1e3:.3f} ms"
                f"  ratio {row['ratio_ours_over_tfp']:.3f}",
                flush=True,
            )
    return {
        "what": "median seconds per gradient estimate (loss and gradient w.r.t. the 62 "
        "variational parameters; batch 32, 50 samples; tf.function)",
        "runs": args.timing_runs,
        "calls_per_run": args.timing_calls,
        "rows": rows,
        "machine": machine_record(args, log),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids and 300 steps")
    parser.add_argument(
        "--steps", type=int, default=None, help="training steps (default 5000, 300 with --quick)"
    )
    parser.add_argument("--skip-section3", action="store_true")
    parser.add_argument("--skip-regression", action="store_true")
    parser.add_argument(
        "--estimators",
        nargs="+",
        default=None,
        metavar="NAME",
        choices=list(estimators_for_regression(None, None, None)),
        help="train only these estimators in part 2 (the others' results kept)",
    )
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--timing-only",
        action="store_true",
        help="only part 3, the cost per gradient estimate against TFP",
    )
    parser.add_argument("--timing-runs", type=int, default=7, help="timed runs (median)")
    parser.add_argument(
        "--timing-calls", type=int, default=200, help="gradient estimates per timed run"
    )
    add_load_arguments(parser)
    args = parser.parse_args()
    steps = args.steps or (300 if args.quick else 5000)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "estimators_quick.json" if args.quick else "estimators.json")
    output = {}
    if os.path.exists(path):
        with open(path) as handle:
            output = json.load(handle)

    def write():
        with open(path, "w") as handle:
            json.dump(output, handle, indent=1)

    if args.timing_only:
        args.skip_section3 = args.skip_regression = True
    if not args.skip_section3:
        print("Section 3 variance study", flush=True)
        rows = section3(args.quick)
        for r in rows:
            print(
                f"  {r['f']:10s} mu={r['mu']:5.2f} sigma={r['sigma']:4.2f} "
                f"{r['estimator']:22s} var_mu {r['variance_mu']:.4g} "
                f"(quad {r['quadrature_mu']:.4g})  var_sigma {r['variance_sigma']:.4g} "
                f"(quad {r['quadrature_sigma']:.4g})"
            )
        output["quick"] = args.quick
        output["section3"] = rows
        write()
        plot_section3(rows, os.path.join(RESULTS, "estimators_section3.png"))
    if not args.skip_regression:
        print("Bayesian logistic regression (breast cancer)", flush=True)
        output.pop("logistic_regression_note", None)

        def save(results):
            output["logistic_regression"] = results
            write()

        output["logistic_regression"] = logistic_regression(
            args.quick, steps, save, args.estimators, output.get("logistic_regression", ())
        )
        by_name = {r["estimator"]: r for r in output["logistic_regression"]}
        tfp_sf = by_name.get("tfp SCORE_FUNCTION")
        ours = by_name.get("score_function+leave_one_out+delta(optimal)")
        if tfp_sf and ours and tfp_sf["steps"] == ours["steps"]:
            ratio = [
                a["mean_gradient_variance"] / b["mean_gradient_variance"]
                for a, b in zip(tfp_sf["gradient_variance"], ours["gradient_variance"])
            ]
            output["variance_ratio_tfp_score_function_over_ours_with_control_variates"] = ratio
            print(
                "TFP SCORE_FUNCTION variance / ours (leave-one-out + delta, optimal) at "
                "checkpoints:",
                np.round(ratio, 1),
            )
        write()
    if not args.skip_timing:
        print("Cost per gradient estimate, ours against TFP", flush=True)
        output["timing"] = timing(args)
        write()
    print("wrote", path)


if __name__ == "__main__":
    main()
