"""A side venv for a peer library that needs other packages than ours (t3f 1.2.0, TF-MOT).

``ensure(path, requirement)`` creates a venv at ``path`` that sees the packages of the Python
running this script (the README's venv: TensorFlow, tf_keras, NumPy) through a ``.pth`` file, and
installs ``requirement`` into it without dependencies, so the peer runs on the same TensorFlow as
we do. A venv made with ``--system-site-packages`` would see the system Python's packages instead,
which on a fresh machine have no TensorFlow.

    python benchmarks/side_venv.py /tmp/venv-t3f t3f==1.2.0    # prints the venv's python
"""

import pathlib
import subprocess
import sys
import sysconfig


def ensure(path, requirement):
    """The side venv's python, created (or completed) on first use."""
    path = pathlib.Path(path)
    python = path / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (pathlib.Path(site) / "tfbayes_parent_env.pth").write_text("\n".join(ours) + "\n")
    name = requirement.split("==")[0]
    shown = subprocess.run([str(python), "-m", "pip", "show", name], capture_output=True, text=True)
    version = requirement.split("==")[1] if "==" in requirement else None
    if shown.returncode != 0 or (version and f"Version: {version}" not in shown.stdout):
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--no-deps", requirement], check=True
        )
    return python


if __name__ == "__main__":
    print(ensure(sys.argv[1], sys.argv[2]))
