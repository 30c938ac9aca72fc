"""`train --distribute data-parallel` on two virtual CPU devices, against a one-device run."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from amsda_keras.data.demo import make_demo_dataset
from amsda_keras.training import distribute
from amsda_keras.training.config import ConfigError

# Splits the host CPU into two devices before either framework starts: two logical CPUs for
# tensorflow, two XLA host devices for jax (from XLA_FLAGS). Then trains.
TRAIN_ON_TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from amsda_keras import train
train.main(sys.argv[1:])
"""


@pytest.fixture(scope="module")
def odd_sized_demo(tmp_path_factory):
    # 477 samples split 381/48/48: the last training batch (29) does not split in two.
    return make_demo_dataset(tmp_path_factory.mktemp("odd_demo"), num_samples=477)


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_data_parallel_matches_one_device(backend, odd_sized_demo, tmp_path):
    runs = {}
    for mode in ("none", "data-parallel"):
        run_dir = tmp_path / mode
        subprocess.run(
            [sys.executable, "-c", TRAIN_ON_TWO_CPUS, "--model", "baseline", "--data",
             str(odd_sized_demo), "--epochs", "2", "--batch-size", "32", "--no-progress",
             "--distribute", mode, "--output", str(run_dir)],
            check=True, capture_output=True, timeout=600,
            env={**os.environ, "KERAS_BACKEND": backend,
                 "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
        runs[mode] = {name: json.loads((run_dir / f"{name}.json").read_text())
                      for name in ("run", "metrics")}
    assert runs["none"]["run"]["devices"] == 1
    assert runs["data-parallel"]["run"]["devices"] == 2
    for split in ("train", "dev"):
        single, parallel = (runs[mode]["metrics"][split]["accuracy"] for mode in runs)
        # Dropout draws differ per device; the rest is the same computation.
        assert abs(single - parallel) <= 0.07, (split, single, parallel)
    assert runs["data-parallel"]["metrics"]["dev"]["num_samples"] == 48


def test_data_parallel_names_what_is_wrong(monkeypatch):
    monkeypatch.setattr(distribute, "_local_devices", lambda: ["cpu:0", "cpu:1", "cpu:2"])
    if keras.backend.backend() in ("jax", "tensorflow"):
        with pytest.raises(ConfigError, match="batch_size=32 cannot be split evenly across the 3"):
            distribute.distribution_scope("data-parallel", 32)
    monkeypatch.setattr(keras.backend, "backend", lambda: "torch")
    with pytest.raises(ConfigError, match="needs the jax or tensorflow backend; this is torch"):
        distribute.distribution_scope("data-parallel", 32)
    assert distribute.device_count("none") == 1


# What `split_evenly` reads of a Keras distribution: its device mesh, here of 4 devices.
FOUR_DEVICES = SimpleNamespace(device_mesh=SimpleNamespace(devices=np.arange(4)))


def _batches(sizes):
    """`(inputs, labels, weights)` batches of consecutive sample numbers."""
    start, batches = 0, []
    for size in sizes:
        numbers = np.arange(start, start + size)
        batches.append(({"x": numbers.astype("float32")}, numbers, np.ones(size, "float32")))
        start += size
    return tf.data.Dataset.from_generator(
        lambda: iter(batches),
        output_signature=({"x": tf.TensorSpec([None], tf.float32)},
                          tf.TensorSpec([None], tf.int64), tf.TensorSpec([None], tf.float32)))


def test_training_batches_are_trimmed_so_no_sample_is_repeated(monkeypatch):
    monkeypatch.setattr(keras.distribution, "distribution", lambda: FOUR_DEVICES)
    trimmed = list(distribute.split_evenly(_batches([8, 7, 3]), training=True)
                   .as_numpy_iterator())
    # 7 -> 4 samples; a last batch of 3 < 4 devices is dropped: no copies, no pads.
    assert [len(labels) for _, labels, _ in trimmed] == [8, 4]
    labels = np.concatenate([labels for _, labels, _ in trimmed])
    assert len(set(labels)) == len(labels)
    np.testing.assert_array_equal(trimmed[1][0]["x"], trimmed[1][1])


def test_selection_batches_are_padded_with_zero_weights(monkeypatch):
    monkeypatch.setattr(keras.distribution, "distribution", lambda: FOUR_DEVICES)
    padded = list(distribute.split_evenly(_batches([8, 7]), training=False).as_numpy_iterator())
    _, labels, weights = padded[1]
    np.testing.assert_array_equal(labels, [8, 9, 10, 11, 12, 13, 14, 14])
    np.testing.assert_array_equal(weights, [1] * 7 + [0])
