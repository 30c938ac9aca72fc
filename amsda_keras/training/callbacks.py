"""Training callbacks beyond Keras' own."""

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import keras
from keras import ops

from amsda_keras.layers.fusion_weights import FusionWeights
from amsda_keras.training.reporting import FUSION_WEIGHT_PREFIX

try:
    import resource
except ImportError:  # Windows has no `resource`: the package still imports, without peak memory
    resource = None


def fusion_weights_layer(model):
    """The model's `FusionWeights` layer (searched in nested models too), or None."""
    for layer in model.layers:
        if isinstance(layer, FusionWeights):
            return layer
        if isinstance(layer, keras.Model):
            found = fusion_weights_layer(layer)
            if found is not None:
                return found
    return None


def fusion_weights(model):
    """`{"fusion_weight_<branch>": weight}` of the model's `FusionWeights` layer; `{}` if none."""
    layer = fusion_weights_layer(model)
    if layer is None:
        return {}
    values = ops.convert_to_numpy(layer.normalized_weights())
    return {f"{FUSION_WEIGHT_PREFIX}{name}": float(value)
            for name, value in zip(layer.branch_names, values)}


class FusionWeightsLogger(keras.callbacks.Callback):
    """Adds the learned fusion weights to each epoch's logs (and so to `history.csv`)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(fusion_weights(self.model))


class EpochResources(keras.callbacks.Callback):
    """Adds each epoch's wall time (`epoch_seconds`: training and the selection pass) and the
    process's peak resident memory so far (`peak_memory_mib`: host RAM; an accelerator's own
    memory is not in it) to the epoch's logs, and so to `history.csv`."""

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(epoch_seconds=time.perf_counter() - self._started,
                        peak_memory_mib=peak_memory_mib())


def peak_memory_mib():
    """The process's peak resident memory since it started, in MiB (NaN where the platform
    does not report it)."""
    if resource is None:
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class ShuffleEpoch(keras.callbacks.Callback):
    """Sets the `epoch` variable a shuffled training dataset reads its order from
    (`pipeline.epoch_variable`), before Keras starts iterating the epoch."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    `stopped_at` is then `(epoch, batch, loss)`, both counted from 1. Keras' own
    `TerminateOnNaN` does not say which epoch it was.
    """

    def __init__(self):
        super().__init__()
        self.stopped_at = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not loss_is_finite(logs):
            self.stopped_at = (self._epoch + 1, batch + 1, float(logs["loss"]))
            self.model.stop_training = True


class FiniteModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """A `ModelCheckpoint` that never saves an epoch whose training loss is NaN or infinite
    (its weights are broken even if the selection metric, e.g. argmax of NaN logits, looks
    fine), and that writes the model under a temporary name, renamed into place when whole.
    With `ema_swap` (the run's `keras.callbacks.SwapEMAWeights`) it saves the optimizer's
    moving-average weights, the ones the selection split was scored with."""

    def __init__(self, *args, ema_swap=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_swap = ema_swap

    def on_epoch_end(self, epoch, logs=None):
        if not loss_is_finite(logs):
            return
        final = Path(self.filepath)
        partial = final.with_name(f".{final.stem}.partial{final.suffix}")
        self.filepath = str(partial)
        try:
            with averaged_weights(self.ema_swap):
                super().on_epoch_end(epoch, logs)
        finally:
            self.filepath = str(final)
        if partial.exists():  # this epoch was saved
            os.replace(partial, final)


@contextlib.contextmanager
def averaged_weights(ema_swap):
    """The optimizer's moving-average weights in the model for the block, and the trained ones
    back after it, with `ema_swap` (the run's `keras.callbacks.SwapEMAWeights`); nothing with
    None (a run without EMA)."""
    if ema_swap is None:
        yield
        return
    ema_swap.on_test_begin()
    try:
        yield
    finally:
        ema_swap.on_test_end()


def loss_is_finite(logs):
    """False only when the logs hold a `loss` that is NaN or infinite."""
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))
