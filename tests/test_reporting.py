import json

import numpy as np
import pandas as pd

from amsda_keras.training.reporting import (
    compute_metrics,
    plot_training_curves,
    summary_table,
    write_reports,
)

CLASSES = ["positive", "neutral", "negative"]


def test_metrics_match_hand_computed_values():
    y_true = np.array([0, 0, 0, 1, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 0])
    metrics = compute_metrics(y_true, y_pred, CLASSES)
    assert metrics["accuracy"] == 4 / 6
    # F1 per class: positive 2/3 (p 2/3, r 2/3), neutral 2/3 (p 1/2, r 1), negative 2/3 (p 1, r 1/2).
    assert np.isclose(metrics["macro_f1"], 2 / 3)
    assert np.isclose(metrics["weighted_f1"], 2 / 3)
    assert metrics["per_class"]["neutral"] == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_reports_are_written_per_split(tmp_path):
    predictions = {
        "train": (np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1])),
        "dev": (np.array([0, 1, 2]), np.array([0, 0, 2])),
    }
    results = write_reports(tmp_path, predictions, CLASSES)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == results and set(saved) == {"train", "dev"}
    assert saved["dev"]["accuracy"] == 2 / 3
    report = (tmp_path / "classification_report.txt").read_text()
    assert "== dev ==" in report and "neutral" in report
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0  # the dev split
    assert (tmp_path / "confusion_matrix_train.png").stat().st_size > 0
    assert summary_table(results).loc["dev", "num_samples"] == 3


def test_training_curves_plot(tmp_path):
    history = pd.DataFrame({"epoch": [0, 1], "accuracy": [0.5, 0.6], "loss": [1.0, 0.8],
                            "val_accuracy": [0.4, 0.5], "val_loss": [1.1, 0.9]})
    plot_training_curves(tmp_path / "curves.png", history)
    assert (tmp_path / "curves.png").stat().st_size > 0
