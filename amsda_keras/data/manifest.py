"""Reader for our own manifest: a JSON Lines or CSV file with one post a line.

Fields: `text`, `image` (relative to the manifest's folder, or absolute) and `label`
(an int index or a class name) are required (`label` not when reading posts to predict);
`id` (defaults to the line number), `split` (train/dev/test, `valid` -> `dev`) and
`label_name` (the name of an int label) are optional. `../shared/datasets/mvsa_single/mvsa_single.jsonl` and the MGNNS
distribution of TumEmo are read through it.
"""

import csv
import io
import json
import os
from pathlib import Path

from amsda_keras.data.table import SPLIT_NAMES
from amsda_keras.data.table import UNLABELED
from amsda_keras.data.table import BadSample
from amsda_keras.data.table import DatasetTable
from amsda_keras.data.table import as_integer
from amsda_keras.data.table import label_index
from amsda_keras.data.table import make_frame
from amsda_keras.data.table import normalise_split
from amsda_keras.data.source_files import iter_lines

REQUIRED_FIELDS = ("text", "image", "label")
PREDICTION_FIELDS = ("text", "image")


def read_manifest(path, class_names=None, labels_required=True):
    """Reads a `.jsonl` or `.csv` manifest into a `DatasetTable`.

    Args:
        path: str or Path, the manifest file.
        class_names: list of str or None. When given, int labels must index it and
            string labels must be in it (case-insensitive); other rows are rejected.
            When None: string labels give their sorted, lowercased unique names; int
            labels give the names `0..max`, taken from `label_name` where the manifest
            has it and `str(int)` otherwise (a named label among int labels must then
            be one of those names). Defaults to `None`.
        labels_required: bool. False reads posts to predict: a row without `label` gets
            `UNLABELED` (-1); `class_names` must then be given. Defaults to `True`.

    Returns:
        A `DatasetTable`. Malformed lines, missing fields, unknown labels and unknown
        splits are in `rejected`, located as `path:line`.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Manifest file not found: {path}")
    if not labels_required and class_names is None:
        raise ValueError("Reading a manifest without labels needs `class_names`.")
    required = REQUIRED_FIELDS if labels_required else PREDICTION_FIELDS
    records, rejected = _read_records(path, required)
    complete = []
    for number, record in records:
        missing = [field for field in required if _is_missing(record, field)]
        if missing:
            reason = f"missing field(s) {', '.join(missing)}"
            rejected.append(BadSample(_sample_id(record, number), f"{path}:{number}", reason))
        else:
            complete.append((number, record))
    if class_names is None:
        class_names = _infer_class_names([record for _, record in complete], path)
    folder = os.path.abspath(path.parent)
    rows = []
    for number, record in complete:
        label = (UNLABELED if _is_missing(record, "label")
                 else label_index(record["label"], class_names))
        split = normalise_split(record.get("split") or None)
        if label is None:
            reason = f"unknown label {record['label']!r} (classes: {list(class_names)})"
        elif split is not None and split not in SPLIT_NAMES:
            reason = f"unknown split {record['split']!r} (splits: {SPLIT_NAMES})"
        else:
            rows.append({
                "id": _sample_id(record, number),
                "text": str(record["text"]).strip(),
                "image": os.path.normpath(os.path.join(folder, str(record["image"]))),
                "label": label,
                "split": split,
                "source": f"{path}:{number}",
            })
            continue
        rejected.append(BadSample(_sample_id(record, number), f"{path}:{number}", reason))
    return DatasetTable(make_frame(rows), list(class_names), rejected)


def _read_records(path, required):
    """Returns `([(line_number, record dict)], rejected)` for a `.jsonl` or `.csv` file."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".csv":
        return _read_csv(path, required)
    raise ValueError(f"A manifest must be a .jsonl or .csv file. Received: {path}")


def _read_jsonl(path):
    records, rejected = [], []
    for number, line in iter_lines(path):
        reason = None
        if line is None:
            reason = "line is not valid UTF-8"
        else:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                reason = f"malformed JSON: {error}"
            else:
                if not isinstance(record, dict):
                    reason = "a line must be a JSON object"
        if reason is None:
            records.append((number, record))
        else:
            rejected.append(BadSample(str(number), f"{path}:{number}", reason))
    return records, rejected


def _read_csv(path, required):
    try:
        content = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8: {error}") from error
    reader = csv.DictReader(io.StringIO(content, newline=""))
    missing = [field for field in required if field not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"{path} has no column(s) {', '.join(missing)} in its header.")
    # `line_num` is the line where the record ends (texts may span lines).
    return [(reader.line_num, record) for record in reader], []


def _is_missing(record, field):
    value = record.get(field)
    return value is None or (field != "text" and str(value).strip() == "")


def _sample_id(record, number):
    sample_id = record.get("id")
    return str(number) if sample_id is None or str(sample_id).strip() == "" else str(sample_id)


def _infer_class_names(records, path):
    """Class names for a manifest read without `class_names` (see `read_manifest`)."""
    numbers = [as_integer(record["label"]) for record in records]
    if all(number is None for number in numbers):
        return sorted({str(record["label"]).strip().lower() for record in records})
    names = {}
    for number, record in zip(numbers, records):
        name = record.get("label_name")
        if number is None or name is None:
            continue
        if names.setdefault(number, str(name)) != str(name):
            raise ValueError(
                f"{path} names label {number} both {names[number]!r} and {name!r}; "
                "pass `class_names`."
            )
    top = max(number for number in numbers if number is not None)
    return [names.get(number, str(number)) for number in range(top + 1)]
