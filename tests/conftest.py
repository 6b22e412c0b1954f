"""Shared pytest set-up: quiet TF logs, no downloads, and fixtures for both float dtypes."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download: tfbayes.datasets loaders then use offline copies only.
os.environ["TFBAYES_NO_DOWNLOAD"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    """Runs a test once in float32 and once in float64."""
    return request.param


def pytest_collection_modifyitems(config, items):
    """Runs the tutorial notebooks (the longest tests, 30-150 s each) first.

    With ``pytest -n 2`` the workers then share the long tests at the start and fill in with the
    short ones, instead of one worker ending on a queue of notebooks while the other idles.
    """
    items.sort(key=lambda item: item.nodeid.split("::")[0] != "tests/test_tutorials.py")
