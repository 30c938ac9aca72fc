"""End-to-end: the train and evaluate CLIs on the demo data and on a manifest with broken rows."""

import json
import subprocess
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from amsda_keras import evaluate, train
from amsda_keras.models.baseline import build_baseline
from tests.helpers import reproducible_history

RUN_FILES = [
    "config.yaml", "splits.csv", "skipped_samples.csv", "history.csv", "training_curves.png",
    "model.keras", "metrics.json", "classification_report.txt", "confusion_matrix.png", "run.json",
]
FAST = ["--epochs", "3", "--no-progress", "--set", "encoders.sequence_length=16"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "demo"
    train.main(["--model", "baseline", "--output", str(run_dir), "--epochs", "8", "--no-progress"])
    return run_dir


def test_demo_run_folder_is_complete_and_beats_chance(demo_run):
    for name in RUN_FILES:
        assert (demo_run / name).is_file(), name
    metrics = json.loads((demo_run / "metrics.json").read_text())
    assert set(metrics) == {"train", "dev", "test"}
    assert metrics["dev"]["accuracy"] > 0.6  # 3 balanced classes: chance is 1/3
    splits = pd.read_csv(demo_run / "splits.csv")
    assert splits["split"].value_counts(normalize=True).round(1).to_dict() == {
        "train": 0.8, "dev": 0.1, "test": 0.1}
    history = pd.read_csv(demo_run / "history.csv")
    assert len(history) == 8 and {"loss", "val_accuracy"} <= set(history.columns)
    # Each epoch's wall time and the process's peak memory, which only grows.
    assert (history["epoch_seconds"] > 0).all() and history["peak_memory_mib"].min() > 100
    assert history["peak_memory_mib"].is_monotonic_increasing
    # The metrics are the best epoch's: model.keras's weights were loaded back.
    assert metrics["dev"]["accuracy"] == pytest.approx(history["val_accuracy"].max(), abs=1e-6)
    assert (demo_run / "encoders" / "text").is_dir()


def test_run_says_which_commit_trained_it(demo_run):
    commit = json.loads((demo_run / "run.json").read_text())["commit"]
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        assert commit is None
        return
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert commit in (head, f"{head}-dirty")


def test_evaluate_scores_a_manifest_without_splits(demo_run, tmp_path):
    manifest = yaml.safe_load((demo_run / "config.yaml").read_text())["data"]["path"]
    assert manifest.endswith("demo.jsonl")
    out = tmp_path / "eval"
    evaluate.main(["--run", str(demo_run), "--data", manifest, "--output", str(out),
                   "--no-progress"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["all"]
    assert metrics["all"]["num_samples"] == len(pd.read_csv(demo_run / "splits.csv"))
    assert metrics["all"]["accuracy"] > 0.6


def test_evaluate_takes_a_split_from_the_run_when_the_data_has_none(demo_run, tmp_path):
    manifest = yaml.safe_load((demo_run / "config.yaml").read_text())["data"]["path"]
    evaluate.main(["--run", str(demo_run), "--data", manifest, "--split", "dev",
                   "--output", str(tmp_path / "eval"), "--no-progress"])
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    trained = json.loads((demo_run / "metrics.json").read_text())["dev"]
    assert trained.pop("role") == "selection"
    assert metrics["dev"] == trained


def test_splits_file_is_reused(demo_run, tmp_path):
    rerun = tmp_path / "rerun"
    train.main(["--model", "baseline", "--output", str(rerun), "--splits",
                str(demo_run / "splits.csv"), *FAST])
    assert (rerun / "splits.csv").read_text() == (demo_run / "splits.csv").read_text()


def _broken_manifest(directory):
    """20 good rows and 5 broken ones: missing image, truncated JPEG, empty text,
    unknown label, duplicate id."""
    images = directory / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for index in range(20):
        label = index % 2
        pixels = np.full((24, 24, 3), 200 * label, np.uint8) + rng.integers(0, 40, (24, 24, 3), np.uint8)
        Image.fromarray(pixels).save(images / f"{index}.jpg")
        rows.append({"id": str(index), "text": ["good great", "bad awful"][label],
                     "image": f"images/{index}.jpg", "label": ["positive", "negative"][label],
                     "split": "dev" if index % 5 == 0 else "train"})
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(images / "full.jpg", quality=95)
    (images / "truncated.jpg").write_bytes((images / "full.jpg").read_bytes()[:600])
    rows += [
        {"id": "missing", "text": "good", "image": "images/nope.jpg", "label": "positive", "split": "train"},
        {"id": "truncated", "text": "good", "image": "images/truncated.jpg", "label": "positive", "split": "train"},
        {"id": "empty", "text": "  ", "image": "images/1.jpg", "label": "negative", "split": "train"},
        {"id": "unknown", "text": "good", "image": "images/2.jpg", "label": "ecstatic", "split": "train"},
        {"id": "3", "text": "bad", "image": "images/3.jpg", "label": "negative", "split": "train"},
    ]
    path = directory / "broken.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_broken_rows_are_skipped_and_listed(tmp_path):
    manifest = _broken_manifest(tmp_path)
    run_dir = tmp_path / "run"
    train.main(["--model", "baseline", "--data", str(manifest), "--output", str(run_dir),
                "--set", "data.class_names=[positive, negative]", *FAST])
    skipped = pd.read_csv(run_dir / "skipped_samples.csv", dtype=str)
    assert sorted(skipped["id"]) == ["3", "empty", "missing", "truncated", "unknown"]
    where = skipped.set_index("id")
    assert where.loc["missing", "file"].endswith("nope.jpg")
    assert where.loc["empty", "file"] == f"{manifest}:23"
    assert where.loc["unknown", "file"] == f"{manifest}:24"
    assert where.loc["3", "file"] == f"{manifest}:25"
    assert where.loc["3", "reason"] == f"duplicate id (first seen at {manifest}:4)"
    assert len(pd.read_csv(run_dir / "splits.csv")) == 20


def test_broken_rows_stop_the_run_under_error(tmp_path, capsys):
    manifest = _broken_manifest(tmp_path)
    with pytest.raises(SystemExit) as stop:
        train.main(["--model", "baseline", "--data", str(manifest), "--output",
                    str(tmp_path / "run"), "--on-bad-sample", "error",
                    "--set", "data.class_names=[positive, negative]", *FAST])
    message = str(stop.value)
    for sample_id in ("missing", "truncated", "empty", "unknown"):
        assert sample_id in message
    assert "--on-bad-sample skip" in message
    assert not (tmp_path / "run" / "model.keras").exists()


def test_config_errors_exit_with_the_key(tmp_path):
    with pytest.raises(SystemExit, match="training.epoch"):
        train.main(["--model", "baseline", "--set", "training.epoch=3"])


@pytest.mark.backends
@pytest.mark.parametrize("train_encoders", [False, True], ids=["cached-features", "end-to-end"])
def test_demo_trains(train_encoders, tmp_path):
    """Cached features feed `fit` through `feature_dataset`, end-to-end runs through `raw_dataset`."""
    run_dir = tmp_path / "run"
    args = ["--model", "baseline", "--output", str(run_dir), "--epochs", "6", "--no-progress"]
    if train_encoders:
        # `auto`: XLA on jax only; eager jax trains the encoders 2.6x slower.
        args += ["--train-encoders", "--set", "encoders.sequence_length=16"]
    else:
        args += ["--jit-compile", "false"]
    train.main(args)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["backend"] == keras.config.backend()
    assert info["jit_compile"] is (train_encoders and keras.config.backend() == "jax")
    head = build_baseline(num_classes=3, text_dim=16, image_dim=16).count_params()
    if train_encoders:
        assert info["trainable_parameters"] > head  # the tiny encoders are trained too
    else:
        assert info["trainable_parameters"] == head
    assert json.loads((run_dir / "metrics.json").read_text())["dev"]["accuracy"] > 0.5


def test_a_diverging_run_stops_with_the_epoch_and_batch(tmp_path):
    run_dir = tmp_path / "nan"
    with pytest.raises(SystemExit, match=r"loss became nan at epoch 1, batch 2.*no model was saved"):
        train.main(["--model", "baseline", "--output", str(run_dir), "--learning-rate", "1e30",
                    *FAST])
    assert not (run_dir / "model.keras").exists()  # the broken epoch is never checkpointed


def test_same_seed_gives_the_same_run(demo_run, tmp_path):
    rerun = tmp_path / "rerun"
    train.main(["--model", "baseline", "--output", str(rerun), "--epochs", "8", "--no-progress"])
    pd.testing.assert_frame_equal(reproducible_history(rerun), reproducible_history(demo_run))
    assert json.loads((rerun / "metrics.json").read_text()) == json.loads(
        (demo_run / "metrics.json").read_text())


def test_frozen_encoders_in_every_step_train_like_the_feature_cache(demo_run, tmp_path):
    """`features.cache: false` is the MAHFNet authors' path: the same head and seed reach the
    same dev metrics as on the (float16) cache, within rounding."""
    in_step = tmp_path / "in_step"
    train.main(["--model", "baseline", "--output", str(in_step), "--epochs", "8", "--no-progress",
                "--set", "features.cache=false"])
    cached_info, in_step_info = (json.loads((run / "run.json").read_text())
                                 for run in (demo_run, in_step))
    assert in_step_info["trainable_parameters"] == cached_info["trainable_parameters"]
    cached, in_step = (json.loads((run / "metrics.json").read_text())["dev"]
                       for run in (demo_run, in_step))
    assert abs(in_step["accuracy"] - cached["accuracy"]) <= 0.02
    assert abs(in_step["macro_f1"] - cached["macro_f1"]) <= 0.02


def test_a_failed_run_can_be_rerun_into_its_folder_but_a_finished_one_cannot(demo_run, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit, match="Encoder folder not found"):
        train.main(["--model", "baseline", "--output", str(run_dir), "--image-encoder",
                    str(tmp_path / "missing"), *FAST])
    train.main(["--model", "baseline", "--output", str(run_dir), *FAST])
    assert (run_dir / "metrics.json").is_file()
    with pytest.raises(SystemExit, match="already holds a finished run"):
        train.main(["--model", "baseline", "--output", str(demo_run), *FAST])


def test_seeds_write_a_summary_and_step_lr_decays(tmp_path, capsys):
    base = tmp_path / "seeds"
    args = ["--model", "baseline", "--output", str(base), "--seeds", "1,2", *FAST,
            "--set", "training.lr_step_epochs=2", "--set", "training.lr_step_gamma=0.5"]
    train.main(args)
    summary = json.loads((base / "summary.json").read_text())
    assert summary["seeds"] == [1, 2]
    per_seed = [json.loads((base / f"seed-{seed}" / "metrics.json").read_text())["dev"]["accuracy"]
                for seed in (1, 2)]
    dev_accuracy = summary["metrics"]["dev"]["accuracy"]
    assert dev_accuracy["values"] == per_seed
    np.testing.assert_allclose([dev_accuracy["mean"], dev_accuracy["std"]],
                               [np.mean(per_seed), np.std(per_seed, ddof=1)])
    assert "| dev (selects) | accuracy |" in (base / "summary.md").read_text()
    history = pd.read_csv(base / "seed-1" / "history.csv")
    np.testing.assert_allclose(history["learning_rate"], 1e-3 * 0.5 ** (history["epoch"] // 2))

    # A seed saved before a setting existed (here checkpoint_every) is still the same run.
    config_file = base / "seed-1" / "config.yaml"
    saved = yaml.safe_load(config_file.read_text())
    del saved["training"]["checkpoint_every"]
    config_file.write_text(yaml.safe_dump(saved))
    capsys.readouterr()
    train.main(args)  # Finished seeds are reused, not retrained.
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    with pytest.raises(SystemExit, match="holds a run with other settings"):
        train.main([*args, "--learning-rate", "0.01"])


@pytest.mark.parametrize("flag", [["--ablate", "attention"], ["--seeds", "1,x"]])
def test_bad_list_flags_are_refused_by_the_parser(flag, capsys):
    with pytest.raises(SystemExit):
        train.main(["--model", "mahfnet", *flag])
    assert "comma-separated list" in capsys.readouterr().err


def test_built_training_state_lets_fit_trace_the_train_step_once():
    if keras.config.backend() != "tensorflow":
        pytest.skip("tf.function tracing is tensorflow's")
    import tensorflow as tf

    from amsda_keras.training.config import DEFAULTS
    from amsda_keras.training.run import build_training_state, compile_for_training

    model = build_baseline(num_classes=3, text_dim=4, image_dim=4, hidden_dim=8)
    compile_for_training(model, DEFAULTS["training"])
    features = {name: np.ones((8, 4), "float32") for name in model.input}
    data = tf.data.Dataset.from_tensor_slices((features, np.arange(8) % 3)).batch(4)
    build_training_state(model, data)
    assert model.optimizer.built
    traces = []
    train_step = model.train_step
    # Inside tf.function, Python code runs only while the step is traced.
    model.train_step = lambda batch: traces.append(1) or train_step(batch)
    model.fit(data, epochs=2, shuffle=False, verbose=0)
    assert len(traces) == 1
