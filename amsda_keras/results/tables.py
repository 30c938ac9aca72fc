"""Tables and figures of the reproduce runs, read from the run records.

Every row summarises its records (`records.py`) of the seeds asked for (and, in a K-fold
table, of every fold), not the `summary.json` that `--seeds` wrote last: a later run of a
shared row with fewer seeds rewrites that file with those seeds only. Each row reports its
runs' untouched split (dev, or a K-fold table's held-out folds) beside the split that picked
the epoch, and its difference from the table's probe and reference row with the paired
bootstrap 95% CI over the runs both have (`significance.py`). A seed-ensemble row averages
another row's runs' class probabilities from their records. A row with no record shows
"not run" instead of numbers.
"""

import dataclasses
import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from amsda_keras.results.records import member_folders
from amsda_keras.results.significance import compare_run_sets, ensemble_run_set, load_run_set
from amsda_keras.training.protocol import report_split
from amsda_keras.training.reporting import (
    FUSION_WEIGHT_PREFIX,
    HEADLINE_METRICS,
    RESOURCE_COLUMNS,
    compute_metrics,
    draw_fusion_weights,
    plot_confusion_matrix,
    save_figure,
)
from amsda_keras.training.seeds import seed_stats, summarize_runs

NOT_RUN = "not run"
# The differences each row shows, against the probe and the reference row.
DELTAS = (("probe", "accuracy"), ("probe", "weighted_f1"), ("reference", "accuracy"))
RESOURCE_HEADERS = ("time per epoch", "peak memory")
METRIC_NAMES = {"accuracy": "accuracy", "weighted_f1": "weighted F1", "macro_f1": "macro F1"}


def load_summaries(records, table, seeds):
    """`{row.key: summary or None}` for every row of `table`, each read once. A summary is
    `seeds.summarize_runs`' of the row's records, with `report`, the untouched split it
    reports, and `members`, its runs' keys (`seed-1`, `fold-2/seed-1`)."""
    summaries = {}
    for row in table.rows:
        if not row.trains:
            continue
        group = Path(records) / table.folder(row)
        runs = member_folders(group, row.seeds(seeds), table.folds)
        if not runs:
            summaries[row.key] = None
            continue
        summary = summarize_runs(runs)
        summary["report"] = report_split(summary["untouched_splits"])
        summary["members"] = [run.relative_to(group).as_posix() for run in runs]
        summaries[row.key] = summary
    for row in table.rows:
        if row.majority_of:
            summaries[row.key] = majority_summary(summaries[row.majority_of])
        elif row.ensemble_of:
            source = _row(table, row.ensemble_of)
            summaries[row.key] = ensemble_summary(summaries[source.key],
                                                  Path(records) / table.folder(source))
    return summaries


def majority_summary(source):
    """The report-split metrics of always predicting the training split's most frequent class,
    for each run of the `source` summary (whose `metrics.json` hold every split's per-class
    support). Returns a summary shaped like `load_summaries`' (no runs of its own), or None."""
    if source is None:
        return None
    split = source["report"]
    values = []
    for run in source["runs"]:
        metrics = json.loads((Path(run) / "metrics.json").read_text())
        class_names = list(metrics[split]["per_class"])
        train_counts = [metrics["train"]["per_class"][name]["support"] for name in class_names]
        counts = [metrics[split]["per_class"][name]["support"] for name in class_names]
        y_true = np.repeat(np.arange(len(class_names)), counts)
        y_pred = np.full_like(y_true, int(np.argmax(train_counts)))
        values.append(compute_metrics(y_true, y_pred, class_names))
    return {"runs": [], "members": [], "report": split, "selected_on": None,
            "metrics": {split: {name: seed_stats([v[name] for v in values])
                                for name in HEADLINE_METRICS}},
            "run": {}}


