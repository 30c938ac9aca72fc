"""`python -m amsda_keras.evaluate`: score a dataset with a trained run.

Examples:
    python -m amsda_keras.evaluate --run runs/baseline-20261123-101500 \
        --data ../shared/datasets/mvsa_single/mvsa_single.jsonl --split dev
    python -m amsda_keras.evaluate --run runs/mahfnet-seeds \
        --data ../shared/datasets/mvsa_single/mvsa_single.jsonl --split dev   # seed ensemble

From Python, `amsda_keras.evaluate(run, data, split="dev")` returns the metrics table.
"""

import argparse

from amsda_keras.cli import add_run_flag, make_module_callable
from amsda_keras.console import quiet_tensorflow
from amsda_keras.data import FORMATS
from amsda_keras.training.errors import user_errors


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m amsda_keras.evaluate",
                                     description=__doc__.split("\n")[0])
    add_run_flag(parser, "an ensemble that averages the runs' class probabilities")
    parser.add_argument("--data", required=True, help="Manifest or dataset folder to score.")
    parser.add_argument("--data-format", default="auto", choices=("auto",) + tuple(FORMATS),
                        help="Dataset layout (default: auto, detected).")
    parser.add_argument("--split", help="Score only this split (default: all rows / every split).")
    parser.add_argument("--output", help="Report folder (default: RUN/evaluation/<data>[-split]).")
    parser.add_argument("--on-bad-sample", choices=("skip", "error"),
                        help="Skip unreadable samples or stop (default: the run's setting).")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def evaluate(run, data, *, split=None, data_format="auto", output=None, on_bad_sample=None,
             progress=True):
    """Scores a dataset with a trained run and writes its reports (metrics, classification
    report, confusion matrices) to `output`. Returns the metrics, one row per split.

    Args:
        run: a run folder written by `train` or its `Run`; or several (a list, a `RunGroup`
            or a --seeds/--folds folder): an ensemble averaging their class probabilities.
        data: a manifest or dataset folder labelled with (some of) the run's classes.
        split: score only this split; None scores every split (or every row).
        data_format: the dataset layout, or "auto".
        output: the report folder. Default: RUN/evaluation/<data name>[-split].
        on_bad_sample: "skip" or "error"; None keeps the run's setting.
        progress: show progress bars.

    Raises:
        ValueError: the data has classes the run lacks, or no such split or row to score.
    """
    from amsda_keras.runs import metrics_frame, run_directories
    from amsda_keras.training.evaluation import evaluate_run

    quiet_tensorflow()
    return metrics_frame(evaluate_run(run_directories(run), data, data_format=data_format,
                                      split=split, output=output, on_bad_sample=on_bad_sample,
                                      progress=progress))


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    with user_errors():
        evaluate(args.run, args.data, data_format=args.data_format, split=args.split,
                 output=args.output, on_bad_sample=args.on_bad_sample,
                 progress=not args.no_progress)


if __name__ == "__main__":
    main()
else:
    make_module_callable(__name__)
