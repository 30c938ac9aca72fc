"""`--resume`: a run killed mid-training continues to the result of an uninterrupted one."""

import json
import sys

import pandas as pd
import pytest

from amsda_keras import train
from amsda_keras.training.checkpoints import CHECKPOINT_DIR, latest_checkpoint
from amsda_keras.training.tensorboard import TENSORBOARD_DIR
from tests.helpers import kill_when, logged_summaries, reproducible_history


@pytest.mark.backends
def test_a_killed_run_resumes_to_the_result_of_an_uninterrupted_one(tmp_path):
    """Every kind of state: dropout seeds, Adam, ReduceLROnPlateau, early stopping and the
    best-model checkpoint. Many short epochs, so the kill lands mid-run."""
    epochs = 30
    args = ["--model", "baseline", "--epochs", str(epochs), "--no-progress",
            "--set", "training.reduce_lr_patience=2", "--set", "training.reduce_lr_factor=0.5",
            "--set", "training.early_stopping_patience=20"]
    uninterrupted = tmp_path / "uninterrupted"
    train.main([*args, "--output", str(uninterrupted)])

    killed = tmp_path / "killed"
    kill_when([sys.executable, "-m", "amsda_keras.train", *args, "--output", str(killed)],
              lambda: latest_checkpoint(killed) is not None, "checkpointed epoch")
    assert not (killed / "metrics.json").exists()
    checkpoint = latest_checkpoint(killed)
    assert checkpoint["epochs_done"] < epochs

    with pytest.raises(SystemExit, match="unfinished run: continue it with `--resume"):
        train.main([*args, "--output", str(killed)])
    with pytest.raises(SystemExit, match="only --epochs may be given with it. Received: "
                                         "training.seed"):
        train.main(["--resume", str(killed), "--seed", "9"])
    train.main(["--resume", str(killed), "--no-progress"])
    resumed, expected = (json.loads((run / "metrics.json").read_text())
                         for run in (killed, uninterrupted))
    for split in expected:
        assert abs(resumed[split]["accuracy"] - expected[split]["accuracy"]) <= 0.005
    pd.testing.assert_frame_equal(reproducible_history(killed),
                                  reproducible_history(uninterrupted), rtol=1e-4)
    assert not (killed / CHECKPOINT_DIR).exists()
    # The run's wall time counts the killed process's time up to its checkpoint.
    info = json.loads((killed / "run.json").read_text())
    assert info["resumed_after_epoch"] == checkpoint["epochs_done"]
    assert info["wall_time_seconds"] > checkpoint["wall_time_seconds"] > 0
    # The TensorBoard curves continue: every epoch once, across the killed and resumed files.
    epochs_run = len(pd.read_csv(killed / "history.csv"))
    for folder, tag in (("train", "epoch_loss"), ("validation", "epoch_loss"),
                        ("selection", "confusion_matrix")):
        values = logged_summaries(killed / TENSORBOARD_DIR / folder)
        assert [step for step, _ in values[tag]] == list(range(epochs_run)), folder
    assert "_hparams_/session_start_info" in values
