"""A finished run loaded for inference: its config, class names, encoders and best model.

`evaluate`, `predict` and `export` all start from `load_trained_run` (several runs, an
ensemble: `load_trained_runs`).
"""

import dataclasses
import functools
from pathlib import Path

import keras

from amsda_keras.models.compose import attach_encoders, feature_input_names
from amsda_keras.training import inputs
from amsda_keras.training.config import load_run_config

MODEL_FILE = "model.keras"


@dataclasses.dataclass
class TrainedRun:
    """Attributes:
        directory: the run folder.
        config: its resolved `config.yaml`.
        class_names: list of str, in the order of the model's outputs.
        encoders: dict from modality to `Encoder`, as the run used them.
        model: the best epoch's model (`model.keras`), as trained: on encoder features when
            the encoders were frozen, on preprocessed inputs when they were fine-tuned.
    """

    directory: Path
    config: dict
    class_names: list
    encoders: dict
    model: keras.Model

    @functools.cached_property
    def end_to_end_model(self):
        """A model from preprocessed inputs (`token_ids`, `padding_mask`, `images`) to outputs:
        the frozen encoders joined to a feature model, or the fine-tuned model itself."""
        if feature_input_names(self.model) is None:
            return self.model
        return attach_encoders(self.model, self.encoders, trainable=False)

    @property
    def preprocessors(self):
        """The end-to-end model's text and image preprocessors (None for an unused modality)."""
        return inputs.preprocessors_for(self.end_to_end_model, self.encoders)


def logits_of(outputs):
    """The class scores of a model's outputs (dict-output models name them `logits`)."""
    return outputs["logits"] if isinstance(outputs, dict) else outputs


def load_trained_run(run_dir):
    """Loads the run folder `run_dir` written by `train`.

    Raises:
        FileNotFoundError: `config.yaml` or `model.keras` is missing.
        ValueError: the model's output width is not the number of class names in
            `config.yaml`.
    """
    run_dir = Path(run_dir)
    for name in ("config.yaml", MODEL_FILE):
        if not (run_dir / name).is_file():
            raise FileNotFoundError(
                f"{run_dir} is not a finished run folder: {name} is missing (train writes it).")
    config = load_run_config(run_dir / "config.yaml")
    encoders = inputs.build_encoders(config["encoders"], run_dir, training_texts=None)
    # Only for predictions: the training losses need not be importable.
    model = keras.saving.load_model(run_dir / MODEL_FILE, compile=False)
    class_names = list(config["data"]["class_names"])
    width = logits_of(model.output).shape[-1]
    if width != len(class_names):
        raise ValueError(
            f"{run_dir / MODEL_FILE} gives {width} class scores, but there are "
            f"{len(class_names)} class names {class_names} in {run_dir / 'config.yaml'} "
            "(data.class_names); give the model's classes there, in the order it was trained on.")
    return TrainedRun(run_dir, config, class_names, encoders, model)


def load_trained_runs(run_dirs):
    """`load_trained_run` of a run folder, or of each of a list of them (an ensemble), as a list
    checked by `one_class_list`."""
    return one_class_list([load_trained_run(run_dir) for run_dir in
                           ([run_dirs] if isinstance(run_dirs, (str, Path)) else run_dirs)])


def one_class_list(runs):
    """`runs` (`TrainedRun`s of an ensemble), once their class names are checked to match.

    Raises:
        ValueError: a run's class names differ from the first run's.
    """
    first = runs[0]
    for other in runs[1:]:
        if other.class_names != first.class_names:
            raise ValueError(f"{other.directory} has the classes {other.class_names}, but "
                             f"{first.directory} has {first.class_names}: an ensemble needs "
                             "one set.")
    return runs
