"""What the Python API returns: a finished run folder (`Run`) or a `--seeds`/`--folds` group of
them (`RunGroup`), read from the files `train` wrote when first asked for, and shown in a
notebook as its metrics table with its plots.

    run = amsda_keras.load_run("runs/mahfnet-20261123-101500")
    run.metrics, run.history, run.predictions, run.model
"""

import base64
import functools
import html
import json
from pathlib import Path

import pandas as pd

from amsda_keras.training.config import load_run_config
from amsda_keras.training.reporting import RUN_INFO_FILE

SUMMARY_FILE = "summary.json"
FIGURES = ("training_curves.png", "confusion_matrix.png")
# metrics.json's per-split entries that are not one number.
NESTED_METRICS = ("per_class", "confusion_matrix")


def load_run(directory):
    """Opens a folder written by `train`: a `RunGroup` for a `--seeds`/`--folds` output folder
    (it holds `summary.json`), else a `Run`.

    Raises:
        FileNotFoundError: the folder holds no finished run.
    """
    directory = Path(directory)
    if (directory / SUMMARY_FILE).is_file():
        return RunGroup(directory)
    return Run(directory)


def run_directory(run):
    """The folder of `run`: a `Run`, or a path to one."""
    return run.directory if isinstance(run, Run) else Path(run)


def run_directories(runs):
    """The run folders of `runs`: a `Run`, a `RunGroup` (its runs), a path to either, or a
    list of those (an ensemble)."""
    if isinstance(runs, (list, tuple)):
        return [directory for run in runs for directory in run_directories(run)]
    if isinstance(runs, (Run, RunGroup)):
        group = runs
    else:
        group = load_run(runs) if (Path(runs) / SUMMARY_FILE).is_file() else None
    if isinstance(group, RunGroup):
        return [run.directory for run in group.runs]
    return [run_directory(runs)]


def metrics_frame(metrics):
    """A `metrics.json`-style dict as a DataFrame: one row per split, one column per metric
    (`role` says which split selected and which are untouched)."""
    return pd.DataFrame.from_dict(
        {split: {name: value for name, value in values.items() if name not in NESTED_METRICS}
         for split, values in metrics.items()}, orient="index")


class Run:
    """A finished run folder written by `train`.

    Attributes:
        directory: the folder.
        config: its `config.yaml` (as the run behaved, settings added since filled in).
        info: its `run.json`: wall time, best epoch, the selecting and untouched splits, commit.
        metrics: DataFrame, one row per split: accuracy, weighted and macro F1, `role`.
        history: DataFrame of `history.csv`, one row per epoch.
        predictions: DataFrame of `predictions.csv`, one row per scored sample.
        model: the kept epoch's Keras model as trained (on cached encoder features when the
            encoders were frozen), loaded on first use; `trained.end_to_end_model` takes
            preprocessed text and images.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        if not (self.directory / RUN_INFO_FILE).is_file():
            raise FileNotFoundError(
                f"{self.directory} is not a finished run folder: {RUN_INFO_FILE} is missing "
                "(train writes it last; an unfinished run continues with "
                f"train(resume={str(self.directory)!r})).")

    def __repr__(self):
        return f"Run({str(self.directory)!r})"

    @functools.cached_property
    def config(self):
        return load_run_config(self.directory / "config.yaml")

    @functools.cached_property
    def info(self):
        return json.loads((self.directory / RUN_INFO_FILE).read_text())

    @property
    def metrics(self):
        return metrics_frame(json.loads((self.directory / "metrics.json").read_text()))

    @property
    def history(self):
        return pd.read_csv(self.directory / "history.csv")

    @property
    def predictions(self):
        return pd.read_csv(self.directory / "predictions.csv", dtype={"id": str})

    @functools.cached_property
    def trained(self):
        """The run loaded for inference (`inference.TrainedRun`: model, encoders, classes)."""
        from amsda_keras.inference import load_trained_run

        return load_trained_run(self.directory)

    @property
    def model(self):
        return self.trained.model

    def predict(self, texts=None, images=None, **kwargs):
        """`amsda_keras.predict(self, texts, images, ...)`."""
        from amsda_keras.predict import predict

        return predict(self, texts, images, **kwargs)

    def summary(self):
        """The headline metrics per split, as `metrics` (a DataFrame)."""
        return self.metrics

    def _repr_html_(self):
        figures = "".join(_image_html(self.directory / name) for name in FIGURES
                          if (self.directory / name).is_file())
        return (f"<p><b>{html.escape(str(self.directory))}</b>: {self.config['model']}, best "
                f"epoch {self.info.get('best_epoch')} picked on {self.info.get('selected_on')}"
                f"</p>{self.summary().to_html(float_format='{:.4f}'.format)}{figures}")


class RunGroup:
    """The runs of one `train(seeds=..., folds=...)` call and their mean ± std.

    Attributes:
        directory: the group's output folder (`summary.json`, `summary.md`, a folder per run).
        runs: list of `Run`, one per fold and seed, in training order.
        metrics: DataFrame of every run's metrics, one row per run and split, with `fold`
            (None without folds) and `seed` columns.
        history: every run's `history.csv` with `fold` and `seed` columns.
    """

    def __init__(self, directory):
        self.directory = Path(directory)
        summary_file = self.directory / SUMMARY_FILE
        if not summary_file.is_file():
            raise FileNotFoundError(f"{self.directory} is not a --seeds/--folds folder: "
                                    f"{SUMMARY_FILE} is missing (train writes it at the end).")
        self._summary = json.loads(summary_file.read_text())
        # The folders are named relative to the group, which may have moved since.
        self.runs = [Run(self.directory.joinpath(*_member_parts(path)))
                     for path in self._summary["runs"]]

    def __repr__(self):
        return f"RunGroup({str(self.directory)!r}, {len(self.runs)} runs)"

    @property
    def metrics(self):
        return _stacked(self.runs, lambda run: run.metrics.rename_axis("split").reset_index())

    @property
    def history(self):
        return _stacked(self.runs, lambda run: run.history)

    def summary(self):
        """Mean and sample standard deviation over the runs, one row per split and metric."""
        untouched = set(self._summary.get("untouched_splits", []))
        return pd.DataFrame([
            {"split": split, "untouched": split in untouched, "metric": name,
             "mean": stats["mean"], "std": stats["std"], "runs": len(stats["values"])}
            for split, values in self._summary["metrics"].items()
            for name, stats in values.items()])

    def _repr_html_(self):
        return (f"<p><b>{html.escape(str(self.directory))}</b>: {len(self.runs)} runs, "
                f"picked on {self._summary.get('selected_on')}</p>"
                f"{self.summary().to_html(index=False, float_format='{:.4f}'.format)}")


def _member_parts(path):
    """`fold-F/seed-N` or `seed-N`: the last parts of a member's recorded path."""
    parts = Path(path).parts
    return parts[-2:] if len(parts) > 1 and parts[-2].startswith("fold-") else parts[-1:]


def _stacked(runs, frame_of):
    frames = [frame_of(run).assign(fold=run.config["data"].get("fold"),
                                   seed=run.config["training"]["seed"]) for run in runs]
    return pd.concat(frames, ignore_index=True)


def _image_html(path):
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}" width="600">'
