"""The LSTM experiment of ``benchmarks/sparsification.py``: a sparse sentiment LSTM.

An Embedding -> LSTM -> Dense classifier of the 10,605 movie-review sentences
(``tfbayes.datasets.load_rt_snippets``; label ``score > 0``; a fixed 80/20
train/test split drawn with seed 0). The dense baseline uses the plain Keras
layers; the sparse model uses ``SparseVDEmbedding(vocabulary_pruning=True)``,
``SparseVDLSTM`` (weights, input/unit/gate groups) and ``SparseVDDense``,
starts from the baseline's weights (as in the Sparse VD papers) and trains
with a KL warm-up. Reported: test accuracy of both, compression (weights
total / kept, the structure of ``tfbayes.sparsity.sparsity_report``), the
words kept, the gates kept per gate type, and the accuracy of
``tfbayes.sparsity.compress``'s plain model.

Run alone with ``python benchmarks/sparsification_lstm.py [--quick]``, or as
``python benchmarks/sparsification.py --experiments lstm_sentiment``; either
way the result is merged into ``benchmarks/results/sparsification.json``
under ``lstm_sentiment``.
"""
import collections
import pathlib
import re
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_LENGTH = 40
EMBEDDING_DIM = 32
UNITS = 32


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
            ids[row, -len(sentence_ids):] = sentence_ids
    labels = (scores > 0).astype("float32")
    vocabulary = ["<pad>", "<oov>"] + words
    return (ids[train], labels[train]), (ids[test], labels[test]), vocabulary


def build(kind, vocabulary_size, num_examples=None):
    import keras
    from tfbayes import layers as tl

    if kind == "dense":
        body = [keras.layers.Embedding(vocabulary_size, EMBEDDING_DIM, name="embedding"),
                keras.layers.LSTM(UNITS, name="lstm"),
                keras.layers.Dense(1, activation="sigmoid", name="output")]
    else:
        sparse = dict(num_examples=num_examples, log_sigma2_initializer=LOG_SIGMA2_INIT)
        body = [tl.SparseVDEmbedding(vocabulary_size, EMBEDDING_DIM, vocabulary_pruning=True,
                                     name="embedding", **sparse),
                tl.SparseVDLSTM(UNITS, name="lstm", **sparse),
                tl.SparseVDDense(1, activation="sigmoid", name="output", **sparse)]
    return keras.Sequential([keras.Input((MAX_LENGTH,), dtype="int32")] + body,
                            name=f"sentiment_lstm_{kind}")


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
    schedule = keras.optimizers.schedules.PolynomialDecay(learning_rate, steps,
                                                          0.05 * learning_rate)
    model.compile(keras.optimizers.Adam(schedule), "binary_crossentropy",
                  metrics=["accuracy"], jit_compile=False)
    start = time.perf_counter()
    history = model.fit(*train, batch_size=64, epochs=epochs, verbose=2,
                        callbacks=list(callbacks), validation_data=validation_data)
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


def lstm_sentiment(data=None, quick=False):
    """The experiment; ``data`` (the LeNet data of the caller) is unused."""
    import keras
    from sparsification import compression_curve
    from tfbayes import sparsity
    from tfbayes.layers import KLWarmup

    keras.utils.set_random_seed(0)
    train, test, vocabulary = load_sentences()
    if quick:
        train, test = (train[0][:1000], train[1][:1000]), (test[0][:500], test[1][:500])
    dense_epochs, epochs = (1, 2) if quick else (DENSE_EPOCHS, SPARSE_EPOCHS)
    dense = build("dense", len(vocabulary))
    dense_seconds, _ = fit(dense, train, dense_epochs, 3e-3)
    model = build("sparse", len(vocabulary), num_examples=len(train[0]))
    model.build((None, MAX_LENGTH))
    copy_weights(dense, model)
    curve = compression_curve()
    # The test accuracy after each epoch is recorded to show the trade-off; nothing is
    # selected on it (the reported model is the one after the last epoch).
    seconds, test_accuracy_per_epoch = fit(
        model, train, epochs, SPARSE_LEARNING_RATE, validation_data=test,
        callbacks=[KLWarmup(WARMUP_EPOCHS if not quick else 1), curve])
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
        "max_abs_diff_compressed_vs_model": float(np.max(np.abs(
            compressed.predict(test[0], verbose=0) - model.predict(test[0], verbose=0)))),
        "weights_kept": total["weights_kept"], "weights_total": total["weights_total"],
        "compression": total["compression"], "groups": total["groups"],
        "words_kept": [vocabulary[i] for i in word_ids],
        "gates_kept_per_type": gates_kept(lstm),
        "units_kept": int(lstm.kept_structure()["units"].sum()),
        "compressed_layers": {layer.name: [list(w.shape) for w in layer.get_weights()]
                              for layer in compressed.layers},
        "compression_per_epoch": curve.values,
        "test_accuracy_per_epoch": test_accuracy_per_epoch,
        "layers": [{k: row[k] for k in ("name", "weights_kept", "weights_total", "groups")}
                   for row in report.layers],
        "vocabulary_size": len(vocabulary), "train_size": len(train[0]),
        "test_size": len(test[0]), "dense_epochs": dense_epochs, "epochs": epochs,
        "learning_rate": SPARSE_LEARNING_RATE, "log_sigma2_initializer": LOG_SIGMA2_INIT,
        "embedding_dim": EMBEDDING_DIM, "units": UNITS, "max_length": MAX_LENGTH,
        "train_seconds_dense": dense_seconds,
        "train_seconds": seconds,
    }
    result["accuracy_loss_pt"] = 100 * (result["dense_accuracy"] - result["accuracy"])
    return result


DENSE_EPOCHS = 3
SPARSE_EPOCHS = 10
WARMUP_EPOCHS = 3
SPARSE_LEARNING_RATE = 5e-3
LOG_SIGMA2_INIT = -8.0


if __name__ == "__main__":
    import json

    import sparsification

    quick = "--quick" in sys.argv[1:]
    outcome = lstm_sentiment(quick=quick)
    outcome["machine"] = "2 shared CPU cores"
    print(json.dumps(outcome, indent=1), flush=True)
    if not quick:
        sparsification.save_result("lstm_sentiment", outcome)
