"""Benchmark of tfbayes.distributions.TRIP.

Three parts, each writing its own key of ``benchmarks/results/trip.json``:

* ``speed``: ``log_prob`` and its gradient at the paper's GAN configuration
  (m=128, d=10, r=40, B=256, float32, XLA), against a straightforward
  einsum chain (no rescaling) in the same process: median wall time of several
  interleaved runs, their ratio, and peak allocator memory.
* ``memory``: peak allocator memory of the gradient of ``log_prob`` versus m
  (d=10, r=40, B=256), with a least-squares line through it.
* ``vae``: an MLP VAE on (stochastically binarised) Fashion-MNIST with prior
  N(0, I) versus a trainable TRIP prior, same encoder/decoder, epochs and
  seed: test ELBO and an importance-weighted log-likelihood estimate (IWAE
  bound with K samples), in nats per image.

Usage (2 shared CPU cores: run the VAE part in the background):

    python benchmarks/trip.py speed memory
    nohup nice -n 10 python benchmarks/trip.py vae > /tmp/trip_vae.log 2>&1 &

Peak memory is TF's CPU allocator peak (``tf.config.experimental.get_memory_info``),
which counts XLA's temporary buffers; it excludes the compiled code itself.
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from tfbayes.datasets import load_fashion_mnist  # noqa: E402
from tfbayes.distributions import TRIP  # noqa: E402
from tfbayes.layers import TRIPPrior  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "trip.json"


def einsum_chain_log_prob(x, locs, scales, cores):
    """The straightforward formula: densities, one einsum per dimension, no rescaling."""
    densities = tf.exp(-0.5 * tf.square((x[..., None] - locs) / scales)) / (
        scales * np.sqrt(2 * np.pi).astype(x.dtype.as_numpy_dtype)
    )
    matrices = tf.unstack(tf.einsum("bkd,kdij->bkij", densities, cores), axis=1)
    sums = tf.unstack(tf.reduce_sum(cores, axis=1))
    product, normalizer = matrices[0], sums[0]
    for k in range(1, cores.shape[0]):
        product = tf.einsum("bij,bjk->bik", product, matrices[k])
        normalizer = tf.einsum("ij,jk->ik", normalizer, sums[k])
    return tf.math.log(tf.linalg.trace(product)) - tf.math.log(tf.linalg.trace(normalizer))


def trip_log_prob(x, locs, scales, cores):
    return TRIP(locs, scales, cores).log_prob(x)


def gradient_of(log_prob_fn):
    def gradient(x, locs, scales, cores):
        with tf.GradientTape() as tape:
            tape.watch([locs, scales, cores])
            value = tf.reduce_sum(log_prob_fn(x, locs, scales, cores))
        return tape.gradient(value, [locs, scales, cores])

    return gradient


def problem(m, d=10, r=40, batch=256, seed=0):
    rng = np.random.default_rng(seed)
    return [
        tf.constant(a.astype(np.float32))
        for a in (
            rng.normal(size=(batch, m)),
            rng.normal(size=(m, d)),
            rng.uniform(0.5, 1.5, size=(m, d)),
            rng.uniform(size=(m, d, r, r)),
        )
    ]


def timed(fn, args):
    """(wall seconds, process CPU seconds) of one call. On a shared machine the CPU
    time is the steadier figure: it is the work done, whatever the other jobs do."""
    start, start_cpu = time.perf_counter(), time.process_time()
    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    return time.perf_counter() - start, time.process_time() - start_cpu


def peak_bytes(fn, args):
    """Allocator peak above the memory in use before the (already compiled) call."""
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] - before


def run_speed(repeats):
    args = problem(m=128)
    out = {
        "config": dict(
            m=128, d=10, r=40, batch=256, dtype="float32", jit_compile=True, repeats=repeats
        )
    }
    for what, make in (("log_prob", lambda f: f), ("gradient", gradient_of)):
        fns = {
            name: tf.function(make(f), jit_compile=True)
            for name, f in (("tfbayes", trip_log_prob), ("einsum_chain", einsum_chain_log_prob))
        }
        compile_s = {name: timed(fn, args)[0] for name, fn in fns.items()}
        times = {name: [] for name in fns}
        for _ in range(repeats):  # interleaved, to share the noise
            for name, fn in fns.items():
                times[name].append(timed(fn, args))
        entry = {}
        for name, fn in fns.items():
            result = fn(*args)
            finite = float(
                np.mean([np.mean(np.isfinite(t.numpy())) for t in tf.nest.flatten(result)])
            )
            wall, cpu = np.asarray(times[name]).T
            entry[name] = dict(
                median_ms=1e3 * float(np.median(wall)),
                min_ms=1e3 * float(np.min(wall)),
                median_cpu_ms=1e3 * float(np.median(cpu)),
                first_call_s=compile_s[name],
                finite_fraction=finite,
                peak_mib=peak_bytes(fn, args) / 2**20,
            )
        for key in ("median_ms", "median_cpu_ms"):
            entry[f"ratio_{key}_tfbayes_over_einsum"] = (
                entry["tfbayes"][key] / entry["einsum_chain"][key]
            )
        out[what] = entry
        print(what, json.dumps(entry, indent=1), flush=True)
    return out


def run_memory(dims):
    peaks = []
    for m in dims:
        args = problem(m=m)
        fn = tf.function(gradient_of(trip_log_prob), jit_compile=True)
        fn(*args)
        peaks.append(peak_bytes(fn, args) / 2**20)
        print(f"gradient peak memory m={m}: {peaks[-1]:.1f} MiB", flush=True)
    slope, intercept = np.polyfit(dims, peaks, 1)
    fitted = slope * np.asarray(dims) + intercept
    return dict(
        config=dict(d=10, r=40, batch=256, dtype="float32", jit_compile=True),
        m=list(dims),
        gradient_peak_mib=peaks,
        linear_fit_mib_per_dim=float(slope),
        linear_fit_intercept_mib=float(intercept),
        linear_fit_max_relative_residual=float(np.max(np.abs(fitted - peaks) / peaks)),
    )


# ----------------------------------------------------------------------------- VAE
def binarized_fashion_mnist(seed):
    (x_train, _), (x_test, _) = load_fashion_mnist()
    rng = np.random.default_rng(seed)
    binarize = lambda x: (rng.uniform(size=x.shape) < x / 255.0).astype(np.float32)  # noqa: E731
    return binarize(x_train.reshape(-1, 784)), binarize(x_test.reshape(-1, 784))


class VAE:
    """MLP VAE: q(z|x) 784-512-256-(2m) Gaussian, p(x|z) m-256-512-784 Bernoulli.

    ``prior`` is None for N(0, I), or a :class:`TRIPPrior`.
    """

    def __init__(self, latent_dim, seed):
        import keras

        keras.utils.set_random_seed(seed)
        self.latent_dim = latent_dim
        self.encoder = keras.Sequential(
            [
                keras.Input((784,)),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(2 * latent_dim),
            ]
        )
        self.decoder = keras.Sequential(
            [
                keras.Input((latent_dim,)),
                keras.layers.Dense(256, activation="relu"),
                keras.layers.Dense(512, activation="relu"),
                keras.layers.Dense(784),
            ]
        )
        self.prior = None

    def trainable_weights(self):
        prior = [] if self.prior is None else self.prior.trainable_weights
        return self.encoder.trainable_weights + self.decoder.trainable_weights + prior

    def log_prior(self, z):
        if self.prior is None:
            return tf.reduce_sum(-0.5 * tf.square(z) - 0.5 * np.log(2 * np.pi), axis=-1)
        return self.prior(z)

    def log_weights(self, x, num_samples, seed):
        """``log p(x, z) + log p(z) - log q(z | x)`` for ``num_samples`` z per image: [K, B]."""
        stats = self.encoder(x)
        mean = stats[:, : self.latent_dim]
        log_std = tf.clip_by_value(stats[:, self.latent_dim :], -8.0, 4.0)
        eps = tf.random.stateless_normal(tf.concat([[num_samples], tf.shape(mean)], 0), seed=seed)
        z = mean + tf.exp(log_std) * eps
        log_q = tf.reduce_sum(-0.5 * tf.square(eps) - log_std - 0.5 * np.log(2 * np.pi), -1)
        logits = tf.reshape(
            self.decoder(tf.reshape(z, [-1, self.latent_dim])), [num_samples, -1, 784]
        )
        labels = tf.broadcast_to(x, tf.shape(logits))
        log_lik = -tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits), -1
        )
        return log_lik + self.log_prior(z) - log_q

    def posterior_samples(self, x, seed):
        """One ``z ~ q(z | x)`` per image: draws from the aggregate posterior."""
        stats = self.encoder(x)
        log_std = tf.clip_by_value(stats[:, self.latent_dim :], -8.0, 4.0)
        eps = tf.random.stateless_normal(tf.shape(log_std), seed=seed)
        return (stats[:, : self.latent_dim] + tf.exp(log_std) * eps).numpy()


def fit_prior(prior, codes, epochs=20, batch=500, learning_rate=0.03):
    """k-means initialisation, then maximum likelihood of the prior alone on fixed codes."""
    import keras

    prior.initialize_from_data(codes)
    inputs = keras.Input((codes.shape[1],))
    model = keras.Model(inputs, prior(inputs))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        jit_compile=True,
        loss=lambda _, log_prob: -log_prob,
    )
    model.fit(codes, np.zeros(len(codes)), batch_size=batch, epochs=epochs, verbose=0)


def make_train_step(vae):
    """A compiled Adam step on the single-sample negative ELBO of all current weights."""
    import keras

    optimizer = keras.optimizers.Adam(1e-3)
    variables = vae.trainable_weights()

    @tf.function(jit_compile=True)
    def train_step(x, seed):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(vae.log_weights(x, 1, seed))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return train_step


def make_bounds(vae, num_samples):
    """Per image: the ELBO (mean of K log-weights) and the IWAE bound (log-mean-exp)."""

    @tf.function(jit_compile=True)
    def bounds(x, seed):
        log_w = vae.log_weights(x, num_samples, seed)
        return (
            tf.reduce_mean(log_w, axis=0),
            tf.reduce_logsumexp(log_w, axis=0) - np.log(float(num_samples)),
        )

    return bounds


def run_vae(
    epochs, warmup_epochs, latent_dim, num_components, rank, iwae_samples, test_images, seed=0
):
    x_train, x_test = binarized_fashion_mnist(seed)
    x_test = x_test[:test_images]
    batch = 128
    out = dict(
        config=dict(
            latent_dim=latent_dim,
            epochs=epochs,
            batch=batch,
            optimizer="Adam(1e-3)",
            trip_num_components=num_components,
            trip_rank=rank,
            schedule=(
                f"both models train {warmup_epochs} epochs with N(0, I); then the TRIP "
                "model's prior is initialised by k-means of codes z ~ q(z|x) of 10k training "
                "images, fitted to them alone (20 epochs, Adam 0.03), then trained jointly; "
                "both models restart Adam at that point"
            ),
            iwae_samples=iwae_samples,
            test_images=int(len(x_test)),
            data="Fashion-MNIST, stochastically binarised once (seeded)",
        )
    )
    per_image = {}
    for name in ("gaussian", "trip"):
        vae = VAE(latent_dim, seed=seed)
        train_step = make_train_step(vae)
        rng = np.random.default_rng(seed)
        start = time.perf_counter()
        step = 0
        for epoch in range(epochs):
            if epoch == warmup_epochs:
                if name == "trip":
                    vae.prior = TRIPPrior(num_components=num_components, rank=rank)
                    fit_prior(vae.prior, vae.posterior_samples(x_train[:10000], [seed, -1]))
                train_step = make_train_step(vae)
            order = rng.permutation(len(x_train))
            losses = []
            for i in range(0, len(order) - batch + 1, batch):
                losses.append(
                    float(
                        train_step(
                            tf.constant(x_train[order[i : i + batch]]), tf.constant([seed, step])
                        )
                    )
                )
                step += 1
            print(
                f"{name} epoch {epoch + 1}/{epochs}: train -ELBO {np.mean(losses):.2f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
        train_s = time.perf_counter() - start
        bounds = make_bounds(vae, iwae_samples)
        elbos, iwaes = [], []
        for i in range(0, len(x_test), 100):
            elbo, iwae = bounds(tf.constant(x_test[i : i + 100]), tf.constant([seed + 1, i]))
            elbos.append(elbo.numpy())
            iwaes.append(iwae.numpy())
        elbos, iwaes = np.concatenate(elbos), np.concatenate(iwaes)
        per_image[name] = dict(test_elbo=elbos, test_iwae=iwaes)
        out[name] = dict(
            test_elbo=float(elbos.mean()),
            test_elbo_se=float(elbos.std() / np.sqrt(len(elbos))),
            test_iwae=float(iwaes.mean()),
            test_iwae_se=float(iwaes.std() / np.sqrt(len(iwaes))),
            train_seconds=train_s,
        )
        print(name, out[name], flush=True)
    for key in ("test_elbo", "test_iwae"):
        # Paired over the same test images (and the same evaluation noise seeds).
        difference = per_image["trip"][key] - per_image["gaussian"][key]
        out[f"{key}_trip_minus_gaussian"] = float(difference.mean())
        out[f"{key}_trip_minus_gaussian_paired_se"] = float(
            difference.std() / np.sqrt(len(difference))
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", choices=["speed", "memory", "vae"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-dims", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--warmup-epochs", type=int, default=3)
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--num-components", type=int, default=10)
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--iwae-samples", type=int, default=100)
    parser.add_argument("--test-images", type=int, default=10000)
    args = parser.parse_args()
    machine = dict(
        platform=platform.platform(),
        processor=platform.processor(),
        cpu_count=os.cpu_count(),
        tensorflow=tf.__version__,
        note="2 CPU cores shared with other jobs; timings are noisy",
        load_average_1m_at_start=os.getloadavg()[0],
        niceness=os.nice(0),
    )
    for part in args.parts:
        if part == "speed":
            result = run_speed(args.repeats)
        elif part == "memory":
            result = run_memory(args.memory_dims)
        else:
            result = run_vae(
                args.epochs,
                args.warmup_epochs,
                args.latent_dim,
                args.num_components,
                args.rank,
                args.iwae_samples,
                args.test_images,
            )
        result["machine"] = machine
        result["command"] = "python benchmarks/trip.py " + " ".join(sys.argv[1:])
        # Re-read just before writing: the parts may run in separate processes.
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[part] = result
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
