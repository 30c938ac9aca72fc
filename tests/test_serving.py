"""Serving a trained run: SavedModels on raw inputs, `model.keras` reloaded on every backend,
and the predict CLI."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pandas as pd
import pytest

from amsda_keras import export, predict, train
from amsda_keras.inference import load_trained_run, logits_of
from amsda_keras.training import inputs
from tests.helpers import SMALL_MAHFNET

MODELS = {
    "amsda": ["--model", "amsda"],  # fine-tuned encoders: model.keras holds them
    "mahfnet": SMALL_MAHFNET,  # frozen encoders: model.keras is the head on features
}
SAMPLES = 6
needs_tensorflow = pytest.mark.skipif(keras.config.backend() != "tensorflow",
                                      reason="writing SavedModels needs the tensorflow backend")


@pytest.fixture(scope="module", params=sorted(MODELS))
def trained_run(request, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / request.param
    train.main([*MODELS[request.param], "--output", str(run_dir), "--epochs", "1",
                "--no-progress", "--set", "encoders.sequence_length=16"])
    return load_trained_run(run_dir)


def dev_rows(run):
    table = inputs.load_table(run.config["data"], run.directory / "check", progress=False)
    return table.frame.head(SAMPLES).assign(row=np.arange(SAMPLES))


def keras_probabilities(run, rows):
    """The class probabilities of the Keras model through the training input pipeline."""
    rows = rows.assign(row=np.arange(len(rows)))
    batches = inputs.batches_for(run.end_to_end_model, run.encoders, rows,
                                 run.config["features"], progress=False)
    logits = logits_of(run.end_to_end_model.predict(
        batches(rows, batch_size=len(rows), with_labels=False), verbose=0))
    return keras.ops.convert_to_numpy(keras.ops.softmax(logits))


@needs_tensorflow
def test_saved_model_on_raw_inputs_matches_the_keras_model(trained_run, tmp_path):
    rows = dev_rows(trained_run)
    expected = keras_probabilities(trained_run, rows)

    saved = tmp_path / "saved_model"
    export.main(["--run", str(trained_run.directory), "--output", str(saved)])
    # A fresh process with TensorFlow and its text ops only: nothing from this package.
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf, tensorflow_text
        texts, paths = json.loads(sys.argv[2]), json.loads(sys.argv[3])
        served = tf.saved_model.load(sys.argv[1])
        out = served.serve(texts=tf.constant(texts),
                           images=tf.constant([open(p, "rb").read() for p in paths]))
        assert not any(name.startswith("amsda_keras") for name in sys.modules)
        print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                          "label": [label.decode() for label in out["label"].numpy()]}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script, str(saved), json.dumps(rows["text"].tolist()),
         json.dumps(rows["image"].tolist())],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-4)
    assert served["label"] == [trained_run.class_names[i] for i in expected.argmax(-1)]
    info = json.loads((saved / "export_info.json").read_text())
    assert info["class_names"] == trained_run.class_names


def test_model_file_reloads_on_every_backend_with_identical_outputs(trained_run, tmp_path):
    rows = dev_rows(trained_run)
    batches = inputs.batches_for(trained_run.model, trained_run.encoders, rows,
                                 trained_run.config["features"], progress=False)
    features = next(iter(batches(rows, batch_size=SAMPLES, with_labels=False)))
    features = {name: np.asarray(value) for name, value in features.items()}
    np.savez(tmp_path / "inputs.npz", **features)
    expected = keras.ops.convert_to_numpy(logits_of(trained_run.model.predict(features,
                                                                                verbose=0)))
    script = textwrap.dedent("""
        import sys
        import keras, numpy as np
        import amsda_keras.models  # registers the custom layers
        model = keras.saving.load_model(sys.argv[1], compile=False)
        with np.load(sys.argv[2]) as saved:
            outputs = model.predict(dict(saved), verbose=0)
        outputs = outputs["logits"] if isinstance(outputs, dict) else outputs
        np.save(sys.argv[3], keras.ops.convert_to_numpy(outputs))
    """)
    reloaded = keras.saving.load_model(trained_run.directory / "model.keras", compile=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(logits_of(reloaded.predict(features, verbose=0))), expected,
        atol=1e-4, err_msg=keras.backend.backend())
    for backend in sorted({"tensorflow", "jax", "torch"} - {keras.backend.backend()}):
        pytest.importorskip(backend)
        result = subprocess.run(
            [sys.executable, "-c", script, str(trained_run.directory / "model.keras"),
             str(tmp_path / "inputs.npz"), str(tmp_path / f"{backend}.npy")],
            env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, text=True,
            timeout=300)
        assert result.returncode == 0, f"{backend}: {result.stderr[-3000:]}"
        np.testing.assert_allclose(np.load(tmp_path / f"{backend}.npy"), expected, atol=1e-4,
                                   err_msg=backend)


@needs_tensorflow
def test_export_of_a_folder_that_is_not_a_run_fails_clearly(tmp_path):
    with pytest.raises(SystemExit, match="not a finished run folder: config.yaml is missing"):
        export.main(["--run", str(tmp_path)])


def test_predict_labels_a_manifest_and_gives_bad_rows_a_reason(trained_run, tmp_path):
    rows = dev_rows(trained_run)
    records = [{"id": row.id, "text": row.text, "image": row.image} for row in rows.itertuples()]
    records[0]["label"] = trained_run.class_names[1]
    records[1]["image"] = str(tmp_path / "missing.jpg")
    records[2]["text"] = " "
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    records.append({"id": "corrupt", "text": "hi", "image": str(tmp_path / "corrupt.jpg")})
    manifest = tmp_path / "posts.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records) + "{broken\n")
    output = tmp_path / "predictions.csv"
    predict.main(["--run", str(trained_run.directory), "--data", str(manifest), "--output",
                  str(output), "--batch-size", "2", "--no-progress"])

    table = pd.read_csv(output, dtype={"id": str}, keep_default_na=False)
    assert table["id"].tolist() == [r["id"] for r in records] + ["8"]
    assert table["reason"].tolist()[1:3] == ["image file not found", "empty text"]
    assert table["reason"].iloc[-2].startswith("not an image file")
    assert table["reason"].iloc[-1].startswith("malformed JSON")
    assert table["image"].iloc[-1] == f"{manifest}:8"
    assert table["true_label"].tolist()[:2] == [trained_run.class_names[1], ""]
    usable = table[table["reason"] == ""]
    assert usable["id"].tolist() == [rows["id"].iloc[i] for i in (0, 3, 4, 5)]
    probability_columns = [f"probability_{name}" for name in trained_run.class_names]
    expected = keras_probabilities(trained_run, rows.iloc[[0, 3, 4, 5]])
    np.testing.assert_allclose(usable[probability_columns].to_numpy(float), expected, atol=1e-5)
    assert usable["label"].tolist() == [trained_run.class_names[i] for i in expected.argmax(-1)]
    weights = [column for column in table if column.startswith("fusion_weight_")]
    assert len(weights) == (3 if trained_run.config["model"] == "amsda" else 0)
    if weights:
        np.testing.assert_allclose(usable[weights].astype(float).sum(axis=1), 1.0, atol=1e-5)


def test_predict_one_post_prints_its_label(trained_run, tmp_path, capsys):
    rows = dev_rows(trained_run).iloc[[0]]
    predict.main(["--run", str(trained_run.directory), "--text", rows["text"].iloc[0],
                  "--image", rows["image"].iloc[0], "--output", str(tmp_path / "one.csv")])
    printed = capsys.readouterr().out
    expected = keras_probabilities(trained_run, rows)[0]
    assert f"label: {trained_run.class_names[expected.argmax()]}" in printed
    assert f"probability_{trained_run.class_names[0]}: {expected[0]:.6f}" in printed
    with pytest.raises(SystemExit, match="Image file not found"):
        predict.main(["--run", str(trained_run.directory), "--text", "hi", "--image",
                      str(tmp_path / "missing.jpg")])


@pytest.mark.backends
def test_a_run_trained_on_this_backend_exports_through_tensorflow(tmp_path):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (registers the tokenizer ops)

    run_dir = tmp_path / "run"
    train.main(["--model", "baseline", "--output", str(run_dir), "--epochs", "2",
                "--no-progress", "--set", "encoders.sequence_length=16"])
    run = load_trained_run(run_dir)
    rows = dev_rows(run)
    expected = keras_probabilities(run, rows)
    export.main(["--run", str(run_dir)])  # in a tensorflow subprocess on jax and torch
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))  # kept: `serve` uses its variables
    served = loaded.serve(texts=tf.constant(rows["text"].tolist()),
                          images=tf.stack([tf.io.read_file(path) for path in rows["image"]]))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-4)
