"""Metrics (scikit-learn), the run folder's reports and its figures (matplotlib)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn import metrics as sk_metrics

from amsda_keras.files import replaced_atomically, write_text_atomically

HEADLINE_METRICS = ("accuracy", "weighted_f1", "macro_f1")
# Each scored sample's label, prediction and class probabilities, every split but train.
PREDICTIONS_FILE = "predictions.csv"
# The run's facts, written last: a run folder is finished when it holds this file.
RUN_INFO_FILE = "run.json"
# History columns holding A-MSDA's learned branch weights: fusion_weight_<branch>.
FUSION_WEIGHT_PREFIX = "fusion_weight_"
# A dict-output model's metric prefix for its `logits` output (`logits_accuracy`).
LOGITS_PREFIX = "logits_"
# History columns measuring the machine, not the model: they differ between identical runs.
RESOURCE_COLUMNS = ("epoch_seconds", "peak_memory_mib")
# History columns logged once for the run, not per split (no train/selection legend).
RUN_WIDE_COLUMNS = ("learning_rate", *RESOURCE_COLUMNS)


def compute_metrics(y_true, y_pred, class_names):
    """Accuracy, weighted and macro F1, per-class precision/recall/F1/support and the
    confusion matrix (counts; rows are true classes, columns predictions)."""
    labels = list(range(len(class_names)))
    precision, recall, f1, support = sk_metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "num_samples": int(len(y_true)),
        "accuracy": float(sk_metrics.accuracy_score(y_true, y_pred)),
        "weighted_f1": float(
            sk_metrics.f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
        ),
        "macro_f1": float(
            sk_metrics.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
        "confusion_matrix": sk_metrics.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def write_predictions(path, parts, probabilities, class_names):
    """Writes each sample's true and predicted class and class probabilities to the CSV `path`
    (`id,split,label,predicted,probability_<class>...`), for every split but train.

    Args:
        path: the CSV file.
        parts: dict from split name to its rows (a DataFrame with `id` and `label`).
        probabilities: dict from split name to `[rows, classes]` probabilities.
        class_names: ordered class names.
    """
    names = np.asarray(class_names, dtype=object)
    frames = [
        pd.DataFrame({"id": parts[split]["id"].to_numpy(), "split": split,
                      "label": names[parts[split]["label"].to_numpy()],
                      "predicted": names[values.argmax(axis=-1)],
                      **{f"probability_{name}": values[:, index]
                         for index, name in enumerate(class_names)}})
        for split, values in probabilities.items() if split != "train"
    ]
    table = pd.concat(frames) if frames else pd.DataFrame(columns=["id", "split"])
    with replaced_atomically(path) as temporary:
        table.to_csv(temporary, index=False, float_format="%.5f")


def write_reports(directory, predictions, class_names, roles=None, main_split=None):
    """Writes `metrics.json`, `classification_report.txt` and confusion matrix figures.

    Args:
        directory: the folder to write into.
        predictions: dict from split name to `(y_true, y_pred)` integer arrays.
        class_names: ordered class names.
        roles: optional dict from split name to its role in training (`train`, `selection`,
            `untouched`), stored in each split's metrics as `role`.
        main_split: the split whose confusion matrix is `confusion_matrix.png`; defaults to
            dev, else the first split.

    Returns:
        The metrics dict, keyed by split.
    """
    directory = Path(directory)
    results = {split: compute_metrics(*pair, class_names) for split, pair in predictions.items()}
    for split, role in (roles or {}).items():
        results[split]["role"] = role
    write_text_atomically(directory / "metrics.json", json.dumps(results, indent=2) + "\n")
    labels = list(range(len(class_names)))
    reports = [
        f"== {split} ==\n"
        + sk_metrics.classification_report(
            y_true, y_pred, labels=labels, target_names=class_names, digits=4, zero_division=0
        )
        for split, (y_true, y_pred) in predictions.items()
    ]
    write_text_atomically(directory / "classification_report.txt", "\n".join(reports))
    main_split = main_split or ("dev" if "dev" in predictions else next(iter(predictions)))
    for split, values in results.items():
        name = "confusion_matrix.png" if split == main_split else f"confusion_matrix_{split}.png"
        plot_confusion_matrix(directory / name, values["confusion_matrix"], class_names, title=split)
    return results


def summary_table(results):
    """The headline metrics of every split as a small DataFrame, for printing; with roles, the
    split that picked the epoch is marked `(selects)` and the others `(untouched)`."""
    marks = {"selection": " (selects)", "untouched": " (untouched)"}
    rows = {
        split + marks.get(values.get("role"), ""):
            {key: values[key] for key in ("num_samples", *HEADLINE_METRICS)}
        for split, values in results.items()
    }
    return pd.DataFrame(rows).T.astype({"num_samples": int})


def markdown_table(frame):
    """A DataFrame as a GitHub Markdown table (no `tabulate` dependency)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |",
             "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def plot_confusion_matrix(path, counts, class_names, title=""):
    """Writes `confusion_matrix_figure` to the PNG `path`."""
    save_figure(confusion_matrix_figure(counts, class_names, title), path)


