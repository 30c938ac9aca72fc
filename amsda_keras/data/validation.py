"""Finds the samples of a table that cannot be trained on, and applies the user's policy.

`check_samples` looks for missing, unreadable or undecodable images (and image paths that are
not regular files, such as a FIFO, which are never opened), empty texts, duplicate ids and
out-of-range labels. `apply_bad_sample_policy` adds the samples the reader already
refused (`table.rejected`) and either drops them all, writing `skipped_samples.csv` and
printing a summary, or raises `BadSampleError`. Nothing is dropped silently.
"""

import collections
import concurrent.futures
import csv
import os
import re
import stat
from pathlib import Path

import tensorflow as tf
from PIL import Image
from PIL import UnidentifiedImageError

from amsda_keras.console import tqdm
from amsda_keras.data.images import load_image
from amsda_keras.data.images import unsupported_reason
from amsda_keras.data.source_files import file_kind
from amsda_keras.data.table import BadSample
from amsda_keras.data.table import DatasetTable
from amsda_keras.data.table import UNLABELED

POLICIES = ("skip", "error")
SKIPPED_FILE = "skipped_samples.csv"
MAX_LISTED = 10
# One traced function for every check: TensorFlow warns when a function is traced again
# and again, as a new `tf.function` per call would be.
_tf_decode = tf.function(load_image, input_signature=[tf.TensorSpec([], tf.string)])


class BadSampleError(ValueError):
    """Raised by the "error" policy when a dataset has samples that cannot be used."""


def check_samples(table, num_workers=None, progress=True):
    """Lists every problem that makes a row of `table` unusable.

    Images are checked in a thread pool: opened with Pillow, refused if their format is one
    `images.load_image` cannot decode, fully decoded by Pillow (JPEGs at reduced scale,
    which still reads all of the file) for a readable reason, and finally decoded with
    `load_image` itself, so every image that passes is known to decode in the pipeline.

    Args:
        table: `DatasetTable` to check; `table.rejected` is not looked at.
        num_workers: int, threads decoding images. Defaults to `None`, Python's default
            for `ThreadPoolExecutor`.
        progress: bool, whether to show a progress bar. Defaults to `True`.

    Returns:
        list of `BadSample`, in row order; a row with several problems appears once per
        problem. Row numbers in reasons count the table's rows from 0.
    """
    return [bad for _, bad in find_problems(table, num_workers, progress)]


def apply_bad_sample_policy(table, policy, output_dir=None, num_workers=None, progress=True):
    """Checks a table and drops or refuses its bad samples.

    Args:
        table: `DatasetTable`; its `rejected` samples count as bad samples.
        policy: "skip" (drop bad rows, list them in `<output_dir>/skipped_samples.csv`
            and print a summary) or "error" (raise `BadSampleError` if there are any).
        output_dir: folder for `skipped_samples.csv`, needed by "skip". Defaults to `None`.
        num_workers: int, threads decoding images. Defaults to `None`.
        progress: bool, whether to show a progress bar. Defaults to `True`.

    Returns:
        A new `DatasetTable` with only usable rows and no `rejected` samples.

    Raises:
        BadSampleError: policy "error" and some samples are bad.
        ValueError: unknown policy, or "skip" without `output_dir`.
    """
    if policy not in POLICIES:
        raise ValueError(f"Unknown bad-sample policy {policy!r}; choose one of {POLICIES}.")
    if policy == "skip" and output_dir is None:
        raise ValueError("The 'skip' bad-sample policy needs `output_dir` for its report.")
    problems = find_problems(table, num_workers, progress)
    bad = list(table.rejected) + [sample for _, sample in problems]
    num_samples = len(table.frame) + len(table.rejected)
    if policy == "error":
        if bad:
            raise BadSampleError(_error_message(bad, num_samples))
        return table

    bad_rows = sorted({row for row, _ in problems})
    num_skipped = len(table.rejected) + len(bad_rows)
    report = Path(output_dir) / SKIPPED_FILE
    _write_report(bad, report)
    summary = f"Skipped {num_skipped:,} of {num_samples:,} samples (see {report})"
    if bad:
        summary += ": " + _count_kinds(bad)
    print(summary)
    return DatasetTable(
        table.frame.drop(index=bad_rows),
        table.class_names,
        notes=list(table.notes) + [summary],
    )


