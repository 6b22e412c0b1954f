"""The LSTM experiment of ``benchmarks/sparsification.py``: a sparse sentiment LSTM.

An Embedding -> LSTM -> Dense classifier of the 10,605 movie-review sentences
(``tfbayes.datasets.load_rt_snippets``; label ``score > 0``; a fixed 80/20
train/test split drawn with seed 0). The dense baseline uses the plain Keras
layers; the sparse model uses ``SparseVDEmbedding(vocabulary_pruning=True)``,
``SparseVDLSTM`` (weights, input/unit/gate groups) and ``SparseVDDense``,
starts from the baseline's weights (as the Sparse VD reference code can) and trains
with a KL warm-up and a linearly decaying learning rate. The last 10% of the
training split is held out for validation; both models are selected on it and
never on the test set: the dense baseline keeps its best-validation epoch, the
sparse model its best-validation epoch among those compressed at least
``RECIPE["min_compression"]``-fold; then its pruning threshold is chosen on
the validation split (``sparsification.select_threshold``). Reported: test
accuracy of both, compression (weights total / kept, the structure of
``tfbayes.sparsity.sparsity_report``), the
words kept, the gates kept per gate type, and the accuracy of
``tfbayes.sparsity.compress``'s plain model.

Run alone with ``python benchmarks/sparsification_lstm.py [--quick]`` (``--help``
lists the recipe's hyperparameters, ``--no-save`` only prints), or as
``python benchmarks/sparsification.py --experiments lstm_sentiment``; either
way the result is merged into ``benchmarks/results/sparsification.json``
under ``lstm_sentiment``.
"""

import argparse
import collections
import pathlib
import re
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_LENGTH = 40


def tokenize(text):
    return re.findall(r"[a-z0-9']+", text.lower())


def load_sentences(min_count=2, seed=0):
    """Padded id sequences ``[N, MAX_LENGTH]`` (pre-padded with 0, OOV = 1) and 0/1 labels.

    The vocabulary is the words seen ``min_count`` times in the training split,
    by decreasing frequency, from id 2.
    """
    from tfbayes.datasets import load_rt_snippets

    texts, scores = load_rt_snippets()
    tokens = [tokenize(t) for t in texts]
    order = np.random.default_rng(seed).permutation(len(texts))
    n_train = int(0.8 * len(texts))
    train, test = order[:n_train], order[n_train:]
    counts = collections.Counter(w for i in train for w in tokens[i])
    words = [w for w, c in counts.most_common() if c >= min_count]
    index = {w: i + 2 for i, w in enumerate(words)}
    ids = np.zeros((len(texts), MAX_LENGTH), "int32")
    for row, sentence in enumerate(tokens):
        sentence_ids = [index.get(w, 1) for w in sentence][-MAX_LENGTH:]
        if sentence_ids:
            ids[row, -len(sentence_ids) :] = sentence_ids
    labels = (scores > 0).astype("float32")
    vocabulary = ["<pad>", "<oov>"] + words
    return (ids[train], labels[train]), (ids[test], labels[test]), vocabulary


def build(kind, vocabulary_size, embedding_dim, units, num_examples=None, log_sigma2_init=None):
    import keras
    from tfbayes import layers as tl

    if kind == "dense":
        body = [
            keras.layers.Embedding(vocabulary_size, embedding_dim, name="embedding"),
            keras.layers.LSTM(units, name="lstm"),
            keras.layers.Dense(1, activation="sigmoid", name="output"),
        ]
    else:
        sparse = dict(num_examples=num_examples, log_sigma2_initializer=log_sigma2_init)
        body = [
            tl.SparseVDEmbedding(
                vocabulary_size, embedding_dim, vocabulary_pruning=True, name="embedding", **sparse
            ),
            tl.SparseVDLSTM(units, name="lstm", **sparse),
            tl.SparseVDDense(1, activation="sigmoid", name="output", **sparse),
        ]
    return keras.Sequential(
        [keras.Input((MAX_LENGTH,), dtype="int32")] + body, name=f"sentiment_lstm_{kind}"
    )


