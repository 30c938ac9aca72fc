"""`python -m amsda_keras.tune`: a KerasTuner search over config keys, on the selection split only.

Each trial is an ordinary run folder (OUTPUT/trials/trial-<id>: `compare`, `evaluate` and
TensorBoard work on it) trained with the usual `train` flags plus the trial's values of the keys
in `--space` (a YAML file: `key: {float: [min, max], log: true}`, `key: {int: [min, max],
step: N}` or `key: [choice, ...]`; see configs/search/mahfnet_head.yaml). The objective is
the selection split's accuracy (or F1) at each trial's kept epoch: the validation split
carved from train, or dev when the data also has test; never the untouched split. OUTPUT gets
`trials.csv` and `trials.md` (best first, with each trial's settings and wall time),
`objective.png` and `best.yaml`, which `train --config` takes. The trial table is not a
result: train `best.yaml` and report its untouched score. Killed, the same command resumes
(KerasTuner's state is in OUTPUT/keras_tuner).

From Python, `amsda_keras.tune(space, ...)` takes the same settings and returns the trial table.

Examples:
    python -m amsda_keras.tune --space configs/search/mahfnet_head.yaml \\
        --config configs/mahfnet_mvsa_single_offline.yaml --epochs 4 --trials 20 \\
        --output runs/search-mahfnet
    python -m amsda_keras.tune --model baseline --space space.yaml --tuner random --trials 3
"""

import argparse
import os
from pathlib import Path

from amsda_keras.cli import (add_config_flags, config_overrides, keyword_overrides,
                             make_module_callable)
from amsda_keras.console import quiet_tensorflow
from amsda_keras.train import TRAIN_FLAGS
from amsda_keras.training.config import ConfigError, parse_assignment, resolve_config
from amsda_keras.training.errors import user_errors

TUNERS = ("bayesian", "random", "hyperband")
OBJECTIVES = ("accuracy", "weighted_f1", "macro_f1")
DEFAULT_TRIALS = 10
# KerasTuner's distributed mode: a chief oracle at this address, workers with their own ids.
ORACLE_ADDRESS, TUNER_ID, CHIEF = "KERASTUNER_ORACLE_IP", "KERASTUNER_TUNER_ID", "chief"
# The flags every trial shares; --output is the search's folder.
SHARED_FLAGS = tuple(flag for flag in TRAIN_FLAGS if flag != "--output")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.tune", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--space", required=True, help="YAML file of the keys to search.")
    parser.add_argument("--tuner", choices=TUNERS, default="bayesian",
                        help="KerasTuner's search algorithm. Default: %(default)s.")
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help="Trials to run (hyperband: set by --epochs). Default: %(default)s.")
    parser.add_argument("--objective", choices=OBJECTIVES, default="accuracy",
                        help="The selection split's metric to maximise. Default: %(default)s.")
    parser.add_argument("--output", default="runs/search",
                        help="Search folder. Default: %(default)s.")
    parser.add_argument("--config", help="YAML config every trial starts from.")
    add_config_flags(parser, SHARED_FLAGS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="Override any config key in every trial.")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    return parser


def tune(space, config=None, *, tuner="bayesian", trials=DEFAULT_TRIALS, objective="accuracy",
         output="runs/search", set=None, progress=True, **settings):
    """Searches the config keys of `space` with KerasTuner; returns the trial table.

    Args:
        space: the search space, a YAML file (see above).
        config: the config every trial starts from: a YAML file, a dict or None.
        tuner: "bayesian", "random" or "hyperband" (its epochs: `epochs`).
        trials: trials to run (not for hyperband).
        objective: the selection split's metric to maximise.
        output: the search's folder; a search already there continues.
        set: dict of dotted config keys to values for every trial.
        progress: show progress bars.
        **settings: `train`'s keywords (`model`, `data`, `epochs`, `seed`, ...) for every trial.

    Returns:
        A DataFrame, one row per finished trial, best objective first (`trials.csv`); None
        in a worker of a distributed search (the chief writes the table).

    Raises:
        ConfigError: a bad space file, key or value, or a config without a selection split.
    """
    import keras_tuner

    from amsda_keras.models import MODEL_BUILDERS
    from amsda_keras.train import train
    from amsda_keras.training.reporting import RUN_INFO_FILE
    from amsda_keras.training.search import (RunTuner, check_space, make_oracle, read_space,
                                             significant, write_results)

    quiet_tensorflow()
    if tuner not in TUNERS or objective not in OBJECTIVES:
        raise ValueError(f"tuner must be one of {TUNERS} and objective one of {OBJECTIVES}. "
                         f"Received: {tuner!r}, {objective!r}")
    if trials < 1:
        raise ValueError(f"trials must be at least 1. Received: {trials}")
    overrides = keyword_overrides(settings, SHARED_FLAGS, "tune")
    overrides.update(set or {})
    space_settings = read_space(space)
    check_space(space_settings, config, overrides, MODEL_BUILDERS)
    shared = resolve_config(config, overrides, model_builders=MODEL_BUILDERS)
    if shared["training"]["select_on"] == "last":
        raise ConfigError("tune needs a selection split: --select-on last keeps the last epoch, "
                          "so nothing would be searched on.")

    def train_trial(run_dir, values, epochs):
        if (run_dir / RUN_INFO_FILE).is_file():
            return  # finished before a kill stopped the search
        if (run_dir / "config.yaml").is_file():
            train(resume=run_dir, progress=progress)
            return
        epochs = {"training.epochs": epochs} if epochs else {}
        train(config, set={**overrides, **values, **epochs}, output=str(run_dir),
              progress=progress)

    oracle = make_oracle(tuner, space_settings, trials, shared["training"]["epochs"],
                         shared["training"]["seed"], objective)
    search = RunTuner(oracle, output, train_trial, objective)
    try:
        search.search()
    except keras_tuner.errors.FatalError as error:
        raise (error.__cause__ or error) from None
    if os.environ.get(ORACLE_ADDRESS) and os.environ.get(TUNER_ID) != CHIEF:
        print(f"No trial left for this worker; the chief writes the trial table to {output}.")
        return None
    table = write_results(search, space_settings, output, objective)
    print(f"\nTrials (selection split {objective}, best first), {Path(output) / 'trials.md'}:")
    print(significant(table.drop(columns="run")).to_string(index=False))
    print(f"Best config: {Path(output) / 'best.yaml'} (train it with --config and report its "
          "untouched split; the trial table is not a result).")
    return table


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    with user_errors():
        overrides = {key: value for key, value in config_overrides(args).items()
                     if value is not None}
        overrides.update(parse_assignment(text) for text in args.set)
        tune(args.space, args.config, tuner=args.tuner, trials=args.trials,
             objective=args.objective, output=args.output, set=overrides,
             progress=not args.no_progress)


if __name__ == "__main__":
    main()
else:
    make_module_callable(__name__)
