"""Benchmark of tfbayes.models.VAEAC: missing-value imputation on tables, and inpainting.

Two parts, each writing its own key of ``benchmarks/results/vaeac.json``:

* ``tables``: five tables with real and categorical columns: four that ship with scikit-learn
  (iris, wine and breast cancer with their class as a categorical column; diabetes with its sex
  column, which takes two values, as a categorical one) and the Palmer penguins that ship with the
  ``palmerpenguins`` package (four measurements, and species, island and sex as categorical
  columns, as the paper's mushroom data has categorical features). For each of 5 mask seeds,
  20 % of the entries are hidden completely at random; VAEAC and scikit-learn's imputers fill them in, side by
  side on the same masks: mean/mode, k-NN (``KNNImputer``), MICE (``IterativeImputer``) and a
  MissForest-style ``IterativeImputer`` with random forests. Metrics as the VAEAC reference's
  evaluator defines them: NRMSE per real column (RMSE over the hidden entries / the column's
  standard deviation), averaged over real columns, and PFC (the proportion of falsely classified
  hidden categories), averaged over categorical columns; mean ± std over the seeds. VAEAC's point
  imputation is the mean (real) or the mode (categorical) of 10 imputations drawn with
  ``most_probable=True``, as the reference does; its calibration is the share of hidden real
  entries that fall inside the central 90 % interval of 100 sampled imputations.
  scikit-learn's imputers see categories as numbers and their outputs are rounded to the nearest
  category. VAEAC trains under one of two protocols (``--protocol``): ``validation``, the
  reference's, holds out 25 % of the rows and keeps the checkpoint with the best validation loss;
  ``fixed`` trains on every row for ``--steps`` steps. Every row is then imputed. Results are kept
  per mask seed under ``tables_<protocol>``, so seeds can be added by later runs
  (``--first-seed``).
* ``inpainting``: Fashion-MNIST. One VAEAC (784 real features, width 256, 4 residual blocks, latent
  32, Adam 1e-3, batch 64, 3,000 steps on the 60,000 training images) trains on a 50/50 mix of
  rectangle and half-image masks (``MaskMixture``), as the paper mixes mask kinds. Pixels are
  dequantized, (uint8 + U(0, 1)) / 256, and kept on one [0, 1] scale. On the first 500 test images,
  each with one fixed seeded rectangle mask and one fixed seeded half mask, it reports the negative
  log-likelihood of the hidden pixels (IWAE, K = 100) in nats per image and per hidden pixel, and
  the mean squared error per hidden pixel of the point completion (the mean of 10 completions) and
  of the best of the 10. Baselines on the same masks: a Gaussian per pixel fitted on the training
  images (ignores the visible pixels), a full-covariance Gaussian conditioned on the visible
  pixels (exact NLL, completions are its samples) and k-NN (the 10 training images nearest on the
  visible pixels; no density). ``--conv`` gives the same model convolutional networks (a U-Net
  of 32 channels and one residual block per resolution). A picture of completions goes to
  ``benchmarks/results/vaeac_<key>.png``, named after the run's key in ``vaeac.json`` (e.g.
  ``vaeac_inpainting_nll_beta0.5_conv.png``).

The model follows the reference's imputation networks by default (width 256, 10 residual blocks,
latent 64, Adam 3e-4, batch 64, MCAR(0.2) training masks), trained for at most ``--steps``
optimizer steps; ``--width``, ``--depth`` and ``--latent-dim`` give a smaller configuration. One
difference: the reference fixes every real feature's Gaussian scale to 1 for tables (its loss is
then the squared error) and imputes the means, so its multiple imputations vary only through z;
here the scales are learned and imputations are sampled, which is what the coverage measures.

Usage (2 CPU cores):

    python benchmarks/vaeac.py tables [--quick] [--width 128 --depth 4 --latent-dim 32 --steps 3000]
        [--protocol validation|fixed] [--tables iris,wine --seeds 3 --first-seed 0]
    python benchmarks/vaeac.py inpainting [--quick] [--nll-beta 0.5] [--conv]
"""

import argparse
import csv
import importlib.util
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
import tfbayes  # noqa: E402, F401  (quiet TensorFlow start-up)
import keras  # noqa: E402
from sklearn import datasets as sk_datasets  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.experimental import enable_iterative_imputer  # noqa: E402, F401
from sklearn.impute import IterativeImputer, KNNImputer  # noqa: E402

