"""Gives every row of a table a split (train/dev/test) and saves or reuses the assignment.

`ensure_splits` keeps the splits a dataset ships with, adds a dev split carved from train
when there is none, and makes a seeded split stratified by label when no row has one.
`carve_validation` takes a `validation` split out of train (the split that picks the epoch
when dev is reported), and `fold_split` makes one fold of a stratified K-fold the test split.
`write_splits` and `apply_splits_file` store an assignment as `splits.csv` (`id,split`)
so that another run can use exactly the same one.
"""

import csv
import math

import numpy as np

from amsda_keras.data.table import SPLIT_NAMES
from amsda_keras.files import replaced_atomically

MAX_LISTED_IDS = 5
# Carved out of train by a run, never read from a dataset (whose `validation` means dev).
VALIDATION = "validation"
RUN_SPLIT_NAMES = SPLIT_NAMES + (VALIDATION,)


def ensure_splits(frame, seed, ratios=(0.8, 0.1, 0.1)):
    """Makes sure every row has a split and that there are train and dev rows.

    - No row has a split: a seeded split with `ratios`, stratified by label (without
      stratification, and a note saying so, when a class is too small for it).
    - Every row has one: they are kept. Without a dev split, `dev / (train + dev)` of the
      train rows (1/9 with the default ratios) become dev, stratified the same way.

    Args:
        frame: the `DatasetTable.frame`, with `label` and `split` (str or missing) columns.
        seed: int, seed of the random splits.
        ratios: three positive numbers summing to 1, the train, dev and test fractions.
            Defaults to `(0.8, 0.1, 0.1)`.

    Returns:
        `(frame, notes)`: a copy of `frame` with every `split` set, and a list of
        plain-language notes on what was done.

    Raises:
        ValueError: bad `ratios`, only some rows with a split, a split name other than
            train/dev/test, or no train rows.
    """
    ratios = _check_ratios(ratios)
    frame = frame.copy()
    missing = frame["split"].isna()
    if missing.all():
        return _split_all(frame, seed, ratios)
    if missing.any():
        raise ValueError(
            f"{missing.sum():,} of {len(frame):,} rows have no split; give every row a "
            "split (train/dev/test) or none, so that a seeded split is made."
        )
    counts = frame["split"].value_counts()
    unknown = sorted(set(counts.index) - set(SPLIT_NAMES))
    if unknown:
        raise ValueError(f"Unknown split names {unknown}; expected {SPLIT_NAMES}.")
    if "train" not in counts:
        raise ValueError(f"The data has no train split, only {counts.to_dict()}.")
    if "dev" in counts:
        return frame, []

    train_rows = np.flatnonzero(frame["split"] == "train")
    fraction = ratios[1] / (ratios[0] + ratios[1])
    _, dev_rows, how = _divide(train_rows, frame["label"], fraction, seed)
    frame.iloc[dev_rows, frame.columns.get_loc("split")] = "dev"
    note = (
        f"No dev split given: {len(dev_rows):,} of {len(train_rows):,} train samples "
        f"({fraction:.3g}) became dev ({how}, seed {seed})."
    )
    return frame, [note]


def carve_validation(frame, fraction, seed):
    """Moves `fraction` of the train rows, stratified by label, into a `validation` split.

    Returns:
        `(frame, note)`: a copy of `frame`, and a plain-language note on what was done.
    """
    train_rows = np.flatnonzero(frame["split"] == "train")
    _, taken, how = _divide(train_rows, frame["label"], fraction, seed)
    frame = frame.copy()
    frame.iloc[taken, frame.columns.get_loc("split")] = VALIDATION
    note = (f"{len(taken):,} of {len(train_rows):,} train samples ({fraction:g}) became the "
            f"{VALIDATION} split ({how}, seed {seed}).")
    return frame, note


def fold_split(frame, folds, fold, seed):
    """Fold `fold` (1-based) of a seeded stratified `folds`-fold partition of all rows becomes
    `test`, every other row `train`; the splits the data came with are set aside.

    Returns:
        `(frame, note)`: a copy of `frame`, and a plain-language note on what was done.
    """
    if not (isinstance(folds, int) and folds >= 2 and isinstance(fold, int)
            and 1 <= fold <= folds):
        raise ValueError(f"K-fold needs `folds` >= 2 and 1 <= `fold` <= `folds`. "
                         f"Received: folds={folds!r}, fold={fold!r}")
    if len(frame) < folds:
        raise ValueError(f"Cannot make {folds} folds of {len(frame):,} samples.")
    # Imported here: scikit-learn takes a second, and every command's --help imports this module.
    from sklearn.model_selection import StratifiedKFold

    labels = frame["label"].to_numpy()
    smallest = np.unique(labels, return_counts=True)[1].min()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    stratify = labels if smallest >= folds else np.zeros_like(labels)
    _, held_out = list(splitter.split(np.zeros(len(frame)), stratify))[fold - 1]
    frame = frame.copy()
    frame["split"] = "train"
    frame.iloc[held_out, frame.columns.get_loc("split")] = "test"
    how = ("stratified by label" if smallest >= folds
           else f"not stratified: a class has fewer than {folds} samples")
    note = (f"Fold {fold} of {folds}: {len(held_out):,} of {len(frame):,} samples are the "
            f"test split, the rest train ({how}, seed {seed}; the data's own splits are "
            f"set aside).")
    return frame, note


