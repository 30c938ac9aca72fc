"""One training run, from a resolved config to a complete run folder.

The run folder holds: `config.yaml` (resolved), `splits.csv`, `skipped_samples.csv`,
`history.csv`, `training_curves.png`, `model.keras` (the best epoch on the selection split,
see `protocol`), `metrics.json`, `predictions.csv` (every sample outside train),
`classification_report.txt`, `confusion_matrix.png` (the reported split) and
`confusion_matrix_<split>.png`, `run.json` (the protocol, wall time, parameters, versions,
git commit, and the best model's fusion weights), for A-MSDA `fusion_weights.png`, and,
for `tiny` encoders, `encoders/`. While
training it also holds `checkpoint/` (the last epoch's full state, see `checkpoints`),
removed once the run is done.
"""

import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import datetime
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from amsda_keras.data.pipeline import balanced_class_weights, epoch_variable
from amsda_keras.data.splits import apply_splits_file, ensure_splits, fold_split, write_splits
from amsda_keras.encoders import check_encoder_specs
from amsda_keras.files import write_text_atomically
from amsda_keras.models import MODEL_BUILDERS
from amsda_keras.models.compose import attach_encoder_tops, attach_encoders, encoder_variables
from amsda_keras.training import inputs, reporting
from amsda_keras.training.reporting import RUN_INFO_FILE
from amsda_keras.training.config import save_config
from amsda_keras.training.evaluation import score
from amsda_keras.training.callbacks import (EpochResources, FiniteModelCheckpoint,
                                            FusionWeightsLogger, ShuffleEpoch,
                                            StopOnNonFiniteLoss, fusion_weights,
                                            fusion_weights_layer)
from amsda_keras.training.checkpoints import (CHECKPOINT_DIR, EpochCheckpoint,
                                              checkpoint_time, latest_checkpoint,
                                              restore_training_state, trim_history)
from amsda_keras.training.distribute import (device_count, distribution_scope, split_evenly,
                                              without_data_sharding)
from amsda_keras.training.errors import TrainingDivergedError
from amsda_keras.training.optimizers import build_optimizer
from amsda_keras.training.losses import (OutputMean, SmoothedSparseCrossentropy,
                                         WeightedFocalLoss)
from amsda_keras.model_names import PROBE
from amsda_keras.training.probe import check_probe_settings, fit_probe
from amsda_keras.training.protocol import apply_protocol
from amsda_keras.training.tensorboard import tensorboard_callbacks

