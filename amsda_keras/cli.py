"""Command-line flags shared by the entry points, each one overriding a config key, and what
makes each entry point a Python function too.

Only light modules are imported here (no Keras or TensorFlow), so that `--help` is quick.
"""

import argparse
import inspect
import os
import sys
import types

from amsda_keras.data import FORMATS
from amsda_keras.model_names import ABLATIONS, MODEL_NAMES
from amsda_keras.training.config import CHOICES, DEFAULTS

# Every model's ablation names: `resolve_config` refuses those the chosen model lacks.
ABLATION_NAMES = tuple(dict.fromkeys(name for names in ABLATIONS.values() for name in names))
ENCODER_HELP = ("tiny, a preset folder, package:NAME, a keras-hub preset name or a "
                "kaggle:// or hf:// handle")
# The A-MSDA recipe (models/amsda.py TRAINING_DEFAULTS) overrides some defaults.
AMSDA_DEFAULT = "; amsda: model default"

# Flag -> (dotted config key, argparse options). A help without `{default}` gets
# " Default: <DEFAULTS value>." appended when that value is not None.
FLAGS = {
    "--model": ("model", {"choices": MODEL_NAMES, "help": "Model to train."}),
    "--data": ("data.path", {
        "help": "Dataset: a manifest (.jsonl/.csv) or a dataset folder. Default: the demo data."}),
    "--data-format": ("data.format", {
        "choices": ("auto",) + tuple(FORMATS), "help": "Dataset layout; auto detects it."}),
    "--label-rule": ("data.label_rule", {
        "choices": CHOICES["data.label_rule"], "help": "MVSA label rule."}),
    "--splits": ("data.splits", {
        "help": "A splits.csv from an earlier run, to reuse its split. Default: a new split."}),
    "--on-bad-sample": ("data.on_bad_sample", {
        "choices": CHOICES["data.on_bad_sample"],
        "help": "skip: leave out unreadable samples (listed in skipped_samples.csv); "
                "error: stop."}),
    "--text-encoder": ("encoders.text", {"help": ENCODER_HELP + "."}),
    "--image-encoder": ("encoders.image", {
        "help": ENCODER_HELP + ", or efficientnetb0[:weights.h5|:none]."}),
    "--sequence-length": ("encoders.sequence_length", {
        "type": int, "help": "Text tokens per post; longer texts are cut. "
                             "Default: {default}" + AMSDA_DEFAULT + "."}),
    "--image-size": ("encoders.image_size", {
        "type": int, "help": "Side of the square encoder input in pixels. "
                             "Default: the encoder's own input size."}),
    "--train-encoders": ("encoders.trainable", {
        "action": "store_const", "const": True,
        "help": "Fine-tune the encoders with the model on raw text and images "
                "(default for amsda; the other models default to frozen encoders)."}),
    "--freeze-encoders": ("encoders.trainable", {
        "action": "store_const", "const": False,
        "help": "Freeze the encoders: features are cached once and only the head trains "
                "(default for baseline, mahfnet and probe)."}),
    "--train-text-layers": ("encoders.text_trainable_layers", {
        "type": int, "metavar": "N",
        "help": "With frozen encoders: also train the text encoder's last N transformer "
                "layers (features are cached below them)."}),
    "--modality": ("model_args.modality", {
        "choices": ("text", "image", "both"),
        "help": "The inputs of baseline and probe. Default: both."}),
    "--ablate": ("model_args.ablate", {
        "type": lambda text: comma_list(text, choices=ABLATION_NAMES),
        "metavar": "BLOCK[,BLOCK]",
        "help": "Parts to remove, comma-separated. MAHFNet: "
                f"{', '.join(ABLATIONS['mahfnet'])} (Table 7: mag; hgfm; hgfm,ieem; "
                f"hgfm,ieem,agai). A-MSDA: {', '.join(ABLATIONS['amsda'])} (Table V: "
                "image,fusion = text only; text,fusion = image only; fusion = no "
                "cross-attention). Default: none."}),
    "--loss": ("training.loss", {
        "choices": CHOICES["training.loss"],
        "help": "Classification loss (focal: weighted focal loss). "
                "Default: {default}" + AMSDA_DEFAULT + "."}),
    "--precision": ("training.precision", {
        "choices": CHOICES["training.precision"],
        "help": "mixed_float16 on a T4, mixed_bfloat16 on newer GPUs and TPUs."}),
    "--jit-compile": ("training.jit_compile", {
        "type": lambda text: {"true": True, "false": False}.get(text.lower(), text),
        "choices": CHOICES["training.jit_compile"], "metavar": "{auto,true,false}",
        "help": "XLA for the train step (torch: torch.compile). auto: Keras' default, "
                "but off for tensorflow on a CPU, where it is slower."}),
    "--distribute": ("training.distribute", {
        "choices": CHOICES["training.distribute"],
        "help": "data-parallel: split each batch across all local devices (jax or tensorflow "
                "backend; the batch size is the global one)."}),
    "--select-on": ("training.select_on", {
        "choices": CHOICES["training.select_on"],
        "help": "The split that picks the best epoch (and drives early stopping and "
                "ReduceLROnPlateau); it is never the one reported. auto: dev when "
                "the data has dev and test, else a validation split carved from train "
                "(data.validation_fraction), so dev stays untouched. last: keep the last epoch."}),
    "--no-tensorboard": ("training.tensorboard", {
        "action": "store_const", "const": False,
        "help": "Write no TensorBoard logs (default: RUN/tensorboard, for `tensorboard "
                "--logdir runs`)."}),
    "--cache-dir": ("features.cache_dir", {
        "help": "The feature cache folder itself (one subfolder per encoder and data). "
                "Default: $AMSDA_KERAS_CACHE/features, or ~/.cache/amsda_keras/features."}),
    "--epochs": ("training.epochs", {"type": int, "help": "Training epochs."}),
    "--batch-size": ("training.batch_size", {
        "type": int, "help": "Training batch size (the global one when distributed)."}),
    "--learning-rate": ("training.learning_rate", {"type": float, "help": "Adam's learning rate."}),
    "--encoder-learning-rate": ("training.encoder_learning_rate", {
        "type": float, "help": "Learning rate of the encoder weights that train "
                               "(--train-text-layers or encoders.trainable). Default: "
                               "--learning-rate."}),
    "--seed": ("training.seed", {
        "type": int, "help": "Seed of the split, the weights, dropout and shuffling."}),
    "--output": ("output", {"help": "Run folder. Default: runs/<model>-<time>."}),
}


