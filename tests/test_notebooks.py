"""The Colab notebooks: each runs headless in smoke mode, and none is committed with outputs."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300
SERVED = "served probabilities: "


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_smoke_mode(path, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(path, as_version=4)
    # The notebook puts its smoke run in a folder of its own under tempfile's directory.
    env = {**os.environ, "AMSDA_NOTEBOOK_SMOKE": "1", "TMPDIR": str(tmp_path)}
    # jupyter_client starts the "python3" kernel with sys.executable, this venv's python.
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute(env=env)

    assert len(list(tmp_path.glob("amsda_notebook_*/*/metrics.json"))) == 1
    served = [line.removeprefix(SERVED) for line in _printed_lines(notebook)
              if line.startswith(SERVED)]
    assert len(served) == 1
    probabilities = np.array(json.loads(served[0]))
    assert probabilities.ndim == 2 and len(probabilities) > 0
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_has_no_outputs(path):
    code_cells = [cell for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]
                  if cell["cell_type"] == "code"]
    assert code_cells
    for cell in code_cells:
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"{path.name}: clear the outputs of the cell starting {''.join(cell['source'])[:60]!r}")


def _printed_lines(notebook):
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                yield from output["text"].splitlines()


def _code(path):
    return {cell["id"]: "".join(cell["source"])
            for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_colab_cells_stop_early_and_resume(path):
    # What only Colab runs, checked by content: the smoke run skips the set-up and cannot drop.
    cells = _code(path)
    setup = cells["setup"]
    assert setup.index('"YOUR-ACCOUNT" in REPO_URL') < setup.index("git")
    assert 'subprocess.run(["git", "clone", REPO_URL, str(REPO)], check=True)' in setup
    assert '[sys.executable, "-m", "pip", "install", "-q", "-e", "."], check=True' in setup
    assert 'os.environ.setdefault("AMSDA_KERAS_CACHE", CACHE)' in setup
    assert "!" not in setup and "%cd" not in setup  # shell magics do not stop on failure
    assert 'list_physical_devices("GPU")' in cells["gpu-check"]
    assert "raise RuntimeError" in cells["gpu-check"]
    train = cells["train"]
    assert train.index('(RUN / "run.json").exists()') < train.index("resume=RUN")
    assert "RUN = Path(RUNS) / RUN_NAME" in cells["parameters"]
    assert 'CACHE = "/content/drive/MyDrive/' in cells["parameters"]
    assert "%tensorboard --logdir {RUNS}" in cells["tensorboard"]
    assert list(cells).index("tensorboard") < list(cells).index("train")
