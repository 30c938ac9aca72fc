"""`python -m amsda_keras.train`: train a model and write a run folder.

From Python, `amsda_keras.train(...)` takes the same settings as keywords and returns the run:
    run = amsda_keras.train(model="mahfnet", epochs=2, seeds=[1, 2])

Examples:
    python -m amsda_keras.train --model baseline                  # demo data, tiny encoders
    python -m amsda_keras.train --model baseline --config configs/baseline_mvsa_single.yaml
    python -m amsda_keras.train --config configs/mahfnet_mvsa_single_offline.yaml --seeds 1,2,3
    python -m amsda_keras.train --config configs/probe_mvsa_single.yaml --folds 5 --seeds 1,2,3
    python -m amsda_keras.train --model mahfnet --ablate hgfm,ieem   # Table 7's -(IEEM) row
    python -m amsda_keras.train --model amsda                       # fine-tunes the encoders
    python -m amsda_keras.train --config configs/amsda_mvsa_single_offline.yaml --freeze-encoders
    python -m amsda_keras.train --resume runs/mahfnet-20261123-101500   # continue a killed run
    python -m amsda_keras.train --resume runs/mahfnet-20261123-101500 --epochs 30   # to 30
    python -m amsda_keras.train --model baseline --data ../shared/datasets/mvsa_single/mvsa_single.jsonl \
        --text-encoder /path/to/minilm --image-encoder ../shared/presets/efficientnet_lite0_imagenet
"""

import argparse
import shlex
import sys
from pathlib import Path

from amsda_keras.cli import (add_config_flags, comma_list, config_overrides,
                             keyword_overrides, make_module_callable)
from amsda_keras.console import quiet_tensorflow
from amsda_keras.training.config import (ConfigError, parse_assignment, resolve_config,
                                         save_config)
from amsda_keras.training.errors import user_errors

