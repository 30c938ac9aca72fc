"""Run settings: defaults, YAML config files and command-line overrides, validated by key.

A config file holds any subset of `DEFAULTS`; flags override the file, the file overrides the
model's own defaults (its paper's training recipe, e.g. A-MSDA's focal loss), and those override
`DEFAULTS`. Unknown keys, values of the wrong type and numbers out of their range (`RANGES`)
fail with a message naming the key, before any data is read.
`model_args` holds keyword arguments of the model builder and is checked against its signature.
"""

import copy
import difflib
import inspect
import math
import re
from pathlib import Path

import yaml

from amsda_keras.files import write_text_atomically
from amsda_keras.model_names import ABLATIONS
from amsda_keras.training.protocol import SELECT_ON

DEFAULTS = {
    "model": "baseline",
    "model_args": {},
    "data": {
        "path": None,  # None: the built-in demo dataset.
        "format": "auto",
        "label_rule": "standard",
        "class_names": None,
        "image_dir": None,
        "splits": None,  # A splits.csv from an earlier run, to reuse its split.
        "on_bad_sample": "skip",
        # Share of train carved out as the `validation` split that picks the epoch when dev
        # is to stay untouched (training.select_on).
        "validation_fraction": 0.1,
        # K-fold: fold `fold` (1..folds) of a seeded stratified partition of all rows is the
        # test split (`train --folds K` runs every fold).
        "folds": None,
        "fold": None,
    },
    "encoders": {
        "text": "tiny",
        "image": "tiny",
        "sequence_length": 64,
        "image_size": None,  # None: the encoder's own input size.
        # CLIP image encoders: keep the class token before the patch tokens (MAHFNet eq. 2
        # drops it: 196 patches for ViT-B/16).
        "clip_class_token": False,
        # False: frozen encoders, features cached once. True: fine-tune them with the model
        # on raw text and images every step.
        "trainable": False,
        # N > 0 with frozen encoders: the text encoder's last N transformer layers train with
        # the model; the features are cached below them.
        "text_trainable_layers": 0,
    },
    "features": {
        # False: frozen encoders run inside every training step instead of once into the
        # cache (the MAHFNet authors' path; slower, kept to check the cache changes nothing).
        "cache": True,
        "cache_dir": None,  # None: $AMSDA_KERAS_CACHE/features or ~/.cache/amsda_keras/features.
        "batch_size": 64,
    },
    "training": {
        "epochs": 20,
        "batch_size": 32,
        "learning_rate": 1e-3,
        # The learning rate of the encoder weights that train (`encoders.trainable` or
        # `encoders.text_trainable_layers`); None: `learning_rate`. Schedules scale both.
        "encoder_learning_rate": None,
        "seed": 0,
        "class_weight": "none",  # "none" or "balanced" (from the training split).
        "oversample": False,  # Random oversampling of minority classes in the training split.
        # The split that picks the best epoch and drives early stopping and ReduceLROnPlateau:
        # auto, validation, dev or last (training/protocol.py).
        "select_on": "auto",
        # None: train all epochs, keep the best epoch on the selection split.
        "early_stopping_patience": None,
        # StepLR: the learning rate is multiplied by lr_step_gamma every lr_step_epochs epochs
        # (None: constant).
        "lr_step_epochs": None,
        "lr_step_gamma": 0.8,
        # ReduceLROnPlateau on the selection split's loss: multiply the learning rate by
        # reduce_lr_factor after reduce_lr_patience epochs without improvement (None: off).
        "reduce_lr_patience": None,
        "reduce_lr_factor": 0.1,
        # The learning rate rises linearly over the first warmup_epochs epochs, and with
        # cosine_decay falls along a half cosine to 0 over the rest (per epoch, before StepLR).
        "warmup_epochs": 0,
        "cosine_decay": False,
        # > 0: AdamW with this decoupled weight decay instead of Adam.
        "weight_decay": 0.0,
        # Cross-entropy against targets moved this far towards uniform (not with focal).
        "label_smoothing": 0.0,
        # An exponential moving average of the weights (Keras' `use_ema`): the selection split
        # is scored, and the kept model saved, with the averaged weights.
        "ema": False,
        "ema_momentum": 0.99,
        "loss": "cross_entropy",  # or "focal": weighted focal loss (A-MSDA).
        "focal_alpha": 0.27,
        "focal_gamma": 1.9,
        "contrastive_weight": 0.1,  # lambda of MAHFNet's contrastive loss (eq. 25).
        # The probe's candidate inverse L2 strengths (scikit-learn's C), one picked on the
        # selection split.
        "probe_c_values": [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0],
        # Write the whole training state (for --resume) every N epochs and after the last.
        "checkpoint_every": 1,
        # TensorBoard logs in RUN/tensorboard (training/tensorboard.py).
        "tensorboard": True,
        # Keras dtype policy: mixed_float16 on a T4 (Keras scales the loss), mixed_bfloat16 on
        # GPUs and TPUs that have bfloat16.
        "precision": "float32",
        # XLA for the train step: "auto" is Keras' default (XLA on jax, and on tensorflow
        # with a GPU or TPU), true/false force it; true on torch means torch.compile.
        "jit_compile": "auto",
        # "data-parallel": split each batch across all local GPUs/TPUs (jax or tensorflow).
        "distribute": "none",
    },
    "output": None,  # None: runs/<model>-<time>.
}
CHOICES = {
    "data.on_bad_sample": ("skip", "error"),
    "training.select_on": SELECT_ON,
    "data.label_rule": ("standard", "amsda"),
    "training.class_weight": ("none", "balanced"),
    "training.loss": ("cross_entropy", "focal"),
    "training.precision": ("float32", "mixed_float16", "mixed_bfloat16"),
    "training.distribute": ("none", "data-parallel"),
    "training.jit_compile": ("auto", True, False),
}
# Settings whose default is None but that take a positive int when set.
OPTIONAL_POSITIVE_INTS = ("data.folds", "data.fold", "encoders.image_size",
                          "training.early_stopping_patience",
                          "training.lr_step_epochs", "training.reduce_lr_patience")
