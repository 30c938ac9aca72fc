"""Turns the errors a user can fix (bad data, config, paths, offline hubs) into one clear line."""

import contextlib
import os
import sys


class EncoderUnavailableError(RuntimeError):
    """An encoder cannot be loaded (offline hub, missing folder, unknown spec)."""


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite; the message says where and what was kept."""


class CommandFailedError(RuntimeError):
    """A command run in a subprocess (export under the tensorflow backend) failed; the message
    is its own."""


USER_ERRORS = (EncoderUnavailableError, FileNotFoundError, FileExistsError, ValueError,
               TrainingDivergedError, CommandFailedError)
DEBUG_VARIABLE = "AMSDA_KERAS_DEBUG"


@contextlib.contextmanager
def user_errors():
    """Exits with the error's message instead of a traceback, unless AMSDA_KERAS_DEBUG is set."""
    try:
        yield
    except USER_ERRORS as error:
        if os.environ.get(DEBUG_VARIABLE):
            raise
        sys.exit(f"Error: {error}\n(Set {DEBUG_VARIABLE}=1 to see the traceback.)")
