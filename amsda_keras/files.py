"""Writing the package's own files so that a killed process never leaves half of one.

Every file (or folder) is written under a temporary name beside its destination and renamed
into place when it is complete: a reader finds the old version, the new one, or nothing.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


@contextlib.contextmanager
def replaced_atomically(path):
    """Yields a temporary path beside `path` for any writer (`savefig`, `model.save`,
    `to_csv`, ...); when the block ends without an error, the file is renamed to `path`.
    The temporary name keeps the suffix, for writers that pick a format from it."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix,
                                             dir=path.parent)
    os.close(descriptor)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_text_atomically(path, text):
    """Writes `text` (UTF-8) to `path` through a temporary file."""
    with replaced_atomically(path) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")


@contextlib.contextmanager
def folder_replaced_atomically(path):
    """Yields an empty temporary folder beside `path`; when the block ends without an error, it
    replaces `path` (which must not exist, or is removed first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield temporary
        shutil.rmtree(path, ignore_errors=True)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
