"""A quiet TensorFlow start-up for programs whose entry point is tfbayes or t3f_ext.

Importing TensorFlow 2.21 writes its C++ start-up lines to the process's stderr before any logging
is configured, so ``TF_CPP_MIN_LOG_LEVEL`` cannot silence them: the oneDNN and CPU-instruction
notices, "Could not find cuda drivers" and, on a machine with CUDA libraries but no GPU, an
``E0000 ... failed call to cuInit`` line that looks like a failure but is not one.

``import_tensorflow_quietly()`` imports TensorFlow and initialises its devices with file
descriptor 2 pointed at a temporary file, then writes back every captured line that is not one of
those known start-up notices, so real warnings and errors still reach the user. It does nothing
when TensorFlow is already imported (the user's program is the entry point, and its start-up is
its own), or when the user asked for TensorFlow's logs by setting ``TF_CPP_MIN_LOG_LEVEL=0``.
"""

import os
import re
import sys
import tempfile

# The start-up notices of TF's C++ runtime; anything else captured is written back.
_STARTUP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} .*"  # absl INFO lines: oneDNN, cuda drivers, CPU feature guard
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler"
    r" flags\."
    r"|E\d{4} .*failed call to cuInit: .*"  # no GPU present: not an error for a CPU run
    r")$"
)


def import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up notices filtered out of stderr."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the cuInit probe happens here, still captured
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            captured.seek(0)
            shown = lines_to_show(captured.read().decode("utf-8", errors="replace"))
            if shown:
                sys.stderr.write(shown)


def lines_to_show(captured):
    """The lines of ``captured`` stderr text that are not TF's start-up notices, newline-ended."""
    kept = [
        line for line in captured.splitlines() if line.strip() and not _STARTUP_NOISE.match(line)
    ]
    return "".join(line + "\n" for line in kept)
