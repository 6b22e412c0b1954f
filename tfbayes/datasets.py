"""Offline loaders for the real data used by the tutorials and benchmarks.

Nothing here downloads at import time. Each loader looks in the places listed
below, in order, and raises ``FileNotFoundError`` naming every place it looked
when the data is nowhere to be found.

* Fashion-MNIST (60k train / 10k test, 28x28 uint8): Debian's
  ``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist``)
  installs idx ``.gz`` files in ``/usr/share/datasets/fashion-mnist``. Only if
  those are missing, and ``allow_download=True``, Keras's own downloader is used.
* ``rt_snippets.tsv.gz`` (10,605 movie-review sentences with a mean sentiment
  score in [-4, 4]) and ``brown_sentences.txt.gz`` (the Brown corpus, 57,340
  tokenized sentences) live in the developers' ``shared/data`` folder.
* scikit-learn's ``load_digits`` (1,797 8x8 images) ships inside its wheel.
"""
import gzip
import os
import pathlib

import numpy as np

FASHION_MNIST_ENV = "TFBAYES_FASHION_MNIST_DIR"
DATA_DIR_ENV = "TFBAYES_DATA_DIR"

_FASHION_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}


def _read_idx_gz(path):
    """Reads an idx file (the MNIST container format) from a ``.gz`` file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _fashion_mnist_candidates(path):
    if path is not None:
        return [pathlib.Path(path)]
    candidates = []
    if os.environ.get(FASHION_MNIST_ENV):
        candidates.append(pathlib.Path(os.environ[FASHION_MNIST_ENV]))
    candidates.append(pathlib.Path("/usr/share/datasets/fashion-mnist"))
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    candidates.append(pathlib.Path(keras_home) / "datasets" / "fashion-mnist")
    return candidates


def load_fashion_mnist(path=None, allow_download=False):
    """Loads Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Args:
      path: optional folder holding the four idx ``.gz`` files. Otherwise the
        env var ``TFBAYES_FASHION_MNIST_DIR``, Debian's
        ``/usr/share/datasets/fashion-mnist`` and ``$KERAS_HOME/datasets/fashion-mnist``
        are tried in that order.
      allow_download: if no local copy exists, fall back to
        ``keras.datasets.fashion_mnist.load_data()``, which downloads.

    Returns:
      uint8 images of shape ``[60000, 28, 28]`` / ``[10000, 28, 28]`` and uint8
      labels of shape ``[60000]`` / ``[10000]``, exactly as Keras returns them.
    """
    candidates = _fashion_mnist_candidates(path)
    for folder in candidates:
        if all((folder / name).is_file() for name in _FASHION_FILES.values()):
            arrays = {key: _read_idx_gz(folder / name) for key, name in _FASHION_FILES.items()}
            return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])
    looked = ", ".join(str(c) for c in candidates)
    if allow_download:
        print(f"tfbayes: Fashion-MNIST not found locally (looked in {looked}); "
              "falling back to keras.datasets.fashion_mnist.load_data(), which downloads.")
        import keras

        return keras.datasets.fashion_mnist.load_data()
    raise FileNotFoundError(
        f"Fashion-MNIST idx files not found; looked in: {looked}. Install Debian's "
        "package with `apt-get install dataset-fashion-mnist`, set "
        f"{FASHION_MNIST_ENV}, or pass allow_download=True.")


def _shared_data_file(name, path):
    if path is not None:
        candidates = [pathlib.Path(path)]
    else:
        candidates = _shared_data_candidates(name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"{name} not found; looked in: {looked}. Pass its path, or set {DATA_DIR_ENV} "
        "to the folder that holds it.")


def _shared_data_candidates(name):
    candidates = []
    if os.environ.get(DATA_DIR_ENV):
        candidates.append(pathlib.Path(os.environ[DATA_DIR_ENV]) / name)
    repo_root = pathlib.Path(__file__).resolve().parent.parent
    candidates.append(repo_root.parent / "shared" / "data" / name)
    candidates.append(pathlib.Path.cwd() / "shared" / "data" / name)
    candidates.append(pathlib.Path.cwd().parent / "shared" / "data" / name)
    return candidates


def load_rt_snippets(path=None):
    """Loads the 10,605 movie-review sentences.

    Args:
      path: optional path of ``rt_snippets.tsv.gz``; otherwise ``$TFBAYES_DATA_DIR``
        and the ``shared/data`` folder beside the checkout are tried.

    Returns:
      ``(texts, scores)``: a list of str and a float64 array in [-4, 4]. The
      binary sentiment label used throughout is ``scores > 0``.
    """
    texts, scores = [], []
    with gzip.open(_shared_data_file("rt_snippets.tsv.gz", path), "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["score", "text"]:
            raise ValueError(f"rt_snippets.tsv.gz: expected header ['score', 'text'], got {header}")
        for line in f:
            score, text = line.rstrip("\n").split("\t", 1)
            scores.append(float(score))
            texts.append(text)
    return texts, np.asarray(scores)


def load_brown_sentences(path=None, max_sentences=None):
    """Loads the Brown corpus as a list of token lists (57,340 sentences).

    Args:
      path: optional path of ``brown_sentences.txt.gz``; otherwise
        ``$TFBAYES_DATA_DIR`` and the ``shared/data`` folder beside the checkout.
      max_sentences: optional cap on the number of sentences read.
    """
    sentences = []
    with gzip.open(_shared_data_file("brown_sentences.txt.gz", path), "rt", encoding="utf-8") as f:
        for line in f:
            if max_sentences is not None and len(sentences) >= max_sentences:
                break
            sentences.append(line.split())
    return sentences


def is_quick_mode():
    """True when ``TFBAYES_QUICK=1``: tutorials then train for fewer steps (CI)."""
    return os.environ.get("TFBAYES_QUICK", "0") not in ("", "0", "false", "False")
