"""Runs print nothing a user must ignore (issue 24): the demo trainings, scoring, export, the
progress bars; and attention heatmaps label tokens as words."""

import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

from amsda_keras.data.pipeline import feature_dataset
from amsda_keras.training import reporting
from amsda_keras.training.attention_maps import readable_tokens
from amsda_keras.training.evaluation import score
from tests.helpers import SMALL_AMSDA, SMALL_MAHFNET

CLASSES = ["positive", "neutral", "negative"]
DEMO_RUNS = {"baseline": ["--model", "baseline"], "probe": ["--model", "probe"],
             "mahfnet": SMALL_MAHFNET, "amsda": SMALL_AMSDA}
# Printed by TensorFlow's C++ libraries (absl) as they load, before any Python code can set
# their log level; TF_CPP_MIN_LOG_LEVEL filters only the lines after it.
UNAVOIDABLE = ("WARNING: All log messages before absl::InitializeLog() is called are written "
               "to STDERR")
WARNING_MARKS = ("Warning", "WARNING", "warn(")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """`demo_run(name)`: a finished `DEMO_RUNS[name]` run, trained once in a subprocess as a
    user starts it, with Python's default warning filters and, as on a first run, no feature
    cache (the first run fills it). Returns `(run_dir, stderr)`."""
    folder = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PYTHONWARNINGS": "default", "KERAS_BACKEND": "tensorflow"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    finished = {}

    def run(name):
        if name not in finished:
            command = [sys.executable, "-m", "amsda_keras.train", *DEMO_RUNS[name],
                       "--epochs", "1", "--set", "encoders.sequence_length=16",
                       "--output", str(folder / name), "--cache-dir", str(folder / "cache"),
                       "--no-progress"]
            result = subprocess.run(command, env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, result.stderr[-3000:]
            finished[name] = (folder / name, result.stderr)
        return finished[name]

    return run


@pytest.mark.parametrize("name", list(DEMO_RUNS))
def test_a_demo_training_prints_no_warning(demo_run, name):
    _, stderr = demo_run(name)
    warnings = [line for line in stderr.splitlines()
                if any(mark in line for mark in WARNING_MARKS) and line != UNAVOIDABLE]
    assert not warnings, "\n".join(warnings)
    assert "cpu_feature_guard" not in stderr  # an INFO line, hidden by quiet_tensorflow


def test_export_logs_nothing_while_it_writes(demo_run, tmp_path, caplog):
    if keras.config.backend() != "tensorflow":
        pytest.skip("SavedModels are written with the tensorflow backend.")
    from amsda_keras.export import export_run

    run_dir, _ = demo_run("baseline")
    # As in a notebook, where TensorFlow's logger shows INFO ("Assets written to ...").
    caplog.set_level(logging.INFO, logger="tensorflow")
    export_run(run_dir, tmp_path / "saved_model")
    assert not [record.getMessage() for record in caplog.records
                if record.name == "tensorflow"]
    assert logging.getLogger("tensorflow").level == logging.INFO


def test_scoring_predicts_once_and_keeps_each_splits_probabilities(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    features = {"text_pooled": rng.normal(size=(50, 4)).astype("float32")}
    frame = pd.DataFrame({"id": [f"s{row}" for row in range(50)], "row": np.arange(50),
                          "label": rng.integers(0, 3, 50),
                          "split": rng.choice(["train", "dev", "test"], 50)})
    inputs = keras.Input((4,), name="text_pooled")
    model = keras.Model({"text_pooled": inputs}, keras.layers.Dense(3)(inputs))

    def batches(part, **options):
        return feature_dataset(part, features, **options)

    # Each split on its own, as scoring did before.
    parts = {split: frame[frame["split"] == split] for split in ("train", "dev", "test")}
    expected = {split: keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(
        batches(part, batch_size=8, with_labels=False), verbose=0)))
        for split, part in parts.items()}
    reporting.write_predictions(tmp_path / "expected.csv", parts, expected, CLASSES)

    calls = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda *args, **kwargs: calls.append(args) or predict(
        *args, **kwargs))
    score(model, frame, batches, CLASSES, tmp_path, batch_size=8)
    assert len(calls) == 1
    assert ((tmp_path / reporting.PREDICTIONS_FILE).read_text()
            == (tmp_path / "expected.csv").read_text())


NOTEBOOK_WITHOUT_WIDGETS = """
import sys, types
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")  # a Jupyter kernel
sys.modules["ipywidgets"] = None  # not installed
import IPython
from amsda_keras.console import tqdm
print(any("notebook" in kind.__module__ for kind in tqdm.__mro__))
"""


def test_progress_bars_fall_back_to_text_without_ipywidgets_and_do_not_warn():
    pytest.importorskip("IPython")
    result = subprocess.run([sys.executable, "-c", NOTEBOOK_WITHOUT_WIDGETS], capture_output=True,
                            text=True, env={**os.environ, "PYTHONWARNINGS": "default"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert "Warning" not in result.stderr


def test_token_pieces_are_labelled_as_words_one_label_per_token():
    # CLIP's BPE ends a word with `</w>`; WordPiece continues one with `##`.
    assert readable_tokens(["hap", "py</w>", "day</w>"]) == ["happy", "…py", "day"]
    assert readable_tokens(["[CLS]", "hap", "##py", "day", "[SEP]"],
                           special_tokens=("[CLS]", "[SEP]")) == [
        "[CLS]", "happy", "…py", "day", "[SEP]"]
    assert readable_tokens(["<|startoftext|>", "day</w>", "!</w>", "<|endoftext|>"],
                           special_tokens=("<|startoftext|>", "<|endoftext|>")) == [
        "<|startoftext|>", "day", "!", "<|endoftext|>"]
