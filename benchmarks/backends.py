"""Backends and compilation: one MAHFNet and one A-MSDA training epoch per backend and jit_compile.

Trains each model with `model.fit` on the tensorflow, jax and torch backends, with and without
`jit_compile` (XLA on tensorflow and jax, `torch.compile` on torch), on the same seeded data, and
reports which configuration is fastest per model:

- `mahfnet`: the MAHFNet head (paper settings: width 512, 8 heads, τ 0.4) on CLIP-shaped token
  features (77 text tokens and 197 vision tokens, 512 wide), as in `mahfnet_training.py`;
- `amsda`: the A-MSDA head on frozen-encoder features: MiniLM-like text tokens (64 tokens, 384
  wide, 20 of them real) and EfficientNet-Lite0-like pooled image features (1280 wide), weighted
  focal loss (α 0.27, γ 1.9) and Adam 1e-4.
Features are random, stored as float16 memory-mapped files and read through the package's own
`feature_dataset`, as the feature cache stores them. The Keras backend is fixed when Keras is
imported, so every measurement runs in a fresh subprocess of this script (`--worker`) with
`KERAS_BACKEND` set; it prints one JSON line. Each run trains `--epochs` epochs; the first
(which compiles) is reported apart and the rest are timed.

Caveats: on CPU the numbers are ratios for this machine only; on a GPU the ranking can differ,
so pick defaults from a run on the target device. Initial weights come from each backend's own
random generator, so `final_loss` agrees across backends only roughly. A configuration whose
`fit` raises (`torch.compile` on some layers, say) is recorded as `unsupported` with the error's
first line; one where Keras falls back to `jit_compile=False` says so in `status`; one that runs
past `--timeout` (30 minutes) is recorded as timed out. `torch.compile` compiles C++ with the
system compiler on CPU and can take minutes before the first step.

Prints a table and writes JSON. Run from the repository root:

    python benchmarks/backends.py                    # 2048 samples, batch 64, 3 epochs
    python benchmarks/backends.py --backends jax,torch --models amsda --samples 512
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

from amsda_keras.cli import comma_list
from amsda_keras.data.pipeline import feature_dataset
from amsda_keras.models.amsda import build_amsda
from amsda_keras.models.mahfnet import build_mahfnet
from amsda_keras.training.run import build_training_state, compile_for_training, with_targets

sys.path.insert(0, str(Path(__file__).parent))
from common import (EpochTimer, device_name, keep_tensorflow_off_the_gpu,  # noqa: E402
                    random_float16_memmap, training_settings, write_result)
from mahfnet_training import NUM_CLASSES, WIDTH, cached_features  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("mahfnet", "amsda")
JIT_COMPILE = {"true": True, "false": False}
COLUMNS = ["model", "backend", "jit_compile", "samples_per_s", "epoch_seconds",
           "first_epoch_seconds", "final_loss", "status", "device"]
TEXT_TOKENS, TEXT_DIM, REAL_TEXT_TOKENS, IMAGE_DIM = 64, 384, 20, 1280


def amsda_features(folder, count, rng):
    """MiniLM-like text tokens and mask, and EfficientNet-Lite0-like pooled image features."""
    mask = np.zeros((count, TEXT_TOKENS), bool)
    mask[:, :REAL_TEXT_TOKENS] = True
    return {
        "text_tokens": random_float16_memmap(folder / "text_tokens.npy",
                                             (count, TEXT_TOKENS, TEXT_DIM), rng),
        "text_mask": mask,
        "image_pooled": random_float16_memmap(folder / "image_pooled.npy", (count, IMAGE_DIM), rng),
    }


def mahfnet_setup(folder, frame, rng, batch_size):
    model = build_mahfnet(num_classes=NUM_CLASSES, text_dim=WIDTH, image_dim=WIDTH,
                          temperature=0.4, dropout=0.1)
    data = feature_dataset(frame, cached_features(folder, len(frame), rng), batch_size=batch_size)
    return model, data, training_settings(learning_rate=1e-4)


def amsda_setup(folder, frame, rng, batch_size):
    model = build_amsda(num_classes=NUM_CLASSES, text_dim=TEXT_DIM, image_dim=IMAGE_DIM)
    data = feature_dataset(frame, amsda_features(folder, len(frame), rng), batch_size=batch_size)
    return model, data, training_settings(learning_rate=1e-4, loss="focal")


SETUPS = {"mahfnet": mahfnet_setup, "amsda": amsda_setup}


def measure(model_name, jit_compile, samples, batch_size, epochs):
    """Trains one model on one backend (this process's) and returns its row of the table."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"label": rng.integers(0, NUM_CLASSES, samples),
                          "row": np.arange(samples)})
    row = {"model": model_name, "backend": keras.config.backend(), "jit_compile": jit_compile,
           "device": device_name()}
    with tempfile.TemporaryDirectory() as folder:
        model, data, settings = SETUPS[model_name](Path(folder), frame, rng, batch_size)
        compile_for_training(model, {**settings, "jit_compile": jit_compile})
        data = with_targets(model, data)
        build_training_state(model, data)
        timer = EpochTimer()
        try:
            history = model.fit(data, epochs=epochs, callbacks=[timer], verbose=0)
        except Exception as error:  # e.g. torch.compile failing on a layer
            message = (str(error).strip().splitlines() or [""])[0]
            return {**row, "status": f"unsupported: {type(error).__name__}: {message}"}
    timed = timer.seconds[1:]
    return {
        **row,
        "status": "ok" if model.jit_compile == jit_compile else "ok, Keras disabled jit_compile",
        "samples_per_s": round(samples * len(timed) / sum(timed), 2),
        "epoch_seconds": round(sum(timed) / len(timed), 3),
        "first_epoch_seconds": round(timer.seconds[0], 3),
        "final_loss": round(float(history.history["loss"][-1]), 4),
    }