from tfbayes.datasets import load_fashion_mnist  # noqa: E402
from tfbayes.models import (  # noqa: E402
    VAEAC,
    ImageHalfMask,
    ImageRectangleMask,
    MaskMixture,
    MCARMask,
)

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "vaeac.json"


def load_penguins():
    """The Palmer penguins (``palmerpenguins``'s bundled CSV, read without pandas): bill length,
    bill depth, flipper length and body mass as real columns, then species (3), island (3) and sex
    (2) as categorical ones; the 11 rows with a missing value are dropped (333 remain)."""
    spec = importlib.util.find_spec("palmerpenguins")
    if spec is None:
        raise SystemExit(
            "the penguins table needs the palmerpenguins package: pip install '.[examples]'"
        )
    path = pathlib.Path(spec.submodule_search_locations[0]) / "data" / "penguins.csv"
    with open(path, newline="") as f:
        records = [r for r in csv.DictReader(f) if "NA" not in r.values()]
    real = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    categorical = ["species", "island", "sex"]
    levels = {c: sorted({r[c] for r in records}) for c in categorical}
    rows = [
        [float(r[c]) for c in real] + [levels[c].index(r[c]) for c in categorical] for r in records
    ]
    return np.array(rows, np.float64), [0] * len(real) + [len(levels[c]) for c in categorical]


def load_tables():
    """``{name: (rows, one_hot_max_sizes)}``: real columns, then categorical ones."""
    tables = {"penguins": load_penguins()}
    for name, loader in [
        ("iris", sk_datasets.load_iris),
        ("wine", sk_datasets.load_wine),
        ("breast_cancer", sk_datasets.load_breast_cancer),
    ]:
        x, y = loader(return_X_y=True)
        tables[name] = (np.c_[x, y].astype(np.float64), [0] * x.shape[1] + [int(y.max()) + 1])
    x, y = sk_datasets.load_diabetes(return_X_y=True, scaled=False)
    sex = (x[:, 1] == x[:, 1].max()).astype(np.float64)
    tables["diabetes"] = (np.c_[np.delete(x, 1, axis=1), y, sex], [0] * 10 + [2])
    return tables


def nrmse_pfc(truth, imputed, hidden, sizes):
    """The reference evaluator's metrics: mean NRMSE over real columns, mean PFC over categorical."""
    nrmse, pfc = [], []
    for j, k in enumerate(sizes):
        rows = hidden[:, j]
        if not rows.any():
            continue
        if k <= 1:
            nrmse.append(
                np.sqrt(np.mean((imputed[rows, j] - truth[rows, j]) ** 2)) / truth[:, j].std()
            )
        else:
            pfc.append(np.mean(imputed[rows, j] != truth[rows, j]))
    return float(np.mean(nrmse)), float(np.mean(pfc))


def round_categories(imputed, sizes):
    out = imputed.copy()
    for j, k in enumerate(sizes):
        if k >= 2:
            out[:, j] = np.clip(np.round(out[:, j]), 0, k - 1)
    return out


def baseline_imputers(seed):
    return {
        "mean_mode": None,
        "knn": KNNImputer(n_neighbors=5),
        "mice": IterativeImputer(max_iter=10, random_state=seed, sample_posterior=False),
        "missforest": IterativeImputer(
            estimator=RandomForestRegressor(n_estimators=100, random_state=seed, n_jobs=2),
            max_iter=10,
            random_state=seed,
        ),
    }


def impute_baseline(name, imputer, corrupted, sizes):
    if name == "mean_mode":
        out = corrupted.copy()
        for j, k in enumerate(sizes):
            column = corrupted[:, j]
            present = column[~np.isnan(column)]
            fill = present.mean() if k <= 1 else np.bincount(present.astype(int)).argmax()
            out[np.isnan(column), j] = fill
        return out
    return round_categories(imputer.fit_transform(corrupted), sizes)


