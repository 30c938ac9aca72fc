"""`python -m amsda_keras.evaluate`: score a dataset with a trained run.

Example:
    python -m amsda_keras.evaluate --run runs/baseline-20261123-101500 \
        --data ../shared/datasets/mvsa_single/mvsa_single.jsonl --split dev
"""

import argparse

from amsda_keras.console import quiet_tensorflow
from amsda_keras.data import FORMATS
from amsda_keras.training.errors import user_errors


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m amsda_keras.evaluate",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="Run folder written by amsda_keras.train.")
    parser.add_argument("--data", required=True, help="Manifest or dataset folder to score.")
    parser.add_argument("--data-format", default="auto", choices=("auto",) + tuple(FORMATS),
                        help="Dataset layout (default: auto, detected).")
    parser.add_argument("--split", help="Score only this split (default: all rows / every split).")
    parser.add_argument("--output", help="Report folder (default: RUN/evaluation/<data>[-split]).")
    parser.add_argument("--on-bad-sample", choices=("skip", "error"),
                        help="Skip unreadable samples or stop (default: the run's setting).")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    from amsda_keras.training.evaluation import evaluate_run

    with user_errors():
        evaluate_run(args.run, args.data, data_format=args.data_format, split=args.split,
                     output=args.output, on_bad_sample=args.on_bad_sample,
                     progress=not args.no_progress)


if __name__ == "__main__":
    main()