def ensemble_summary(source, group):
    """The report split's metrics of the seed ensemble of the `source` summary's runs in
    `group` (`significance.ensemble_run_set`), and its trainable parameters and wall time: the
    sums over those runs. Shaped like `load_summaries`' summaries, without runs of its own or
    a selection split (each seed may carve its own), with `ensemble`, the ensemble's run set
    that `load_comparisons` pairs; None where the source has fewer than two runs."""
    if source is None or len(source["members"]) < 2:
        return None
    split = source["report"]
    ensemble = ensemble_run_set(load_run_set(group, split=split, members=source["members"]))
    frame = next(iter(ensemble.members.values()))
    values = compute_metrics(frame["label"], frame["predicted"], ensemble.class_names)
    return {**source, "runs": [], "selected_on": None, "ensemble": ensemble,
            "metrics": {split: {name: seed_stats([values[name]]) for name in HEADLINE_METRICS}},
            "run": {name: seed_stats([sum(source["run"][name]["values"])])
                    for name in ("trainable_parameters", "wall_time_seconds")
                    if name in source["run"]}}


def load_comparisons(records, table, summaries):
    """`{row.key: {"probe": result, "reference": result}}`: `compare_run_sets` of each trained
    row against the table's probe and reference row, on the runs both have (None where a row
    is the one compared with, or either has no records)."""
    bases = {"probe": table.probe, "reference": table.reference}
    comparisons = {}
    for row in table.rows:
        if row.majority_of or summaries[row.key] is None:
            continue
        comparisons[row.key] = {}
        for name, base in bases.items():
            shared = (sorted(set(summaries[base]["members"]) & set(summaries[row.key]["members"]))
                      if base and base != row.key and summaries.get(base) else [])
            comparisons[row.key][name] = compare_run_sets(
                load_run_set(Path(records) / table.folder(_row(table, base)), members=shared),
                _row_run_set(records, table, row, summaries[row.key], shared),
            ) if shared else None
    return comparisons


def _row_run_set(records, table, row, summary, shared):
    """The row's run set on its `shared` members; an ensemble row's is its summary's
    ensemble (built from all the source row's runs), paired on the shared ones."""
    if not row.ensemble_of:
        return load_run_set(Path(records) / table.folder(row), members=shared)
    ensemble = summary["ensemble"]
    return dataclasses.replace(ensemble, members={key: ensemble.members[key] for key in shared})


def results_frame(table, summaries, comparisons):
    """One line per row: runs, the selection split's accuracy at the kept epoch, the untouched
    split's accuracy, weighted and macro F1 (mean ± std over runs), the differences from the
    probe and the reference row with their 95% CI, best epoch, trainable parameters, wall
    time per run, time per epoch and peak memory (`resources_cells`; where any row has
    them), the paper's accuracy / F1 and, for A-MSDA, the learned fusion weights."""
    reference = _row(table, table.reference) if table.reference else None
    delta_columns = {
        (base, metric): f"Δ {METRIC_NAMES[metric]} vs "
                        f"{'probe' if base == 'probe' else reference.label} [95% CI]"
        for base, metric in DELTAS if (table.probe if base == "probe" else reference)}
    lines = []
    for row in table.rows:
        summary = summaries[row.key]
        scored = summary is not None and not row.majority_of
        line = {"model": row.label, "runs": len(summary["members"]) if scored else ""}
        selected = summary and summary["selected_on"]
        line["selection accuracy"] = (_mean_std(summary["metrics"][selected]["accuracy"])
                                      if selected else "")
        for name, column in METRIC_NAMES.items():
            line[column] = (_mean_std(summary["metrics"][summary["report"]][name])
                            if summary else NOT_RUN)
        for (base, metric), column in delta_columns.items():
            result = comparisons.get(row.key, {}).get(base)
            line[column] = _difference(result["metrics"][metric]) if result else ""
        run = summary["run"] if scored else {}
        line["best epoch"] = _mean_std(run["best_epoch"], digits=1) if "best_epoch" in run else ""
        line["trainable parameters"] = (f"{run['trainable_parameters']['mean']:,.0f}"
                                        if run else "")
        line["wall time per run"] = f"{run['wall_time_seconds']['mean']:.0f} s" if run else ""
        line.update(resources_cells(summary) if scored and row.trains
                    else dict.fromkeys(RESOURCE_HEADERS))
        line["paper accuracy / F1"] = (f"{row.paper[0]:.4f} / {row.paper[1]:.4f}"
                                       if row.paper else "")
        if table.family == "A-MSDA":
            line["fusion weights"] = (fusion_weights_cell(summary)
                                      if scored and row.trains else "")
        lines.append(line)
    # Runs trained before history.csv timed its epochs have neither column.
    return pd.DataFrame(lines).dropna(axis="columns", how="all").fillna("")


