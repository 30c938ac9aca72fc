"""The one table every dataset reader returns.

A reader turns a source layout into a `DatasetTable`: a pandas DataFrame with the columns
`id` (str), `text` (str), `image` (absolute path, str), `label` (int index into
`class_names`), `split` (str or missing) and `source` (where the row was read: `file:line`,
`file.json[index]` or the post's text file; used to point at a bad sample), the ordered
class names, the samples the
reader could not turn into a row (`rejected`) and plain-language notes on anything it did
on purpose to the data (a label rule that drops conflicting posts, encoding fallbacks).
Nothing is dropped silently: every row a reader leaves out is either in `rejected` or
counted in `notes`.
"""

import dataclasses

import pandas as pd

COLUMNS = ("id", "text", "image", "label", "split", "source")
SPLIT_NAMES = ("train", "dev", "test")
# The label of a row read for prediction without one.
UNLABELED = -1
SPLIT_ALIASES = {"valid": "dev", "val": "dev", "validation": "dev", "eval": "dev"}


@dataclasses.dataclass(frozen=True)
class BadSample:
    """A sample that cannot be used, with the file it came from and why."""

    id: str
    file: str
    reason: str


@dataclasses.dataclass
class DatasetTable:
    frame: pd.DataFrame
    class_names: list
    rejected: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if "source" not in self.frame.columns:
            self.frame = self.frame.assign(source="")
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"A dataset table needs the columns {COLUMNS}; missing {missing}.")
        self.frame = self.frame.loc[:, list(COLUMNS)].reset_index(drop=True)

    @property
    def num_classes(self):
        return len(self.class_names)


def normalise_split(name):
    """Maps a dataset's own split name onto train/dev/test (`valid` -> `dev`)."""
    if name is None or (isinstance(name, float) and pd.isna(name)):
        return None
    name = str(name).strip().lower()
    return SPLIT_ALIASES.get(name, name)


def make_frame(rows):
    """Builds the table's DataFrame from dicts with (a subset of) `COLUMNS`."""
    frame = pd.DataFrame(list(rows), columns=list(COLUMNS))
    frame["id"] = frame["id"].astype(str)
    frame["text"] = frame["text"].astype(str)
    frame["image"] = frame["image"].astype(str)
    frame["label"] = frame["label"].astype("int64")
    frame["split"] = frame["split"].map(normalise_split).astype(object)
    frame["source"] = frame["source"].fillna("").astype(str)
    return frame


def as_integer(value):
    """Returns `value` as an int when it is an int or a string of digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value)
    return None


def label_index(value, class_names):
    """Index of a label in `class_names`, or None when it is not one of them.

    An int (or a string of digits) must be a valid index; a name is matched
    case-insensitively.
    """
    number = as_integer(value)
    if number is not None:
        return number if 0 <= number < len(class_names) else None
    names = [name.lower() for name in class_names]
    name = str(value).strip().lower()
    return names.index(name) if name in names else None


def relabel(table, class_names, source):
    """`table` with its labels moved onto `class_names`, class by class, by name.

    Names match case-insensitively; a class named by its own index (`"0"`, `"1"`, ...: the
    int labels of a manifest without `label_name`) keeps that index.

    Args:
        table: a `DatasetTable` read with its own class names.
        class_names: list of str, the classes to put its labels on.
        source: the data's path, for the message.

    Returns:
        A new `DatasetTable` with `class_names`.

    Raises:
        ValueError: naming both class lists, when a class the rows use is not among
            `class_names`.
    """
    wanted = [name.lower() for name in class_names]
    mapping, unknown = {}, []
    for index in sorted(set(table.frame["label"])):
        name = table.class_names[index]
        if name.lower() in wanted:
            mapping[index] = wanted.index(name.lower())
        elif name == str(index) and index < len(class_names):
            mapping[index] = index
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{source} has labels of another class set: its classes "
                         f"{table.class_names} are not all among {list(class_names)} ({unknown} "
                         "are not); label it with those classes.")
    frame = table.frame.assign(label=table.frame["label"].map(mapping).astype("int64"))
    return DatasetTable(frame, list(class_names), list(table.rejected), list(table.notes))
