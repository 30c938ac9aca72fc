"""Scoring a trained model: predictions per split, metrics and reports, and `evaluate_run`."""

import functools
from pathlib import Path

import numpy as np
from keras import ops

from amsda_keras.data import read_dataset
from amsda_keras.data.splits import VALIDATION, apply_splits_file
from amsda_keras.data.table import relabel
from amsda_keras.data.validation import SKIPPED_FILE, apply_bad_sample_policy
from amsda_keras.inference import load_trained_runs, logits_of
from amsda_keras.training import inputs, reporting

ALL_ROWS = "all"
# The order of the splits in the reports.
SPLIT_ORDER = ("train", VALIDATION, "dev", "test")


def score(model, frame, batches, class_names, directory, batch_size, protocol=None):
    """Predicts every split of `frame`, writes the reports into `directory`, prints a summary.

    `batches` is the `make(part, **options)` function of `inputs.batches_for`; `protocol`, a
    trained run's `Protocol`, gives each split's role in the reports.
    """
    parts, probabilities = split_probabilities(model, frame, batches, batch_size)
    return write_scores(parts, probabilities, class_names, directory, protocol)


def split_probabilities(model, frame, batches, batch_size):
    """`(parts, probabilities)`: the rows of `frame` per split, in report order, and the
    model's class probabilities for each split's rows."""
    parts = {split: part for split, part in sorted(
        frame.groupby("split", sort=False), key=lambda pair: _split_rank(pair[0]))}
    # One `predict` over the splits' batches in a row: a `predict` per split makes tensorflow
    # retrace for each new dataset (and warn). Each split keeps its own batches, so its
    # probabilities do not depend on the other splits' rows.
    dataset = functools.reduce(lambda first, second: first.concatenate(second), [
        batches(part, batch_size=batch_size, with_labels=False) for part in parts.values()])
    every_row = ops.convert_to_numpy(ops.softmax(ops.cast(
        logits_of(model.predict(dataset, verbose=0)), "float32")))
    ends = np.cumsum([len(part) for part in parts.values()])
    return parts, dict(zip(parts, np.split(every_row, ends[:-1])))


def write_scores(parts, probabilities, class_names, directory, protocol=None):
    """Writes the predictions and reports of `split_probabilities`' output into `directory`
    and prints a summary. Returns the metrics dict, keyed by split."""
    reporting.write_predictions(directory / reporting.PREDICTIONS_FILE, parts, probabilities,
                                class_names)
    predictions = {split: (parts[split]["label"].to_numpy(), values.argmax(axis=-1))
                   for split, values in probabilities.items()}
    roles = ({split: protocol.role(split) for split in predictions}
             if protocol is not None else None)
    results = reporting.write_reports(directory, predictions, class_names, roles=roles,
                                      main_split=protocol and protocol.report)
    print(reporting.summary_table(results).round(4).to_string())
    return results


def evaluate_run(run_dirs, data, *, data_format="auto", split=None, output=None,
                 on_bad_sample=None, progress=True):
    """Scores the dataset `data` with a trained run, or with an ensemble of runs.

    Args:
        run_dirs: a run folder written by `train`, or a list of them: an ensemble that
            averages their class probabilities. Their class names must match; the data is
            read with the first run's settings.
        data: a manifest or dataset folder labelled with (some of) the runs' classes. A
            manifest is read with its own class names, as `train` reads it, and matched to the
            run's by name; int labels without a `label_name` are the run's class indices. The
            other formats must have the run's classes.
        data_format: reader to use, or `"auto"`.
        split: score only this split; None scores every split, or every row when the data has
            no `split` field. Data without splits of its own (the run's own dataset when the
            run drew its split) takes them from the run's `splits.csv`, which every run of an
            ensemble must share.
        output: folder for the reports. Defaults to `<run_dir>/evaluation/<data name>[-<split>]`
            (`-ensemble-of-N` appended for N runs, in the first run's folder).
        on_bad_sample: `"skip"` or `"error"`; None keeps the first run's setting.

    Returns:
        The metrics dict, keyed by split.

    Raises:
        ValueError: the data has classes the run lacks (the message names both lists), or
            no row to score; the runs of an ensemble differ in classes or in the split drawn.
    """
    runs = load_trained_runs(run_dirs)
    run, config, class_names = runs[0], runs[0].config, runs[0].class_names
    # A file in "auto" is a manifest (or no dataset at all, which read_dataset says).
    manifest = data_format == "manifest" or (data_format == "auto" and Path(data).is_file())
    table = read_dataset(data, data_format=data_format, label_rule=config["data"]["label_rule"],
                         class_names=None if manifest else class_names,
                         image_dir=config["data"]["image_dir"])
    if manifest:
        table = relabel(table, class_names, data)
    for note in table.notes:
        print(f"Note: {note}")
    name = (Path(data).stem + (f"-{split}" if split else "")
            + (f"-ensemble-of-{len(runs)}" if len(runs) > 1 else ""))
    directory = Path(output or run.directory / "evaluation" / name)
    directory.mkdir(parents=True, exist_ok=True)
    table = apply_bad_sample_policy(table, on_bad_sample or config["data"]["on_bad_sample"],
                                    output_dir=directory, progress=progress)
    if table.frame.empty:
        raise ValueError(f"{data} has no rows to score (skipped rows are listed in "
                         f"{directory / SKIPPED_FILE}).")

    frame = table.frame.copy()
    if split and frame["split"].isna().all():
        frame = _with_runs_splits(frame, data, runs)
    frame["split"] = frame["split"].fillna(ALL_ROWS)
    if split:
        if split not in set(frame["split"]):
            raise ValueError(f"{data} has no split {split!r}; it has {sorted(set(frame['split']))}.")
        frame = frame[frame["split"] == split]
    frame["row"] = np.arange(len(frame))

    members = []
    for member in runs:
        batches = inputs.batches_for(member.model, member.encoders, frame,
                                     member.config["features"], progress=progress)
        members.append(split_probabilities(member.model, frame, batches,
                                           member.config["training"]["batch_size"]))
    parts = members[0][0]
    probabilities = {split_name: np.mean([values[split_name] for _, values in members], axis=0)
                     for split_name in parts}
    results = write_scores(parts, probabilities, class_names, directory)
    print(f"Reports written to {directory}")
    return results


def _with_runs_splits(frame, data, runs):
    """`frame` split as the runs' `splits.csv` say (data without splits of its own)."""
    splits_files = [member.directory / "splits.csv" for member in runs]
    if len({path.read_bytes() if path.is_file() else None for path in splits_files}) > 1:
        raise ValueError(f"{data} has no splits of its own, and the runs drew different "
                         "splits (their splits.csv differ): each run's dev rows were another "
                         "run's training rows. Score data with its own splits, or runs of "
                         "one split.")
    try:
        frame = apply_splits_file(frame, splits_files[0])
    except ValueError as error:
        raise ValueError(f"{data} has no splits of its own, and {error}") from None
    print(f"Note: {data} has no splits of its own; using the run's {splits_files[0]}.")
    return frame


def _split_rank(split):
    return SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)
