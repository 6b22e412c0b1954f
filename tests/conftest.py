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


def pytest_collection_modifyitems(items):
    """Runs the tutorials (12-60 s each, the longest tests) first: under `pytest -n 2` the
    workers then end on short tests and finish together, instead of one idling while the
    other runs the last notebook."""
    items.sort(key=lambda item: item.path.name != "test_tutorials.py")
