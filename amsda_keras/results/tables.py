"""Tables and figures of the reproduce runs: mean ± std over seeds, read from the run records.

Every row summarises its seed records `<records>/<row.key>/seed-N` (`records.py`) of the
seeds asked for, not the `summary.json` that `--seeds` wrote last: a later run of a shared
row with fewer seeds (`reproduce --seeds 1` of another table) rewrites that file with those
seeds only. A row with no record shows "not run" instead of numbers.
"""

import json
from pathlib import Path

import numpy as np
import pandas as pd

from amsda_keras.results.records import FINISHED
from amsda_keras.training.reporting import (
    FUSION_WEIGHT_PREFIX,
    HEADLINE_METRICS,
    compute_metrics,
    plot_confusion_matrix,
)
from amsda_keras.training.seeds import seed_stats, summarize_runs

NOT_RUN = "not run"
SPLIT = "dev"


def load_summary(records, row, seeds):
    """The row's summary over its records of `seeds`, or `None` when there is none
    (majority rows: computed)."""
    if row.majority_of:
        return majority_summary(records, row.majority_of, seeds)
    run_dirs = finished_runs(records, row.key, seeds)
    return summarize_runs(run_dirs) if run_dirs else None


def finished_runs(records, key, seeds):
    """The `<records>/<key>/seed-N` folders of `seeds` that hold a finished run."""
    folders = [Path(records) / key / f"seed-{seed}" for seed in seeds]
    return [folder for folder in folders if (folder / FINISHED).exists()]


def majority_summary(records, source_key, seeds):
    """Dev metrics of always predicting the training split's most frequent class.

    The class counts come from the first finished seed run of `source_key` (its
    `metrics.json` holds each split's per-class support). Returns a summary shaped like
    `--seeds`' (std 0).
    """
    run_dirs = finished_runs(records, source_key, seeds)
    if not run_dirs:
        return None
    metrics = json.loads((run_dirs[0] / "metrics.json").read_text())
    class_names = list(metrics[SPLIT]["per_class"])
    train_counts = [metrics["train"]["per_class"][name]["support"] for name in class_names]
    dev_counts = [metrics[SPLIT]["per_class"][name]["support"] for name in class_names]
    y_true = np.repeat(np.arange(len(class_names)), dev_counts)
    y_pred = np.full_like(y_true, int(np.argmax(train_counts)))
    values = compute_metrics(y_true, y_pred, class_names)
    return {
        "runs": [],
        "metrics": {SPLIT: {name: seed_stats([values[name]]) for name in HEADLINE_METRICS}},
        "run": {},
    }


def load_summaries(records, table, seeds):
    """`{row.key: summary or None}` for every row of `table`, each read once."""
    return {row.key: load_summary(records, row, seeds) for row in table.rows}


def results_frame(table, summaries):
    """One line per row: seeds run, dev accuracy, weighted and macro F1 (mean ± std), best epoch,
    trainable parameters, wall time per seed, the paper's accuracy / F1 and, for A-MSDA,
    the learned fusion weights. `summaries` comes from `load_summaries`."""
    lines = []
    for row in table.rows:
        summary = summaries[row.key]
        trained = summary and not row.majority_of
        line = {"model": row.label, "seeds": len(summary["runs"]) if trained else ""}
        metrics = summary["metrics"][SPLIT] if summary else {}
        for name, column in (("accuracy", "accuracy"), ("weighted_f1", "weighted F1"),
                             ("macro_f1", "macro F1")):
            line[column] = _mean_std(metrics[name]) if summary else NOT_RUN
        run = summary["run"] if summary else {}
        line["best epoch"] = _mean_std(run["best_epoch"], digits=1) if run else ""
        line["trainable parameters"] = (f"{run['trainable_parameters']['mean']:,.0f}"
                                        if run else "")
        line["wall time per seed"] = f"{run['wall_time_seconds']['mean']:.0f} s" if run else ""
        line["paper accuracy / F1"] = (f"{row.paper[0]:.4f} / {row.paper[1]:.4f}"
                                       if row.paper else "")
        if table.family == "A-MSDA":
            line["fusion weights"] = fusion_weights_cell(summary) if summary else ""
        lines.append(line)
    return pd.DataFrame(lines)


def fusion_weights_cell(summary):
    """Mean learned text / image / fusion weights over the seeds (best epoch)."""
    infos = [json.loads((Path(run) / "run.json").read_text()) for run in summary["runs"]]
    names = [key for key in infos[0] if key.startswith(FUSION_WEIGHT_PREFIX)]
    if not names:
        return ""
    return " / ".join(f"{np.mean([info[name] for info in infos]):.3f}" for name in names)


def best_row(table, summaries):
    """The table's trained row with the highest mean dev accuracy, or `None`."""
    scored = [(summaries[row.key]["metrics"][SPLIT]["accuracy"]["mean"], row)
              for row in table.rows if not row.majority_of and summaries[row.key]]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def seed_metrics(summary):
    """The dev metrics of each seed run of `summary`, from their `metrics.json`."""
    return [json.loads((Path(run) / "metrics.json").read_text())[SPLIT]
            for run in summary["runs"]]


def per_class_frame(metrics):
    """Dev precision, recall and F1 per class, mean ± std over the seeds, with support.
    `metrics` comes from `seed_metrics`."""
    lines = []
    for name, first in metrics[0]["per_class"].items():
        line = {"class": name}
        for field in ("precision", "recall", "f1"):
            line[field] = _mean_std(seed_stats([m["per_class"][name][field] for m in metrics]))
        line["support"] = first["support"]
        lines.append(line)
    return pd.DataFrame(lines)


def plot_summed_confusion(path, metrics, title):
    """The dev confusion matrices of all seeds (`seed_metrics`), summed, as counts and
    normalised by class."""
    counts = np.sum([m["confusion_matrix"] for m in metrics], axis=0)
    plot_confusion_matrix(path, counts, list(metrics[0]["per_class"]), title=title)


def _mean_std(stats, digits=3):
    if len(stats["values"]) == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"
