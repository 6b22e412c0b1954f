"""The offline loaders read the real files and fail clearly when they are missing."""
import numpy as np
import pytest

from tfbayes import datasets


def test_fashion_mnist_has_the_published_shapes():
    try:
        (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
    except FileNotFoundError:
        pytest.skip("dataset-fashion-mnist is not installed")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))


def test_missing_fashion_mnist_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "_fashion_mnist_candidates", lambda path: [tmp_path])
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        datasets.load_fashion_mnist()


def test_rt_snippets_row_count_and_score_range():
    texts, scores = datasets.load_rt_snippets()
    assert len(texts) == len(scores) == 10605
    assert scores.min() >= -4 and scores.max() <= 4
    assert 0.4 < np.mean(scores > 0) < 0.6


def test_brown_sentences_cap_and_tokens():
    sentences = datasets.load_brown_sentences(max_sentences=100)
    assert len(sentences) == 100
    assert all(isinstance(tok, str) for sent in sentences for tok in sent)


def test_missing_shared_file_raises_with_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv.gz"):
        datasets.load_rt_snippets(path=tmp_path / "nope.tsv.gz")
