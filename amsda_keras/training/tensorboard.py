"""TensorBoard logs of a run, in `RUN/tensorboard/` (`tensorboard --logdir runs` shows every run
below `runs`, a `--seeds`/`--folds` group one subfolder per member).

- `train/` and `validation/`: Keras' own callback, every logged metric and the learning rate
  per epoch (`validation` is the split that selects, whatever its name), and what the run adds
  to the logs: A-MSDA's fusion weights.
- `selection/`: each epoch, the selection split's confusion matrix as an image and the mean of
  each MAHFNet gate on it (AGAI's theta, MAG's g, CGF's two gates), from one extra pass over
  the selection split; and, once, the run's config as hparams, so TensorBoard's HParams tab
  compares runs as a table.

A resumed run first drops what the killed run logged after its last checkpoint, so its curves
neither repeat nor skip an epoch.
"""

import io
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from amsda_keras.training.callbacks import averaged_weights
from amsda_keras.training.reporting import confusion_matrix_figure

TENSORBOARD_DIR = "tensorboard"
SELECTION_DIR = "selection"
# The layers whose gates are logged, and how to call each again for them (`GateReader`).
GATE_CALLS = {"agai": ({}, {"agai_gate": "gate"}),
              "mag": ({"return_gate": True}, {"mag_gate": "gate"}),
              "cgf": ({"return_gates": True},
                      {"cgf_text_gate": "text_gate", "cgf_image_gate": "image_gate"})}


def tensorboard_callbacks(run_dir, config, model, selection_data, kept_until=None,
                          ema_swap=None):
    """Keras' `TensorBoard` callback and `SelectionSummaries` for `run_dir/tensorboard`.

    Args:
        run_dir: the run folder.
        config: the run's resolved config (its hparams; `data.class_names`).
        model: the model `fit` trains.
        selection_data: the selection split's `(inputs, targets)` batches, or None.
        kept_until: for a resumed run, when its checkpoint was written (0 without one): the
            summaries written after it are dropped (`trim_event_files`).
        ema_swap: the run's `keras.callbacks.SwapEMAWeights`, so that the selection split is
            scored with the averaged weights, as in `fit`'s validation; None without EMA.
    """
    log_dir = Path(run_dir) / TENSORBOARD_DIR
    if kept_until is not None:
        trim_event_files(log_dir, kept_until)
    return [keras.callbacks.TensorBoard(log_dir, write_graph=False),
            SelectionSummaries(log_dir / SELECTION_DIR, config, model, selection_data,
                               write_hparams=not kept_until, ema_swap=ema_swap)]


class SelectionSummaries(keras.callbacks.Callback):
    """Writes the selection split's confusion matrix and gate means each epoch, and the
    config as hparams at the start of training (see the module's docstring)."""

    def __init__(self, log_dir, config, model, selection_data, write_hparams=True,
                 ema_swap=None):
        super().__init__()
        self.ema_swap = ema_swap
        self.config = config
        self.selection_data = selection_data
        self.write_hparams = write_hparams
        self.writer = tf.summary.create_file_writer(str(log_dir))
        self.read = GateReader(model)

    def on_train_begin(self, logs=None):
        if self.write_hparams:
            from tensorboard.plugins.hparams import api as hparams_api

            with self.writer.as_default():
                hparams_api.hparams(flat_hparams(self.config),
                                    trial_id=Path(self.config["output"]).name)

    def on_epoch_end(self, epoch, logs=None):
        if self.selection_data is None:
            return
        with averaged_weights(self.ema_swap):
            self._write_epoch(epoch)

    def _write_epoch(self, epoch):
        class_names = self.config["data"]["class_names"]
        counts = np.zeros((len(class_names), len(class_names)), dtype=int)
        gate_sums = {}
        samples = 0
        for inputs, targets, *_ in self.selection_data:
            outputs = self.read(inputs)
            labels = np.asarray(targets["logits"] if isinstance(targets, dict) else targets)
            predicted = np.argmax(keras.ops.convert_to_numpy(outputs.pop("logits")), axis=-1)
            np.add.at(counts, (labels.reshape(-1), predicted), 1)
            for name, values in outputs.items():
                values = keras.ops.convert_to_numpy(keras.ops.cast(values, "float32"))
                gate_sums[name] = gate_sums.get(name, 0.0) + values.reshape(len(labels), -1).mean(
                    axis=1).sum()
            samples += len(labels)
        with self.writer.as_default(step=epoch):
            for name, total in gate_sums.items():
                tf.summary.scalar(f"epoch_{name}_mean", total / samples)
            tf.summary.image("confusion_matrix", _png_batch(confusion_matrix_figure(
                counts, class_names, title=f"selection split, epoch {epoch + 1}")))
        self.writer.flush()


class GateReader:
    """`reader(inputs)` gives `{"logits": ..., <gate name>: gate values}` of `model`: one pass
    to the model's logits and to the inputs of each gate layer named in `GATE_CALLS`, then
    each such layer called again on them, asking for its gates. Without such a layer at the
    top level (A-MSDA, the baseline, a MAHFNet nested in an encoder top), the logits alone."""

    def __init__(self, model):
        self.layers = [layer for layer in model.layers
                       if layer.name in GATE_CALLS and getattr(layer, "gated", True)]
        feeds = {"logits": model.output["logits"] if isinstance(model.output, dict)
                 else model.output}
        for layer in self.layers:
            # The tensors of the layer's call in the model, which Keras keeps on its node.
            arguments = layer._inbound_nodes[0].arguments
            feeds[layer.name] = {"args": list(arguments.args), "kwargs": arguments.kwargs}
        self.feeds = keras.Model(model.inputs, feeds, name="gate_inputs")

    def __call__(self, inputs):
        feeds = self.feeds(inputs, training=False)
        values = {"logits": feeds["logits"]}
        for layer in self.layers:
            extra, names = GATE_CALLS[layer.name]
            called = layer(*feeds[layer.name]["args"], **feeds[layer.name]["kwargs"], **extra)
            values.update({name: called[key] for name, key in names.items()})
        return values


def flat_hparams(config, prefix=""):
    """`config` as `{"section.key": value}` with values TensorBoard's hparams take (bool,
    int, float, str); lists and None become their text."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_hparams(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = (value if isinstance(value, (bool, int, float, str))
                                      else str(value))
    return flat


def trim_event_files(log_dir, kept_until):
    """Drops every summary written after the time `kept_until` (seconds since the epoch; a
    checkpoint's) from the event files under `log_dir`, rewriting each under a temporary name.
    By time, not step: Keras steps some summaries by epoch and others by batch."""
    from tensorboard.compat.proto import event_pb2

    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        records = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
        events = [event_pb2.Event.FromString(record) for record in records]
        kept = [record for record, event in zip(records, events)
                if not event.HasField("summary") or event.wall_time <= kept_until]
        if len(kept) == len(records):
            continue
        partial = path.with_name(f".{path.name}.partial")
        with tf.io.TFRecordWriter(str(partial)) as writer:
            for record in kept:
                writer.write(record)
        partial.replace(path)


def _png_batch(figure):
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=80)
    return tf.expand_dims(tf.image.decode_png(buffer.getvalue(), channels=4), 0)
