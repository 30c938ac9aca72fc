"""The MAHFNet and A-MSDA recipes through the train and evaluate CLIs, on the demo data."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from amsda_keras import evaluate, train
from tests.helpers import SMALL_AMSDA, SMALL_MAHFNET


@pytest.mark.backends
def test_mahfnet_logs_task_and_contrastive_losses_and_evaluates(tmp_path):
    run_dir = tmp_path / "mahfnet"
    train.main([*SMALL_MAHFNET, "--output", str(run_dir), "--epochs", "4", "--no-progress",
                "--set", "training.contrastive_weight=0.5"])
    history = pd.read_csv(run_dir / "history.csv")
    assert {"logits_loss", "contrastive_loss", "val_logits_accuracy"} <= set(history.columns)
    np.testing.assert_allclose(history["loss"],
                               history["logits_loss"] + 0.5 * history["contrastive_loss"],
                               rtol=1e-4)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["dev"]["accuracy"] > 0.6  # chance is 1/3
    out = tmp_path / "eval"
    evaluate.main(["--run", str(run_dir), "--data",
                   yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["path"],
                   "--output", str(out), "--no-progress"])
    assert json.loads((out / "metrics.json").read_text())["all"]["num_samples"] == 480


def test_mahfnet_without_contrastive_loss_trains_as_a_single_output_model(tmp_path):
    run_dir = tmp_path / "no_contrastive"
    train.main([*SMALL_MAHFNET, "--ablate", "hgfm,ieem,agai", "--output", str(run_dir),
                "--epochs", "3", "--no-progress"])
    history = pd.read_csv(run_dir / "history.csv")
    assert "val_accuracy" in history and "contrastive_loss" not in history
    assert json.loads((run_dir / "run.json").read_text())["best_epoch"] >= 1
    assert json.loads((run_dir / "metrics.json").read_text())["dev"]["accuracy"] > 0.6




def test_amsda_fine_tunes_with_its_recipe_logs_fusion_weights_and_evaluates(tmp_path):
    run_dir = tmp_path / "amsda"
    train.main([*SMALL_AMSDA, "--output", str(run_dir), "--epochs", "4", "--no-progress"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["encoders"]["trainable"] and config["training"]["loss"] == "focal"
    history = pd.read_csv(run_dir / "history.csv")
    branches = [f"fusion_weight_{name}" for name in ("text", "image", "fusion")]
    np.testing.assert_allclose(history[branches].sum(axis=1), 1.0, atol=1e-5)
    assert (history[branches] > 0).all().all() and "learning_rate" in history
    info = json.loads((run_dir / "run.json").read_text())
    assert set(branches) <= set(info) and (run_dir / "fusion_weights.png").is_file()
    assert json.loads((run_dir / "metrics.json").read_text())["dev"]["accuracy"] > 0.6

    out = tmp_path / "eval"
    evaluate.main(["--run", str(run_dir), "--data", config["data"]["path"], "--output", str(out),
                   "--no-progress"])
    assert json.loads((out / "metrics.json").read_text())["all"]["accuracy"] > 0.6