def write_splits(frame, path):
    """Writes the `id,split` pairs of `frame` to the CSV file `path`."""
    with replaced_atomically(path) as temporary:
        frame.loc[:, ["id", "split"]].to_csv(temporary, index=False)


def apply_splits_file(frame, path):
    """Gives the rows of `frame` the splits stored in a `splits.csv` by `write_splits`.

    Args:
        frame: the `DatasetTable.frame`.
        path: the CSV file, with the columns `id` and `split`.

    Returns:
        A copy of `frame` with the file's splits.

    Raises:
        ValueError: a malformed file (missing column, unknown split name, an id twice), or
            ids in the file but not in the data, or in the data but not in the file.
    """
    splits = _read_splits_file(path)
    data_ids = set(frame["id"])
    extra = [i for i in splits if i not in data_ids]
    absent = list(dict.fromkeys(i for i in frame["id"] if i not in splits))
    problems = []
    if extra:
        problems.append(f"{len(extra):,} ids in the file are not in the data: {_first(extra)}")
    if absent:
        problems.append(f"{len(absent):,} ids in the data are not in the file: {_first(absent)}")
    if problems:
        raise ValueError(f"{path} does not match the data: " + "; ".join(problems) + ".")
    frame = frame.copy()
    frame["split"] = frame["id"].map(splits).astype(object)
    return frame


def _read_splits_file(path):
    """`{id: split}` from a splits CSV, with errors naming the file, line and column."""
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [c for c in ("id", "split") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}, line 1: missing columns {missing} (found {reader.fieldnames})."
            )
        splits = {}
        for record in reader:
            where = f"{path}, line {reader.line_num}"
            sample_id, split = record["id"], record["split"]
            if split not in RUN_SPLIT_NAMES:
                raise ValueError(
                    f"{where}, column 'split': unknown split {split!r}; expected one of "
                    f"{RUN_SPLIT_NAMES}."
                )
            if sample_id in splits:
                raise ValueError(f"{where}, column 'id': id {sample_id!r} appears a second time.")
            splits[sample_id] = split
    return splits


def _split_all(frame, seed, ratios):
    train_ratio, dev_ratio, test_ratio = ratios
    labels = frame["label"]
    train_rows, rest, how_train = _divide(
        np.arange(len(frame)), labels, dev_ratio + test_ratio, seed
    )
    dev_rows, test_rows, how_rest = _divide(
        rest, labels, test_ratio / (dev_ratio + test_ratio), seed
    )
    split = np.empty(len(frame), dtype=object)
    split[train_rows], split[dev_rows], split[test_rows] = "train", "dev", "test"
    frame["split"] = split
    how = how_train if how_train == how_rest else f"train {how_train}, dev/test {how_rest}"
    note = (
        f"No split given: {len(frame):,} samples split {train_ratio:g}/{dev_ratio:g}/"
        f"{test_ratio:g} into train/dev/test ({len(train_rows):,}/{len(dev_rows):,}/"
        f"{len(test_rows):,}; {how}, seed {seed})."
    )
    return frame, [note]


def _divide(rows, labels, fraction, seed):
    """Splits the row positions `rows` into `(kept, taken, how)`, `taken` being `fraction`.

    Stratified by `labels` (all rows' labels, by position) when every class can be.
    """
    from sklearn.model_selection import train_test_split  # see fold_split

    row_labels = np.asarray(labels)[rows]
    try:
        kept, taken = train_test_split(
            rows, test_size=fraction, random_state=seed, stratify=row_labels
        )
        return kept, taken, "stratified by label"
    except ValueError as error:
        # Raised when a class has too few samples to appear on both sides.
        reason = str(error)
    try:
        kept, taken = train_test_split(rows, test_size=fraction, random_state=seed)
    except ValueError as error:
        raise ValueError(
            f"Cannot split {len(rows):,} samples, taking {fraction:.3g} of them: {error}"
        ) from error
    return kept, taken, f"not stratified: {reason}"


def _check_ratios(ratios):
    ratios = tuple(ratios)
    if len(ratios) != 3 or min(ratios) <= 0 or not math.isclose(sum(ratios), 1.0):
        raise ValueError(
            "`ratios` must be three positive numbers (train, dev, test) summing to 1. "
            f"Received: {ratios}"
        )
    return ratios


def _first(ids):
    more = ", ..." if len(ids) > MAX_LISTED_IDS else ""
    return ", ".join(map(repr, ids[:MAX_LISTED_IDS])) + more
