"""What the package prints besides its own messages: progress bars and TensorFlow's logs.

`tqdm` is the progress bar every loop uses: a notebook widget where Jupyter has ipywidgets,
text elsewhere. `quiet_tensorflow` is called by each entry point's `main` before anything loads
TensorFlow.
"""

import logging
import os
import warnings

from tqdm import TqdmWarning

with warnings.catch_warnings():
    # Without ipywidgets (plain Jupyter), tqdm.auto warns "IProgress not found" and falls
    # back to the text bar; the fallback is what we want, the warning is not.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

# Hides TensorFlow's C++ INFO and WARNING lines; its errors still show.
TF_LOG_LEVEL = "2"
# NumPy 2 warns when Keras saves TensorFlow variables through `np.array(variable)`: their
# `__array__` takes no `copy` argument. Nothing a user can change.
NUMPY_COPY_WARNING = "__array__ implementation doesn't accept a copy keyword"
# TensorFlow's warning for a function traced 5 times in about 10 calls, and Keras' predict step.
RETRACING_WARNING = "triggered tf.function retracing"
KERAS_PREDICT_STEP = "make_predict_function"


def quiet_tensorflow():
    """Keeps TensorFlow's start-up and run-time notes out of a command's output.

    Sets `TF_CPP_MIN_LOG_LEVEL` to 2 unless the user set it (TensorFlow reads it once, when it
    loads, so this must run before it is imported: `TF_CPP_MIN_LOG_LEVEL=0` shows every
    line); ignores NumPy 2's deprecation warning about Keras saving TensorFlow variables; and
    drops TensorFlow's retracing warning about Keras' predict step, which is a false alarm
    here: TensorFlow counts the traces of a function's code, which every Keras model's predict
    step shares, so extracting two encoders' features (two batch shapes each) and then scoring
    the model reach its threshold although no model is traced more than twice.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    warnings.filterwarnings("ignore", message=NUMPY_COPY_WARNING, category=DeprecationWarning,
                            module="keras")
    logging.getLogger("tensorflow").addFilter(_not_predict_retracing)


def _not_predict_retracing(record):
    message = record.getMessage()
    return not (RETRACING_WARNING in message and KERAS_PREDICT_STEP in message)
