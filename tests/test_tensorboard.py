"""TensorBoard logs (issue 28): what a run writes, read back from the event files themselves."""

import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from amsda_keras import train
from amsda_keras.training.tensorboard import TENSORBOARD_DIR, trim_event_files
from tests.helpers import logged_summaries

TINY = ["--no-progress", "--set", "encoders.sequence_length=16"]


def steps(values, tag):
    return [step for step, _ in values[tag]]


@pytest.fixture(scope="module")
def mahfnet_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tensorboard") / "mahfnet"
    train.main(["--model", "mahfnet", "--epochs", "2", "--output", str(run_dir), *TINY])
    return run_dir


def test_every_epoch_logs_the_metrics_and_learning_rate(mahfnet_run):
    history = pd.read_csv(mahfnet_run / "history.csv")
    trained = logged_summaries(mahfnet_run / TENSORBOARD_DIR / "train")
    assert steps(trained, "epoch_loss") == [0, 1]
    np.testing.assert_allclose([value for _, value in trained["epoch_loss"]], history["loss"],
                               rtol=1e-5)
    assert steps(trained, "epoch_learning_rate") == [0, 1]
    selecting = logged_summaries(mahfnet_run / TENSORBOARD_DIR / "validation")
    np.testing.assert_allclose([value for _, value in selecting["epoch_logits_accuracy"]],
                               history["val_logits_accuracy"], rtol=1e-5)


def test_the_selection_split_gets_gate_means_a_confusion_image_and_the_hparams(mahfnet_run):
    selection = logged_summaries(mahfnet_run / TENSORBOARD_DIR / "selection")
    for gate in ("agai_gate", "mag_gate", "cgf_text_gate", "cgf_image_gate"):
        assert steps(selection, f"epoch_{gate}_mean") == [0, 1]
        assert all(0 < value < 1 for _, value in selection[f"epoch_{gate}_mean"])
    assert steps(selection, "confusion_matrix") == [0, 1]
    # An image summary: width, height, then the PNG.
    width, height, png = selection["confusion_matrix"][0][1]
    assert int(width) > 100 and png.startswith(b"\x89PNG")
    assert "_hparams_/session_start_info" in selection


def test_no_tensorboard_writes_no_logs(tmp_path):
    train.main(["--model", "baseline", "--epochs", "1", "--no-tensorboard",
                "--output", str(tmp_path / "run"), *TINY])
    assert not (tmp_path / "run" / TENSORBOARD_DIR).exists()


def test_a_resume_drops_what_was_logged_after_the_checkpoint(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        tf.summary.scalar("epoch_loss", 1.0, step=0)
        writer.flush()
        checkpoint = time.time()
        time.sleep(0.05)
        tf.summary.scalar("epoch_loss", 0.5, step=1)  # an epoch the resumed run trains again
        tf.summary.scalar("evaluation_loss_vs_iterations", 0.4, step=24)
    writer.close()
    trim_event_files(tmp_path, checkpoint)
    values = logged_summaries(tmp_path)
    assert values == {"epoch_loss": [(0, 1.0)]}
    trim_event_files(tmp_path, 0.0)  # a resume without a checkpoint keeps nothing
    assert logged_summaries(tmp_path) == {}
    assert not list(tmp_path.glob(".*partial"))
