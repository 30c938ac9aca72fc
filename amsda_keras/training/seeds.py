"""One training per seed (and per fold) and the mean ± standard deviation of their metrics.

`train_seeds` writes `<output>/seed-<n>/`, or with K folds `<output>/fold-<f>/seed-<n>/`
(complete run folders, each with its per-sample `predictions.csv`), then `summary.json` and
`summary.md` in `<output>`. Run folders that already hold a finished run with the same
settings are reused and an unfinished one is resumed from its last epoch, so a multi-run job
that was cut off continues where it stopped.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd

from amsda_keras.files import write_text_atomically
from amsda_keras.training import inputs
from amsda_keras.training.checkpoints import CHECKPOINT_DIR
from amsda_keras.training.config import RANGES, load_config_file, load_run_config
from amsda_keras.training.reporting import HEADLINE_METRICS, RUN_INFO_FILE, markdown_table
from amsda_keras.training.run import default_run_dir, train

RUN_FIELDS = ("best_epoch", "probe_c", "wall_time_seconds", "trainable_parameters")
# Settings a reused seed folder must share with the requested run.
COMPARED_SECTIONS = ("model", "model_args", "encoders", "training")
DATA_KEYS = ("path", "splits", "validation_fraction", "folds", "fold")


def train_seeds(config, seeds, folds=None, progress=True):
    """Trains `config` once per seed, and per fold of a stratified `folds`-fold partition of
    all labelled rows (seeded by the run's seed; the held-out fold is the test split), and
    summarises the runs. Returns the summary dict."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds lists a seed twice: {seeds}")
    lowest, highest, _ = RANGES["training.seed"]
    out_of_range = [seed for seed in seeds if not lowest <= seed <= highest]
    if out_of_range:
        raise ValueError(f"--seeds must be from {lowest} to {highest}. Received: {out_of_range}")
    base = default_run_dir(config)
    inputs.resolve_data(config)
    members = [(fold, seed) for fold in (range(1, folds + 1) if folds else [None])
               for seed in seeds]
    run_dirs = []
    for fold, seed in members:
        run_config = copy.deepcopy(config)
        run_config["training"]["seed"] = seed
        name = f"seed-{seed}" if fold is None else f"fold-{fold}/seed-{seed}"
        if fold is not None:
            run_config["data"].update(folds=folds, fold=fold)
        run_config["output"] = str(base / name)
        run_dir = Path(run_config["output"])
        finished = (run_dir / RUN_INFO_FILE).exists()
        unfinished = (run_dir / CHECKPOINT_DIR).is_dir()
        if finished or unfinished:
            _check_reusable(run_dir, run_config)
        if finished:
            print(f"{name}: reusing the finished run in {run_dir}")
        else:
            print(f"=== {name} ({len(run_dirs) + 1} of {len(members)}) ===")
            train(run_config, progress=progress, resume=unfinished)
        run_dirs.append(run_dir)
    summary = summarize_runs(run_dirs)
    write_text_atomically(base / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text_atomically(base / "summary.md", summary_markdown(summary))
    print(summary_markdown(summary))
    print(f"Summary written to {base / 'summary.md'}")
    return summary


def summarize_runs(run_dirs):
    """Mean, sample standard deviation and per-run values of every split's headline metrics.

    Returns:
        `{"runs": [...], "seeds": [...], "metrics": {split: {metric: {"mean", "std",
        "values"}}}, "run": {field: {...}}}`; `std` is 0 for a single run.
    """
    metrics = [json.loads((Path(d) / "metrics.json").read_text()) for d in run_dirs]
    infos = [json.loads((Path(d) / RUN_INFO_FILE).read_text()) for d in run_dirs]
    configs = [load_config_file(Path(d) / "config.yaml") for d in run_dirs]
    splits = [split for split in metrics[0] if all(split in m for m in metrics)]
    return {
        "runs": [str(d) for d in run_dirs],
        "seeds": sorted({config["training"]["seed"] for config in configs}),
        "folds": configs[0]["data"].get("folds"),
        "selected_on": infos[0].get("selected_on"),
        "untouched_splits": infos[0].get("untouched_splits", []),
        "metrics": {
            split: {name: seed_stats([m[split][name] for m in metrics]) for name in HEADLINE_METRICS}
            for split in splits
        },
        "run": {name: seed_stats([info[name] for info in infos]) for name in RUN_FIELDS
                if all(info.get(name) is not None for info in infos)},
    }


def summary_markdown(summary):
    """The summary as a Markdown table: one row per split and metric, mean ± std and values."""
    marks = {summary["selected_on"]: " (selects)",
             **{split: " (untouched)" for split in summary["untouched_splits"]}}
    rows = [
        {"split": split + marks.get(split, ""), "metric": name, **_cells(stats)}
        for split, values in summary["metrics"].items() for name, stats in values.items()
    ] + [{"split": "", "metric": name, **_cells(stats)} for name, stats in summary["run"].items()]
    table = pd.DataFrame(rows)
    seeds = ", ".join(map(str, summary["seeds"]))
    folds = f"{summary['folds']} folds × " if summary["folds"] else ""
    return (f"{folds}seeds {seeds}: mean ± sample standard deviation over "
            f"{len(summary['runs'])} runs.\n\n" + markdown_table(table))


def seed_stats(values):
    """Mean, sample standard deviation (0 for one value) and the values themselves."""
    values = [float(v) for v in values]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "values": values}


def _cells(stats):
    return {
        "mean ± std": f"{stats['mean']:.4f} ± {stats['std']:.4f}",
        "per run": ", ".join(f"{v:.4g}" for v in stats["values"]),
    }


def _check_reusable(run_dir, config):
    saved = load_run_config(run_dir / "config.yaml")
    changed = [key for key in COMPARED_SECTIONS if saved.get(key) != config[key]]
    changed += [f"data.{key}" for key in DATA_KEYS
                if saved["data"].get(key) != config["data"][key]]
    if changed:
        raise FileExistsError(
            f"{run_dir} holds a run with other settings ({', '.join(changed)}); "
            "pass another --output.")
