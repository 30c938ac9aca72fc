"""Bad input that once hung, crashed or was misread: each test is named after the fault it
reproduces and checks the clear message, skipped row or per-row result that replaced it."""

import io
import json
import os
import shutil
import threading

import keras
import numpy as np
import pytest
import yaml
from PIL import Image

from amsda_keras import evaluate, export, predict, train
from amsda_keras.data.demo import CLASS_NAMES, make_demo_dataset
from amsda_keras.data.manifest import read_manifest
from amsda_keras.data.source_files import read_post_texts
from amsda_keras.data.table import DatasetTable
from amsda_keras.data.validation import check_samples
from amsda_keras import inference
from amsda_keras.inference import load_trained_run
from amsda_keras.training.config import ConfigError, resolve_config
from tests.helpers import make_table_frame

FAST = ["--epochs", "1", "--no-progress", "--set", "encoders.sequence_length=16"]
HANG_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo manifest (480 rows, int labels with `label_name`)."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def run_dir(demo, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "baseline"
    train.main(["--model", "baseline", "--data", str(demo), "--output", str(run_dir), *FAST])
    return run_dir


def demo_records(demo, count=30):
    with open(demo, encoding="utf-8") as file:
        return [json.loads(line) for line in file][:count]


def write_manifest(path, records, folder):
    """Writes `records` as JSON Lines with their images made absolute (they live in `folder`)."""
    lines = [json.dumps({**record, "image": str(folder / record["image"])}) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# 1. A FIFO as an image path.


def test_fifo_image_path_is_a_bad_sample_instead_of_a_hang(tmp_path):
    frame = make_table_frame(tmp_path, num_rows=3)
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    frame.loc[1, "image"] = str(fifo)
    found = {}
    thread = threading.Thread(daemon=True, target=lambda: found.update(
        bad=check_samples(DatasetTable(frame, ["a", "b", "c"]), progress=False)))
    thread.start()
    thread.join(HANG_TIMEOUT_S)
    if thread.is_alive():
        # A writer opening the FIFO gives the blocked reader its end of file, ending the thread.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"check_samples still reads the FIFO after {HANG_TIMEOUT_S} s")
    [bad] = found["bad"]
    assert (bad.id, bad.file, bad.reason) == ("s1", str(fifo), "not a regular file (a FIFO)")


def test_fifo_post_text_file_is_a_bad_sample_instead_of_a_hang(tmp_path):
    (tmp_path / "1.txt").write_text("a good post")
    os.mkfifo(tmp_path / "2.txt")
    found = {}
    thread = threading.Thread(daemon=True, target=lambda: found.update(
        read=read_post_texts(tmp_path, ["1", "2"])))
    thread.start()
    thread.join(HANG_TIMEOUT_S)
    if thread.is_alive():
        os.close(os.open(tmp_path / "2.txt", os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"read_post_texts still reads the FIFO after {HANG_TIMEOUT_S} s")
    texts, [bad], _ = found["read"]
    assert texts == {"1": "a good post"}
    assert bad.reason == "text path is not a regular file (a FIFO)"


# 2. Labels: out of range, and ints mixed with names.


def test_int_label_out_of_range_is_skipped_instead_of_adding_classes(demo, tmp_path):
    records = demo_records(demo)
    records[3] = {key: value for key, value in records[3].items() if key != "label_name"}
    records[3]["label"] = 7
    path = write_manifest(tmp_path / "m.jsonl", records, demo.parent)
    table = read_manifest(path)
    assert table.class_names == list(CLASS_NAMES)
    assert len(table.frame) == 29
    [bad] = table.rejected
    assert (bad.id, bad.file) == (records[3]["id"], f"{path}:4")
    assert bad.reason.startswith("label out of range: 7 (classes 0 to 2")
    # A class list from the config or a run: the same row, the same reason.
    [bad] = read_manifest(path, class_names=list(CLASS_NAMES)).rejected
    assert bad.reason.startswith("label out of range: 7 (classes 0 to 2")


def test_mixed_int_and_name_labels_keep_every_row_they_can(demo, tmp_path):
    records = demo_records(demo)
    named = [dict(record, label=record["label_name"].upper()) for record in records]
    # Mostly names, one stray int without a label_name (a CSV "2"): the names define the
    # classes; the int is skipped, not read as class "2" of classes "0".."2".
    stray_int = [{key: value for key, value in record.items() if key != "label_name"}
                 for record in named]
    stray_int[5]["label"] = 2
    path = write_manifest(tmp_path / "names.jsonl", stray_int, demo.parent)
    table = read_manifest(path)
    assert table.class_names == sorted(CLASS_NAMES)
    assert len(table.frame) == 29
    [bad] = table.rejected
    assert bad.file == f"{path}:6" and bad.reason.startswith("int label 2 among name labels")
    # Mostly ints with label_name, a few names: each name is one of the named classes, kept;
    # an unknown name is skipped.
    mixed = records[:10] + named[10:15] + [dict(records[15], label="joy")] + records[16:]
    path = write_manifest(tmp_path / "mixed.jsonl", mixed, demo.parent)
    table = read_manifest(path)
    assert table.class_names == list(CLASS_NAMES)
    assert table.frame["label"].tolist() == [r["label"] for r in records if r is not records[15]]
    [bad] = table.rejected
    assert bad.file == f"{path}:16" and bad.reason.startswith("unknown label 'joy'")


# 3. Class sets that do not match.


def test_evaluate_refuses_data_labelled_with_another_class_set(run_dir, demo, tmp_path):
    other = {0: "sad", 1: "happy", 2: "angry"}
    records = [dict(record, label_name=other[record["label"]]) for record in demo_records(demo)]
    path = write_manifest(tmp_path / "other.jsonl", records, demo.parent)
    with pytest.raises(SystemExit, match=r"\['sad', 'happy', 'angry'\].*"
                                         r"\['positive', 'neutral', 'negative'\]"):
        evaluate.main(["--run", str(run_dir), "--data", str(path), "--no-progress"])
    # The run's classes in another order are the same class set: scored by name.
    records = [dict(record, label=(record["label"] + 2) % 3) for record in demo_records(demo)]
    path = write_manifest(tmp_path / "reordered.jsonl", records, demo.parent)
    evaluate.main(["--run", str(run_dir), "--data", str(path), "--no-progress",
                   "--output", str(tmp_path / "reordered")])
    expected = write_manifest(tmp_path / "same.jsonl", demo_records(demo), demo.parent)
    evaluate.main(["--run", str(run_dir), "--data", str(expected), "--no-progress",
                   "--output", str(tmp_path / "same")])
    assert (json.loads((tmp_path / "reordered" / "metrics.json").read_text())
            == json.loads((tmp_path / "same" / "metrics.json").read_text()))


def test_load_run_refuses_a_model_whose_outputs_do_not_match_the_class_names(run_dir, demo,
                                                                            tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["data"]["class_names"] = ["positive", "negative"]
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    message = (r"gives 3 class scores.*2 class names \['positive', 'negative'\].*"
               r"config.yaml")
    with pytest.raises(ValueError, match=message):
        load_trained_run(copy)
    with pytest.raises(SystemExit, match=message):
        predict.main(["--run", str(copy), "--data", str(demo), "--output",
                      str(tmp_path / "p.csv"), "--no-progress"])


# 4. Tracebacks instead of messages.


def test_evaluate_of_a_manifest_without_rows_says_so(run_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(SystemExit, match="empty.jsonl has no rows to score"):
        evaluate.main(["--run", str(run_dir), "--data", str(empty), "--no-progress"])


def test_predict_output_that_is_a_folder_is_refused_before_any_work(run_dir, demo, tmp_path,
                                                                    monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("predict loaded the run before checking --output")

    monkeypatch.setattr(inference, "load_trained_run", no_work)
    with pytest.raises(SystemExit, match=f"--output {tmp_path} is a folder"):
        predict.main(["--run", str(run_dir), "--data", str(demo), "--output", str(tmp_path)])


@pytest.mark.parametrize("flags", [["--batch-size", "0"], ["--set", "features.batch_size=-2"]])
def test_batch_size_below_one_is_refused_before_any_work(demo, tmp_path, flags):
    output = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"batch_size` must be an int >= 1\. Received: -?\d"):
        train.main(["--model", "baseline", "--data", str(demo), "--output", str(output),
                    *FAST, *flags])
    assert not output.exists()


def test_seeds_out_of_range_are_refused_before_any_run(tmp_path):
    output = tmp_path / "seeds"
    with pytest.raises(SystemExit, match=r"--seeds must be from 0 to 4294967295\. "
                                         r"Received: \[-1\]"):
        train.main(["--model", "baseline", "--seeds", "1,-1", "--output", str(output)])
    assert not output.exists()


# 5. Config values out of range.


@pytest.mark.parametrize("key, value, allowed", [
    ("encoders.sequence_length", 0, "an int >= 1"),
    ("training.epochs", 0, "an int >= 1"),
    ("training.batch_size", -4, "an int >= 1"),
    ("features.batch_size", 0, "an int >= 1"),
    ("training.learning_rate", -1, "a number > 0"),
    ("training.learning_rate", float("nan"), "a number > 0"),
    ("training.focal_alpha", 0, "a number > 0"),
    ("training.focal_gamma", -0.5, "a number >= 0"),
    ("training.contrastive_weight", -0.1, "a number >= 0"),
    ("training.lr_step_gamma", 0, "a number > 0"),
    ("training.reduce_lr_factor", 1, "a number > 0 and < 1"),
    ("training.seed", -1, "an int >= 0 and <= 4294967295"),
    ("training.seed", 2**32, "an int >= 0 and <= 4294967295"),
    ("data.class_names", ["a"], "a list of 2 or more distinct names, or null"),
    ("data.class_names", ["a", "A"], "a list of 2 or more distinct names, or null"),
])
def test_config_value_out_of_range_is_named_with_its_range(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        resolve_config(overrides={key: value})
    assert str(error.value) == f"`{key}` must be {allowed}. Received: {value!r}"


def test_zero_epochs_is_refused_before_the_data_is_read(tmp_path, monkeypatch):
    from amsda_keras.training import inputs

    def no_data(*args, **kwargs):
        raise AssertionError("train read the data before checking the config")

    monkeypatch.setattr(inputs, "load_table", no_data)
    output = tmp_path / "run"
    with pytest.raises(SystemExit, match=r"`training.epochs` must be an int >= 1\. Received: 0"):
        train.main(["--model", "baseline", "--output", str(output), "--epochs", "0"])
    assert not output.exists()


# 6. Serving a SavedModel a batch with undecodable images.


def encoded(image_path, image_format, **options):
    buffer = io.BytesIO()
    image = Image.open(image_path).convert("RGB")
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


@pytest.mark.skipif(keras.config.backend() != "tensorflow",
                    reason="writing SavedModels needs the tensorflow backend")
def test_serve_gives_each_undecodable_image_a_row_error(run_dir, demo, tmp_path):
    import tensorflow as tf

    saved = tmp_path / "saved_model"
    export.main(["--run", str(run_dir), "--output", str(saved)])
    served = tf.saved_model.load(str(saved))
    records = demo_records(demo, 5)
    paths = [demo.parent / record["image"] for record in records]
    good = [paths[0].read_bytes(), encoded(paths[1], "PNG"), encoded(paths[2], "BMP"),
            encoded(paths[3], "GIF"), encoded(paths[4], "WEBP")]
    flipped = Image.open(paths[4]).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    bad = {
        os.urandom(64): "undecodable image: not a JPEG/PNG/GIF/BMP/WebP file",
        b"": "undecodable image: empty",
        # TensorFlow decodes no part of a truncated JPEG: a valid header is not enough.
        paths[0].read_bytes()[:300]: "undecodable image: truncated or corrupt JPEG data",
        b"GIF89a" + os.urandom(20): "undecodable image: truncated or corrupt GIF data",
        # Decoding an animated WebP would abort the whole process.
        encoded(paths[4], "WEBP", save_all=True, append_images=[flipped]):
            "unsupported image: animated WebP",
    }
    texts = [record["text"] for record in records]
    alone = served.serve(texts=tf.constant(texts), images=tf.constant(good))
    mixed = served.serve(texts=tf.constant([text for text in texts for _ in range(2)]),
                         images=tf.constant([image for pair in zip(good, bad) for image in pair]))
    errors = [error.decode() for error in mixed["error"].numpy()]
    assert errors[0::2] == [""] * len(good)
    assert errors[1::2] == list(bad.values())
    probabilities = mixed["probabilities"].numpy()
    np.testing.assert_allclose(probabilities[0::2], alone["probabilities"].numpy(), atol=1e-5)
    assert np.isnan(probabilities[1::2]).all()
    labels = [label.decode() for label in mixed["label"].numpy()]
    assert labels[0::2] == [label.decode() for label in alone["label"].numpy()]
    assert labels[1::2] == [""] * len(bad)
    assert alone["error"].numpy().tolist() == [b""] * len(good)
