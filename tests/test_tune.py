"""`python -m amsda_keras.tune` (issue 28): a KerasTuner search whose trials are run folders, that
resumes after a kill and never reads the split a run reports."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

import amsda_keras
from amsda_keras.data.demo import make_demo_dataset
from amsda_keras.training.config import ConfigError, resolve_config
from tests.helpers import kill_when

SPACE = ("training.learning_rate: {float: [1.0e-4, 1.0e-2], log: true}\n"
         "model_args.dropout: [0.0, 0.3]\n")
SHARED = {"model": "baseline", "epochs": 2, "set": {"encoders.sequence_length": 16},
          "tuner": "random", "trials": 3, "progress": False}


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "space.yaml"
    path.write_text(SPACE)
    return path


@pytest.fixture(scope="module")
def split_demo(tmp_path_factory):
    """The demo data with its own train/dev/test split (dev selects, test is untouched), and a
    copy whose test labels are shuffled."""
    folder = tmp_path_factory.mktemp("split_demo")
    manifest = make_demo_dataset(folder)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for number, row in enumerate(rows):
        row["split"] = {0: "test", 1: "dev"}.get(number % 10, "train")
    labelled = ("label", "label_name")
    test = [row for row in rows if row["split"] == "test"]
    labels = [{key: row[key] for key in labelled if key in row} for row in test]
    shuffled = [labels[i] for i in np.random.default_rng(0).permutation(len(labels))]
    assert shuffled != labels
    paths = {}
    for name, test_labels in (("original", labels), ("shuffled", shuffled)):
        for row, label in zip(test, test_labels):
            row.update(label)
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths


def test_a_search_writes_its_table_plot_and_best_config(space, tmp_path):
    table = amsda_keras.tune(space, output=tmp_path, **SHARED)
    assert len(table) == 3 and list(table["objective"]) == sorted(table["objective"],
                                                                   reverse=True)
    assert set(table.columns) >= {"training.learning_rate", "model_args.dropout",
                                  "wall time (s)", "run"}
    assert pd.read_csv(tmp_path / "trials.csv")["objective"].tolist() == pytest.approx(
        table["objective"].tolist())
    assert (tmp_path / "trials.md").read_text().startswith("| trial |")
    assert (tmp_path / "objective.png").stat().st_size > 0
    best = resolve_config(tmp_path / "best.yaml")  # what `train --config` does with it
    assert best["training"]["learning_rate"] == pytest.approx(
        table["training.learning_rate"][0])
    assert best["output"] is None
    best_run = amsda_keras.load_run(table["run"][0])
    selection = best_run.metrics.loc[best_run.metrics["role"] == "selection", "accuracy"]
    assert table["objective"][0] == pytest.approx(selection.iloc[0])


def test_the_search_never_reads_the_untouched_split(space, split_demo, tmp_path):
    tables, best = {}, {}
    for name, data in split_demo.items():
        tables[name] = amsda_keras.tune(space, data=str(data), output=tmp_path / name, **SHARED)
        config = yaml.safe_load((tmp_path / name / "best.yaml").read_text())
        del config["data"]["path"]
        best[name] = config
        assert amsda_keras.load_run(tables[name]["run"][0]).info["untouched_splits"] == ["test"]
    columns = ["trial", "training.learning_rate", "model_args.dropout", "objective"]
    pd.testing.assert_frame_equal(tables["original"][columns], tables["shuffled"][columns])
    assert best["original"] == best["shuffled"]


def test_a_killed_search_resumes(space, tmp_path):
    command = [sys.executable, "-m", "amsda_keras.tune", "--space", str(space),
               "--model", "baseline", "--epochs", "3", "--tuner", "random", "--trials", "3",
               "--set", "encoders.sequence_length=16", "--output", str(tmp_path),
               "--no-progress"]
    kill_when(command, lambda: bool(list(tmp_path.glob("trials/*/run.json"))), "finished trial",
              poll_seconds=0.05)
    assert not (tmp_path / "trials.csv").exists()
    (first,) = tmp_path.glob("trials/*/run.json")
    finished_at = first.stat().st_mtime

    subprocess.run(command, check=True, capture_output=True)
    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == 3 and table["trial"].nunique() == 3
    assert first.stat().st_mtime == finished_at  # read again, not retrained


def test_ties_on_the_objective_go_to_the_better_selection_f1_and_small_values_keep_digits():
    from amsda_keras.training.search import rank_trials, significant

    table = pd.DataFrame({"trial": ["03", "13", "17", "07"],
                          "training.learning_rate": [5.7e-5, 2.1e-4, 1.27e-4, 3e-4],
                          "objective": [0.7238, 0.7238, 0.7238, 0.7210],
                          "selection weighted_f1": [0.7135, 0.7094, 0.7188, 0.7300],
                          "selection macro_f1": [0.59, 0.60, 0.63, 0.70]})
    assert list(rank_trials(table)["trial"]) == ["17", "03", "13", "07"]
    assert list(significant(table)["training.learning_rate"]) == [5.7e-5, 2.1e-4, 1.27e-4, 3e-4]
    assert significant(pd.DataFrame({"x": [0.123456789]}))["x"][0] == 0.1235


def test_a_bad_space_or_key_fails_before_any_trial(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training.learning_rate: {float: [0.1]}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: `training.learning_rate` must be"):
        amsda_keras.tune(bad, output=tmp_path / "out", **SHARED)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("training.lerning_rate: [0.1, 0.01]\n")
    with pytest.raises(ConfigError, match="Unknown setting `training.lerning_rate`"):
        amsda_keras.tune(unknown, output=tmp_path / "out", **SHARED)
    assert not (tmp_path / "out").exists()


def test_a_distributed_search_runs_its_trials_on_the_workers(space, tmp_path):
    with socket.socket() as probe:  # a free port for the chief's oracle
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "amsda_keras.tune", "--space", str(space),
               "--model", "baseline", "--epochs", "1", "--tuner", "random", "--trials", "4",
               "--set", "encoders.sequence_length=16", "--output", str(tmp_path),
               "--no-progress"]
    environment = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1",
                   "KERASTUNER_ORACLE_PORT": str(port)}
    processes = {tuner_id: subprocess.Popen(
        command, env={**environment, "KERASTUNER_TUNER_ID": tuner_id},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for tuner_id in ("chief", "tuner0", "tuner1")}
    outputs = {tuner_id: process.communicate(timeout=600)[0]
               for tuner_id, process in processes.items()}
    for tuner_id, process in processes.items():
        assert process.returncode == 0, outputs[tuner_id][-3000:]
    table = pd.read_csv(tmp_path / "trials.csv")
    assert len(table) == 4
    trained = {tuner_id: output.count("Run folder: ") for tuner_id, output in outputs.items()}
    assert trained["chief"] == 0 and trained["tuner0"] + trained["tuner1"] == 4
    # Both workers asked the chief for trials until none was left (which one got more
    # depends on how fast each started).
    assert all("No trial left for this worker" in outputs[worker]
               for worker in ("tuner0", "tuner1"))