def comma_list(text, choices=None, item_type=str):
    """Parses `a,b,c` for argparse, checking each item against `choices`."""
    try:
        items = [item_type(item.strip()) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}") from None
    unknown = [item for item in items if choices is not None and item not in choices]
    if not items or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(map(str, choices or ['values']))}; "
            f"got {text!r}")
    return items


def add_run_flag(parser, several):
    """`--run`, required and repeatable: a run folder or a --seeds/--folds group; `several`
    says what several runs make."""
    parser.add_argument("--run", required=True, action="append",
                        help="Run folder written by amsda_keras.train, or a --seeds/--folds "
                             f"folder; repeat it, or give a group, for {several}.")


def add_config_flags(parser, flags):
    """Adds the named `FLAGS` to `parser`; `config_overrides` reads them back."""
    for flag in flags:
        key, options = FLAGS[flag]
        if "choices" not in options and "action" not in options:
            options = {"metavar": flag.lstrip("-").replace("-", "_").upper(), **options}
        options = {**options, "help": _with_default(options["help"], key)}
        parser.add_argument(flag, dest=_dest(key), **options)


def config_overrides(args):
    """The dotted-key overrides given on the command line (flags left out are None)."""
    return {
        key: getattr(args, _dest(key))
        for key, _ in FLAGS.values()
        if hasattr(args, _dest(key))
    }


def keyword_overrides(settings, flags, function):
    """The dotted-key overrides of the keyword arguments `settings`, named like `flags` with `_`
    for `-` (`learning_rate=1e-4` for `--learning-rate`); `function` names the caller in errors.

    Raises:
        TypeError: a keyword is not one of `flags`.
    """
    keywords = {_keyword(flag): flag for flag in flags}
    unknown = sorted(set(settings) - set(keywords))
    if unknown:
        raise TypeError(f"{function}() got unexpected keyword arguments {unknown}; it takes "
                        f"{', '.join(sorted(keywords))}, and set={{KEY: VALUE}} for any config "
                        "key.")
    overrides = {}
    for keyword, value in settings.items():
        key, options = FLAGS[keywords[keyword]]
        if options.get("action") == "store_const" and value is not None:
            if not isinstance(value, bool):
                raise TypeError(f"{function}(): {keyword} takes True or False, not {value!r}.")
            value = options["const"] if value else not options["const"]
        elif key == "model_args.ablate" and isinstance(value, str):
            value = comma_list(value)
        elif isinstance(value, os.PathLike):
            value = os.fspath(value)
        overrides[key] = value
    return overrides


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_module_callable(name):
    """Makes the entry-point module `name` (`amsda_keras.train`) callable as its function of the
    same name, so that `amsda_keras.train(...)` works whether Python's import system has set the
    package's `train` attribute to the module (it does when anything imports the module) or not.
    """
    module = sys.modules[name]
    module.__class__ = _CallableModule
    module.__signature__ = inspect.signature(getattr(module, name.rpartition(".")[2]))


def _keyword(flag):
    return flag.lstrip("-").replace("-", "_")


def _with_default(text, key):
    """`text` with the default of config `key` filled in or appended (argparse-escaped)."""
    default = DEFAULTS
    for part in key.split("."):
        default = default.get(part) if isinstance(default, dict) else None
    if default is None or isinstance(default, (bool, dict)):
        return text
    if "{default}" not in text:
        text += " Default: {default}."
    return text.format(default=default).replace("%", "%%")


def _dest(key):
    return "config:" + key
