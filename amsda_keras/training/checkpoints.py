"""Each epoch's training state in the run folder, so that `train --resume` continues a killed run.

`<run>/checkpoint/epoch-<n>/` holds, after epoch n (every `training.checkpoint_every` epochs, and
after the last):
- `state.weights.h5`: the model's weights and the optimizer's variables (Adam's moments, its
  iteration count and the learning rate, so a ReduceLROnPlateau cut survives);
- `seed_states.npz`: the dropout layers' random seed states, which `save_weights` leaves out,
  and on torch the global generator's state (Keras' torch dropout ignores unseeded layers'
  seed states and draws from it);
- `state.json`: the epoch, the seed, and the counters of the callbacks that carry state
  (early stopping, the best-model checkpoint, ReduceLROnPlateau).
The folder is written under a temporary name and renamed into place, so it is complete or
absent.
The shuffled order of an epoch depends on `(seed, epoch)` only (`pipeline.epoch_variable`), and
`history.csv` is trimmed to the checkpoint's epochs, so a resumed run repeats exactly what the
killed one would have done. Only the newest complete checkpoint is kept.
"""

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from amsda_keras.files import folder_replaced_atomically, write_text_atomically
from amsda_keras.training.callbacks import loss_is_finite

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
WEIGHTS_FILE = "state.weights.h5"
SEED_STATES_FILE = "seed_states.npz"
TORCH_GENERATOR_KEY = "torch_global_generator"
# Callback attributes that carry training state from one epoch to the next.
CALLBACK_STATE = ("wait", "best", "cooldown_counter", "stopped_epoch")


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes the training state after every epoch whose loss is finite.

    Args:
        run_dir: the run folder.
        stateful_callbacks: the run's other callbacks whose counters are saved and restored.
        seed: int, the run's seed, stored to check a resume against.
        run_clock: a callable giving the run's wall time so far in seconds, stored as
            `wall_time_seconds` so that a resumed run counts the time before its kill.
        restored: the dict `latest_checkpoint` returned when resuming, or None. Its callback
            counters are put back in `on_train_begin`, after Keras callbacks reset their own,
            so this callback must come after them in the list. So is torch's global generator,
            which `fit` draws from before that.
        every: int. Write a checkpoint every `every` epochs (and after the last one, or when
            training stops early): fewer writes of a large state, to Google Drive say, at the
            cost of repeating up to `every - 1` epochs after a kill. Defaults to `1`.
    """

    def __init__(self, run_dir, stateful_callbacks, seed, run_clock, restored=None, every=1):
        super().__init__()
        self.run_clock = run_clock
        self.directory = Path(run_dir) / CHECKPOINT_DIR
        self.stateful_callbacks = {type(cb).__name__: cb for cb in stateful_callbacks}
        self.seed = seed
        self.restored = restored
        self.every = every

    def on_train_begin(self, logs=None):
        if self.restored is None:
            return
        if keras.backend.backend() == "torch":
            import torch

            with np.load(Path(self.restored["folder"]) / SEED_STATES_FILE) as saved:
                torch.set_rng_state(torch.from_numpy(saved[TORCH_GENERATOR_KEY]))
        for name, state in self.restored["callbacks"].items():
            for attribute, value in state.items():
                setattr(self.stateful_callbacks[name], attribute, value)

    def on_epoch_end(self, epoch, logs=None):
        if not loss_is_finite(logs):
            return  # Keep the last good state.
        last = epoch + 1 == self.params.get("epochs") or self.model.stop_training
        if (epoch + 1) % self.every and not last:
            return
        folder = self.directory / f"epoch-{epoch + 1:04d}"
        state = {
            "epochs_done": epoch + 1,
            "seed": self.seed,
            # Early stopping ended the run here: a resumed run only has to score it.
            "training_stopped": bool(self.model.stop_training),
            "wall_time_seconds": self.run_clock(),
            "callbacks": {
                name: {attr: _plain(getattr(cb, attr))
                       for attr in CALLBACK_STATE if hasattr(cb, attr)}
                for name, cb in self.stateful_callbacks.items()
            },
        }
        with folder_replaced_atomically(folder) as written:
            self.model.save_weights(written / WEIGHTS_FILE)
            np.savez(written / SEED_STATES_FILE,
                     *[keras.ops.convert_to_numpy(v) for v in _seed_states(self.model)],
                     **_global_generator_state())
            (written / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
        for older in self.directory.glob("epoch-*"):
            if older != folder:
                shutil.rmtree(older)


def latest_checkpoint(run_dir):
    """The newest complete checkpoint of a run: its `state.json` as a dict plus `folder`, or None."""
    complete = sorted((Path(run_dir) / CHECKPOINT_DIR).glob(f"epoch-*/{STATE_FILE}"))
    if not complete:
        return None
    state = json.loads(complete[-1].read_text())
    state["folder"] = str(complete[-1].parent)
    return state


def checkpoint_time(checkpoint):
    """When `latest_checkpoint`'s checkpoint was written (seconds since the epoch); 0 for
    None. What the run logged after it belongs to epochs the resumed run trains again."""
    return (Path(checkpoint["folder"]) / STATE_FILE).stat().st_mtime if checkpoint else 0.0


def restore_training_state(model, checkpoint):
    """Loads a checkpoint's weights, optimizer variables and seed states into a compiled model
    whose optimizer variables exist (`run.build_training_state`)."""
    folder = Path(checkpoint["folder"])
    model.load_weights(folder / WEIGHTS_FILE)
    with np.load(folder / SEED_STATES_FILE) as saved:
        count = sum(name.startswith("arr_") for name in saved.files)
        values = [saved[f"arr_{i}"] for i in range(count)]
    states = _seed_states(model)
    if len(values) != len(states):
        raise ValueError(f"{folder} holds {len(values)} random seed states; the model has "
                         f"{len(states)}. Was the run's config changed?")
    for variable, value in zip(states, values):
        variable.assign(value)


def trim_history(path, epochs_done):
    """Drops the rows of `history.csv` after `epochs_done` (written before a kill cut the epoch's
    checkpoint short, or, with `epochs_done` 0, by a run killed before its first checkpoint)."""
    path = Path(path)
    if path.is_file():
        lines = path.read_text().splitlines(keepends=True)
        write_text_atomically(path, "".join(lines[: epochs_done + 1]))


def _seed_states(model):
    """The model's variables that are neither weights nor optimizer state: its seed states."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _global_generator_state():
    """On torch, the global generator's state by name; an empty dict elsewhere."""
    if keras.backend.backend() != "torch":
        return {}
    import torch

    return {TORCH_GENERATOR_KEY: torch.get_rng_state().numpy()}


def _plain(value):
    """A JSON-ready copy of a callback counter (NumPy and Keras scalars become floats)."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    return float(keras.ops.convert_to_numpy(value))
