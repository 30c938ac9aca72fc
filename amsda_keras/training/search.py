"""A KerasTuner search over config keys, each trial an ordinary run folder.

The search space is a small YAML file of dotted config keys:

    training.learning_rate: {float: [1.0e-5, 1.0e-3], log: true}
    model_args.dropout: {float: [0.0, 0.5]}
    model_args.hidden_dim: {int: [64, 256], step: 64}
    training.contrastive_weight: [0.01, 0.1, 0.5]

The objective is a metric of the selection split only (the split that picks each trial's epoch),
never of the untouched split a run reports: a tuned config's result is the untouched score of
a run trained with it, and the trial table is not one.
"""

from pathlib import Path

import keras
import keras_tuner
import pandas as pd
import yaml

from amsda_keras.files import write_text_atomically
from amsda_keras.training.config import ConfigError, load_config_file, resolve_config
from amsda_keras.training.errors import USER_ERRORS
from amsda_keras.training.reporting import (HEADLINE_METRICS, RUN_INFO_FILE, markdown_table,
                                            save_figure)

TUNER_FOLDER = "keras_tuner"
TRIALS_FOLDER = "trials"
SPEC_KEYS = {"float", "int", "log", "step"}
# Hyperband's own hyperparameters: the epochs of a trial, and bookkeeping.
HYPERBAND_EPOCHS = "tuner/epochs"


def read_space(path):
    """The search space file as `{dotted key: spec}`, each spec checked.

    Raises:
        ConfigError: the file is missing or not YAML, or a spec is not a non-empty list of
            choices or `{float: [min, max]}` / `{int: [min, max]}` with optional `log: true`
            and `step`.
    """
    space = load_config_file(path)
    if not space:
        raise ConfigError(f"{path} holds no search space: give `section.key: spec` lines.")
    for key, spec in space.items():
        kind = [name for name in ("float", "int") if isinstance(spec, dict) and name in spec]
        valid = (isinstance(spec, list) and spec) or (
            len(kind) == 1 and set(spec) <= SPEC_KEYS and isinstance(spec[kind[0]], list)
            and len(spec[kind[0]]) == 2 and spec[kind[0]][0] < spec[kind[0]][1])
        if not valid:
            raise ConfigError(
                f"{path}: `{key}` must be a list of choices, or {{float: [min, max]}} or "
                f"{{int: [min, max]}} (min < max; optional `log: true`, `step: N`). "
                f"Received: {spec!r}")
    return space


def hyperparameters(space):
    """A `keras_tuner.HyperParameters` declaring each key of `space`."""
    hp = keras_tuner.HyperParameters()
    for key, spec in space.items():
        if isinstance(spec, list):
            hp.Choice(key, spec)
            continue
        sampling = "log" if spec.get("log") else "linear"
        if "float" in spec:
            hp.Float(key, *spec["float"], step=spec.get("step"), sampling=sampling)
        else:
            hp.Int(key, *spec["int"], step=spec.get("step", 1), sampling=sampling)
    return hp


def check_space(space, config, overrides, model_builders):
    """Resolves the config with each end of every range (and each choice) of `space`, so that
    an unknown key or an out-of-range value fails before any trial trains."""
    for key, spec in space.items():
        values = spec if isinstance(spec, list) else spec.get("float", spec.get("int"))
        for value in values:
            resolve_config(config, {**overrides, key: value}, model_builders=model_builders)


def make_oracle(name, space, trials, max_epochs, seed, objective):
    """KerasTuner's oracle `name` ("bayesian", "random" or "hyperband") over `space`,
    maximising the selection split's `objective`."""
    objective = keras_tuner.Objective(f"selection_{objective}", direction="max")
    hp = hyperparameters(space)
    if name == "random":
        return keras_tuner.oracles.RandomSearchOracle(
            objective=objective, max_trials=trials, hyperparameters=hp, seed=seed)
    if name == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            objective=objective, max_trials=trials, hyperparameters=hp, seed=seed)
    return keras_tuner.oracles.HyperbandOracle(
        objective=objective, max_epochs=max_epochs, hyperparameters=hp, seed=seed)


class RunTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Each trial trains `train_trial(trial_dir, overrides, epochs)`, an ordinary run folder in
    OUTPUT/trials/trial-<id>, and reports its selection split's metrics. A trial cut off by a
    kill resumes from its run's checkpoint; a finished one is read, not trained again."""

    def __init__(self, oracle, output, train_trial, objective, **kwargs):
        super().__init__(oracle, directory=str(output), project_name=TUNER_FOLDER, **kwargs)
        self.output = Path(output)
        self.train_trial = train_trial
        self.objective_metric = objective

    def run_trial(self, trial, *args, **kwargs):
        from amsda_keras.runs import Run

        values = dict(trial.hyperparameters.values)
        epochs = values.pop(HYPERBAND_EPOCHS, None)
        overrides = {key: value for key, value in values.items() if not key.startswith("tuner/")}
        run_dir = self.trial_run_dir(trial.trial_id)
        try:
            self.train_trial(run_dir, overrides, epochs)
        except USER_ERRORS as error:
            # A bad setting or unreadable data fails every trial alike: stop the search.
            raise keras_tuner.errors.FatalError(str(error)) from error
        finally:
            keras.backend.clear_session()
        metrics = Run(run_dir).metrics
        selection = metrics[metrics["role"] == "selection"].iloc[0]
        return {f"selection_{name}": float(selection[name]) for name in HEADLINE_METRICS}

    def trial_run_dir(self, trial_id):
        return self.output / TRIALS_FOLDER / f"trial-{trial_id}"


def trials_table(tuner, space):
    """One row per finished trial, best first (`rank_trials`): its settings, objective, the
    selection split's metrics, epochs, wall time and run folder."""
    from amsda_keras.runs import Run

    rows = []
    for trial in tuner.oracle.trials.values():
        run_dir = tuner.trial_run_dir(trial.trial_id)
        if trial.status != "COMPLETED" or not (run_dir / RUN_INFO_FILE).is_file():
            continue
        run = Run(run_dir)
        values = trial.hyperparameters.values
        rows.append({
            "trial": trial.trial_id,
            **{key: values.get(key) for key in space},
            "objective": trial.score,
            **{f"selection {name}": trial.metrics.get_best_value(f"selection_{name}")
               for name in HEADLINE_METRICS if name != tuner.objective_metric},
            "epochs": run.info.get("epochs_run"),
            "best epoch": run.info.get("best_epoch"),
            "wall time (s)": run.info.get("wall_time_seconds"),
            "run": str(run_dir),
        })
    return rank_trials(pd.DataFrame(rows))


def rank_trials(table):
    """`table` sorted best first: by objective, ties (common on a few hundred validation
    samples) broken by the selection split's other metrics in `HEADLINE_METRICS` order, then
    by trial order."""
    if table.empty:
        return table
    keys = ["objective"] + [column for column in table if column.startswith("selection ")]
    return table.sort_values(keys, ascending=False, kind="stable", ignore_index=True)


def significant(table, digits=4):
    """`table` with floats shown to `digits` significant digits, so that a learning rate of
    3e-5 does not print as 0.0."""
    return table.map(lambda value: float(f"{value:.{digits}g}") if isinstance(value, float)
                     else value)


def write_results(tuner, space, output, objective):
    """Writes trials.csv, trials.md, objective.png and best.yaml in `output`. Returns the
    trial table."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    output = Path(output)
    table = trials_table(tuner, space)
    if table.empty:
        raise ValueError(f"No trial finished in {output}; see the errors above.")
    write_text_atomically(output / "trials.csv", table.to_csv(index=False))
    write_text_atomically(output / "trials.md", markdown_table(significant(table)))
    in_order = table.sort_values("trial", key=lambda ids: ids.astype(int))
    numbers = in_order["trial"].astype(int)
    figure = Figure(figsize=(6, 3.5))
    axes = figure.subplots()
    axes.plot(numbers, in_order["objective"], "o", label="trial")
    axes.plot(numbers, in_order["objective"].cummax(), "-", label="best so far")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="trial", ylabel=f"selection split {objective}",
             title="Search objective per trial (selection split only)")
    axes.legend()
    save_figure(figure, output / "objective.png")
    best = yaml.safe_load((Path(table["run"][0]) / "config.yaml").read_text())
    best["output"] = None
    write_text_atomically(output / "best.yaml", yaml.safe_dump(best, sort_keys=False))
    return table
