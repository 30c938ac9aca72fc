"""`python -m amsda_keras.features extract`: fill the feature cache for frozen encoders ahead of training.

`train` does this by itself when it needs features; running it first lets one extraction (for
example on a GPU) serve many training runs. The cache folder is chosen from the encoder, its
preprocessing and the data, so `train` with the same settings finds and reuses it.

Example:
    python -m amsda_keras.features extract --data ../shared/datasets/mvsa_single/mvsa_single.jsonl \
        --text-encoder /path/to/minilm --image-encoder ../shared/presets/efficientnet_lite0_imagenet
"""

import argparse
from pathlib import Path

from amsda_keras.cli import add_config_flags, config_overrides
from amsda_keras.console import quiet_tensorflow
from amsda_keras.training.config import DEFAULTS, resolve_config
from amsda_keras.training.errors import user_errors

def build_parser():
    parser = argparse.ArgumentParser(prog="python -m amsda_keras.features",
                                     description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    extract = commands.add_parser("extract", help="Compute and cache encoder features.")
    extract.add_argument("--config", help="YAML config file; its data and encoders are used.")
    add_config_flags(extract, [
        "--data", "--data-format", "--label-rule", "--on-bad-sample", "--text-encoder",
        "--image-encoder", "--sequence-length", "--image-size", "--train-text-layers",
        "--cache-dir",
    ])
    extract.add_argument("--modality", choices=("text", "image", "both"), default="both",
                         help="Which encoders to run.")
    extract.add_argument("--batch-size", type=int, help="Encoder batch size. Default: "
                                                        f"{DEFAULTS['features']['batch_size']}.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    from amsda_keras import encoders as encoder_lib
    from amsda_keras.data.feature_cache import default_cache_root, extract_features
    from amsda_keras.models import MODEL_DEFAULTS
    from amsda_keras.training import inputs

    with user_errors():
        overrides = {**config_overrides(args), "features.batch_size": args.batch_size}
        config = resolve_config(args.config, overrides, model_defaults=MODEL_DEFAULTS)
        modalities = inputs.MODALITIES if args.modality == "both" else (args.modality,)
        for modality in modalities:
            if config["encoders"][modality] == encoder_lib.TINY:
                raise ValueError(
                    f"The {modality} encoder is `tiny`: tiny encoders are random and built per "
                    f"run, so their features are not worth caching ahead. Pass a preset with "
                    f"--{modality}-encoder."
                )
        cache_root = Path(config["features"]["cache_dir"] or default_cache_root())
        cache_root.mkdir(parents=True, exist_ok=True)
        inputs.resolve_data_path(config["data"])
        table = inputs.load_table(config["data"], cache_root)
        for modality in modalities:
            encoder = inputs.build_encoder(config["encoders"], modality)
            cache = extract_features(encoder, table.frame, cache_root=cache_root,
                                     batch_size=config["features"]["batch_size"])
            shapes = {field: array.shape for field, array in cache.arrays.items()}
            print(f"{modality}: {len(cache)} samples in {cache.directory} {shapes}")


if __name__ == "__main__":
    main()
