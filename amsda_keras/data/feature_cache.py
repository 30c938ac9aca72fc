"""On-disk cache of frozen-encoder features: computed once, memory-mapped on every epoch.

One folder per key, under a cache root:

    <root>/<modality>-<key>/
        ids.txt            one sample id a line, in row order
        tokens.npy         float16 [rows, length, dim]   token or patch features
        mask.npy           bool    [rows, length]        text only: False on padding tokens
        pooled.npy         float16 [rows, dim]
        progress.json      rows written so far (while extracting)
        COMPLETE           written last; a folder without it is never read as a cache
    <root>/<modality>-<key>.lock   locked by the process extracting into that folder

Key: a hash of the encoder (`Encoder.fingerprint`: architecture, weights, preprocessing config
and tokenizer vocabulary) and of the data (each row's id and text, or its id and the sha256 of
its image file). A change to either gives a new folder; an unchanged one is reused.

Lock: `extract_features` holds an exclusive `fcntl.flock` on the folder's lock file while it
checks, extracts or opens the folder (Linux and macOS). Another process waits for it, then reads
the finished cache, or resumes the extraction from its last flushed row if the first one died
(the lock dies with its process). Before creating the arrays it checks the free disk space and
reserves their blocks, so that a full disk is an error naming the folder, not a SIGBUS.

Validation: a complete folder is checked when opened: ids.txt lists the data's ids in order;
every array the encoder outputs loads, with one row per id and the right trailing shape and
dtype; and no row of pooled.npy is all zeros or not finite (real encoder outputs never are: this
catches zeroed or half-written rows without reading tokens.npy). `extract_features` deletes a
damaged folder and extracts it again; `FeatureCache` alone raises a `DamagedCacheError`.
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

from amsda_keras.console import tqdm
from amsda_keras.data.pipeline import raw_dataset
from amsda_keras.files import write_text_atomically

IDS = "ids.txt"
COMPLETE = "COMPLETE"
PROGRESS = "progress.json"
FLUSH_EVERY_BATCHES = 20
# What a folder opened without its encoder must hold: `{field: (trailing shape, dtype)}`,
# `None` for any size; `mask` only where mask.npy exists (text).
DEFAULT_FIELDS = {"tokens": ((None, None), np.float16), "mask": ((None,), np.bool_),
                  "pooled": ((None,), np.float16)}
# Free space left beyond the arrays, for whatever else the run writes.
DISK_MARGIN_BYTES = 256 * 2**20
CHECK_ROWS_PER_READ = 65536
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


class DamagedCacheError(ValueError):
    """A complete cache folder whose files do not hold what they should."""

    def __init__(self, directory, problem):
        super().__init__(f"The feature cache {directory} is damaged: {problem}. Delete that "
                         f"folder; the next run extracts the features again.")
        self.problem = problem


# Also a ValueError, so that `training.errors.user_errors` reports it in one line.
class NotEnoughDiskSpaceError(OSError, ValueError):
    """The disk of a cache folder has no room for its arrays."""


class FeatureCache:
    """A complete cache folder, checked, then opened read-only as memory maps.

    Args:
        directory: the cache folder.
        ids: list of str, or None. The ids ids.txt must list, in order. Defaults to `None`:
            any ids, one per row of every array.
        fields: dict or None. `{field: (trailing shape, dtype)}` of the arrays the folder must
            hold, `None` in a shape for any size. Defaults to `None`: `DEFAULT_FIELDS`.

    Raises:
        FileNotFoundError: the folder has no COMPLETE marker.
        DamagedCacheError: a `ValueError` naming the folder and what is wrong with it.
    """

    def __init__(self, directory, ids=None, fields=None):
        self.directory = Path(directory)
        if not (self.directory / COMPLETE).is_file():
            raise FileNotFoundError(
                f"{self.directory} is not a complete feature cache (no {COMPLETE} marker); "
                f"rerun the extraction."
            )
        if fields is None:
            fields = {field: layout for field, layout in DEFAULT_FIELDS.items()
                      if field != "mask" or (self.directory / "mask.npy").is_file()}
        self.ids = self._read_ids(ids)
        self.arrays = {field: self._load(field, shape, dtype)
                       for field, (shape, dtype) in fields.items()}
        bad = _bad_rows(self.arrays["pooled"])
        if bad.any():
            raise DamagedCacheError(
                self.directory, f"{bad.sum()} of {len(bad)} rows of pooled.npy are all zeros or "
                                f"not finite (the first is row {bad.argmax()})")

    def __len__(self):
        return len(self.ids)

    def _read_ids(self, expected):
        try:
            ids = (self.directory / IDS).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise DamagedCacheError(self.directory, f"{IDS} is missing") from None
        if expected is not None and ids != list(expected):
            raise DamagedCacheError(
                self.directory, f"{IDS} does not list the data's {len(expected)} ids in order")
        return ids

    def _load(self, field, shape, dtype):
        path = self.directory / f"{field}.npy"
        if not path.is_file():
            raise DamagedCacheError(self.directory, f"{path.name} is missing")
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError):
            raise DamagedCacheError(
                self.directory, f"{path.name} is not a readable .npy file") from None
        expected = (len(self.ids), *shape)
        sizes_match = len(array.shape) == len(expected) and all(
            size is None or size == actual for size, actual in zip(expected, array.shape))
        if array.dtype != dtype or not sizes_match:
            raise DamagedCacheError(
                self.directory, f"{path.name} holds {array.dtype} {array.shape}, not "
                                f"{np.dtype(dtype)} {expected} (one row per id in {IDS})")
        return array


def default_cache_root():
    """`$AMSDA_KERAS_CACHE/features`, or `~/.cache/amsda_keras/features`."""
    base = os.environ.get("AMSDA_KERAS_CACHE") or Path.home() / ".cache" / "amsda_keras"
    return Path(base) / "features"


def data_fingerprint(frame, modality):
    """Hashes what an encoder reads of each row: its id and text, or its id and image bytes.

    The image path is left out: the same files in another folder give the same features.
    """
    digest = hashlib.sha256()
    if modality == "text":
        contents = frame["text"]
    else:
        contents = [hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in frame["image"]]
    for values in zip(frame["id"], contents):
        digest.update("\t".join(map(str, values)).encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def cache_directory(encoder, frame, cache_root=None):
    """The folder for `encoder`'s features of `frame`'s rows (which may not exist yet)."""
    digest = hashlib.sha256(
        f"{encoder.fingerprint()}:{data_fingerprint(frame, encoder.modality)}".encode()
    ).hexdigest()
    return Path(cache_root or default_cache_root()) / f"{encoder.modality}-{digest[:24]}"


def extract_features(encoder, frame, *, cache_root=None, batch_size=64, progress=True):
    """Returns the cache of `encoder`'s features for every row of `frame`, computing what's missing.

    Waits while another process extracts into the same folder, and extracts a damaged cache
    again (see the module docstring).

    Args:
        encoder: an `amsda_keras.encoders.Encoder`.
        frame: a dataset table's DataFrame; its row order is the cache's row order.
        cache_root: folder holding the caches. Defaults to `default_cache_root()`.
        batch_size: int. Encoder batch size.
        progress: bool. Show a progress bar.

    Raises:
        NotEnoughDiskSpaceError: the cache's disk has no room for the arrays.
        ValueError: the features just extracted are damaged.
    """
    directory = cache_directory(encoder, frame, cache_root)
    ids = frame["id"].tolist()
    fields = {name: (tuple(output.shape[1:]), np.bool_ if output.dtype == "bool" else np.float16)
              for name, output in encoder.feature_model.output.items()}
    with _locked(directory):
        if (directory / COMPLETE).is_file():
            try:
                return FeatureCache(directory, ids, fields)
            except DamagedCacheError as error:
                print(f"Note: the feature cache {directory} is damaged ({error.problem}); "
                      f"extracting it again.")
                shutil.rmtree(directory)
        _extract(encoder, frame, directory, fields, batch_size, progress)
        try:
            return FeatureCache(directory, ids, fields)
        except DamagedCacheError as error:
            raise ValueError(
                f"The features just extracted into {directory} are damaged: {error.problem}. "
                f"Check that disk, and that encoder '{encoder.spec}' gives finite features."
            ) from None


@contextlib.contextmanager
def _locked(directory):
    """Holds the exclusive lock of `directory` (`<directory>.lock` beside it) during the block."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Closing the file releases the lock; so does the death of its process.
    with open(directory.with_name(f"{directory.name}.lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"Waiting for another process extracting into {directory} ...", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _extract(encoder, frame, directory, fields, batch_size, progress):
    done = _rows_done(directory)
    if done == 0 and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_text_atomically(directory / IDS, "\n".join(frame["id"]) + "\n")

    preprocessor = {"text_preprocessor" if encoder.modality == "text" else "image_preprocessor":
                    encoder.preprocessor}
    batches = raw_dataset(frame.iloc[done:], batch_size=batch_size, with_labels=False,
                          **preprocessor)
    arrays = None
    bar = tqdm(total=len(frame), initial=done, unit="sample", disable=not progress,
               desc=f"{encoder.modality} features ({encoder.spec})")
    for step, batch in enumerate(batches.as_numpy_iterator()):
        outputs = encoder.feature_model.predict_on_batch(batch)
        if arrays is None:
            arrays = _open_arrays(directory, fields, outputs, len(frame), resume=done > 0)
        rows = slice(done, done + len(outputs["pooled"]))
        for field, array in arrays.items():
            array[rows] = outputs[field]
        done = rows.stop
        bar.update(rows.stop - rows.start)
        if (step + 1) % FLUSH_EVERY_BATCHES == 0:
            _flush(arrays, directory, done)
    bar.close()
    if arrays is not None:
        _flush(arrays, directory, done)
    if done != len(frame):
        raise RuntimeError(f"Feature extraction wrote {done} of {len(frame)} rows in {directory}.")
    (directory / PROGRESS).unlink(missing_ok=True)
    write_text_atomically(directory / COMPLETE, "ok\n")


def _rows_done(directory):
    try:
        return int(json.loads((directory / PROGRESS).read_text())["rows_done"])
    except (OSError, ValueError, KeyError):
        return 0


def _open_arrays(directory, fields, outputs, num_rows, resume):
    """The memory-mapped arrays of `directory`: those of an extraction to resume, or new ones,
    with their disk blocks allocated now rather than when a row is first written."""
    paths = {field: directory / f"{field}.npy" for field in fields}
    if resume:
        return {field: np.load(path, mmap_mode="r+") for field, path in paths.items()}
    shapes = {field: (num_rows, *np.shape(outputs[field])[1:]) for field in fields}
    needed = sum(math.prod(shapes[field]) * np.dtype(dtype).itemsize
                 for field, (_, dtype) in fields.items())
    free = shutil.disk_usage(directory).free
    if free < needed + DISK_MARGIN_BYTES:
        raise _no_space(directory, needed, free)
    arrays = {}
    try:
        for field, path in paths.items():
            arrays[field] = np.lib.format.open_memmap(path, mode="w+", dtype=fields[field][1],
                                                      shape=shapes[field])
            # macOS has no posix_fallocate: the free-space check is all it gets.
            if hasattr(os, "posix_fallocate"):
                with open(path, "r+b") as file:
                    os.posix_fallocate(file.fileno(), 0, path.stat().st_size)
    except OSError as error:
        if error.errno not in NO_SPACE_ERRNOS:
            raise
        free = shutil.disk_usage(directory).free
        shutil.rmtree(directory)
        raise _no_space(directory, needed, free) from error
    return arrays


def _no_space(directory, needed, free):
    return NotEnoughDiskSpaceError(
        f"Not enough disk space for the feature cache {directory}: its arrays need "
        f"{needed:,} bytes (plus {DISK_MARGIN_BYTES:,} to spare) and {free:,} bytes are free. "
        f"Free some space, or put the cache on another disk with `--cache-dir FOLDER` "
        f"(`features.cache_dir` in a config) or the AMSDA_KERAS_CACHE environment variable."
    )


def _bad_rows(pooled):
    """Whether each row of `pooled` is all zeros or not finite, read a block of rows at a time."""
    bad = np.zeros(len(pooled), bool)
    for start in range(0, len(pooled), CHECK_ROWS_PER_READ):
        block = np.asarray(pooled[start:start + CHECK_ROWS_PER_READ])
        bad[start:start + len(block)] = ~block.any(axis=1) | ~np.isfinite(block).all(axis=1)
    return bad


def _flush(arrays, directory, rows_done):
    for array in arrays.values():
        array.flush()
    write_text_atomically(directory / PROGRESS, json.dumps({"rows_done": rows_done}))
