"""amsda_keras: Keras 3 reimplementations of A-MSDA and MAHFNet for image+text sentiment.

From Python (a notebook):

    import amsda_keras
    run = amsda_keras.train(model="mahfnet", epochs=2, seeds=[1, 2])
    amsda_keras.predict(run.runs[0], ["what a day"], ["photo.jpg"])

`train`, `evaluate`, `predict`, `export`, `compare` and `tune` take the keywords of their commands,
`python -m amsda_keras.<name>` (`--help` lists them; `train` also `seeds`, `folds` and `set`),
and return a `Run`, a `RunGroup` or a pandas DataFrame; `load_run` opens a run folder. The
other commands are `features`, `attention` and `reproduce`. Importing the package loads no
Keras or TensorFlow: each function does when it runs.
"""

import importlib

__version__ = "0.1.0"

# Each is both the command's module and, called, its function (`cli.make_module_callable`).
FUNCTIONS = ("train", "evaluate", "predict", "export", "compare", "tune")
RUN_OBJECTS = ("load_run", "Run", "RunGroup")
__all__ = [*FUNCTIONS, *RUN_OBJECTS]


def __getattr__(name):
    if name in FUNCTIONS:
        return importlib.import_module(f"amsda_keras.{name}")
    if name in RUN_OBJECTS:
        return getattr(importlib.import_module("amsda_keras.runs"), name)
    raise AttributeError(f"module 'amsda_keras' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
