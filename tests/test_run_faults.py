"""A run killed at each of its writes resumes to what an uninterrupted run gives, and no file is
left half-written (issue 23's run-folder failures, each reproduced here)."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from amsda_keras import train
from amsda_keras.encoders import Encoder
from amsda_keras.files import folder_replaced_atomically, replaced_atomically
from amsda_keras.training import checkpoints, run
from tests.helpers import reproducible_history

FLAGS = ["--model", "baseline", "--epochs", "3", "--no-progress",
         "--set", "encoders.sequence_length=16"]


class Killed(Exception):
    """Stands in for the process being killed at that moment."""


def _kill(*args, **kwargs):
    raise Killed


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("faults") / "whole"
    train.main([*FLAGS, "--output", str(run_dir)])
    return run_dir


def test_killed_after_metrics_before_run_json_resumes_and_seeds_finish(
        uninterrupted, tmp_path, monkeypatch):
    # Before: metrics.json meant "finished", so --resume refused the folder and --seeds read
    # the missing run.json on every rerun.
    base = tmp_path / "seeds"
    with monkeypatch.context() as patch:
        patch.setattr(run, "_write_run_info", _kill)
        with pytest.raises(Killed):
            train.main([*FLAGS, "--seeds", "0", "--output", str(base)])
    member = base / "seed-0"
    assert (member / "metrics.json").is_file() and not (member / "run.json").exists()
    train.main([*FLAGS, "--seeds", "0", "--output", str(base)])
    assert (base / "summary.json").is_file()
    assert json.loads((member / "run.json").read_text())["epochs_run"] == 3
    pd.testing.assert_frame_equal(reproducible_history(member), reproducible_history(uninterrupted))


def test_killed_while_the_first_checkpoint_is_written_resumes_without_repeated_epochs(
        uninterrupted, tmp_path, monkeypatch):
    # Before: the partial epoch-1 folder was ignored, training restarted, and history.csv
    # kept the killed run's epoch too (epochs 0, 0, 1, 2; epochs_run 4).
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints.np, "savez", _kill)
        with pytest.raises(Killed):
            train.main([*FLAGS, "--output", str(run_dir)])
    assert reproducible_history(run_dir)["epoch"].tolist() == [0]
    assert not list((run_dir / "checkpoint").glob("epoch-*"))  # no half-written epoch folder
    train.main(["--resume", str(run_dir), "--no-progress"])
    info = json.loads((run_dir / "run.json").read_text())
    assert info["epochs_run"] == 3
    pd.testing.assert_frame_equal(reproducible_history(run_dir), reproducible_history(uninterrupted))


def test_killed_while_the_tiny_encoders_are_saved_reruns(tmp_path, monkeypatch):
    # Before: the half-written encoders/ folder was loaded as complete, and every resume or
    # rerun failed with an h5 header error until a person deleted it.
    run_dir = tmp_path / "run"
    original = Encoder.save

    def save_half(self, directory):
        original(self, directory)
        for weights in directory.rglob("*.weights.h5"):
            weights.write_bytes(weights.read_bytes()[:100])
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Encoder, "save", save_half)
        with pytest.raises(Killed):
            train.main([*FLAGS, "--output", str(run_dir)])
    assert not (run_dir / "encoders" / "text").exists()
    train.main([*FLAGS, "--output", str(run_dir)])
    assert json.loads((run_dir / "run.json").read_text())["epochs_run"] == 3


@pytest.mark.parametrize("replace", [replaced_atomically, folder_replaced_atomically])
def test_a_write_that_dies_leaves_the_old_version_and_no_temporary(tmp_path, replace):
    # Before: config.yaml, metrics.json and the trimmed history.csv were written in place.
    target = tmp_path / "metrics.json"
    is_file = replace is replaced_atomically
    if is_file:
        target.write_text("old")
    else:
        target.mkdir()
        (target / "a").write_text("old")
    with pytest.raises(Killed), replace(target) as temporary:
        (temporary if is_file else temporary / "a").write_text("half")
        raise Killed
    assert (target if is_file else target / "a").read_text() == "old"
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


def test_run_folder_files_are_renamed_into_place(tmp_path, monkeypatch):
    # Before: config.yaml, metrics.json and the reports were written in place.
    renamed = []
    replace = os.replace

    def recording_replace(source, destination):
        renamed.append(Path(destination).name)
        replace(source, destination)

    monkeypatch.setattr(os, "replace", recording_replace)
    run_dir = tmp_path / "run"
    train.main([*FLAGS, "--output", str(run_dir)])
    assert {"config.yaml", "splits.csv", "model.keras", "metrics.json", "predictions.csv",
            "classification_report.txt", "confusion_matrix.png", "training_curves.png",
            "run.json"} <= set(renamed)
    assert not list(run_dir.rglob(".*"))  # no temporary left behind


def test_sparser_checkpoints_resume_from_the_last_one_written(uninterrupted, tmp_path,
                                                              monkeypatch):
    run_dir = tmp_path / "run"
    savez = checkpoints.np.savez
    calls = []

    def killed_at_the_second_write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        savez(*args, **kwargs)

    flags = [*FLAGS, "--set", "training.checkpoint_every=2", "--output", str(run_dir)]
    with monkeypatch.context() as patch:
        patch.setattr(checkpoints.np, "savez", killed_at_the_second_write)
        with pytest.raises(Killed):
            train.main(flags)
    # Epoch 2's checkpoint (every 2) was written; epoch 3's, the last, was cut off.
    assert [path.name for path in (run_dir / "checkpoint").iterdir()] == ["epoch-0002"]
    train.main(["--resume", str(run_dir), "--no-progress"])
    pd.testing.assert_frame_equal(reproducible_history(run_dir), reproducible_history(uninterrupted))
