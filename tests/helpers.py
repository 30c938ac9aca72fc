"""Small data makers for the tests (a few real image files and a table over them), a reader of
TensorBoard event files, and a command killed mid-run."""

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from amsda_keras.data.table import make_frame
from amsda_keras.training.reporting import RESOURCE_COLUMNS

# `train` flags for a MAHFNet small enough to train on the demo data in seconds.
SMALL_MAHFNET = ["--model", "mahfnet", "--set", "model_args.hidden_dim=32",
                 "--set", "model_args.num_heads=2", "--set", "model_args.key_dim=16",
                 "--set", "model_args.intermediate_dim=32", "--set", "model_args.common_length=4"]
# `train` flags for an A-MSDA small enough to fine-tune its tiny encoders in seconds.
SMALL_AMSDA = ["--model", "amsda", "--set", "model_args.image_projection_dim=32",
               "--set", "model_args.text_hidden_dims=[32]",
               "--set", "model_args.image_hidden_dims=[32]",
               "--set", "model_args.fusion_hidden_dims=[32]"]
WORDS = [["happy", "sunny", "love"], ["table", "street", "paper"], ["sad", "awful", "rain"]]


def reproducible_history(run_dir):
    """The run's `history.csv` without the columns that time the machine."""
    return pd.read_csv(Path(run_dir) / "history.csv").drop(columns=list(RESOURCE_COLUMNS))


def make_table_frame(directory, num_rows=10, num_classes=3, image_size=20, splits=None, seed=0):
    """Writes `num_rows` small PNG images and returns a table DataFrame over them."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(num_rows):
        label = index % num_classes
        pixels = rng.integers(0, 255, (image_size, image_size + 4, 3), dtype=np.uint8)
        path = directory / f"img_{index}.png"
        Image.fromarray(pixels).save(path)
        words = rng.choice(WORDS[label % len(WORDS)], size=2 + index % 3)
        rows.append({
            "id": f"s{index}",
            "text": " ".join(words),
            "image": str(path),
            "label": label,
            "split": splits[index] if splits else None,
        })
    return make_frame(rows)


def with_rows(frame):
    """Adds the `row` column the feature pipeline gathers by."""
    frame = frame.copy()
    frame["row"] = np.arange(len(frame))
    return frame


def logged_summaries(folder):
    """`{tag: [(step, value), ...]}` of every TensorBoard event file in `folder`, in file order;
    each value a NumPy array (an image: width, height, PNG). Read raw, so repeated steps show."""
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2

    values = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                values.setdefault(value.tag, []).append(
                    (event.step, tf.make_ndarray(value.tensor)))
    return values


def kill_when(command, ready, waiting_for, timeout=600, poll_seconds=0.01):
    """Starts `command` and SIGKILLs it as soon as `ready()` is true (a run killed mid-way, as
    a dropped Colab session would); fails if `ready()` stays false for `timeout` seconds, or
    if the command ends by itself first. `waiting_for` names what `ready` waits for."""
    import signal
    import subprocess
    import time

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None:
        assert time.monotonic() < deadline, f"no {waiting_for} in {timeout} s"
        time.sleep(poll_seconds)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()[-3000:]
