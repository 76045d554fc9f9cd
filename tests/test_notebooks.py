"""The four Colab notebooks run top to bottom in fast mode (KERAS_NFNETS_FAST=1: small sizes,
locally created stand-ins where a cell would download)."""

import os

import pytest

from conftest import REPO_ENV

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")
NAMES = ["01_quickstart.ipynb", "02_signal_propagation.ipynb", "03_fine_tune.ipynb", "04_deploy_tflite.ipynb"]


pytestmark = pytest.mark.slow


def test_every_notebook_is_listed():
    assert sorted(f for f in os.listdir(NOTEBOOKS) if f.endswith(".ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_fast_mode(name, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", REPO_ENV["PYTHONPATH"])  # the kernel imports this checkout
    monkeypatch.setenv("KERAS_NFNETS_FAST", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    first = book.cells[1].source
    assert "google.colab" in first and "%pip install" in first  # the install cell
    # runs in a scratch directory: outputs (runs/, exported files) stay out of the checkout
    nbclient.NotebookClient(book, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in book.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