# A model with dict outputs has `logits` and per-sample auxiliary losses (MAHFNet's
# `contrastive`), each weighted by its `training.<name>_weight`.
LOGITS = "logits"
# The repository root of a source checkout (`pip install -e .`).
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def train(config, progress=True, resume=False):
    """Trains the configured model and writes its run folder. Returns the folder's path.

    With `resume`, `config` is the `config.yaml` of an unfinished run in `config["output"]`,
    which continues from its last checkpointed epoch.
    """
    settings = config["training"]
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(settings["precision"])
    try:
        with distribution_scope(settings["distribute"], settings["batch_size"]):
            return _train(config, progress, resume)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _train(config, progress, resume):
    started = time.perf_counter()
    settings = config["training"]
    if config["model"] == PROBE:
        check_probe_settings(config)
    check_encoder_specs(config["encoders"])
    run_dir = _make_run_dir(config, resume)
    checkpoint = _checkpoint_to_resume(run_dir, settings) if resume else None
    run_clock = RunClock(started, checkpoint)
    keras.utils.set_random_seed(settings["seed"])

    inputs.resolve_data(config)
    table = inputs.load_table(config["data"], run_dir, progress=progress)
    frame, protocol = _split(table.frame, config, run_dir)
    config["data"]["class_names"] = list(table.class_names)
    save_config(config, run_dir / "config.yaml")
    print(f"Dataset: {len(frame)} samples, classes {table.class_names}")
    print(inputs.describe_splits(frame, table.class_names).to_string())

    train_frame = frame[frame["split"] == "train"]
    selection_frame = (frame[frame["split"] == protocol.selection]
                       if protocol.selection else None)
    encoders = inputs.build_encoders(config["encoders"], run_dir, train_frame["text"].tolist())
    model = MODEL_BUILDERS[config["model"]](
        num_classes=table.num_classes,
        text_dim=encoders["text"].dim,
        image_dim=encoders["image"].dim,
        **config["model_args"],
    )
    model = attach_encoder_tops(model, encoders)
    if config["encoders"]["trainable"] or not config["features"]["cache"]:
        model = attach_encoders(model, encoders, trainable=config["encoders"]["trainable"])
    with without_data_sharding():
        batches = inputs.batches_for(model, encoders, frame, config["features"], progress=progress)

    if config["model"] == PROBE:
        chosen = fit_probe(model, batches, train_frame, selection_frame, settings, run_dir)
    else:
        chosen = _fit(model, batches, train_frame, selection_frame, table.num_classes, config,
                      run_dir, resume, checkpoint, run_clock, progress)

    # The selected weights, into the trained model (whose trainable flags are the run's).
    load_archive_weights(model, run_dir / "model.keras")
    history = pd.read_csv(run_dir / "history.csv")
    kept = chosen.get("best_epoch", chosen.get("probe_c"))
    reporting.plot_training_curves(run_dir / "training_curves.png", history,
                                   selection=protocol.selection, kept=kept)
    if fusion_weights_layer(model) is not None:
        reporting.plot_fusion_weights(run_dir / "fusion_weights.png", history, kept=kept)
    with without_data_sharding():
        score(model, frame, batches, table.class_names, run_dir, settings["batch_size"],
              protocol=protocol)
    wall_time = run_clock()
    info = _write_run_info(run_dir, model, wall_time, chosen, protocol,
                           resumed_after=checkpoint and checkpoint["epochs_done"],
                           devices=device_count(settings["distribute"]))
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
    print(f"Kept: {_describe_choice(info, protocol)} (model.keras)")
    print(f"Run folder: {run_dir}  (wall time {wall_time:.1f} s)")
    return run_dir


def _fit(model, batches, train_frame, selection_frame, num_classes, config, run_dir,
         resume, checkpoint, run_clock, progress):
    """Trains a Keras model with `fit`, keeping the best epoch on the selection split (the
    last epoch without one) in `model.keras`. Returns `{"best_epoch": n}`."""
    settings = config["training"]
    class_weights = (
        balanced_class_weights(train_frame["label"], num_classes)
        if settings["class_weight"] == "balanced"
        else None
    )
    monitor = compile_for_training(model, settings, class_weights)
    batch = settings["batch_size"]
    epoch = epoch_variable()
    train_data = with_targets(model, split_evenly(batches(
        train_frame, batch_size=batch, shuffle=True, seed=settings["seed"], epoch=epoch,
        oversample_classes=settings["oversample"],
        # The focal loss weighs classes itself; cross-entropy gets them as sample weights.
        class_weights=class_weights if settings["loss"] == "cross_entropy" else None,
    ), training=True))
    selection_data = None if selection_frame is None else with_targets(model, split_evenly(
        batches(selection_frame, batch_size=batch), training=False))
    build_training_state(model, train_data)
    divergence = StopOnNonFiniteLoss()
    if selection_data is None:
        monitor = None
    callbacks = _callbacks(run_dir, settings, monitor, model, append_history=resume)
    if settings["tensorboard"]:
        ema_swap = next((callback for callback in callbacks
                         if isinstance(callback, keras.callbacks.SwapEMAWeights)), None)
        callbacks += tensorboard_callbacks(run_dir, config, model, selection_data,
                                           kept_until=checkpoint_time(checkpoint) if resume
                                           else None, ema_swap=ema_swap)
    if resume:
        # Rows a killed run logged after its last checkpoint (all of them without one).
        trim_history(run_dir / "history.csv", checkpoint["epochs_done"] if checkpoint else 0)
    if checkpoint is not None:
        restore_training_state(model, checkpoint)
        print(f"Resuming {run_dir} after epoch {checkpoint['epochs_done']}")
    if checkpoint is None or not checkpoint["training_stopped"]:
        model.fit(
            train_data,
            validation_data=selection_data,
            epochs=settings["epochs"],
            initial_epoch=0 if checkpoint is None else checkpoint["epochs_done"],
            shuffle=False,  # train_data shuffles itself each epoch, from (seed, epoch).
            callbacks=[
                ShuffleEpoch(epoch), divergence, *callbacks,
                # Last: it restores the others' counters after they reset them.
                EpochCheckpoint(run_dir, callbacks, settings["seed"], run_clock,
                                restored=checkpoint, every=settings["checkpoint_every"]),
            ],
            verbose=1 if sys.stdout.isatty() and progress else 2,
        )
    if divergence.stopped_at is not None:
        raise TrainingDivergedError(_divergence_message(run_dir, *divergence.stopped_at))
    history = pd.read_csv(run_dir / "history.csv")
    best = history[monitor].idxmax() if monitor else len(history) - 1
    return {"best_epoch": int(history["epoch"][best]) + 1, "epochs_run": len(history)}


