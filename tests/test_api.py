"""The Python API (issue 25): `amsda_keras.train(...)` and friends return runs and DataFrames, raise
the commands' errors as exceptions, and importing the package stays light."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import amsda_keras
from amsda_keras.training.config import ConfigError

IMPORT_SECONDS = 1.0
TINY = {"set": {"encoders.sequence_length": 16}, "progress": False}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return amsda_keras.train(model="baseline", epochs=2,
                             output=str(tmp_path_factory.mktemp("api") / "run"), **TINY)


@pytest.fixture(scope="module")
def demo_group(tmp_path_factory):
    return amsda_keras.train(model="probe", seeds=[1, 2],
                             output=str(tmp_path_factory.mktemp("api") / "group"), **TINY)


def test_import_is_quick_and_loads_no_framework():
    code = ("import sys, time\nstarted = time.perf_counter()\nimport amsda_keras\n"
            "amsda_keras.train, amsda_keras.predict, amsda_keras.compare\n"
            "print(time.perf_counter() - started)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'keras_hub', 'jax', 'torch')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    seconds, frameworks = result.stdout.splitlines()
    assert frameworks == "[]"
    assert float(seconds) < IMPORT_SECONDS


def test_the_functions_are_the_commands_modules_and_callable_either_way():
    import amsda_keras.train as train_module
    from amsda_keras import predict

    assert amsda_keras.train is train_module and callable(train_module) and callable(predict)
    assert set(amsda_keras.__all__) <= set(dir(amsda_keras))
    with pytest.raises(AttributeError, match="no attribute 'fit'"):
        amsda_keras.fit  # noqa: B018


def test_train_returns_a_run_with_its_tables_and_model(demo_run):
    assert isinstance(demo_run, amsda_keras.Run)
    metrics = demo_run.metrics
    assert list(metrics.index) == ["train", "dev", "test"]
    assert metrics.loc["test", "role"] == "untouched" and metrics.loc["dev", "role"] == "selection"
    assert metrics["accuracy"].dtype == float
    assert len(demo_run.history) == 2 and "val_accuracy" in demo_run.history
    assert len(demo_run.predictions) == metrics.loc[["dev", "test"], "num_samples"].sum()
    assert demo_run.model.count_params() > 0
    html = demo_run._repr_html_()
    assert "<table" in html and html.count("data:image/png;base64") == 2
    assert amsda_keras.load_run(demo_run.directory).metrics.equals(metrics)


def test_train_takes_a_config_dict_and_keyword_flags(tmp_path):
    run = amsda_keras.train({"model": "probe", "training": {"seed": 3}}, modality="text",
                            output=str(tmp_path / "probe"), **TINY)
    assert run.config["training"]["seed"] == 3
    assert run.config["model_args"]["modality"] == "text"


def test_seeds_give_a_group_with_its_mean_and_every_run(demo_group):
    assert isinstance(demo_group, amsda_keras.RunGroup) and len(demo_group.runs) == 2
    summary = demo_group.summary()
    test_accuracy = summary.query("split == 'test' and metric == 'accuracy'").iloc[0]
    per_run = [run.metrics.loc["test", "accuracy"] for run in demo_group.runs]
    assert test_accuracy["mean"] == pytest.approx(sum(per_run) / 2)
    assert test_accuracy["untouched"] and test_accuracy["runs"] == 2
    assert sorted(demo_group.metrics["seed"].unique()) == [1, 2]
    assert "<table" in demo_group._repr_html_()
    assert isinstance(amsda_keras.load_run(demo_group.directory), amsda_keras.RunGroup)


def test_bad_arguments_raise_the_commands_errors():
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['learning_rat'\]"):
        amsda_keras.train(model="baseline", learning_rat=1e-3)
    with pytest.raises(ConfigError, match="Unknown setting `training.nope`"):
        amsda_keras.train(model="baseline", set={"training.nope": 1})
    with pytest.raises(ConfigError, match="--folds must be at least 2"):
        amsda_keras.train(model="probe", folds=1)
    with pytest.raises(TypeError, match="train_encoders takes True or False"):
        amsda_keras.train(model="baseline", train_encoders="yes")
    with pytest.raises(FileNotFoundError, match="not a finished run folder"):
        amsda_keras.load_run("no/such/run")


def test_predict_takes_texts_with_image_paths_or_bytes(demo_run, tmp_path):
    rows = demo_run.predictions.head(2)
    manifest_file = Path(demo_run.config["data"]["path"])
    manifest = pd.read_json(manifest_file, lines=True, dtype={"id": str}).set_index("id")
    images = [str(manifest_file.parent / image) for image in manifest.loc[rows["id"], "image"]]
    texts = manifest.loc[rows["id"], "text"].tolist()
    with open(images[1], "rb") as file:
        image_bytes = file.read()
    output = tmp_path / "predicted.csv"
    frame = amsda_keras.predict(demo_run, texts + ["no image"],
                                [images[0], image_bytes, str(tmp_path / "missing.jpg")],
                                output=output)
    assert list(frame["reason"][:2]) == ["", ""] and "not found" in frame["reason"][2]
    assert frame["image"][1] == f"<{len(image_bytes):,} bytes>"
    probabilities = frame.filter(like="probability_").to_numpy()
    assert probabilities[:2].sum(axis=1) == pytest.approx([1, 1], abs=1e-4)
    # The same posts scored at the end of training.
    expected = rows.filter(like="probability_").to_numpy(dtype=float)
    assert probabilities[:2] == pytest.approx(expected, abs=1e-4)
    assert output.is_file()
    with pytest.raises(ValueError, match="either texts and images, or data"):
        amsda_keras.predict(demo_run, texts)
    with pytest.raises(ValueError, match="one image per text"):
        demo_run.predict(texts, images[:1])


def test_evaluate_and_compare_return_tables(demo_run, tmp_path):
    metrics = amsda_keras.evaluate(demo_run, demo_run.config["data"]["path"], split="test",
                                   output=tmp_path / "evaluation", progress=False)
    assert metrics.loc["test", "accuracy"] == pytest.approx(
        demo_run.metrics.loc["test", "accuracy"])
    first = demo_run
    second = amsda_keras.train(model="probe", output=str(tmp_path / "probe"), **TINY)  # same split
    comparison = amsda_keras.compare(first, second, output=tmp_path / "comparison.md")
    assert list(comparison["metric"]) == ["accuracy", "weighted_f1", "macro_f1"]
    accuracy = comparison.iloc[0]
    assert accuracy["difference"] == pytest.approx(
        second.metrics.loc["test", "accuracy"] - first.metrics.loc["test", "accuracy"])
    assert accuracy["ci_low"] <= accuracy["difference"] <= accuracy["ci_high"]
    assert (tmp_path / "comparison.md").is_file()
    with pytest.raises(ValueError, match="at least two run sets"):
        amsda_keras.compare(first)


def test_export_returns_the_saved_model_folder(demo_run, tmp_path):
    started = time.perf_counter()
    folder = amsda_keras.export(demo_run, tmp_path / "saved_model")
    assert folder == tmp_path / "saved_model" and (folder / "saved_model.pb").is_file()
    assert time.perf_counter() - started < 120


def test_an_ensemble_averages_its_runs_probabilities(demo_run, demo_group, tmp_path):
    manifest_file = Path(demo_run.config["data"]["path"])
    rows = pd.read_json(manifest_file, lines=True).head(3)
    texts, images = rows["text"].tolist(), [str(manifest_file.parent / image)
                                            for image in rows["image"]]
    members = [amsda_keras.predict(run, texts, images, progress=False)
               for run in demo_group.runs]
    ensemble = amsda_keras.predict(demo_group, texts, images, progress=False)
    columns = [name for name in ensemble if name.startswith("probability_")]
    np.testing.assert_allclose(ensemble[columns],
                               np.mean([member[columns] for member in members], axis=0),
                               atol=1e-5)
    assert ensemble.equals(amsda_keras.predict(demo_group.runs, texts, images, progress=False))
    # The seeds drew different splits: one run's test rows trained another.
    with pytest.raises(ValueError, match="drew different splits"):
        amsda_keras.evaluate(demo_group, manifest_file, split="test", progress=False)
    every_row = amsda_keras.evaluate(demo_group, manifest_file, output=tmp_path, progress=False)
    assert list(every_row.index) == ["all"] and every_row.loc["all", "num_samples"] == 480


def test_an_exported_ensemble_serves_the_mean_of_its_runs(demo_run, demo_group, tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (registers the tokenizer ops)

    manifest_file = Path(demo_run.config["data"]["path"])
    rows = pd.read_json(manifest_file, lines=True).head(3)
    texts, images = rows["text"].tolist(), [str(manifest_file.parent / image)
                                            for image in rows["image"]]
    folder = amsda_keras.export(demo_group, tmp_path / "ensemble")
    loaded = tf.saved_model.load(str(folder))  # kept: `serve` uses its variables
    served = loaded.serve(texts=tf.constant(texts),
                          images=tf.stack([tf.io.read_file(path) for path in images]))
    expected = amsda_keras.predict(demo_group, texts, images, progress=False)
    np.testing.assert_allclose(served["probabilities"].numpy(),
                               expected.filter(like="probability_").to_numpy(), atol=1e-4)
    info = json.loads((folder / "export_info.json").read_text())
    assert len(info["runs"]) == 2
