"""What the benchmark scripts share: the device, random memory-mapped features, the training
settings, an epoch timer and the JSON result."""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf

from amsda_keras.training.config import DEFAULTS


def device_name():
    """The accelerator Keras runs on, or the CPU with its core count."""
    backend = keras.config.backend()
    if backend == "jax":
        import jax

        if jax.default_backend() != "cpu":
            return jax.devices()[0].device_kind
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name()
    else:
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU ({os.cpu_count()} cores)"


def keep_tensorflow_off_the_gpu():
    """tf.data feeds every backend; under jax or torch it must not take the GPU's memory."""
    if keras.config.backend() != "tensorflow":
        tf.config.set_visible_devices([], "GPU")


def random_float16_memmap(path, shape, rng):
    """A float16 `.npy` of standard-normal values at `path`, reopened as a read-only memory map."""
    array = np.lib.format.open_memmap(path, "w+", np.float16, shape)
    array[:] = rng.standard_normal(shape, dtype=np.float32)
    array.flush()
    return np.load(path, mmap_mode="r")


def training_settings(**overrides):
    """The package's default `training` settings with `overrides`, for `compile_for_training`."""
    return {**DEFAULTS["training"], **overrides}


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of every epoch of a `fit`, in `seconds`."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def write_result(path, result):
    """Writes a benchmark's result dict as JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Written to {path}")