def find_problems(table, num_workers=None, progress=True):
    """`(row, BadSample)` pairs for every problem of every row of `table`, sorted by row (the
    position in `table.frame`). `check_samples` without the positions."""
    frame = table.frame
    problems = []
    first_source = {}
    rows = zip(frame["id"], frame["text"], frame["label"], frame["source"])
    for row, (sample_id, text, label, source) in enumerate(rows):
        if sample_id in first_source:
            reason = f"duplicate id (first seen at {first_source[sample_id]})"
            problems.append((row, BadSample(sample_id, source, reason)))
        else:
            first_source[sample_id] = source or f"row {row}"
        if not isinstance(text, str) or not text.strip():
            problems.append((row, BadSample(sample_id, source, "empty text")))
        if label != UNLABELED and not 0 <= label < table.num_classes:
            reason = f"label out of range: {label} (expected 0 to {table.num_classes - 1})"
            problems.append((row, BadSample(sample_id, source, reason)))

    images = list(frame["image"])
    _tf_decode.get_concrete_function()  # trace once here, not in several threads at once
    with concurrent.futures.ThreadPoolExecutor(max_workers=num_workers) as pool:
        reasons = tqdm(
            pool.map(_image_problem, images),
            total=len(images),
            desc="Checking images",
            unit="image",
            disable=not progress,
        )
        for row, (sample_id, path, reason) in enumerate(zip(frame["id"], images, reasons)):
            if reason:
                problems.append((row, BadSample(sample_id, path, reason)))
    return sorted(problems, key=lambda problem: problem[0])


def _image_problem(path):
    """Why the image file at `path` cannot be used, or `None`."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "image file not found"
    except OSError as error:
        return f"image file cannot be read: {error.strerror}"
    if stat.S_ISDIR(mode):
        return "image path is a folder"
    if not stat.S_ISREG(mode):
        # Opening a FIFO for reading waits for a writer, possibly forever.
        return f"not a regular file ({file_kind(mode)})"
    try:
        reason = _decode_with_pillow(path)
    except FileNotFoundError:
        return "image file not found"
    except UnidentifiedImageError:
        if os.path.getsize(path) == 0:
            return "image file is empty (0 bytes)"
        return "not an image file (unrecognised format)"
    except Image.DecompressionBombError as error:
        return f"image too large: {error}"
    # Pillow's decoders raise OSError, SyntaxError, ValueError, EOFError or struct.error
    # on damaged data, depending on the format.
    except Exception as error:
        return f"image truncated or corrupt: {error}"
    if reason:
        return reason
    # Some damage Pillow decodes through (a JPEG segment cut short, a PNG chunk with a bad
    # checksum) makes TensorFlow fail, so the pipeline's own decoder has the last word.
    try:
        _tf_decode(path)
    except tf.errors.OpError as error:
        # The message ends "<what went wrong>\n\t [[{{node ...}}]] [Op:...]".
        message = error.message.split("\n\t [[")[0].splitlines()[-1].strip()
        return f"image truncated or corrupt: TensorFlow cannot decode it: {message}"
    return None


def _decode_with_pillow(path):
    """Fully decodes an image with Pillow, raising on damaged data.

    Returns `images.unsupported_reason` for the image: `None` when `load_image` reads it.
    """
    with Image.open(path) as image:
        reason = unsupported_reason(image)
        if reason:
            return reason
        if image.format in ("JPEG", "MPO"):
            # Decodes at 1/8 scale: much faster, and every byte is still read.
            image.draft(None, (1, 1))
        image.load()
    return None


def _write_report(bad, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "file", "reason"])
        writer.writerows((sample.id, sample.file, sample.reason) for sample in bad)


def _count_kinds(bad):
    """'2 empty text, 1 image file not found': reasons grouped by their part before ':' or '('."""
    kinds = collections.Counter(re.split(r"[:(]", sample.reason)[0].strip() for sample in bad)
    return ", ".join(f"{count:,} {kind}" for kind, count in kinds.most_common())


def _error_message(bad, num_samples):
    listed = "\n".join(
        f"  id={sample.id!r} file={sample.file!r}: {sample.reason}" for sample in bad[:MAX_LISTED]
    )
    more = f"\n  ... and {len(bad) - MAX_LISTED:,} more" if len(bad) > MAX_LISTED else ""
    return (
        f"Found {len(bad):,} problems in {num_samples:,} samples ({_count_kinds(bad)}). "
        f"The first {min(len(bad), MAX_LISTED)}:\n{listed}{more}\n"
        "Fix the data, or pass `--on-bad-sample skip` to leave these samples out "
        "(they are listed in skipped_samples.csv)."
    )
