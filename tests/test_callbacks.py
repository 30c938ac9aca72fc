import math

import keras
import numpy as np
import pytest

from amsda_keras.training import callbacks
from amsda_keras.training.callbacks import FiniteModelCheckpoint, StopOnNonFiniteLoss

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch


def _model():
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_stop_on_non_finite_loss_names_the_epoch_and_batch():
    model = _model()
    stop = StopOnNonFiniteLoss()
    stop.set_model(model)
    model.stop_training = False
    stop.on_epoch_begin(2)
    stop.on_train_batch_end(3, {"loss": 0.7})
    assert stop.stopped_at is None and not model.stop_training
    stop.on_train_batch_end(4, {"loss": float("inf")})
    assert stop.stopped_at == (3, 5, math.inf) and model.stop_training


def test_checkpoint_skips_an_epoch_with_a_non_finite_loss(tmp_path):
    path = tmp_path / "model.keras"
    checkpoint = FiniteModelCheckpoint(path, monitor="val_accuracy", mode="max",
                                       save_best_only=True)
    checkpoint.set_model(_model())
    checkpoint.on_epoch_end(0, {"loss": float("nan"), "val_accuracy": 0.9})
    assert not path.exists()
    checkpoint.on_epoch_end(1, {"loss": 0.5, "val_accuracy": 0.6})
    assert path.is_file()
    saved = path.stat().st_mtime_ns
    checkpoint.on_epoch_end(2, {"loss": np.float32("nan"), "val_accuracy": 0.95})
    assert path.stat().st_mtime_ns == saved


def test_peak_memory_is_nan_where_the_platform_has_no_resource_module(monkeypatch):
    assert callbacks.peak_memory_mib() > 50  # this process, in MiB
    monkeypatch.setattr(callbacks, "resource", None)  # as on Windows
    assert math.isnan(callbacks.peak_memory_mib())
