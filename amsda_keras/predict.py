"""`python -m amsda_keras.predict`: label new posts with a trained run.

One post (printed, and written as CSV with --output):
    python -m amsda_keras.predict --run runs/amsda-20261123-101500 --text "what a day" \
        --image photo.jpg
A manifest (.jsonl/.csv with `text` and `image`; `id` and `label` optional) or a dataset folder,
streamed in batches with a progress bar into a CSV:
    python -m amsda_keras.predict --run runs/mahfnet-20261123-101500 --data new_posts.jsonl \
        --output predictions.csv

The CSV has one row per input row, in order: `id`, `text`, `image`, `label` (the predicted
class), `probability_<class>` for every class, for A-MSDA the learned `fusion_weight_<branch>`
(one set per model), `true_label` when the data has labels, and `reason`, which says why a
row could not be predicted (missing or corrupt image, empty text, malformed line) and is
empty otherwise. Rows the reader could not parse come last, with their file and line as `image`.

From Python, `amsda_keras.predict(run, texts, images)` returns the same table as a DataFrame:
    amsda_keras.predict("runs/amsda-20261123-101500", ["what a day"], ["photo.jpg"])
"""

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from amsda_keras.cli import add_run_flag, make_module_callable
from amsda_keras.console import quiet_tensorflow, tqdm
from amsda_keras.data import read_dataset
from amsda_keras.data.manifest import read_manifest
from amsda_keras.data.table import UNLABELED, DatasetTable, make_frame
from amsda_keras.files import replaced_atomically
from amsda_keras.training.errors import user_errors

MANIFEST_SUFFIXES = (".jsonl", ".csv")
DEFAULT_BATCH_SIZE = 32


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.predict", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    add_run_flag(parser, "an ensemble that averages the runs' class probabilities")
    parser.add_argument("--text", help="The post's text (with --image).")
    parser.add_argument("--image", help="The post's image file (with --text).")
    parser.add_argument("--data", help="A manifest (.jsonl/.csv) or dataset folder to label.")
    parser.add_argument("--output", help="CSV to write. Default for --data: "
                                         "RUN/predictions/<data name>.csv; one post is only "
                                         "printed unless --output is given.")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help="Posts per prediction batch. Default: %(default)s.")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def predict(run, texts=None, images=None, *, data=None, output=None,
            batch_size=DEFAULT_BATCH_SIZE, progress=True):
    """Labels posts with a trained run. Returns a DataFrame with the CSV's columns (above).

    Args:
        run: a run folder written by `train` or its `Run`; or several (a list, a `RunGroup`
            or a --seeds/--folds folder): an ensemble averaging their class probabilities
            (without A-MSDA's fusion weights, which differ per run).
        texts, images: the posts, paired in order: a list of texts and a list of images, each
            an image file's path or its bytes (JPEG, PNG, ...). One post may be given as a str
            and a path.
        data: instead of `texts` and `images`, a manifest (.jsonl/.csv) or a dataset folder.
        output: also write the CSV there; None writes no file.
        batch_size: posts per prediction batch.
        progress: show progress bars.

    Raises:
        ValueError: neither or both of (`texts`, `images`) and `data`; `texts` and `images` of
            different lengths; `output` is a folder.
    """
    if (data is None) == (texts is None and images is None) or (
            data is None and None in (texts, images)):
        raise ValueError("predict() takes either texts and images, or data.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1. Received: {batch_size}")
    if output is not None and Path(output).is_dir():
        raise ValueError(f"--output {output} is a folder; name the CSV file to write.")
    quiet_tensorflow()
    trained = trained_runs(run)
    with tempfile.TemporaryDirectory() as folder:
        if data is not None:
            table, shown_images = read_posts(data, trained[0]), {}
        else:
            table, shown_images = posts_table(texts, images, trained[0].class_names, folder)
        written = Path(output) if output is not None else Path(folder) / "predictions.csv"
        write_predictions(trained, table, written, batch_size, progress)
        frame = read_predictions(written)
    frame["image"] = frame["image"].replace(shown_images)
    return frame


def trained_runs(runs):
    """The `inference.TrainedRun` of each run in `runs` (see `predict`), of one class list.

    Raises:
        ValueError: the runs' class names differ.
    """
    from amsda_keras.inference import load_trained_run, one_class_list
    from amsda_keras.runs import Run, RunGroup, run_directories

    trained = []
    for item in runs if isinstance(runs, (list, tuple)) else [runs]:
        if isinstance(item, (Run, RunGroup)):  # their models are loaded once, and kept
            trained += [run.trained for run in getattr(item, "runs", [item])]
        else:
            trained += [load_trained_run(directory) for directory in run_directories(item)]
    return one_class_list(trained)


def posts_table(texts, images, class_names, folder):
    """A table of the posts `texts` and `images` (paths or bytes, the bytes written to files in
    `folder`), and the names those files are shown under: `{path: "<N bytes>"}`."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    images = [images] if isinstance(images, (str, bytes, os.PathLike)) else list(images)
    if len(texts) != len(images):
        raise ValueError(f"texts and images pair up, one image per text: got {len(texts)} texts "
                         f"and {len(images)} images.")
    rows, shown = [], {}
    for number, (text, image) in enumerate(zip(texts, images), start=1):
        if isinstance(image, (bytes, bytearray)):
            path = Path(folder) / f"image-{number}"
            path.write_bytes(image)
            shown[str(path)] = f"<{len(image):,} bytes>"
            image = path
        rows.append({"id": str(number), "text": text, "image": os.path.abspath(image),
                     "label": UNLABELED, "split": None, "source": "predict()"})
    return DatasetTable(make_frame(rows), class_names=class_names), shown


def read_predictions(path):
    """A predictions CSV as a DataFrame: text columns as written (empty: ""), the
    probabilities and fusion weights as floats (NaN where a row could not be predicted)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    numeric = [name for name in frame.columns
               if name.startswith(("probability_", "fusion_weight_"))]
    frame[numeric] = frame[numeric].apply(pd.to_numeric, errors="coerce")
    return frame