def load_archive_weights(model, path):
    """`model.load_weights(path)` for a `.keras` file, read from its weights file extracted to
    disk. Keras reads it inside the zip, where each backward seek re-reads the entry from its
    start: 27 s instead of 3 s for a fine-tuned A-MSDA on MiniLM and Lite0 (361 MB)."""
    with zipfile.ZipFile(path) as archive, tempfile.TemporaryDirectory() as folder:
        model.load_weights(archive.extract("model.weights.h5", folder))


def default_run_dir(config):
    """`config["output"]`, or `runs/<model>-<time>` when it is not set."""
    return Path(config["output"] or f"runs/{config['model']}-{datetime.now():%Y%m%d-%H%M%S}")


def _make_run_dir(config, resume):
    run_dir = default_run_dir(config)
    if (run_dir / RUN_INFO_FILE).exists():
        raise FileExistsError(f"{run_dir} already holds a finished run; pass another --output.")
    if not resume and (run_dir / CHECKPOINT_DIR).exists():
        raise FileExistsError(f"{run_dir} holds an unfinished run: continue it with "
                              f"`--resume {run_dir}`, or pass another --output.")
    run_dir.mkdir(parents=True, exist_ok=True)
    config["output"] = str(run_dir)
    return run_dir


def _checkpoint_to_resume(run_dir, settings):
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        print(f"Note: {run_dir} has no finished epoch to resume from; training from epoch 1.")
    elif checkpoint["seed"] != settings["seed"]:
        raise ValueError(f"The checkpoint in {run_dir} was trained with seed "
                         f"{checkpoint['seed']}, but its config.yaml says {settings['seed']}.")
    return checkpoint


def _split(frame, config, run_dir):
    """Gives every row its split and decides the run's protocol. Returns `(frame, protocol)`."""
    data, seed = config["data"], config["training"]["seed"]
    notes = []
    if data["folds"]:
        frame, note = fold_split(frame, data["folds"], data["fold"], seed)
        notes.append(note)
    elif data["splits"]:
        frame = apply_splits_file(frame, data["splits"])
    else:
        frame, notes = ensure_splits(frame, seed)
    frame, protocol, protocol_notes = apply_protocol(
        frame, config["training"]["select_on"], data["validation_fraction"], seed)
    for note in notes + protocol_notes:
        print(f"Note: {note}")
    write_splits(frame, run_dir / "splits.csv")
    frame = frame.copy()
    frame["row"] = np.arange(len(frame))
    return frame, protocol


