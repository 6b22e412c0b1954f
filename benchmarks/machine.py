"""The machine a benchmark runs on, and the idle-machine rule for timings.

A timing is meaningful only on an idle machine: under load, multi-threaded
kernels lose their advantage over single-threaded ones, so even a ratio
measured in one run can flip. Every timing benchmark therefore

* calls ``add_load_arguments(parser)``, which adds ``--max-load`` (default 1.0)
  and ``--allow-load`` (time anyway; the JSON then says so);
* calls ``require_idle(args)`` before its first timed block, which exits with
  a message when the 1-minute load average is above ``--max-load``;
* wraps each timed block in ``LoadLog.block(name)``, which records the load
  average before and after it, and writes ``machine_record(args, log)`` into
  its JSON.
"""

import contextlib
import os
import platform
import sys

__all__ = ["add_load_arguments", "require_idle", "LoadLog", "machine_record", "load_average"]


def load_average():
    """The 1-minute load average (number of runnable tasks, averaged)."""
    return os.getloadavg()[0]


def add_load_arguments(parser):
    """Adds ``--max-load`` and ``--allow-load`` to an ``argparse`` parser."""
    parser.add_argument(
        "--max-load",
        type=float,
        default=1.0,
        help="refuse to time when the 1-minute load average is above this",
    )
    parser.add_argument(
        "--allow-load",
        action="store_true",
        help="time even on a loaded machine (recorded in the results)",
    )


def require_idle(args):
    """Exits with a message if the machine is loaded, unless ``--allow-load`` was given."""
    load = load_average()
    if load > args.max_load and not args.allow_load:
        sys.exit(
            f"The 1-minute load average is {load:.2f}, above --max-load {args.max_load}: "
            "timings on a loaded machine are not meaningful. Stop other jobs and retry, "
            "or pass --allow-load (recorded in the results)."
        )
    return load


class LoadLog:
    """The load average before and after each named timed block."""

    def __init__(self):
        self.blocks = []

    @contextlib.contextmanager
    def block(self, name):
        before = load_average()
        yield
        self.blocks.append(
            {"block": name, "load_before": round(before, 2), "load_after": round(load_average(), 2)}
        )


def machine_record(args, log=None):
    """What a results file says about the machine, its load and the override."""
    import tensorflow as tf

    record = {
        "processor": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "max_load": args.max_load,
        "allow_load": bool(args.allow_load),
        "load_average_1m_at_end": round(load_average(), 2),
    }
    if log is not None:
        record["load_per_block"] = log.blocks
        record["max_load_at_block_start"] = max(
            (b["load_before"] for b in log.blocks), default=None
        )
    return record
