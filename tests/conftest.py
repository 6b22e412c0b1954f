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
