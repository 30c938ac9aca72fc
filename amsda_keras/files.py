"""Writing the package's own files so that a killed process never leaves half of one."""

import os
import tempfile
from pathlib import Path


def write_text_atomically(path, text):
    """Writes `text` to a temporary file beside `path`, then renames it into place."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