def write_predictions(runs, table, output, batch_size=DEFAULT_BATCH_SIZE, progress=True):
    """Predicts every usable row of `table` with `runs` (their mean probabilities) and writes
    the CSV `output`.

    Args:
        runs: a list of `inference.TrainedRun` of one class list (one run, or an ensemble).
        table: a `DatasetTable` whose labels, if any, use the run's class names (`UNLABELED`
            for none); its `rejected` samples are listed at the end.
        output: path of the CSV.

    Returns:
        `(predicted, not_predicted)` row counts.
    """
    # Imported here, so that `--help` does not start TensorFlow.
    from amsda_keras.data.validation import find_problems
    from amsda_keras.training.callbacks import fusion_weights

    frame = table.frame
    reasons = {}
    for position, bad in find_problems(table, progress=progress):
        reasons.setdefault(position, []).append(bad.reason)
    usable = frame.drop(index=frame.index[list(reasons)])
    probabilities = _probabilities(runs, usable, batch_size, progress)
    weights = ({name: f"{value:.6f}" for name, value in fusion_weights(runs[0].model).items()}
               if len(runs) == 1 else {})
    class_names = runs[0].class_names
    labelled = bool((frame["label"] != UNLABELED).any())
    columns = (["id", "text", "image", "label"]
               + [f"probability_{name}" for name in class_names] + list(weights)
               + ["true_label"] * labelled + ["reason"])

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with (replaced_atomically(output) as temporary,
          temporary.open("w", newline="", encoding="utf-8") as file):
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        for position, row in enumerate(frame.itertuples()):
            values = {"id": row.id, "text": row.text, "image": row.image}
            if labelled and row.label != UNLABELED:
                values["true_label"] = class_names[row.label]
            if position in reasons:
                values["reason"] = "; ".join(reasons[position])
            else:
                probs = next(probabilities)
                values["label"] = class_names[int(probs.argmax())]
                values.update({f"probability_{name}": f"{p:.6f}"
                               for name, p in zip(class_names, probs)}, **weights)
            writer.writerow(values)
        next(probabilities, None)  # runs the generator to its end, which closes the bar
        for bad in table.rejected:
            writer.writerow({"id": bad.id, "image": bad.file, "reason": bad.reason})
    return len(usable), len(reasons) + len(table.rejected)


def _probabilities(runs, frame, batch_size, progress):
    """Yields the class probabilities of each row of `frame`: the one run's, or the mean of
    an ensemble's (each run predicts the whole frame in turn)."""
    if len(runs) == 1:
        yield from _run_probabilities(runs[0], frame, batch_size, progress)
        return
    yield from np.mean([np.asarray(list(_run_probabilities(run, frame, batch_size, progress)))
                        for run in runs], axis=0)


def _run_probabilities(run, frame, batch_size, progress):
    """Yields the class probabilities of each row of `frame`, predicting batch by batch."""
    from keras import ops

    from amsda_keras.data.pipeline import raw_dataset
    from amsda_keras.inference import logits_of

    if len(frame) == 0:
        return
    batches = raw_dataset(frame, batch_size=batch_size, with_labels=False, **run.preprocessors)
    for batch in tqdm(batches, total=-(-len(frame) // batch_size), desc="Predicting",
                      unit="batch", disable=not progress):
        logits = logits_of(run.end_to_end_model(batch, training=False))
        yield from ops.convert_to_numpy(ops.softmax(ops.cast(logits, "float32")))


def read_posts(data, run):
    """The table to predict: a manifest read without labels, or a dataset folder."""
    path = Path(data)
    if path.suffix.lower() in MANIFEST_SUFFIXES:
        return read_manifest(path, class_names=run.class_names, labels_required=False)
    return read_dataset(path, label_rule=run.config["data"]["label_rule"],
                        class_names=run.class_names)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow()
    single = args.text is not None or args.image is not None
    if single == (args.data is not None) or (single and None in (args.text, args.image)):
        parser.error("give either --text and --image, or --data")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")

    with user_errors():
        if single:
            _predict_single(args.run, args.text, args.image, args.output)
            return
        output = args.output or Path(args.run[0]) / "predictions" / f"{Path(args.data).stem}.csv"
        frame = predict(args.run, data=args.data, output=output, batch_size=args.batch_size,
                        progress=not args.no_progress)
        failed = int((frame["reason"] != "").sum())
        print(f"Predicted {len(frame) - failed:,} rows; {failed:,} could not be (see the "
              f"`reason` column). Written to {output}")


def _predict_single(run, text, image, output):
    """Prints the label of one post; writes its CSV row only to `output` (None: nowhere)."""
    if not os.path.exists(image):
        raise FileNotFoundError(f"Image file not found: {image}")
    row = predict(run, [text], [image], output=output, progress=False).iloc[0]
    for name, value in row.items():
        if name not in ("id", "text", "image") and value != "" and not pd.isna(value):
            print(f"{name}: {value}")
    if output:
        print(f"Written to {output}")
    if row["reason"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
else:
    make_module_callable(__name__)