def compile_for_training(model, settings, class_weights=None):
    """Compiles `model` with the `training` settings.

    Returns the selection split's metric that picks the best epoch.
    """
    optimizer = build_optimizer(settings, encoder_variables(model))
    if settings["loss"] == "focal":
        classification = WeightedFocalLoss(
            alpha=settings["focal_alpha"], gamma=settings["focal_gamma"],
            class_weights=None if class_weights is None else class_weights.tolist())
    elif settings["label_smoothing"]:
        classification = SmoothedSparseCrossentropy(settings["label_smoothing"])
    else:
        classification = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if not _has_auxiliary_outputs(model):
        model.compile(optimizer=optimizer, loss=classification, metrics=["accuracy"],
                      jit_compile=_jit_compile(settings["jit_compile"]))
        return "val_accuracy"
    auxiliary = [name for name in model.output if name != LOGITS]
    model.compile(
        optimizer=optimizer,
        loss={LOGITS: classification, **{name: OutputMean() for name in auxiliary}},
        loss_weights={LOGITS: 1.0, **{name: settings[f"{name}_weight"] for name in auxiliary}},
        metrics={LOGITS: ["accuracy"]},
        jit_compile=_jit_compile(settings["jit_compile"]),
    )
    return f"val_{LOGITS}_accuracy"


def build_training_state(model, dataset):
    """Creates a compiled model's optimizer, loss and metric variables for `dataset`'s batches.

    Without a distribution strategy, Keras on tensorflow creates them inside the first traced
    train step, and `tf.function` then traces the whole step a second time (17 of the 46 s
    of a one-epoch MAHFNet demo run on CPU). Built here from the element spec, it is traced
    once. Keras has no public call for this (keras-team/keras#20045).
    """
    model._symbolic_build(data_batch=dataset.element_spec)


def _jit_compile(setting):
    """Keras' `auto`, except on tensorflow without an accelerator, where XLA made both models
    train 1.8-2.8x slower (benchmarks/backends.py, docs/benchmarks.md)."""
    on_cpu = not any(tf.config.list_logical_devices(kind) for kind in ("GPU", "TPU"))
    if setting == "auto" and keras.config.backend() == "tensorflow" and on_cpu:
        return False
    return setting


def _has_auxiliary_outputs(model):
    # Keras names metrics after their output (`val_logits_accuracy`) only when there are
    # several; a dict with `logits` alone (MAHFNet without contrastive loss) is one output.
    return len(model.outputs) > 1


def with_targets(model, dataset):
    """Labels for a dict-output model: the class for `logits`, zeros for auxiliary losses."""
    if not _has_auxiliary_outputs(model):
        return dataset

    def targets(inputs, labels, *weights):
        zeros = tf.zeros_like(labels, dtype="float32")
        target = {name: labels if name == LOGITS else zeros for name in model.output}
        return (inputs, target, *weights)

    return dataset.map(targets)


def _callbacks(run_dir, settings, monitor, model, append_history):
    """The run's callbacks; with `monitor` None (no selection split), every epoch is saved."""
    callbacks = [EpochResources()]
    if (settings["lr_step_epochs"] is not None or settings["warmup_epochs"]
            or settings["cosine_decay"]):
        callbacks.append(keras.callbacks.LearningRateScheduler(epoch_learning_rate(settings)))
    if settings["reduce_lr_patience"] is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=settings["reduce_lr_factor"],
            patience=settings["reduce_lr_patience"], verbose=1))
    if fusion_weights_layer(model) is not None:
        callbacks.append(FusionWeightsLogger())
    # The selection split scored, and the kept model saved, with the averaged weights.
    ema_swap = keras.callbacks.SwapEMAWeights() if settings["ema"] else None
    callbacks += [ema_swap] if ema_swap else []
    callbacks += [
        FiniteModelCheckpoint(run_dir / "model.keras", monitor=monitor or "loss", mode="max",
                              save_best_only=monitor is not None, ema_swap=ema_swap),
        # Last of those that write to the logs, so history.csv has what they add.
        keras.callbacks.CSVLogger(run_dir / "history.csv", append=append_history),
    ]
    if settings["early_stopping_patience"] is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, mode="max", patience=settings["early_stopping_patience"]
            )
        )
    return callbacks