def copy_weights(dense, sparse):
    """theta and biases of the sparse model from the trained dense model."""
    sparse.get_layer("embedding").embeddings.assign(dense.get_layer("embedding").embeddings)
    kernel, recurrent_kernel, bias = dense.get_layer("lstm").get_weights()
    lstm = sparse.get_layer("lstm")
    lstm.kernel.assign(kernel)
    lstm.recurrent_kernel.assign(recurrent_kernel)
    lstm.bias.assign(bias)
    output = sparse.get_layer("output")
    output.kernel.assign(dense.get_layer("output").kernel)
    output.bias.assign(dense.get_layer("output").bias)


def fit(model, train, epochs, learning_rate, callbacks=(), validation_data=None):
    """Adam with the step decaying linearly to 5% of ``learning_rate``; no XLA (its compile of
    the recurrent training step costs minutes on 2 shared cores)."""
    import keras

    steps = epochs * int(np.ceil(len(train[0]) / 64))
    schedule = keras.optimizers.schedules.PolynomialDecay(
        learning_rate, steps, 0.05 * learning_rate
    )
    model.compile(
        keras.optimizers.Adam(schedule),
        "binary_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    start = time.perf_counter()
    history = model.fit(
        *train,
        batch_size=64,
        epochs=epochs,
        verbose=2,
        callbacks=list(callbacks),
        validation_data=validation_data,
    )
    return time.perf_counter() - start, history.history.get("val_accuracy")


def accuracy(model, test):
    predictions = model.predict(test[0], batch_size=500, verbose=0)[:, 0]
    return float(np.mean((predictions > 0.5) == (test[1] > 0.5)))


def gates_kept(lstm):
    """Per gate type, the units (of those kept) whose gate still depends on the input."""
    from tfbayes.layers.sparse_vd_lstm import GATES

    structure = lstm.kept_structure()
    per_gate = structure["gates"].reshape(4, -1)[:, structure["units"]]
    return {name: int(kept.sum()) for name, kept in zip(GATES, per_gate)}


def lstm_sentiment(data=None, quick=False, recipe=None):
    """The experiment; ``data`` (the LeNet data of the caller) is unused; ``recipe`` overrides
    entries of ``RECIPE``."""
    import keras
    from sparsification import best_epoch_tracker, select_threshold
    from tfbayes import sparsity
    from tfbayes.layers import KLWarmup

    keras.utils.set_random_seed(0)
    recipe = dict(RECIPE, **(recipe or {}))
    if quick:
        recipe.update(dense_epochs=1, epochs=2, warmup_epochs=1, min_compression=0.0)
    train, test, vocabulary = load_sentences()
    if quick:
        train, test = (train[0][:1000], train[1][:1000]), (test[0][:500], test[1][:500])
    n_fit = int(0.9 * len(train[0]))  # the training split is already shuffled
    train, validation = (train[0][:n_fit], train[1][:n_fit]), (train[0][n_fit:], train[1][n_fit:])
    sizes = dict(embedding_dim=recipe["embedding_dim"], units=recipe["units"])
    dense = build("dense", len(vocabulary), **sizes)
    dense_best = best_epoch_tracker(track_sparsity=False)
    dense_seconds, dense_val_per_epoch = fit(
        dense,
        train,
        recipe["dense_epochs"],
        recipe["dense_learning_rate"],
        callbacks=[dense_best],
        validation_data=validation,
    )
    model = build(
        "sparse",
        len(vocabulary),
        **sizes,
        num_examples=len(train[0]),
        log_sigma2_init=recipe["log_sigma2_init"],
    )
    model.build((None, MAX_LENGTH))
    copy_weights(dense, model)
    sparse_best = best_epoch_tracker(recipe["min_compression"])
    seconds, val_accuracy_per_epoch = fit(
        model,
        train,
        recipe["epochs"],
        recipe["learning_rate"],
        validation_data=validation,
        callbacks=[KLWarmup(recipe["warmup_epochs"], end=recipe["kl_weight"]), sparse_best],
    )
    if sparse_best.epoch is None:
        print(f"no epoch reached {recipe['min_compression']}x; reporting the last one")
    dense_val_accuracy = accuracy(dense, validation)
    trained = model
    model, threshold, sweep = select_threshold(
        trained,
        "sparse_vd",
        lambda m: accuracy(m, validation),
        dense_val_accuracy,
        recipe["max_loss_pt"],
        len(validation[0]),
        lambda m: accuracy(m, test),
    )
    report = sparsity.sparsity_report(model)
    print(report)
    compressed = sparsity.compress(model)
    embedding, lstm = model.get_layer("embedding"), model.get_layer("lstm")
    word_ids = np.flatnonzero(embedding.word_mask())
    total = report.total
    result = {
        "dense_accuracy": accuracy(dense, test),
        "accuracy": accuracy(model, test),
        "compressed_accuracy": accuracy(compressed, test),
        "threshold": threshold,
        "threshold_sweep": sweep,
        "dense_val_accuracy": dense_val_accuracy,
        "accuracy_at_default_threshold": accuracy(trained, test),
        "max_abs_diff_compressed_vs_model": float(
            np.max(
                np.abs(compressed.predict(test[0], verbose=0) - model.predict(test[0], verbose=0))
            )
        ),
        "weights_kept": total["weights_kept"],
        "weights_total": total["weights_total"],
        "compression": total["compression"],
        "groups": total["groups"],
        "words_kept": [vocabulary[i] for i in word_ids],
        "gates_kept_per_type": gates_kept(lstm),
        "units_kept": int(lstm.kept_structure()["units"].sum()),
        "compressed_layers": {
            layer.name: [list(w.shape) for w in layer.get_weights()] for layer in compressed.layers
        },
        "compression_per_epoch": sparse_best.compression,
        "val_accuracy_per_epoch": val_accuracy_per_epoch,
        "selected_epoch": sparse_best.epoch,
        "dense_val_accuracy_per_epoch": dense_val_per_epoch,
        "dense_selected_epoch": dense_best.epoch,
        "layers": [
            {k: row[k] for k in ("name", "weights_kept", "weights_total", "groups")}
            for row in report.layers
        ],
        "vocabulary_size": len(vocabulary),
        "train_size": len(train[0]),
        "validation_size": len(validation[0]),
        "test_size": len(test[0]),
        "recipe": recipe,
        "max_length": MAX_LENGTH,
        "train_seconds_dense": dense_seconds,
        "train_seconds": seconds,
    }
    result["accuracy_loss_pt"] = 100 * (result["dense_accuracy"] - result["accuracy"])
    return result


RECIPE = dict(
    embedding_dim=32,
    units=32,  # the sizes of both models
    dense_epochs=6,
    dense_learning_rate=3e-3,  # the dense baseline, best epoch on validation
    epochs=10,
    learning_rate=5e-3,  # the sparse model, Adam decaying linearly to 5%
    warmup_epochs=3,  # KL weight ramped 0 -> kl_weight over these epochs
    kl_weight=1.0,  # 1: the ELBO; else the tempered data loss + kl_weight * KL / N
    log_sigma2_init=-8.0,  # start near the dense weights: alpha = sigma^2 / theta^2 tiny
    min_compression=100.0,  # the sparse epoch is the best on validation at least this sparse
    max_loss_pt=1.0,  # the validation budget of the threshold selection (select_threshold)
)


def main():
    import json

    import sparsification

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a data subset")
    parser.add_argument("--no-save", action="store_true", help="print, do not save the result")
    for key, value in RECIPE.items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    args = parser.parse_args()
    outcome = lstm_sentiment(quick=args.quick, recipe={k: getattr(args, k) for k in RECIPE})
    outcome["machine"] = "2 shared CPU cores"
    print(json.dumps(outcome, indent=1), flush=True)
    if not (args.quick or args.no_save):
        sparsification.save_result("lstm_sentiment", outcome)


if __name__ == "__main__":
    main()