def confusion_matrix_figure(counts, class_names, title=""):
    """Counts and row-normalised confusion matrices side by side."""
    counts = np.asarray(counts)
    totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 2.0 + 0.6 * len(class_names)
    figure = Figure(figsize=(2 * size + 1, size))
    for axes, matrix, label, fmt in zip(figure.subplots(1, 2), (counts, normalised),
                                        ("counts", "normalised by true class"), ("d", ".2f")):
        image = axes.imshow(matrix, cmap="Blues", vmin=0)
        figure.colorbar(image, ax=axes, fraction=0.046)
        for (row, column), value in np.ndenumerate(matrix):
            dark = value > matrix.max() / 2
            axes.text(column, row, format(value, fmt), ha="center", va="center",
                      color="white" if dark else "black")
        ticks = range(len(class_names))
        axes.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="true",
                 title=f"{title}\n{label}" if title else label)
        axes.set_xticklabels(class_names, rotation=45, ha="right")
        axes.set_yticklabels(class_names)
    return figure


def plot_training_curves(path, history, selection="dev", kept=None):
    """Writes `training_curves_figure` to the PNG `path`."""
    save_figure(training_curves_figure(history, selection, kept), path)


def training_curves_figure(history, selection="dev", kept=None):
    """Loss and every other logged metric per epoch, train next to `val_` (the `selection`
    split, None for none; fusion weights apart). The probe's history has one line per C
    instead of epochs.

    Args:
        history: the run's `history.csv` as a DataFrame (`epoch` from 0, or the probe's `c`).
        selection: the split named in the `val_` lines' legend, or None for none.
        kept: the x of the kept model (its epoch, counted from 1, or the probe's C), drawn as
            a dashed line; None for none.

    Returns:
        A matplotlib `Figure`, one panel per metric.
    """
    epochs = "epoch" in history
    x = history["epoch"] + 1 if epochs else history["c"]
    metrics = [name for name in history.columns if name not in ("epoch", "c")
               and not name.startswith(("val_", FUSION_WEIGHT_PREFIX))]
    figure = Figure(figsize=(4.5 * len(metrics), 3.5))
    for axes, name in zip(np.atleast_1d(figure.subplots(1, len(metrics))), metrics):
        per_split = name not in RUN_WIDE_COLUMNS
        axes.plot(x, history[name], marker="o", label="train" if per_split else None)
        if selection and f"val_{name}" in history:
            axes.plot(x, history[f"val_{name}"], marker="o", label=f"{selection} (selects)")
        axes.set(xlabel="epoch" if epochs else "C (inverse L2 strength)",
                 title=_metric_title(name), xscale="linear" if epochs else "log")
        if epochs:
            _whole_epochs(axes)
        _mark_kept(axes, kept)
        if per_split:
            axes.legend()
    return figure


def _metric_title(name):
    """A history column as a title: `logits_accuracy` -> "accuracy", `contrastive_loss` ->
    "contrastive loss"; `logits_loss`, next to the total `loss`, -> "classification loss"."""
    if name == f"{LOGITS_PREFIX}loss":
        return "classification loss"
    return name.removeprefix(LOGITS_PREFIX).replace("_", " ")


def plot_fusion_weights(path, history, kept=None):
    """Writes `fusion_weights_figure` to the PNG `path`."""
    save_figure(fusion_weights_figure(history, kept), path)


def fusion_weights_figure(history, kept=None):
    """A-MSDA's learned branch weights per epoch, one line per branch. The y axis is zoomed to
    the weights (they start at 1/3 each and often stay within a few hundredths of it).

    Args:
        history: the run's `history.csv` as a DataFrame, with `fusion_weight_<branch>` columns.
        kept: the kept epoch (counted from 1), drawn as a dashed line; None for none.

    Returns:
        A matplotlib `Figure`.
    """
    figure = Figure(figsize=(5, 3.5))
    draw_fusion_weights(figure.subplots(), history, kept, title="Learned fusion weights")
    return figure


def draw_fusion_weights(axes, history, kept=None, title=None):
    """`fusion_weights_figure`'s lines on matplotlib `axes`."""
    for name in [name for name in history.columns if name.startswith(FUSION_WEIGHT_PREFIX)]:
        axes.plot(history["epoch"] + 1, history[name], marker="o",
                  label=name[len(FUSION_WEIGHT_PREFIX):])
    axes.margins(y=0.15)
    axes.set(xlabel="epoch", ylabel="weight (zoomed, not from 0)", title=title)
    _whole_epochs(axes)
    _mark_kept(axes, kept)
    axes.legend()


def _whole_epochs(axes):
    """Epoch ticks on whole numbers only, even when a single epoch leaves room for one tick."""
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _mark_kept(axes, kept):
    """A dashed line at the kept model's epoch (or C), unless `kept` is None."""
    if kept is not None:
        axes.axvline(kept, color="0.4", linestyle="--", linewidth=1, label="kept")


def save_figure(figure, path):
    """Lays out a matplotlib `Figure` and writes it to `path` (PNG) through a temporary file."""
    figure.tight_layout()
    with replaced_atomically(path) as temporary:
        figure.savefig(temporary, dpi=120)