COMMAND = "python -m amsda_keras.train"
# The exit status of a program stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
# The config flags of the command line, and (with `_` for `-`) the keywords of `train()`.
TRAIN_FLAGS = (
    "--model", "--data", "--data-format", "--label-rule", "--splits", "--on-bad-sample",
    "--text-encoder", "--image-encoder", "--sequence-length", "--image-size",
    "--train-encoders", "--freeze-encoders", "--train-text-layers", "--encoder-learning-rate",
    "--modality", "--ablate", "--loss", "--select-on", "--precision", "--jit-compile",
    "--distribute", "--cache-dir", "--no-tensorboard",
    "--epochs", "--batch-size", "--learning-rate", "--seed", "--output",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML config file (see configs/); flags override it.")
    add_config_flags(parser, TRAIN_FLAGS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Override any config key, e.g. --set training.oversample=true.")
    parser.add_argument(
        "--seeds", type=lambda text: comma_list(text, item_type=int), metavar="N[,N]",
        help="Train once per seed (e.g. 1,2,3) into OUTPUT/seed-N and write the mean ± std of "
             "every metric to OUTPUT/summary.json and summary.md.")
    parser.add_argument(
        "--folds", type=int, metavar="K",
        help="Stratified K-fold over all labelled rows (the data's own splits set aside): "
             "each fold in turn is the test split, the epoch is picked on a validation split "
             "carved from the other folds; one run per fold (and per seed, with --seeds) into "
             "OUTPUT/fold-F/seed-N, then the mean ± std over them all in OUTPUT/summary.md.")
    parser.add_argument(
        "--resume", metavar="RUN_DIR",
        help="Continue an unfinished run from its last finished epoch, with the settings in "
             "its config.yaml; only --epochs may be given with it, to train to more epochs.")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def train(config=None, *, seeds=None, folds=None, resume=None, set=None, progress=True,
          **settings):
    """Trains a model; returns its `Run`, or with `seeds` or `folds` its `RunGroup`.

    The Python form of `python -m amsda_keras.train`: the same settings, checks and messages,
    raised as exceptions (`ConfigError` and other `ValueError`s for bad settings or data,
    `FileNotFoundError`, `FileExistsError`, `EncoderUnavailableError`).

    Args:
        config: a YAML config file (see configs/), a dict nested the same way, or None for the
            defaults (the demo data with tiny encoders).
        seeds: list of int; one run per seed, as `--seeds`.
        folds: int K of a stratified K-fold over all labelled rows, as `--folds`.
        resume: an unfinished run folder to continue from its last finished epoch; only
            `epochs` may be given with it.
        set: dict of dotted config keys to values, as `--set`:
            `{"training.oversample": True}`.
        progress: show progress bars.
        **settings: the flags of `python -m amsda_keras.train --help` with `_` for `-`:
            `model`, `data`, `epochs`, `learning_rate`, `text_encoder`, `select_on`,
            `ablate` (a list), `train_encoders=True`, `output`, ...

    Example:
        run = amsda_keras.train(model="mahfnet", epochs=2)
        run.metrics
    """
    from amsda_keras.runs import load_run

    quiet_tensorflow()
    overrides = keyword_overrides(settings, TRAIN_FLAGS, "train")
    overrides.update(set or {})
    config = configure(config, overrides, seeds=seeds, folds=folds, resume=resume)
    return load_run(run_configured(config, seeds, folds, resume, progress))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    config = None
    try:
        with user_errors():
            overrides = config_overrides(args)
            overrides.update(parse_assignment(text) for text in args.set)
            config = configure(args.config, overrides, seeds=args.seeds, folds=args.folds,
                               resume=args.resume)
            if (args.seeds or args.folds) and overrides["output"] is None:
                argv += ["--output", config["output"]]  # so that a rerun finds the group
            run_configured(config, args.seeds, args.folds, args.resume, not args.no_progress)
    except KeyboardInterrupt:
        print(_stopped_message(args, config, argv), file=sys.stderr)
        sys.exit(INTERRUPTED)


def configure(config, overrides, *, seeds=None, folds=None, resume=None):
    """The resolved config of a training: `config` (a file, a dict or None) with the
    dotted-key `overrides`, or with `resume` the unfinished run's own config. Its `output`
    is fixed here, so that an interrupted run, or a rerun of a group, finds the folder."""
    from amsda_keras.models import MODEL_BUILDERS, MODEL_DEFAULTS
    from amsda_keras.training.run import default_run_dir

    if resume is not None:
        return _resumed_config(resume, config, seeds, folds, overrides, MODEL_BUILDERS)
    if folds is not None and folds < 2:
        raise ConfigError(f"--folds must be at least 2. Received: {folds}")
    config = resolve_config(config, overrides, model_builders=MODEL_BUILDERS,
                            model_defaults=MODEL_DEFAULTS)
    config["output"] = str(default_run_dir(config))
    return config


def run_configured(config, seeds, folds, resume, progress):
    """Trains the `configure`d run (or one run per seed and fold). Returns its folder."""
    from amsda_keras.training.run import train as train_run
    from amsda_keras.training.seeds import train_seeds

    if seeds or folds:
        train_seeds(config, seeds or [config["training"]["seed"]], folds=folds,
                    progress=progress)
    else:
        train_run(config, progress=progress, resume=resume is not None)
    return Path(config["output"])


def _resumed_config(run_dir, config_given, seeds, folds, overrides, model_builders):
    """The config of the unfinished run in `run_dir`, trained to `--epochs` when given."""
    from amsda_keras.training.reporting import RUN_INFO_FILE

    run_dir = Path(run_dir)
    overrides = dict(overrides)
    epochs = overrides.pop("training.epochs", None)
    if (run_dir / RUN_INFO_FILE).exists():
        command = shlex.join([*COMMAND.split(), "--config", str(run_dir / "config.yaml"),
                              "--epochs", str(epochs or "N"), "--output", f"{run_dir}-longer"])
        raise ConfigError(f"--resume {run_dir}: that run is finished, there is nothing to resume. "
                          f"To train it longer as a new run: {command}")
    extra = (["--config"] if config_given else []) + (["--seeds"] if seeds else []) + (
        ["--folds"] if folds else []) + [
        key for key, value in overrides.items() if value is not None]
    if extra:
        raise ConfigError("--resume continues a run with the settings in its config.yaml; only "
                          f"--epochs may be given with it. Received: {', '.join(extra)}")
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"--resume {run_dir}: no run folder there ({config_file} not found).")
    config = resolve_config(config_file, model_builders=model_builders)
    planned = config["training"]["epochs"]
    if epochs is not None and epochs != planned:
        if epochs < planned:
            raise ConfigError(f"--epochs {epochs} with --resume: {run_dir} already trains to "
                              f"{planned} epochs; --epochs can only add epochs.")
        config["training"]["epochs"] = epochs
        save_config(config, config_file)
    config["output"] = str(run_dir)
    return config


def _stopped_message(args, config, argv):
    """One line after Ctrl-C: how to continue what was stopped."""
    output = config and config["output"]
    if output and (args.seeds or args.folds):
        return (f"Stopped. Run the same command again to continue (finished runs in {output} "
                f"are kept, the unfinished one resumes): {shlex.join([*COMMAND.split(), *argv])}")
    if output and (Path(output) / "config.yaml").is_file():
        return f"Stopped. Continue with: {COMMAND} --resume {shlex.quote(output)}"
    return "Stopped before training began; there is nothing to resume."


if __name__ == "__main__":
    main()
else:
    make_module_callable(__name__)