def train_vaeac(corrupted, sizes, steps, seed, network, protocol, patience_steps=300):
    """Trains on the table with its missing values. ``protocol="fixed"``: all rows for ``steps``
    optimizer steps. ``protocol="validation"`` (the reference's): 25 % of the rows held out, at
    most ``steps`` steps on the rest, and the weights of the epoch with the best validation loss
    (the negative lower bound under fresh masks) kept, stopping after ``patience_steps`` steps
    without improvement. Returns the model and the number of epochs it was trained for."""
    keras.utils.set_random_seed(seed)
    model = VAEAC(sizes, mask_generator=MCARMask(0.2), seed=seed, **network)
    model.compile(keras.optimizers.Adam(3e-4), jit_compile=True)
    rows = corrupted.astype(np.float32)
    if protocol == "fixed":
        epochs = max(1, steps // int(np.ceil(len(rows) / 64)))
        model.fit(rows, batch_size=64, epochs=epochs, verbose=0)
        return model, epochs
    order = np.random.default_rng(seed).permutation(len(rows))
    held_out = rows[order[: int(np.ceil(0.25 * len(rows)))]]
    train = rows[order[len(held_out) :]]
    model.adapt(rows)
    batches_per_epoch = int(np.ceil(len(train) / 64))
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss",
        restore_best_weights=True,
        patience=int(np.ceil(patience_steps / batches_per_epoch)),
    )
    history = model.fit(
        train,
        batch_size=64,
        epochs=max(1, steps // batches_per_epoch),
        validation_data=(held_out,),
        callbacks=[stop],
        verbose=0,
    )
    return model, int(np.argmin(history.history["val_loss"])) + 1


def point_imputation(model, corrupted, sizes, seed):
    draws = model.impute(corrupted, num_imputations=10, most_probable=True, seed=seed)
    out = draws.mean(axis=1)
    for j, k in enumerate(sizes):
        if k >= 2:
            out[:, j] = np.apply_along_axis(
                lambda v: np.bincount(v.astype(int), minlength=k).argmax(), 1, draws[:, :, j]
            )
    return out


def coverage_90(model, corrupted, truth, hidden, sizes, seed):
    draws = model.impute(corrupted, num_imputations=100, seed=seed + 1000)
    low, high = np.quantile(draws, 0.05, axis=1), np.quantile(draws, 0.95, axis=1)
    real = np.array([k <= 1 for k in sizes])
    scored = hidden & real[None, :]
    inside = (truth >= low) & (truth <= high)
    return float(inside[scored].mean())


def summarize(per_seed):
    """Mean ± std over the mask seeds of each method's metrics: ``{method: {metric: [mean, std]}}``."""
    summary = {}
    for method in next(iter(per_seed.values())):
        records = [per_seed[seed][method] for seed in sorted(per_seed)]
        summary[method] = {
            key: [
                float(np.mean([r[key] for r in records])),
                float(np.std([r[key] for r in records])),
            ]
            for key in records[0]
            if key != "seconds"
        }
    return summary


def stored_baselines(results):
    """``{(table, seed): {method: record}}``: the baselines' records of every stored table run.

    The masks depend only on the table and the seed, and the baselines are seeded by it too, so a
    run with other VAEAC settings (``--nll-beta``, ``--protocol``) reuses them instead of refitting.
    """
    found = {}
    for key, run in results.items():
        if key.startswith("tables") and not key.endswith("_quick"):
            for name, table in run.get("tables", {}).items():
                for seed, record in table.get("seeds", {}).items():
                    found[(name, int(seed))] = {m: r for m, r in record.items() if m != "vaeac"}
    return found


def run_tables(
    quick, network, steps, protocol, stored, save, names=None, seeds=range(5), baselines=None
):
    """Runs every method on each table and mask seed; adds per-seed records to ``stored`` (the
    results of earlier runs with the same protocol, so that seeds can be run in parts). The
    baselines' records are taken from ``baselines`` (see ``stored_baselines``) where present."""
    seeds = [0, 1] if quick else list(seeds)
    steps = 600 if quick else steps
    results = {
        "protocol": protocol,
        "steps": steps,
        "mcar_rate": 0.2,
        "network": network,
        "optimizer": "Adam 3e-4, batch 64",
        "tables": stored.get("tables", {}),
    }
    for name, (truth, sizes) in load_tables().items():
        if names and name not in names:
            continue
        table = results["tables"].setdefault(name, {})
        table.update(rows=int(truth.shape[0]), one_hot_max_sizes=sizes)
        per_seed = table.setdefault("seeds", {})
        for seed in seeds:
            rng = np.random.default_rng(seed)
            hidden = rng.random(truth.shape) < 0.2
            corrupted = np.where(hidden, np.nan, truth)
            record = dict((baselines or {}).get((name, seed), {}))
            for method, imputer in baseline_imputers(seed).items():
                if method in record:
                    continue
                start = time.time()
                imputed = impute_baseline(method, imputer, corrupted, sizes)
                nrmse, pfc = nrmse_pfc(truth, imputed, hidden, sizes)
                record[method] = {"nrmse": nrmse, "pfc": pfc, "seconds": time.time() - start}
            start = time.time()
            model, epochs = train_vaeac(corrupted, sizes, steps, seed, network, protocol)
            nrmse, pfc = nrmse_pfc(
                truth, point_imputation(model, corrupted, sizes, seed), hidden, sizes
            )
            record["vaeac"] = {
                "nrmse": nrmse,
                "pfc": pfc,
                "coverage_90": coverage_90(model, corrupted, truth, hidden, sizes, seed),
                "epochs": epochs,
                "seconds": time.time() - start,
            }
            per_seed[str(seed)] = record
            table["summary"] = summarize(per_seed)
            print(
                name,
                seed,
                {
                    m: {k: round(v, 4) for k, v in r.items() if k != "seconds"}
                    for m, r in record.items()
                },
                flush=True,
            )
            save(results)
    return results


# The inpainting model and its budget (full mode; --quick shrinks steps and data).
INPAINTING = dict(
    width=256,
    depth=4,
    latent_dim=32,
    min_scale=1e-3,
    nll_beta=0.0,
    image_shape=None,
    steps=3000,
    batch=64,
    lr=1e-3,
)
# --conv: convolutional networks (a U-Net of 32 channels, one residual block per resolution).
INPAINTING_CONV = dict(INPAINTING, width=32, depth=1, image_shape=(28, 28))
INPAINTING_MASKS = {"rectangle": ImageRectangleMask((28, 28)), "half": ImageHalfMask((28, 28))}


def dequantize(images, rng):
    """uint8 images ``[n, 28, 28]`` to rows ``[n, 784]`` of (pixel + u) / 256, u ~ U(0, 1): a
    density on these values, minus log 256 per pixel, bounds the log-probability of the 8-bit
    pixels from below (Jensen), so the NLLs of all methods are comparable and bounded."""
    images = images.reshape(len(images), -1).astype(np.float64)
    return (images + rng.random(images.shape)) / 256


def train_inpainter(x_train, steps, seed, network=INPAINTING):
    """VAEAC on 784 real features, trained on a 50/50 mix of rectangle and half-image masks;
    pixels keep their [0, 1] scale (one scale for all pixels: per-pixel standardisation would blow
    the rare bright pixels of the nearly always black border up to hundreds of units). Every pass
    over the data draws fresh dequantization noise."""
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = VAEAC(
        [0] * 784,
        latent_dim=network["latent_dim"],
        width=network["width"],
        depth=network["depth"],
        min_scale=network["min_scale"],
        nll_beta=network["nll_beta"],
        image_shape=network["image_shape"],
        mask_generator=MaskMixture(list(INPAINTING_MASKS.values())),
        normalization="none",
        seed=seed,
    )
    model.compile(keras.optimizers.Adam(network["lr"]), jit_compile=True)
    images = tf.data.Dataset.from_tensor_slices(x_train.reshape(len(x_train), 784))
    data = (
        images.shuffle(len(x_train), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(network["batch"], drop_remainder=True)
        .map(lambda b: (tf.cast(b, tf.float32) + tf.random.uniform(tf.shape(b))) / 256)
    )
    start = time.time()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return model, time.time() - start


def pixel_gaussian_conditional(mean, var, x, hidden):
    """The per-pixel Gaussian ignores the observed pixels: mean image and variances."""
    return mean[hidden], np.diag(var[hidden])


def full_gaussian_conditional(mean, cov, x, hidden):
    """Conditional of a full-covariance Gaussian: μ_h + Σ_ho Σ_oo⁻¹ (x_o − μ_o),
    Σ_hh − Σ_ho Σ_oo⁻¹ Σ_oh."""
    import scipy.linalg

    o = ~hidden
    factor = scipy.linalg.cho_factor(cov[np.ix_(o, o)])
    gain = scipy.linalg.cho_solve(factor, cov[np.ix_(o, hidden)]).T
    return (
        mean[hidden] + gain @ (x[o] - mean[o]),
        cov[np.ix_(hidden, hidden)] - gain @ cov[np.ix_(o, hidden)],
    )


def gaussian_inpaint(conditional, params, x_test, masks, num_draws, rng):
    """Per image: log p(x_h | x_o), the conditional mean and ``num_draws`` samples (a Gaussian
    has no latent; its completions are samples)."""
    import scipy.stats

    log_lik, point, draws = [], x_test.copy(), np.repeat(x_test[:, None], num_draws, 1)
    for i, (x, hidden) in enumerate(zip(x_test, masks)):
        mu, cov = conditional(*params, x, hidden)
        log_lik.append(scipy.stats.multivariate_normal(mu, cov).logpdf(x[hidden]))
        point[i, hidden] = mu
        draws[i][:, hidden] = rng.multivariate_normal(mu, cov, num_draws, method="cholesky")
    return np.array(log_lik), point, draws


def knn_inpaint(x_train, x_test, masks, k):
    """The k training images nearest on the observed pixels; their hidden pixels are the k
    completions, their mean the point completion."""
    draws = np.repeat(x_test[:, None], k, 1)
    sq_train = (x_train**2).T
    for start in range(0, len(x_test), 100):
        observed = ~masks[start : start + 100]
        x = x_test[start : start + 100] * observed
        distance = observed @ sq_train - 2 * x @ x_train.T  # + |x_o|², the same for every image
        nearest = np.argpartition(distance, k, axis=1)[:, :k]
        for i, rows in enumerate(nearest, start):
            draws[i][:, masks[i]] = x_train[rows][:, masks[i]]
    return draws.mean(1), draws


def inpainting_scores(x_test, masks, log_lik, point, draws):
    """NLL of the hidden pixels (nats per image and per hidden pixel, on [0, 1] pixel values),
    and the squared errors per hidden pixel of the point completion and of the best of k."""
    hidden = masks.sum(1)
    scores = {}
    if log_lik is not None:
        scores["nll_per_image"] = float(-log_lik.mean())
        scores["nll_per_hidden_pixel"] = float(-log_lik.sum() / hidden.sum())
    scores["mse_point"] = float(((point - x_test) ** 2 * masks).sum() / hidden.sum())
    per_draw = ((draws - x_test[:, None]) ** 2 * masks[:, None]).sum(2) / hidden[:, None]
    scores["mse_best_of_k"] = float(np.mean(per_draw.min(1)))
    return scores


def run_inpainting(quick, nll_beta, conv, picture):
    import tensorflow as tf

    network = dict(INPAINTING_CONV if conv else INPAINTING, nll_beta=nll_beta)

    (train_images, _), (test_images, _) = load_fashion_mnist(allow_download=True)
    n_train, n_test, steps, iwae_k, k = (
        (5000, 100, 300, 20, 10) if quick else (60000, 500, INPAINTING["steps"], 100, 10)
    )
    rng = np.random.default_rng(0)
    x_train = dequantize(train_images[:n_train], rng)
    x_test = dequantize(test_images[:n_test], rng)
    model, seconds = train_inpainter(train_images[:n_train], steps, seed=0, network=network)
    mean, cov = x_train.mean(0), np.cov(x_train, rowvar=False)
    results = {
        "network": {key: v for key, v in network.items() if key != "steps"},
        "steps": steps,
        "train_images": n_train,
        "test_images": n_test,
        "iwae_samples": iwae_k,
        "completions": k,
        "train_seconds": seconds,
        "training_masks": "rectangle or half, 1/2 each",
        "pixels": "(uint8 + U(0, 1)) / 256; NLL in nats of the density on [0, 1]; add log 256 = "
        "5.545 per hidden pixel for a bound on the NLL of the 8-bit pixels",
    }
    shown = {}
    for index, (name, generator) in enumerate(INPAINTING_MASKS.items()):
        masks = generator(n_test, 784, tf.constant([100 + index, 0])).numpy().astype(bool)
        log_lik = np.concatenate(
            [
                model.iwae(x_test[i : i + 100], masks[i : i + 100], iwae_k, seed=i)
                for i in range(0, n_test, 100)
            ]
        )
        # iwae scores standardised pixels: the density of the pixel values adds -log(std).
        log_std = np.log(model.feature_std.numpy().astype(np.float64))
        log_lik = log_lik - (masks * log_std[None, :]).sum(1)
        draws = model.impute(np.where(masks, np.nan, x_test), k, most_probable=True, seed=index)
        methods = {
            "vaeac": (log_lik, draws.mean(1), draws),
            "pixel_gaussian": gaussian_inpaint(
                pixel_gaussian_conditional, (mean, np.diag(cov)), x_test, masks, k, rng
            ),
            "full_gaussian": gaussian_inpaint(
                full_gaussian_conditional, (mean, cov), x_test, masks, k, rng
            ),
            "knn": (None, *knn_inpaint(x_train, x_test, masks, k)),
        }
        results[name] = {
            "hidden_pixels_per_image": float(masks.sum(1).mean()),
            **{
                method: inpainting_scores(x_test, masks, *outputs)
                for method, outputs in methods.items()
            },
        }
        print(name, json.dumps(results[name]), flush=True)
        shown[name] = (masks[:3], methods)
    if not quick:
        draw_completions(x_test[:3], shown, picture)
    return results


def draw_completions(images, shown, filename):
    """One row per test image and mask kind: truth, input (hidden pixels grey), five VAEAC
    completions, the full-covariance Gaussian's conditional mean and the k-NN mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = ["truth", "input"] + ["VAEAC"] * 5 + ["Gaussian", "k-NN"]
    fig, axes = plt.subplots(2 * len(images), len(titles), figsize=(len(titles), 2 * len(images)))
    row = 0
    for masks, methods in shown.values():
        for i, image in enumerate(images):
            panels = [image, np.where(masks[i], 0.5, image), *methods["vaeac"][2][i, :5]]
            panels += [methods["full_gaussian"][1][i], methods["knn"][1][i]]
            for ax, panel, title in zip(axes[row], panels, titles):
                ax.imshow(np.clip(panel, 0, 1).reshape(28, 28), cmap="gray", vmin=0, vmax=1)
                ax.axis("off")
                if row == 0:
                    ax.set_title(title, fontsize=8)
            row += 1
    fig.savefig(RESULTS.parent / filename, dpi=60, bbox_inches="tight")
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="+", choices=["tables", "inpainting"])
    parser.add_argument("--quick", action="store_true", help="a short run that checks the script")
    parser.add_argument("--width", type=int, default=256, help="hidden width (reference: 256)")
    parser.add_argument("--depth", type=int, default=10, help="residual blocks (reference: 10)")
    parser.add_argument("--latent-dim", type=int, default=64, help="latent size (reference: 64)")
    parser.add_argument("--steps", type=int, default=4000, help="optimizer steps per table")
    parser.add_argument("--tables", default="", help="comma-separated subset of the tables")
    parser.add_argument("--seeds", type=int, default=5, help="number of mask seeds")
    parser.add_argument("--first-seed", type=int, default=0, help="the first mask seed")
    parser.add_argument(
        "--nll-beta",
        type=float,
        default=0.0,
        help="β of VAEAC's β-NLL training loss (0: the lower bound, the reference's)",
    )
    parser.add_argument(
        "--conv", action="store_true", help="inpainting: convolutional networks (a U-Net)"
    )
    parser.add_argument(
        "--protocol",
        choices=["validation", "fixed"],
        default="validation",
        help="validation: the reference's (25 %% of rows held out, best "
        "validation checkpoint); fixed: all rows, --steps steps",
    )
    args = parser.parse_args()
    network = dict(
        width=args.width, depth=args.depth, latent_dim=args.latent_dim, nll_beta=args.nll_beta
    )
    machine = dict(
        platform=platform.platform(),
        cpus=os.cpu_count(),
        load_average_1m_at_start=os.getloadavg()[0],
    )
    for part in args.parts:
        key = (
            part
            + ("_" + args.protocol if part == "tables" else "")
            + (f"_nll_beta{args.nll_beta:g}" if args.nll_beta else "")
            + ("_conv" if args.conv and part == "inpainting" else "")
            + ("_quick" if args.quick else "")
        )

        def save(out):
            # Re-read first: other runs may have written other keys of the same file.
            stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
            out["machine"] = dict(machine, load_average_1m_at_end=os.getloadavg()[0])
            stored[key] = out
            RESULTS.parent.mkdir(exist_ok=True)
            RESULTS.write_text(json.dumps(stored, indent=1))
            return stored

        stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        names = [n for n in args.tables.split(",") if n]
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        results = save(
            run_tables(
                args.quick,
                network,
                args.steps,
                args.protocol,
                stored.get(key, {}),
                save,
                names,
                seeds,
                None if args.quick else stored_baselines(stored),
            )
            if part == "tables"
            else run_inpainting(args.quick, args.nll_beta, args.conv, f"vaeac_{key}.png")
        )
        print(json.dumps(results[key].get("tables", results[key]), indent=1)[:4000])


if __name__ == "__main__":
    main()
