"""Scoring a trained model: predictions per split, metrics and reports, and `evaluate_run`."""

import functools
from pathlib import Path

import numpy as np
from keras import ops

from amsda_keras.data import read_dataset
from amsda_keras.data.splits import VALIDATION, apply_splits_file
from amsda_keras.data.table import relabel
from amsda_keras.data.validation import SKIPPED_FILE, apply_bad_sample_policy
from amsda_keras.inference import load_trained_run, logits_of
from amsda_keras.training import inputs, reporting

ALL_ROWS = "all"
# The order of the splits in the reports.
SPLIT_ORDER = ("train", VALIDATION, "dev", "test")


def score(model, frame, batches, class_names, directory, batch_size, protocol=None):
    """Predicts every split of `frame`, writes the reports into `directory`, prints a summary.

    `batches` is the `make(part, **options)` function of `inputs.batches_for`; `protocol`, a
    trained run's `Protocol`, gives each split's role in the reports.
    """
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
    probabilities = dict(zip(parts, np.split(every_row, ends[:-1])))
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


def evaluate_run(run_dir, data, *, data_format="auto", split=None, output=None,
                 on_bad_sample=None, progress=True):
    """Scores the dataset `data` with the trained run in `run_dir`.

    Args:
        run_dir: a run folder written by `train`.
        data: a manifest or dataset folder labelled with (some of) the run's classes. A
            manifest is read with its own class names, as `train` reads it, and matched to the
            run's by name; int labels without a `label_name` are the run's class indices. The
            other formats must have the run's classes.
        data_format: reader to use, or `"auto"`.
        split: score only this split; None scores every split, or every row when the data has
            no `split` field. Data without splits of its own (the run's own dataset when the
            run drew its split) takes them from the run's `splits.csv`.
        output: folder for the reports. Defaults to `<run_dir>/evaluation/<data name>[-<split>]`.
        on_bad_sample: `"skip"` or `"error"`; None keeps the run's setting.

    Returns:
        The metrics dict, keyed by split.

    Raises:
        ValueError: the data has classes the run lacks (the message names both lists), or
            no row to score.
    """
    run = load_trained_run(run_dir)
    config, class_names = run.config, run.class_names
    # A file in "auto" is a manifest (or no dataset at all, which read_dataset says).
    manifest = data_format == "manifest" or (data_format == "auto" and Path(data).is_file())
    table = read_dataset(data, data_format=data_format, label_rule=config["data"]["label_rule"],
                         class_names=None if manifest else class_names,
                         image_dir=config["data"]["image_dir"])
    if manifest:
        table = relabel(table, class_names, data)
    for note in table.notes:
        print(f"Note: {note}")
    name = Path(data).stem + (f"-{split}" if split else "")
    directory = Path(output or run.directory / "evaluation" / name)
    directory.mkdir(parents=True, exist_ok=True)
    table = apply_bad_sample_policy(table, on_bad_sample or config["data"]["on_bad_sample"],
                                    output_dir=directory, progress=progress)
    if table.frame.empty:
        raise ValueError(f"{data} has no rows to score (skipped rows are listed in "
                         f"{directory / SKIPPED_FILE}).")

    frame = table.frame.copy()
    if split and frame["split"].isna().all():
        splits_file = run.directory / "splits.csv"
        try:
            frame = apply_splits_file(frame, splits_file)
        except ValueError as error:
            raise ValueError(f"{data} has no splits of its own, and {error}") from None
        print(f"Note: {data} has no splits of its own; using the run's {splits_file}.")
    frame["split"] = frame["split"].fillna(ALL_ROWS)
    if split:
        if split not in set(frame["split"]):
            raise ValueError(f"{data} has no split {split!r}; it has {sorted(set(frame['split']))}.")
        frame = frame[frame["split"] == split]
    frame["row"] = np.arange(len(frame))

    batches = inputs.batches_for(run.model, run.encoders, frame, config["features"],
                                 progress=progress)
    results = score(run.model, frame, batches, class_names, directory,
                    config["training"]["batch_size"])
    print(f"Reports written to {directory}")
    return results


def _split_rank(split):
    return SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER)
