"""The evaluation protocol: the split that picks the epoch never sees the reported one, K-fold
runs, and the logistic-regression probe."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from amsda_keras import train
from amsda_keras.data.demo import make_demo_dataset
from amsda_keras.data.splits import fold_split
from amsda_keras.models.probe import build_probe
from amsda_keras.training.config import ConfigError, resolve_config
from amsda_keras.training.probe import _set_logits, best_candidate
from amsda_keras.training.protocol import apply_protocol, report_split
from tests.data.test_splits import frame_with, unbalanced_labels
from tests.helpers import reproducible_history

FAST = ["--epochs", "3", "--no-progress", "--set", "encoders.sequence_length=16"]


def _splits(frame):
    return frame["split"].value_counts().to_dict()


def test_train_and_dev_only_carves_validation_from_train_and_leaves_dev_untouched():
    labels = unbalanced_labels()
    source = frame_with(labels, ["dev" if i % 5 == 0 else "train" for i in range(len(labels))])
    frame, protocol, notes = apply_protocol(source, "auto", 0.1, seed=1)
    assert protocol.selection == "validation" and protocol.untouched == ("dev",)
    assert protocol.report == "dev"
    assert _splits(frame) == {"train": 360, "dev": 100, "validation": 40}
    # Carved from train only, stratified (300/150/50 -> 240/120/40 train -> 24/12/4).
    assert (source.loc[frame["split"] == "validation", "split"] == "train").all()
    assert frame.loc[frame["split"] == "validation", "label"].value_counts().sort_index(
    ).tolist() == [24, 12, 4]
    assert "picks the epoch" in notes[-1] and "untouched until the end: dev" in notes[-1]


@pytest.mark.parametrize("select_on, selection, untouched", [
    ("auto", "dev", ("test",)),  # the papers' protocol: select on dev, report test
    ("validation", "validation", ("test", "dev")),
    ("dev", "dev", ("test",)),
    ("last", None, ("test", "dev")),
])
def test_protocol_with_a_test_split(select_on, selection, untouched):
    labels = unbalanced_labels()
    splits = np.array(["train"] * len(labels), dtype=object)
    splits[::10], splits[1::10] = "dev", "test"
    frame, protocol, _ = apply_protocol(frame_with(labels, splits), select_on, 0.1, seed=0)
    assert (protocol.selection, protocol.untouched) == (selection, untouched)
    assert protocol.report == "test"
    assert ("validation" in set(frame["split"])) == (selection == "validation")
    assert protocol.role("train") == "train" and protocol.role("test") == "untouched"


def test_a_validation_split_from_a_reused_splits_file_is_kept():
    labels = unbalanced_labels()
    splits = ["validation" if i % 10 == 0 else "dev" if i % 10 == 1 else "train"
              for i in range(len(labels))]
    # As `apply_splits_file` gives them: a dataset's own `validation` would read as dev.
    source = frame_with(labels).assign(split=splits)
    frame, protocol, _ = apply_protocol(source, "auto", 0.3, seed=0)
    assert protocol.selection == "validation" and frame["split"].tolist() == splits


def test_select_on_a_missing_split_names_it():
    labels = unbalanced_labels()
    with pytest.raises(ValueError, match="no dev split"):
        apply_protocol(frame_with(labels, ["train", "test"] * 250), "dev", 0.1, seed=0)


def test_report_split_prefers_test_then_dev():
    assert report_split(["dev", "test"]) == "test"
    assert report_split(["validation", "dev"]) == "dev"
    assert report_split([]) is None


def test_folds_partition_every_row_once_stratified_and_seeded():
    source = frame_with(unbalanced_labels(), ["dev", "train"] * 250)
    held_out = [fold_split(source, 5, fold, seed=2)[0]["split"] == "test" for fold in range(1, 6)]
    assert (np.sum(held_out, axis=0) == 1).all()
    for mask in held_out:
        assert source.loc[mask, "label"].value_counts().sort_index().tolist() == [60, 30, 10]
    again = fold_split(source, 5, 1, seed=2)[0]
    other = fold_split(source, 5, 1, seed=3)[0]
    assert again["split"].tolist() == fold_split(source, 5, 1, seed=2)[0]["split"].tolist()
    assert again["split"].tolist() != other["split"].tolist()


@pytest.mark.parametrize("overrides, message", [
    ({"data.folds": 3}, "go together"),
    ({"data.folds": 3, "data.fold": 4}, "go together"),
    ({"data.validation_fraction": 1.0}, "between 0 and 1"),
    ({"training.select_on": "last", "training.early_stopping_patience": 2}, "must be null"),
    ({"training.select_on": "test"}, "must be one of"),
    ({"training.probe_c_values": [1.0, -1]}, "positive numbers"),
])
def test_bad_protocol_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(overrides=overrides)


@pytest.fixture(scope="module")
def train_dev_manifest(tmp_path_factory):
    """The demo data with a train/dev split of its own, as MVSA-Single has, and a copy whose dev
    labels are shuffled."""
    folder = tmp_path_factory.mktemp("protocol")
    demo = make_demo_dataset(folder / "demo")
    rows = [json.loads(line) for line in demo.read_text().splitlines()]
    for index, row in enumerate(rows):
        row["split"] = "dev" if index % 5 == 0 else "train"
        row["image"] = str(demo.parent / row["image"])
    shuffled = [dict(row) for row in rows]
    dev = [row for row in shuffled if row["split"] == "dev"]
    order = np.random.default_rng(0).permutation(len(dev))
    labels = [(dev[index]["label"], dev[index]["label_name"]) for index in order]
    for row, (label, name) in zip(dev, labels):
        row["label"], row["label_name"] = label, name
    paths = []
    for name, content in (("manifest.jsonl", rows), ("shuffled.jsonl", shuffled)):
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in content))
        paths.append(folder / name)
    return paths


def test_shuffling_the_untouched_labels_changes_neither_history_nor_weights(
        train_dev_manifest, tmp_path):
    flags = ["--model", "baseline", *FAST, "--epochs", "4",
             "--set", "training.early_stopping_patience=2",
             "--set", "training.reduce_lr_patience=1"]
    runs = []
    for manifest, name in zip(train_dev_manifest, ("original", "shuffled")):
        train.main([*flags, "--data", str(manifest), "--output", str(tmp_path / name)])
        runs.append(tmp_path / name)
    original, shuffled = runs
    info = json.loads((original / "run.json").read_text())
    assert info["selected_on"] == "validation" and info["untouched_splits"] == ["dev"]
    pd.testing.assert_frame_equal(reproducible_history(original), reproducible_history(shuffled))
    weights = [keras.saving.load_model(run / "model.keras", compile=False).get_weights()
               for run in runs]
    for first, second in zip(*weights):
        np.testing.assert_array_equal(first, second)
    metrics = [json.loads((run / "metrics.json").read_text()) for run in runs]
    assert metrics[0]["validation"] == metrics[1]["validation"]
    assert metrics[0]["dev"]["accuracy"] != metrics[1]["dev"]["accuracy"]
    assert metrics[0]["dev"]["role"] == "untouched"
    assert metrics[0]["validation"]["role"] == "selection"


def test_select_on_last_keeps_the_last_epoch_without_a_selection_split(train_dev_manifest,
                                                                         tmp_path):
    run = tmp_path / "last"
    train.main(["--model", "baseline", *FAST, "--data", str(train_dev_manifest[0]),
                "--select-on", "last", "--output", str(run)])
    history = pd.read_csv(run / "history.csv")
    # Keras' CSVLogger adds empty val_ columns; nothing fills them.
    assert history.filter(like="val_").isna().all().all()
    info = json.loads((run / "run.json").read_text())
    assert info["selected_on"] is None and info["best_epoch"] == info["epochs_run"] == 3
    assert set(pd.read_csv(run / "splits.csv")["split"]) == {"train", "dev"}


def test_three_fold_run_reports_every_sample_once(tmp_path):
    base = tmp_path / "folds"
    train.main(["--model", "baseline", *FAST, "--folds", "3", "--output", str(base)])
    runs = sorted(base.glob("fold-*/seed-0"))
    assert len(runs) == 3
    tested = pd.concat(pd.read_csv(run / "predictions.csv").query("split == 'test'")
                       for run in runs)
    all_ids = pd.read_csv(runs[0] / "splits.csv")["id"]
    assert sorted(tested["id"]) == sorted(all_ids)
    for run in runs:
        info = json.loads((run / "run.json").read_text())
        assert info["selected_on"] == "validation" and info["untouched_splits"] == ["test"]
    summary = json.loads((base / "summary.json").read_text())
    assert summary["folds"] == 3 and len(summary["runs"]) == 3
    accuracy = [json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
                for run in runs]
    assert summary["metrics"]["test"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracy))
    assert "3 folds × seeds 0" in (base / "summary.md").read_text()


def test_probe_picks_c_on_the_selection_split(tmp_path):
    run = tmp_path / "probe"
    train.main(["--model", "probe", "--no-progress", "--set", "encoders.sequence_length=16",
                "--output", str(run)])
    history = pd.read_csv(run / "history.csv")
    assert history["c"].tolist() == [0.0001, 0.001, 0.01, 0.1, 1.0, 10.0]
    info = json.loads((run / "run.json").read_text())
    best = history.loc[best_candidate(history)]
    assert best["val_accuracy"] == history["val_accuracy"].max()
    assert info["probe_c"] == best["c"] and "best_epoch" not in info
    metrics = json.loads((run / "metrics.json").read_text())
    # The Keras model gives the scikit-learn model's scores.
    assert metrics["dev"]["accuracy"] == pytest.approx(best["val_accuracy"])
    assert metrics["train"]["accuracy"] == pytest.approx(best["accuracy"])


@pytest.mark.parametrize("num_classes, present", [(3, [0, 1, 2]), (2, [0, 1]), (3, [0, 2])])
def test_probe_logits_reproduce_the_scikit_learn_probabilities(num_classes, present):
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (60, 5)) * [1, 10, 0.1, 1, 5]
    y = np.asarray(present)[rng.integers(0, len(present), 60)]
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(C=0.5).fit(scaler.transform(x), y)
    model = build_probe(num_classes=num_classes, text_dim=2, image_dim=3)
    _set_logits(model, classifier, scaler, num_classes)
    logits = model.predict({"text_pooled": x[:, :2], "image_pooled": x[:, 2:]}, verbose=0)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    np.testing.assert_allclose(probabilities[:, classifier.classes_],
                               classifier.predict_proba(scaler.transform(x)), atol=1e-5)
    missing = sorted(set(range(num_classes)) - set(present))
    assert (probabilities[:, missing] < 1e-6).all()


def test_probe_refuses_settings_it_cannot_honour(tmp_path):
    with pytest.raises(SystemExit, match="training.oversample"):
        train.main(["--model", "probe", "--no-progress", "--set", "training.oversample=true",
                    "--output", str(tmp_path / "run")])


def test_probe_ties_in_accuracy_go_to_the_lower_validation_loss():
    history = pd.DataFrame({"c": [0.0001, 0.001, 0.01], "val_accuracy": [0.73, 0.73, 0.70],
                            "val_loss": [0.72, 0.65, 0.60]})
    assert best_candidate(history) == 1
    assert best_candidate(history.assign(val_loss=0.7)) == 0  # a full tie: the smallest C
