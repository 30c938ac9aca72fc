"""Reading the files that dataset layouts ship, for the readers.

Per-post `.txt` files come in unknown encodings (MVSA has cp866 and GBK files among
the UTF-8 ones), so `decode_text` tries UTF-8 and falls back to charset-normalizer's
best guess. The other helpers read line files and JSON arrays and locate image folders,
reporting what they cannot read instead of raising on one bad sample.
"""

import collections
import json
import os
import stat

import charset_normalizer

from amsda_keras.data.table import BadSample
from amsda_keras.data.table import DatasetTable
from amsda_keras.data.table import label_index
from amsda_keras.data.table import make_frame


def decode_text(raw):
    """Decodes the bytes of a text file.

    Args:
        raw: bytes, the file's content.

    Returns:
        `(text, encoding)`: UTF-8 (a byte order mark is dropped) when the bytes are
        valid UTF-8, else charset-normalizer's best guess and its encoding name;
        `(None, None)` when no encoding gives plausible text.
    """
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(raw).best()
    if best is None:
        return None, None
    return str(best), best.encoding


def iter_lines(path):
    """Yields `(line_number, line)` for the non-blank lines of a UTF-8 file.

    Lines are stripped (CRLF or LF endings); `line` is None for a line that is not
    valid UTF-8, so the caller can reject that line alone.
    """
    with open(path, "rb") as file:
        raw_lines = file.read().splitlines()
    for number, raw in enumerate(raw_lines, start=1):
        try:
            line = raw.decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            yield number, None
            continue
        if line:
            yield number, line


def read_post_texts(folder, ids):
    """Reads and decodes `folder/{id}.txt` for each id.

    Args:
        folder: the folder that holds the per-post text files.
        ids: iterable of str, the post ids.

    Returns:
        `(texts, rejected, notes)`: a dict id -> stripped text, a list of `BadSample`
        for missing or undecodable files, and a note counting the files that were not
        UTF-8 (empty when all were).
    """
    texts, rejected, fallbacks = {}, [], collections.Counter()
    for sample_id in ids:
        path = os.path.join(folder, f"{sample_id}.txt")
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            rejected.append(BadSample(sample_id, path, "missing text file"))
            continue
        if not stat.S_ISREG(mode):
            # Opening a FIFO for reading waits for a writer, possibly forever.
            reason = f"text path is not a regular file ({file_kind(mode)})"
            rejected.append(BadSample(sample_id, path, reason))
            continue
        with open(path, "rb") as file:
            raw = file.read()
        text, encoding = decode_text(raw)
        if text is None:
            reason = "text file is not UTF-8 and no other encoding fits it"
            rejected.append(BadSample(sample_id, path, reason))
            continue
        if encoding != "utf-8":
            fallbacks[encoding] += 1
        texts[sample_id] = text.strip()
    notes = []
    if fallbacks:
        detail = ", ".join(f"{name} ({count})" for name, count in sorted(fallbacks.items()))
        notes.append(
            f"{sum(fallbacks.values())} text files were not UTF-8 and were decoded as "
            f"{detail} (charset-normalizer's best guess)."
        )
    return texts, rejected, notes


def file_kind(mode):
    """'a FIFO', 'a folder', ...: what a path whose `os.stat` mode is `mode` is, when it is not
    a regular file."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def read_json_array(path):
    """Loads a file holding one JSON array; a ValueError names the file otherwise."""
    try:
        with open(path, "rb") as file:
            records = json.loads(file.read())
    except ValueError as error:
        raise ValueError(f"{path} is not a valid JSON file: {error}") from error
    if not isinstance(records, list):
        raise ValueError(f"{path} must hold a JSON array of records.")
    return records


def split_files(folder, names):
    """The `(split, path)` pairs among `names` whose file exists in `folder`.

    Args:
        folder: Path, the folder to look in.
        names: sequence of `(split, file_name)`.

    Returns:
        A non-empty list; a ValueError names the folder and files when none exists or
        when two files give the same split (`dev.json` and `valid.json`).
    """
    files = [(split, folder / name) for split, name in names if (folder / name).is_file()]
    if not files:
        looked = ", ".join(name for _, name in names)
        raise ValueError(f"No split file ({looked}) in {folder}")
    splits = [split for split, _ in files]
    for split in set(splits):
        if splits.count(split) > 1:
            same = " and ".join(path.name for name, path in files if name == split)
            raise ValueError(f"{folder} has {same}, both the {split} split; keep one.")
    return files


def read_json_splits(files, id_key, label_key, class_names, image_dir):
    """Reads JSON arrays of `{id_key, "text", label_key}` records (CLMLF, MMSD2.0).

    Args:
        files: list of `(split, path)`.
        id_key: str, the record field holding the post id.
        label_key: str, the record field holding the label.
        class_names: list of str, the names the labels index.
        image_dir: str, the absolute folder of the `{id}.jpg` images.

    Returns:
        A `DatasetTable`. Records that cannot become a row are in `rejected`, located
        as `path[index]` (0-based record index).
    """
    rows, rejected = [], []
    for split, path in files:
        for index, record in enumerate(read_json_array(path)):
            row, reason = _json_row(record, id_key, label_key, class_names, image_dir)
            if row is None:
                sample_id = _post_id(record.get(id_key)) if isinstance(record, dict) else None
                rejected.append(BadSample(sample_id or str(index), f"{path}[{index}]", reason))
            else:
                rows.append({**row, "split": split, "source": f"{path}[{index}]"})
    return DatasetTable(make_frame(rows), list(class_names), rejected)


def _json_row(record, id_key, label_key, class_names, image_dir):
    """Returns `(row, None)` for a good record, else `(None, reason)`."""
    if not isinstance(record, dict):
        return None, "a record must be a JSON object"
    missing = [key for key in (id_key, "text", label_key) if record.get(key) is None]
    if missing:
        return None, f"missing field(s) {', '.join(missing)}"
    sample_id = _post_id(record[id_key])
    if sample_id is None:
        return None, f"{id_key} must be an integer or a string, got {record[id_key]!r}"
    label = label_index(record[label_key], class_names)
    if label is None:
        return None, f"unknown label {record[label_key]!r} (classes: {list(class_names)})"
    return {
        "id": sample_id,
        "text": str(record["text"]).strip(),
        "image": os.path.join(image_dir, f"{sample_id}.jpg"),
        "label": label,
    }, None


def _post_id(value):
    """A post id as str (ints written exactly); None for floats, which lose digits above 2**53."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return str(value).strip() or None


def find_image_dir(image_dir, candidates):
    """Returns `image_dir` when given, else the first existing folder in `candidates`.

    Both come back as absolute paths; a ValueError asks for `image_dir` when none of the
    candidates exists.
    """
    if image_dir is not None:
        return os.path.abspath(image_dir)
    for candidate in candidates:
        if os.path.isdir(candidate):
            return os.path.abspath(candidate)
    looked = ", ".join(str(candidate) for candidate in candidates)
    raise ValueError(f"No image folder found (looked for {looked}); pass `image_dir`.")
