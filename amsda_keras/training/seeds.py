"""One training per seed and the mean ± standard deviation of their metrics.

`train_seeds` writes `<output>/seed-<n>/` (complete run folders), then `summary.json` and
`summary.md` in `<output>`. Seed folders that already hold a finished run with the same
settings are reused and an unfinished one is resumed from its last epoch, so a multi-seed job
that was cut off continues where it stopped.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd

from amsda_keras.training import inputs
from amsda_keras.training.checkpoints import CHECKPOINT_DIR
from amsda_keras.training.config import load_config_file
from amsda_keras.training.reporting import HEADLINE_METRICS, markdown_table
from amsda_keras.training.run import default_run_dir, train

RUN_FIELDS = ("best_epoch", "wall_time_seconds", "trainable_parameters")
# Settings a reused seed folder must share with the requested run.
COMPARED_SECTIONS = ("model", "model_args", "encoders", "training")


def train_seeds(config, seeds, progress=True):
    """Trains `config` once per seed and summarises the runs. Returns the summary dict."""
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds lists a seed twice: {seeds}")
    base = default_run_dir(config)
    inputs.resolve_data_path(config["data"])
    run_dirs = []
    for seed in seeds:
        run_config = copy.deepcopy(config)
        run_config["training"]["seed"] = seed
        run_config["output"] = str(base / f"seed-{seed}")
        run_dir = Path(run_config["output"])
        finished = (run_dir / "metrics.json").exists()
        unfinished = (run_dir / CHECKPOINT_DIR).is_dir()
        if finished or unfinished:
            _check_reusable(run_dir, run_config)
        if finished:
            print(f"Seed {seed}: reusing the finished run in {run_dir}")
        else:
            print(f"=== Seed {seed} ({len(run_dirs) + 1} of {len(seeds)}) ===")
            train(run_config, progress=progress, resume=unfinished)
        run_dirs.append(run_dir)
    summary = summarize_runs(run_dirs)
    (base / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (base / "summary.md").write_text(summary_markdown(summary))
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
    infos = [json.loads((Path(d) / "run.json").read_text()) for d in run_dirs]
    seeds = [load_config_file(Path(d) / "config.yaml")["training"]["seed"] for d in run_dirs]
    splits = [split for split in metrics[0] if all(split in m for m in metrics)]
    return {
        "runs": [str(d) for d in run_dirs],
        "seeds": seeds,
        "metrics": {
            split: {name: seed_stats([m[split][name] for m in metrics]) for name in HEADLINE_METRICS}
            for split in splits
        },
        "run": {name: seed_stats([info[name] for info in infos]) for name in RUN_FIELDS},
    }


def summary_markdown(summary):
    """The summary as a Markdown table: one row per split and metric, mean ± std and values."""
    rows = [
        {"split": split, "metric": name, **_cells(stats)}
        for split, values in summary["metrics"].items() for name, stats in values.items()
    ] + [{"split": "", "metric": name, **_cells(stats)} for name, stats in summary["run"].items()]
    table = pd.DataFrame(rows)
    seeds = ", ".join(map(str, summary["seeds"]))
    return (f"Seeds {seeds}: mean ± sample standard deviation over {len(summary['seeds'])} runs.\n\n"
            + markdown_table(table))


def seed_stats(values):
    """Mean, sample standard deviation (0 for one value) and the values themselves."""
    values = [float(v) for v in values]
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "values": values}


def _cells(stats):
    return {
        "mean ± std": f"{stats['mean']:.4f} ± {stats['std']:.4f}",
        "per seed": ", ".join(f"{v:.4g}" for v in stats["values"]),
    }


def _check_reusable(run_dir, config):
    saved = load_config_file(run_dir / "config.yaml")
    changed = [key for key in COMPARED_SECTIONS if saved.get(key) != config[key]]
    if changed or saved["data"]["path"] != config["data"]["path"]:
        raise FileExistsError(
            f"{run_dir} holds a run with other settings ({', '.join(changed) or 'data'}); "
            "pass another --output.")
