import json

import numpy as np
import pandas as pd

from amsda_keras.training.reporting import (
    compute_metrics,
    fusion_weights_figure,
    plot_training_curves,
    summary_table,
    training_curves_figure,
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


def _visible_ticks(axes):
    low, high = axes.get_xlim()
    return [tick for tick in axes.get_xticks() if low <= tick <= high]


def _kept_lines(axes):
    return [line for line in axes.get_lines() if line.get_label() == "kept"]


def test_training_curves_show_whole_epochs_readable_titles_and_the_kept_epoch():
    # MAHFNet's columns, with a learning-rate schedule.
    history = pd.DataFrame({"epoch": [0, 1, 2, 3], "contrastive_loss": [3.0, 2.5, 2.2, 2.1],
                            "learning_rate": [1e-3, 1e-3, 8e-4, 8e-4],
                            "logits_accuracy": [0.5, 0.6, 0.7, 0.72],
                            "logits_loss": [1.0, 0.8, 0.6, 0.5], "loss": [1.3, 1.05, 0.82, 0.71],
                            "val_logits_accuracy": [0.4, 0.6, 0.65, 0.6],
                            "val_loss": [1.2, 1.0, 0.9, 0.95]})
    figure = training_curves_figure(history, selection="dev", kept=3)
    panels = {axes.get_title(): axes for axes in figure.axes}
    assert list(panels) == ["contrastive loss", "learning rate", "accuracy",
                            "classification loss", "loss"]
    for axes in panels.values():
        ticks = _visible_ticks(axes)
        assert ticks and all(float(tick).is_integer() for tick in ticks), ticks
        [kept] = _kept_lines(axes)
        assert list(kept.get_xdata()) == [3, 3] and kept.get_linestyle() == "--"
    assert panels["learning rate"].get_legend() is None
    legend = [text.get_text() for text in panels["accuracy"].get_legend().get_texts()]
    assert legend == ["train", "dev (selects)", "kept"]
    [one_epoch, *_] = training_curves_figure(history.head(1), kept=1).axes
    assert _visible_ticks(one_epoch) == [1]


def test_the_probes_curves_have_one_point_per_c_on_a_log_axis():
    history = pd.DataFrame({"c": [0.01, 0.1, 1.0], "accuracy": [0.6, 0.7, 0.8],
                            "loss": [0.9, 0.7, 0.5], "val_accuracy": [0.6, 0.75, 0.7],
                            "val_loss": [0.9, 0.8, 0.85]})
    figure = training_curves_figure(history, kept=0.1)
    for axes in figure.axes:
        assert axes.get_xscale() == "log" and axes.get_xlabel().startswith("C")
        train = axes.get_lines()[0]
        assert list(train.get_xdata()) == [0.01, 0.1, 1.0]
        assert list(_kept_lines(axes)[0].get_xdata()) == [0.1, 0.1]


def test_fusion_weights_are_drawn_zoomed_to_their_range():
    history = pd.DataFrame({"epoch": [0, 1, 2], "fusion_weight_text": [0.335, 0.34, 0.35],
                            "fusion_weight_image": [0.333, 0.33, 0.32],
                            "fusion_weight_fusion": [0.332, 0.33, 0.33]})
    figure = fusion_weights_figure(history, kept=2)
    [axes] = figure.axes
    low, high = axes.get_ylim()
    assert 0.3 < low < 0.32 and 0.35 < high < 0.36
    assert "zoomed" in axes.get_ylabel()
    assert all(float(tick).is_integer() for tick in _visible_ticks(axes))
    assert list(_kept_lines(axes)[0].get_xdata()) == [2, 2]