# The range of each numeric setting: (lowest, highest, whether both bounds are excluded);
# None is no bound. A setting whose default is null may also be null.
RANGES = {
    "encoders.sequence_length": (1, None, False),
    "features.batch_size": (1, None, False),
    "training.epochs": (1, None, False),
    "training.checkpoint_every": (1, None, False),
    "training.batch_size": (1, None, False),
    "training.learning_rate": (0, None, True),
    "training.encoder_learning_rate": (0, None, True),
    "training.seed": (0, 2**32 - 1, False),  # NumPy takes no other seeds.
    "training.lr_step_gamma": (0, None, True),
    "training.reduce_lr_factor": (0, 1, True),
    "training.focal_alpha": (0, None, True),
    "training.focal_gamma": (0, None, False),
    "training.contrastive_weight": (0, None, False),
    "training.warmup_epochs": (0, None, False),
    "training.weight_decay": (0, None, False),
    "training.label_smoothing": (0, 1, False),
    "training.ema_momentum": (0, 1, True),
}
# Builder arguments that come from the data and encoders, never from a config.
RUNTIME_MODEL_ARGS = {"num_classes", "text_dim", "image_dim"}


class ConfigError(ValueError):
    """A config file or override that cannot be used, naming the key."""


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-4` as a float as YAML 1.2 does (YAML 1.1, which PyYAML
    follows, wants a dot and a signed exponent, `1.0e-4`; every Keras user writes `1e-4`)."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_run_config(path):
    """A run folder's saved config, with each setting added since that run was made filled in
    as the run behaved: the setting's default, except that CLIP image encoders kept their
    class token before `encoders.clip_class_token` existed."""
    config = load_config_file(path)
    encoders = config.get("encoders")
    if isinstance(encoders, dict) and "clip_class_token" not in encoders:
        encoders["clip_class_token"] = _may_be_clip(encoders.get("image"))
    for section, defaults in DEFAULTS.items():
        if isinstance(defaults, dict) and isinstance(config.get(section), dict):
            for key, default in defaults.items():
                config[section].setdefault(key, default)
    return config


def is_run_config(path):
    """Whether `path` is the `config.yaml` a run saved in its folder (beside its `splits.csv`),
    which `load_run_config` reads as that run behaved."""
    path = Path(path)
    return path.name == "config.yaml" and (path.parent / "splits.csv").is_file()


def _may_be_clip(image_spec):
    """Whether an image encoder spec may be CLIP: its name says so, or a local folder's
    `config.json` does (keras-hub's `CLIPBackbone`, Hugging Face's `model_type: clip`)."""
    if not isinstance(image_spec, str):
        return False
    config_file = Path(image_spec) / "config.json"
    text = config_file.read_text(errors="replace") if config_file.is_file() else image_spec
    return "clip" in text.lower()


def load_config_file(path):
    """Reads a YAML config file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    try:
        content = yaml.load(path.read_text(encoding="utf-8"), Loader=ConfigLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(content).__name__}.")
    return content


def resolve_config(config_file=None, overrides=None, model_builders=None, model_defaults=None):
    """Merges defaults <- the model's defaults <- config file <- overrides and validates them.

    Args:
        config_file: path of a YAML file, a dict of settings nested the same way, or None. A
            run folder's `config.yaml` is read with `load_run_config`, so settings added since
            that run keep its behaviour.
        overrides: dict of dotted keys (`"training.epochs"`) to values; None values are ignored.
        model_builders: dict of model name to builder, to check `model` and `model_args`.
        model_defaults: dict of model name to a nested dict of settings that model uses
            unless the file or the overrides say otherwise.

    Returns:
        The resolved config as a nested dict.
    """
    config = copy.deepcopy(DEFAULTS)
    if not config_file:
        file_settings = {}
    elif isinstance(config_file, dict):
        file_settings = copy.deepcopy(config_file)
    elif is_run_config(config_file):
        file_settings = load_run_config(config_file)
    else:
        file_settings = load_config_file(config_file)
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    model = overrides.get("model", file_settings.get("model", DEFAULTS["model"]))
    if isinstance(model, str) and model in (model_defaults or {}):
        _merge(config, model_defaults[model], source=f"the defaults of model {model!r}")
    source = "the config dict" if isinstance(config_file, dict) else str(config_file)
    _merge(config, file_settings, source=source)
    for key, value in overrides.items():
        _merge(config, _nest(key, value), source="the flags or keyword arguments")
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        if config[section][name] not in choices:
            raise ConfigError(f"`{key}` must be one of {choices}. Received: {config[section][name]!r}")
    for key in OPTIONAL_POSITIVE_INTS:
        section, name = key.split(".")
        value = config[section][name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"`{key}` must be a positive int or null. Received: {value!r}")
    _check_ranges(config)
    _check_class_names(config["data"]["class_names"])
    _check_text_trainable_layers(config["encoders"])
    _check_protocol(config)
    _check_optimisation(config["training"])
    _check_encoder_learning_rate(config)
    if model_builders is not None:
        _check_model(config, model_builders)
    return config


def parse_assignment(text):
    """Parses a `--set key=value` override; the value is read as YAML (`0.5`, `true`, `[a, b]`)."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise ConfigError(f"`--set` takes KEY=VALUE, e.g. training.epochs=5. Received: {text!r}")
    return key.strip(), yaml.load(value, Loader=ConfigLoader)


def save_config(config, path):
    write_text_atomically(path, yaml.safe_dump(config, sort_keys=False))


def _nest(dotted_key, value):
    nested = value
    for part in reversed(dotted_key.split(".")):
        nested = {part: nested}
    return nested


def _merge(base, update, source, prefix=""):
    for key, value in update.items():
        path = f"{prefix}{key}"
        if prefix == "model_args.":
            base[key] = value
            continue
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=1)
            hint = f" Did you mean `{prefix}{close[0]}`?" if close else ""
            raise ConfigError(f"Unknown setting `{path}` in {source}.{hint}")
        default = _flatten(DEFAULTS).get(path, base[key])
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"`{path}` in {source} must be a mapping, not {value!r}.")
            _merge(base[key], value, source, prefix=f"{path}.")
        else:
            base[key] = _checked(path, value, default, source)


def _checked(path, value, default, source):
    if default is None or value is None or path in CHOICES:  # choices are checked later
        return value
    if isinstance(default, bool):
        valid = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        valid = isinstance(value, (int, float)) and not isinstance(value, bool)
        if valid and isinstance(default, int) and not isinstance(value, int):
            valid = float(value).is_integer()
            value = int(value)
    else:
        valid = isinstance(value, type(default))
    if not valid:
        raise ConfigError(
            f"`{path}` in {source} must be a {type(default).__name__}. Received: {value!r}"
        )
    return value


def _flatten(nested, prefix=""):
    flat = {}
    for key, value in nested.items():
        flat[f"{prefix}{key}"] = value
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix=f"{prefix}{key}."))
    return flat


def _check_ranges(config):
    flat = _flatten(config)
    defaults = _flatten(DEFAULTS)
    for key, (lowest, highest, excluded) in RANGES.items():
        value = flat[key]
        if value is None and defaults[key] is None:
            continue
        valid = (isinstance(value, (int, float)) and not isinstance(value, bool)
                 and not (isinstance(value, float) and not math.isfinite(value)))
        if valid and lowest is not None:
            valid = value > lowest if excluded else value >= lowest
        if valid and highest is not None:
            valid = value < highest if excluded else value <= highest
        if not valid:
            kind = "an int" if isinstance(defaults[key], int) else "a number"
            signs = (">", "<") if excluded else (">=", "<=")
            bounds = " and ".join(f"{sign} {bound}" for sign, bound in zip(signs, (lowest, highest))
                                  if bound is not None)
            optional = " or null" if defaults[key] is None else ""
            raise ConfigError(f"`{key}` must be {kind} {bounds}{optional}. Received: {value!r}")


def _check_class_names(names):
    if names is None:
        return
    if not (isinstance(names, list) and all(isinstance(name, str) and name.strip()
                                            for name in names)
            and len({name.strip().lower() for name in names}) == len(names) >= 2):
        raise ConfigError("`data.class_names` must be a list of 2 or more distinct names, or "
                          f"null. Received: {names!r}")


def _check_text_trainable_layers(encoder_config):
    layers = encoder_config["text_trainable_layers"]
    if layers < 0:
        raise ConfigError(f"`encoders.text_trainable_layers` must be 0 or more. Received: {layers}")
    if layers and encoder_config["trainable"]:
        raise ConfigError("`encoders.text_trainable_layers` trains the last layers of frozen "
                          "encoders, but `encoders.trainable: true` already trains them all; "
                          "set one of them.")


def _check_optimisation(training):
    if training["label_smoothing"] and training["loss"] != "cross_entropy":
        raise ConfigError("`training.label_smoothing` smooths the cross-entropy's targets; "
                          f"with `training.loss: {training['loss']}` it must be 0.")
    if training["warmup_epochs"] >= training["epochs"]:
        raise ConfigError("`training.warmup_epochs` must be fewer than `training.epochs`. "
                          f"Received: {training['warmup_epochs']} of {training['epochs']}")


def _check_encoder_learning_rate(config):
    encoders = config["encoders"]
    if config["training"]["encoder_learning_rate"] is not None and not (
            encoders["trainable"] or encoders["text_trainable_layers"]):
        raise ConfigError("`training.encoder_learning_rate` is the rate of the encoder weights "
                          "that train, and none do: set `encoders.text_trainable_layers` "
                          "(--train-text-layers) or `encoders.trainable: true`, or leave it "
                          "null.")


def _check_protocol(config):
    data, training = config["data"], config["training"]
    if not 0 < data["validation_fraction"] < 1:
        raise ConfigError("`data.validation_fraction` must be between 0 and 1. "
                          f"Received: {data['validation_fraction']!r}")
    folds, fold = data["folds"], data["fold"]
    if (folds is None) != (fold is None) or (folds is not None and not 1 <= fold <= folds):
        raise ConfigError("`data.folds` (K >= 2) and `data.fold` (1..K) go together. "
                          f"Received: folds={folds!r}, fold={fold!r}")
    if folds == 1:
        raise ConfigError("`data.folds` must be at least 2. Received: 1")
    if folds is not None and data["splits"]:
        raise ConfigError("`data.splits` reuses a split and `data.folds` makes one; set one.")
    if training["select_on"] == "last":
        set_keys = [f"training.{key}" for key in ("early_stopping_patience",
                                                  "reduce_lr_patience") if training[key]]
        if set_keys:
            raise ConfigError(f"`training.select_on: last` selects nothing, so "
                              f"{' and '.join(set_keys)} (which watch a selection split) must "
                              "be null.")
    values = training["probe_c_values"]
    if not values or not all(isinstance(c, (int, float)) and not isinstance(c, bool) and c > 0
                             for c in values):
        raise ConfigError("`training.probe_c_values` must be a list of positive numbers. "
                          f"Received: {values!r}")


def _check_model(config, model_builders):
    name = config["model"]
    if name not in model_builders:
        raise ConfigError(f"`model` must be one of {sorted(model_builders)}. Received: {name!r}")
    parameters = inspect.signature(model_builders[name]).parameters
    for key in config["model_args"]:
        if key not in parameters or key in RUNTIME_MODEL_ARGS:
            settable = sorted(set(parameters) - RUNTIME_MODEL_ARGS)
            raise ConfigError(
                f"Unknown setting `model_args.{key}` for model {name!r}; it takes {settable}."
            )
    _check_ablations(name, config["model_args"])


def _check_ablations(name, model_args):
    """Refuses `model_args.ablate` (`--ablate`) names that model `name` does not have."""
    ablate = model_args.get("ablate") or []
    choices = ABLATIONS.get(name, ())
    unknown = [part for part in (ablate if isinstance(ablate, (list, tuple)) else [ablate])
               if part not in choices]
    if unknown:
        raise ConfigError(f"Model {name!r} has no part {', '.join(map(repr, unknown))} to "
                          "ablate; `model_args.ablate` (--ablate) takes "
                          f"{', '.join(choices) or 'nothing'}.")
