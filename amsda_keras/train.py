"""`python -m amsda_keras.train`: train a model and write a run folder.

Examples:
    python -m amsda_keras.train --model baseline                  # demo data, tiny encoders
    python -m amsda_keras.train --model baseline --config configs/baseline_mvsa_single.yaml
    python -m amsda_keras.train --config configs/mahfnet_mvsa_single_offline.yaml --seeds 1,2,3
    python -m amsda_keras.train --config configs/probe_mvsa_single.yaml --folds 5 --seeds 1,2,3
    python -m amsda_keras.train --model mahfnet --ablate hgfm,ieem   # Table 7's -(IEEM) row
    python -m amsda_keras.train --model amsda                       # fine-tunes the encoders
    python -m amsda_keras.train --config configs/amsda_mvsa_single_offline.yaml --freeze-encoders
    python -m amsda_keras.train --resume runs/mahfnet-20261123-101500   # continue a killed run
    python -m amsda_keras.train --model baseline --data ../shared/datasets/mvsa_single/mvsa_single.jsonl \
        --text-encoder /path/to/minilm --image-encoder ../shared/presets/efficientnet_lite0_imagenet
"""

import argparse
from pathlib import Path

from amsda_keras.cli import add_config_flags, comma_list, config_overrides
from amsda_keras.models import MODEL_BUILDERS, MODEL_DEFAULTS
from amsda_keras.training.config import ConfigError, parse_assignment, resolve_config
from amsda_keras.training.errors import user_errors


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.train", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML config file (see configs/); flags override it.")
    add_config_flags(parser, [
        "--model", "--data", "--data-format", "--label-rule", "--splits", "--on-bad-sample",
        "--text-encoder", "--image-encoder", "--sequence-length", "--image-size",
        "--train-encoders", "--freeze-encoders", "--train-text-layers",
        "--modality", "--ablate", "--loss", "--select-on", "--precision", "--jit-compile",
        "--distribute", "--cache-dir",
        "--epochs", "--batch-size", "--learning-rate", "--seed", "--output",
    ])
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
        help="Continue a run that was stopped, from its last finished epoch, with the settings "
             "in its config.yaml (no other settings may be given).")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from amsda_keras.training.run import train
    from amsda_keras.training.seeds import train_seeds

    with user_errors():
        overrides = config_overrides(args)
        overrides.update(parse_assignment(text) for text in args.set)
        if args.resume:
            config = _resumed_config(args, overrides)
            train(config, progress=not args.no_progress, resume=True)
            return
        config = resolve_config(args.config, overrides, model_builders=MODEL_BUILDERS,
                                model_defaults=MODEL_DEFAULTS)
        if args.folds is not None and args.folds < 2:
            raise ConfigError(f"--folds must be at least 2. Received: {args.folds}")
        if args.seeds or args.folds:
            train_seeds(config, args.seeds or [config["training"]["seed"]], folds=args.folds,
                        progress=not args.no_progress)
        else:
            train(config, progress=not args.no_progress)


def _resumed_config(args, overrides):
    extra = (["--config"] if args.config else []) + (["--seeds"] if args.seeds else []) + (
        ["--folds"] if args.folds else []) + [
        key for key, value in overrides.items() if value is not None]
    if extra:
        raise ConfigError("--resume continues a run with the settings in its config.yaml and "
                          f"takes no other settings. Received: {', '.join(extra)}")
    config_file = Path(args.resume) / "config.yaml"
    if not config_file.is_file():
        raise ConfigError(f"--resume {args.resume}: no run folder there ({config_file} not found).")
    config = resolve_config(config_file, model_builders=MODEL_BUILDERS)
    config["output"] = args.resume
    return config


if __name__ == "__main__":
    main()
