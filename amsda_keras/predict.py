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
"""

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

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
    parser.add_argument("--run", required=True, help="Run folder written by amsda_keras.train.")
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


def predict(run, table, output, batch_size=DEFAULT_BATCH_SIZE, progress=True):
    """Predicts every usable row of `table` with `run` and writes the CSV `output`.

    Args:
        run: an `inference.TrainedRun`.
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
    probabilities = _probabilities(run, usable, batch_size, progress)
    weights = {name: f"{value:.6f}" for name, value in fusion_weights(run.model).items()}
    labelled = bool((frame["label"] != UNLABELED).any())
    columns = (["id", "text", "image", "label"]
               + [f"probability_{name}" for name in run.class_names] + list(weights)
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
                values["true_label"] = run.class_names[row.label]
            if position in reasons:
                values["reason"] = "; ".join(reasons[position])
            else:
                probs = next(probabilities)
                values["label"] = run.class_names[int(probs.argmax())]
                values.update({f"probability_{name}": f"{p:.6f}"
                               for name, p in zip(run.class_names, probs)}, **weights)
            writer.writerow(values)
        next(probabilities, None)  # runs the generator to its end, which closes the bar
        for bad in table.rejected:
            writer.writerow({"id": bad.id, "image": bad.file, "reason": bad.reason})
    return len(usable), len(reasons) + len(table.rejected)


def _probabilities(run, frame, batch_size, progress):
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


def single_post(text, image, class_names):
    """A one-row table for `--text` and `--image`."""
    if not os.path.exists(image):
        raise FileNotFoundError(f"Image file not found: {image}")
    row = {"id": "1", "text": text, "image": os.path.abspath(image), "label": UNLABELED,
           "split": None, "source": "--text/--image"}
    return DatasetTable(make_frame([row]), class_names=class_names)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_tensorflow()
    single = args.text is not None or args.image is not None
    if single == (args.data is not None) or (single and None in (args.text, args.image)):
        parser.error("give either --text and --image, or --data")
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    from amsda_keras.inference import load_run

    with user_errors():
        output = args.output or (None if single else
                                 Path(args.run) / "predictions" / f"{Path(args.data).stem}.csv")
        if output and Path(output).is_dir():
            raise ValueError(f"--output {output} is a folder; name the CSV file to write.")
        run = load_run(args.run)
        if single:
            _predict_single(run, args.text, args.image, output)
            return
        predicted, failed = predict(run, read_posts(args.data, run), output, args.batch_size,
                                    progress=not args.no_progress)
        print(f"Predicted {predicted:,} rows; {failed:,} could not be (see the `reason` "
              f"column). Written to {output}")


def _predict_single(run, text, image, output):
    """Prints the label of one post; writes its CSV row only to `output` (None: nowhere)."""
    table = single_post(text, image, run.class_names)
    with tempfile.TemporaryDirectory() as folder:
        written = output or Path(folder) / "single_post.csv"
        _, failed = predict(run, table, written, progress=False)
        _print_single(written)
    if output:
        print(f"Written to {output}")
    if failed:
        sys.exit(1)


def _print_single(output):
    with Path(output).open(encoding="utf-8") as file:
        row = next(csv.DictReader(file))
    for name, value in row.items():
        if value and name not in ("id", "text", "image"):
            print(f"{name}: {value}")


if __name__ == "__main__":
    main()
