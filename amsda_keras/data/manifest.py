"""Reader for our own manifest: a JSON Lines or CSV file with one post a line.

Fields: `text`, `image` (relative to the manifest's folder, or absolute) and `label`
(an int index or a class name) are required (`label` not when reading posts to predict);
`id` (defaults to the line number), `split` (train/dev/test, `valid` -> `dev`) and
`label_name` (the name of an int label) are optional. `../shared/datasets/mvsa_single/mvsa_single.jsonl` and the MGNNS
distribution of TumEmo are read through it.

Labels never invent a class: a label that is not one of the classes (given, or read from the
manifest as `read_manifest` describes) is a rejected row with its `file:line` and reason.
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
            string labels must be in it (case-insensitive); a row whose `label_name`
            is not the name of its int label is rejected too. When None, the labels
            give the classes:
            - names only: their sorted, lowercased unique names;
            - ints only: the classes `0..K-1`, where `K` is the first index that no row
              uses (a class no row shows is never made up, so an int past a gap is
              rejected), named by `label_name` where the manifest has it, else `str(int)`;
            - ints and names (a "2" among names in a CSV, say): the ints give the classes
              when some row has a `label_name` (it ties ints to names) or ints outnumber
              names, and a name label is kept when it names one of them; otherwise the
              names give the classes and the int labels are rejected, since nothing says
              which class an int means.
            Defaults to `None`.
        labels_required: bool. False reads posts to predict: a row without `label` gets
            `UNLABELED` (-1); `class_names` must then be given. Defaults to `True`.

    Returns:
        A `DatasetTable`. Malformed lines, missing fields, unknown or out-of-range labels
        and unknown splits are in `rejected`, located as `path:line`.
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
    labels = _Labels(class_names) if class_names is not None else _Labels.infer(
        [record for _, record in complete if not _is_missing(record, "label")], path)
    folder = os.path.abspath(path.parent)
    rows = []
    for number, record in complete:
        label, reason = ((UNLABELED, None) if _is_missing(record, "label")
                         else labels.index(record))
        split = normalise_split(record.get("split") or None)
        if reason is None and split is not None and split not in SPLIT_NAMES:
            reason = f"unknown split {record['split']!r} (splits: {SPLIT_NAMES})"
        if reason is None:
            rows.append({
                "id": _sample_id(record, number),
                "text": str(record["text"]).strip(),
                "image": os.path.normpath(os.path.join(folder, str(record["image"]))),
                "label": label,
                "split": split,
                "source": f"{path}:{number}",
            })
        else:
            rejected.append(BadSample(_sample_id(record, number), f"{path}:{number}", reason))
    return DatasetTable(make_frame(rows), list(labels.class_names), rejected)


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


class _Labels:
    """Turns a record's label into an index of `class_names`, or says why it cannot.

    `int_labels` False means the class names came from name labels alone, so an int label
    cannot be placed; `gap`, when the classes were inferred from int labels, is the first
    index no row uses.
    """

    def __init__(self, class_names, int_labels=True, gap=None):
        self.class_names, self.int_labels, self.gap = list(class_names), int_labels, gap

    @classmethod
    def infer(cls, records, path):
        """The classes a manifest's own labels give (see `read_manifest`)."""
        numbers = [as_integer(record["label"]) for record in records]
        names = [str(record["label"]).strip().lower()
                 for number, record in zip(numbers, records) if number is None]
        label_names = {}
        for number, record in zip(numbers, records):
            name = record.get("label_name")
            if number is None or name is None:
                continue
            if label_names.setdefault(number, str(name)) != str(name):
                raise ValueError(
                    f"{path} names label {number} both {label_names[number]!r} and {name!r}; "
                    "pass `class_names`."
                )
        num_ints = len(records) - len(names)
        if num_ints == 0 or (not label_names and len(names) >= num_ints):
            return cls(sorted(set(names)), int_labels=False)
        used, gap = set(numbers), 0
        while gap in used:
            gap += 1
        return cls([label_names.get(number, str(number)) for number in range(gap)], gap=gap)

    def index(self, record):
        """`(index, None)` for the label of `record`, or `(None, reason)`."""
        value = record["label"]
        number = as_integer(value)
        if number is None:
            index = label_index(value, self.class_names)
            if index is None:
                return None, f"unknown label {value!r} (classes: {self.class_names})"
            return index, None
        if not self.int_labels:
            return None, (f"int label {number} among name labels without `label_name`: its "
                          f"class is unknown (classes: {self.class_names}); write its name")
        if not 0 <= number < len(self.class_names):
            hint = (f"; no row has label {self.gap}, so set `data.class_names` for more classes"
                    if self.gap is not None else "")
            return None, (f"label out of range: {number} (classes 0 to "
                          f"{len(self.class_names) - 1}: {self.class_names}{hint})")
        name = record.get("label_name")
        if name is not None and str(name).strip().lower() != self.class_names[number].lower():
            return None, (f"label {number} is class {self.class_names[number]!r}, but its "
                          f"label_name is {name!r} (classes: {self.class_names})")
        return number, None