def _divergence_message(run_dir, epoch, batch, loss):
    kept = (f"{run_dir / 'model.keras'} keeps the best epoch before it"
            if (run_dir / "model.keras").is_file()
            else "no epoch had finished, so no model was saved")
    return (f"The training loss became {loss} at epoch {epoch}, batch {batch}, so training "
            f"stopped; {kept}. Lower the learning rate (--learning-rate) or look for NaN or "
            f"infinite values in the inputs.")


def epoch_learning_rate(settings):
    """The learning rate of each epoch (counted from 0), logged as `learning_rate`: a linear
    warm-up over `warmup_epochs`, then a half cosine to 0 over the other epochs with
    `cosine_decay`, and PyTorch's StepLR (times `lr_step_gamma` every `lr_step_epochs`)."""
    initial, warmup, epochs = (settings["learning_rate"], settings["warmup_epochs"],
                               settings["epochs"])
    step, gamma = settings["lr_step_epochs"], settings["lr_step_gamma"]

    def learning_rate(epoch, _=None):
        rate = initial * min(1.0, (epoch + 1) / (warmup + 1)) if warmup else initial
        if settings["cosine_decay"] and epoch >= warmup:
            rate *= 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / (epochs - warmup)))
        return rate * gamma ** (epoch // step) if step else rate

    return learning_rate


def source_commit():
    """The package's git commit (`-dirty` with uncommitted changes), or `None` when it is not
    run from a git checkout: a code change that draws random numbers in another order changes
    every seed's numbers, so each run says which code made it."""
    if not (SOURCE_ROOT / ".git").exists():
        return None
    try:
        result = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude=*"],
            cwd=SOURCE_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


class RunClock:
    """The run's wall time in seconds: since `started` (`time.perf_counter()`), plus, when it
    resumes a checkpoint, the time the run had taken up to that checkpoint (none for a
    checkpoint written before checkpoints stored it). Epochs trained after the checkpoint
    and lost to the kill are not counted; the resumed run trains them again."""

    def __init__(self, started, checkpoint=None):
        self.started = started
        self.earlier = (checkpoint or {}).get("wall_time_seconds") or 0.0

    def __call__(self):
        return round(self.earlier + time.perf_counter() - self.started, 2)


def _write_run_info(run_dir, model, wall_time, chosen, protocol, resumed_after, devices):
    info = {
        # A resumed run adds the time up to its checkpoint (`RunClock`).
        "wall_time_seconds": wall_time,
        "resumed_after_epoch": resumed_after,
        "selected_on": protocol.selection,
        "untouched_splits": list(protocol.untouched),
        # The best epoch and the epochs run, or the probe's chosen C.
        **chosen,
        "trainable_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        **fusion_weights(model),
        "backend": keras.config.backend(),
        "devices": devices,
        # Keras turns jit_compile off by itself where a layer does not support XLA.
        "jit_compile": model.jit_compile,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "commit": source_commit(),
    }
    write_text_atomically(run_dir / RUN_INFO_FILE, json.dumps(info, indent=2) + "\n")
    return info


def _describe_choice(info, protocol):
    where = f"on the {protocol.selection} split" if protocol.selection else "no selection split"
    if "best_epoch" not in info:
        return f"the probe with C = {info['probe_c']:g} ({where})"
    best = "best" if protocol.selection else "last"
    return f"the {best} epoch, {info['best_epoch']} of {info['epochs_run']} ({where})"
