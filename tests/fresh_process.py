"""Runs a test script in a fresh Python process, e.g. to give TF two logical CPUs before it starts."""

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(script, out_path, timeout=300):
    """Runs ``python -c script out_path`` from the repository root; returns ``np.load(out_path)``.

    The script writes its results to ``out_path`` (an ``.npz`` file); its stderr's tail is the
    assertion message if it fails.
    """
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", script, str(out_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out_path)