def run_worker(backend, model_name, jit_compile, args, timeout):
    """Runs `measure` in a fresh process on `backend` and returns its row."""
    command = [sys.executable, __file__, "--worker", model_name, jit_compile,
               "--samples", str(args.samples), "--batch-size", str(args.batch_size),
               "--epochs", str(args.epochs)]
    row = {"model": model_name, "backend": backend, "jit_compile": JIT_COMPILE[jit_compile]}
    try:
        done = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend},
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "status": f"timed out after {timeout} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {**row, "status": f"failed: {last}"}
    return json.loads(lines[-1])


def fastest(table):
    """The configuration with the most samples per second, per model."""
    ok = table[table["status"].str.startswith("ok")]
    best = ok.loc[ok.groupby("model")["samples_per_s"].idxmax()]
    return {row.model: {"backend": row.backend, "jit_compile": bool(row.jit_compile),
                        "samples_per_s": row.samples_per_s} for row in best.itertuples()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", type=functools.partial(comma_list, choices=BACKENDS),
                        default=list(BACKENDS))
    parser.add_argument("--jit-compile", type=functools.partial(comma_list, choices=JIT_COMPILE),
                        default=list(JIT_COMPILE))
    parser.add_argument("--models", type=functools.partial(comma_list, choices=MODELS),
                        default=list(MODELS))
    parser.add_argument("--samples", type=int, default=2048, help="Samples per epoch.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="Epochs; the first is not timed.")
    parser.add_argument("--timeout", type=int, default=1800,
                        help="Seconds one configuration may run before it counts as timed out.")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/backends.json"))
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "JIT_COMPILE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch compiles and is not timed")

    if args.worker:
        keep_tensorflow_off_the_gpu()
        model_name, jit_compile = args.worker
        print(json.dumps(measure(model_name, JIT_COMPILE[jit_compile], args.samples,
                                 args.batch_size, args.epochs)))
        return

    rows = []
    for model_name in args.models:
        for backend in args.backends:
            for jit_compile in args.jit_compile:
                rows.append(run_worker(backend, model_name, jit_compile, args, args.timeout))
                print(f"{model_name} on {backend}, jit_compile {jit_compile}: "
                      f"{rows[-1]['status']}, {rows[-1].get('samples_per_s')} samples/s",
                      flush=True)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    print(f"model.fit, {args.samples} samples, batch {args.batch_size}, "
          f"{args.epochs - 1} timed epochs:")
    print(table.drop(columns="device").to_string(index=False))
    best = fastest(table)
    for model_name, config in best.items():
        print(f"Fastest for {model_name}: {config['backend']}, jit_compile "
              f"{config['jit_compile']} ({config['samples_per_s']} samples/s)")
    result = {"devices": sorted(set(table["device"].dropna())),
              "samples": args.samples, "batch_size": args.batch_size, "epochs": args.epochs,
              "rows": rows, "fastest": best}
    write_result(args.output, result)


if __name__ == "__main__":
    main()