def resources_cells(summary):
    """`{"time per epoch": ..., "peak memory": ...}`: the mean wall time of an epoch (training
    and the selection pass) over every epoch of the runs, and the highest peak resident memory
    of a run's process, from `history.csv`; None each where the histories lack them."""
    histories = [pd.read_csv(Path(run) / "history.csv") for run in summary["runs"]]
    if not all(set(RESOURCE_COLUMNS) <= set(history) for history in histories):
        return dict.fromkeys(RESOURCE_HEADERS)
    history = pd.concat(histories)
    peak = history["peak_memory_mib"].max()
    return dict(zip(RESOURCE_HEADERS, (f"{history['epoch_seconds'].mean():.0f} s",
                                       "" if pd.isna(peak) else f"{peak / 1024:.1f} GiB")))


def fusion_weights_cell(summary):
    """Mean learned text / image / fusion weights over the runs (kept epoch)."""
    infos = [json.loads((Path(run) / "run.json").read_text()) for run in summary["runs"]]
    names = [key for key in infos[0] if key.startswith(FUSION_WEIGHT_PREFIX)]
    if not names:
        return ""
    return " / ".join(f"{np.mean([info[name] for info in infos]):.3f}" for name in names)


def plot_fusion_weight_curves(path, table, summaries):
    """Writes the learned fusion weights per epoch of each row's first run that logged them,
    one panel a row, to the PNG `path`; returns `path`, or None where no row has them."""
    panels = []
    for row in table.rows:
        summary = summaries.get(row.key)
        if not (row.trains and summary):
            continue
        run = Path(summary["runs"][0])
        history = pd.read_csv(run / "history.csv")
        if any(name.startswith(FUSION_WEIGHT_PREFIX) for name in history.columns):
            kept = json.loads((run / "run.json").read_text())["best_epoch"]
            panels.append((f"{row.label}\n({summary['members'][0]})", history, kept))
    if not panels:
        return None
    figure = Figure(figsize=(5 * len(panels), 3.8))
    # One y scale for all panels: a row whose weights barely move looks flat beside one
    # whose weights moved.
    for axes, (title, history, kept) in zip(
            np.atleast_1d(figure.subplots(1, len(panels), sharey=True)), panels):
        draw_fusion_weights(axes, history, kept, title=textwrap.fill(title, 45))
    save_figure(figure, path)
    return path


def best_row(table, summaries):
    """The table's single-model row (not the probe, the majority class or an ensemble) with
    the highest mean untouched accuracy, or `None`."""
    scored = [(summary["metrics"][summary["report"]]["accuracy"]["mean"], row)
              for row in table.rows
              if row.trains and row.key != table.probe
              and (summary := summaries[row.key])]
    return max(scored, key=lambda pair: pair[0])[1] if scored else None


def run_metrics(summary):
    """The report-split metrics of each run of `summary`, from their `metrics.json`."""
    return [json.loads((Path(run) / "metrics.json").read_text())[summary["report"]]
            for run in summary["runs"]]


def per_class_frame(metrics):
    """Precision, recall and F1 per class, mean ± std over the runs, with support (per run).
    `metrics` comes from `run_metrics`."""
    lines = []
    for name, first in metrics[0]["per_class"].items():
        line = {"class": name}
        for field in ("precision", "recall", "f1"):
            line[field] = _mean_std(seed_stats([m["per_class"][name][field] for m in metrics]))
        line["support"] = first["support"]
        lines.append(line)
    return pd.DataFrame(lines)


def plot_summed_confusion(path, metrics, title):
    """The confusion matrices of all runs (`run_metrics`), summed, as counts and normalised by
    class."""
    counts = np.sum([m["confusion_matrix"] for m in metrics], axis=0)
    plot_confusion_matrix(path, counts, list(metrics[0]["per_class"]), title=title)


def _row(table, key):
    return next(row for row in table.rows if row.key == key)


def _difference(values):
    return (f"{values['difference']:+.3f} [{values['ci_low']:+.3f}, "
            f"{values['ci_high']:+.3f}]")


def _mean_std(stats, digits=3):
    if len(stats["values"]) == 1:
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"
