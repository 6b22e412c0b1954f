"""Runs every tutorial notebook end to end in quick mode (TFBAYES_QUICK=1).

The notebooks carry their own assertions (accuracies, gradient checks), so a
tutorial that silently stops teaching what it claims fails here.
"""

import os
import pathlib
import sys

import pytest

from tfbayes import datasets

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

TUTORIALS = sorted((pathlib.Path(__file__).resolve().parent.parent / "tutorials").glob("*.ipynb"))

# The corpora that only the developers' shared/data holds (or a download, which tests never do).
DEVELOPER_CORPORA = {
    "load_rt_snippets": "rt-snippets",
    "load_brown_sentences": "brown-sentences",
    "load_mnist_10k": "mnist-10k",
}


def _skip_without_corpora(nb):
    """Skips, saying why, when the notebook needs a corpus that has no copy here."""
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    for loader, name in DEVELOPER_CORPORA.items():
        if loader + "(" in code:
            try:
                datasets.locate(name)
            except FileNotFoundError as error:
                pytest.skip(
                    f"needs {name}, which has no offline copy here and tests do not "
                    f"download: {error}"
                )


@pytest.mark.parametrize("notebook", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_in_quick_mode(notebook, monkeypatch):
    monkeypatch.setenv("TFBAYES_QUICK", "1")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # The "python3" kernel runs `python` from PATH: make it this interpreter.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    nb = nbformat.read(notebook, as_version=4)
    _skip_without_corpora(nb)
    client = nbclient.NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    client.execute()
