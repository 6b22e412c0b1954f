"""Importing the library does not print TensorFlow's C++ start-up notices, and keeps real errors."""

import os
import pathlib
import subprocess
import sys

from tfbayes._startup import lines_to_show

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Lines TF 2.21 prints on a CPU machine that has CUDA libraries but no GPU.
NOTICES = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796431368.585243    8613 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796431368.585538    8613 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate compiler flags.
E0000 00:00:1796431375.526542    8613 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""


def test_start_up_notices_are_dropped_and_everything_else_is_kept():
    real = (
        "E0000 00:00:1.0 1 op_kernel.cc:1] OP_REQUIRES failed: out of memory\n"
        "W0000 00:00:1.0 1 some_warning.cc:2] a real warning\n"
        "Traceback (most recent call last):\n"
    )
    assert lines_to_show(NOTICES) == ""
    assert lines_to_show(NOTICES + real) == real


def _stderr_of(code, **env):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | env
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_import_prints_nothing_to_stderr():
    assert (
        _stderr_of("import tfbayes.layers, t3f_ext; import tensorflow as tf; tf.constant(1.0) + 1")
        == ""
    )


def test_tf_logs_still_shown_when_asked_for():
    stderr = _stderr_of("import tfbayes.layers", TF_CPP_MIN_LOG_LEVEL="0")
    assert "I0000" in stderr or "oneDNN" in stderr
