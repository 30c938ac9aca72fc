"""MAHFNet training speed: cached CLIP features versus CLIP run inside every training step.

The MAHFNet authors' code recomputes the frozen CLIP ViT-B/16 features of every batch. We
compute them once into the feature cache and train the head on it. This script measures both
with `model.fit`, on the same device, backend and batch, in one process:

- `cached`: the MAHFNet head (paper settings: width 512, 8 heads, τ 0.4) on CLIP-shaped token
  features (77 text tokens and 197 vision tokens, 512 wide) read through the package's own
  `feature_dataset` from float16 memory-mapped files, as the cache stores them;
- `clip_in_step`: the same head behind a frozen CLIP ViT-B/16 (the architecture with random
  weights: speed does not depend on the weights), fed token ids and 224x224 float images from
  memory, so CLIP's forward pass runs in every step. JPEG decoding is left out, which favours
  this path.

Each path trains `--epochs` epochs of `--steps` batches; the first epoch (which compiles) is
dropped and the rest are timed. Prints a table and writes JSON. Run from the repository root:

    python benchmarks/mahfnet_training.py                       # batch 64, backend from KERAS_BACKEND
    KERAS_BACKEND=jax python benchmarks/mahfnet_training.py --steps 20
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import keras_hub
import numpy as np
import pandas as pd
import tensorflow as tf

from amsda_keras import encoders
from amsda_keras.data.pipeline import feature_dataset
from amsda_keras.models.compose import attach_encoders
from amsda_keras.models.mahfnet import build_mahfnet
from amsda_keras.training.run import build_training_state, compile_for_training, with_targets

sys.path.insert(0, str(Path(__file__).parent))
from common import (EpochTimer, device_name, keep_tensorflow_off_the_gpu,  # noqa: E402
                    random_float16_memmap, training_settings, write_result)

NUM_CLASSES = 3
TEXT_TOKENS, IMAGE_TOKENS, WIDTH, IMAGE_SIZE = 77, 197, 512, 224
VOCABULARY_SIZE = 49408


def clip_vit_b16():
    """CLIP ViT-B/16's architecture (keras-hub's `clip_vit_base_patch16`), random weights."""
    return keras_hub.models.CLIPBackbone(
        vision_encoder=keras_hub.models.CLIPVisionEncoder(
            patch_size=16, hidden_dim=768, num_layers=12, num_heads=12, intermediate_dim=3072,
            image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
        text_encoder=keras_hub.models.CLIPTextEncoder(
            vocabulary_size=VOCABULARY_SIZE, embedding_dim=WIDTH, hidden_dim=WIDTH,
            num_layers=12, num_heads=8, intermediate_dim=2048,
            max_sequence_length=TEXT_TOKENS),
        projection_dim=WIDTH,
    )


def clip_encoders(clip):
    """The package's text and image `Encoder`s around one CLIP backbone, frozen."""
    vision = encoders._clip_vision_tokens(clip)
    return {
        "text": encoders.Encoder("text", "clip-vit-b16-random", clip.text_encoder, None,
                                 encoders._text_feature_model(clip.text_encoder)),
        "image": encoders.Encoder("image", "clip-vit-b16-random", vision, None,
                                  encoders._image_feature_model(vision)),
    }


def cached_features(folder, count, rng):
    """Float16 memory-mapped token features with random content, as the cache stores them."""
    shapes = {"text_tokens": (count, TEXT_TOKENS, WIDTH), "image_tokens": (count, IMAGE_TOKENS, WIDTH)}
    arrays = {}
    for name, shape in shapes.items():
        arrays[name] = random_float16_memmap(folder / f"{name}.npy", shape, rng)
    mask = np.zeros((count, TEXT_TOKENS), bool)
    mask[:, :20] = True  # a typical MVSA post: about 20 tokens
    arrays["text_mask"] = mask
    return arrays


def timed_fit(model, dataset, epochs, jit_compile):
    compile_for_training(model, training_settings(learning_rate=1e-4, jit_compile=jit_compile))
    dataset = with_targets(model, dataset)
    build_training_state(model, dataset)
    timer = EpochTimer()
    model.fit(dataset, epochs=epochs, callbacks=[timer], verbose=0)
    return timer.seconds


def measure(batch_size, steps, epochs, jit_compile):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    count = batch_size * steps
    labels = rng.integers(0, NUM_CLASSES, count)
    frame = pd.DataFrame({"label": labels, "row": np.arange(count)})
    head = build_mahfnet(num_classes=NUM_CLASSES, text_dim=WIDTH, image_dim=WIDTH,
                         temperature=0.4, dropout=0.1)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        features = cached_features(Path(folder), count, rng)
        data = feature_dataset(frame, features, batch_size=batch_size)
        seconds = timed_fit(head, data, epochs, jit_compile)
        rows.append(("cached", seconds))

        end_to_end = attach_encoders(head, clip_encoders(clip_vit_b16()), trainable=False)
        inputs = {
            "token_ids": rng.integers(1, VOCABULARY_SIZE, (count, TEXT_TOKENS), dtype=np.int32),
            "padding_mask": features["text_mask"],
            "images": rng.uniform(-1, 1, (count, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32),
        }
        data = (tf.data.Dataset.from_tensor_slices((inputs, labels))
                .batch(batch_size).prefetch(tf.data.AUTOTUNE))
        seconds = timed_fit(end_to_end, data, epochs, jit_compile)
        rows.append(("clip_in_step", seconds))
    return [{
        "path": path,
        "samples_per_second": round(count * (len(times) - 1) / sum(times[1:]), 2),
        "timed_epochs": len(times) - 1,
        "first_epoch_seconds": round(times[0], 2),
    } for path, times in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="Batches per epoch.")
    parser.add_argument("--epochs", type=int, default=3, help="Epochs; the first is not timed.")
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"))
    parser.add_argument("--output", type=Path,
                        default=Path("benchmarks/results/mahfnet_training.json"))
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch compiles and is not timed")
    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    keep_tensorflow_off_the_gpu()

    rows = measure(args.batch_size, args.steps, args.epochs, jit_compile)
    table = pd.DataFrame(rows).set_index("path")
    speedup = table.loc["cached", "samples_per_second"] / table.loc["clip_in_step",
                                                                     "samples_per_second"]
    device = device_name()
    print(f"MAHFNet model.fit, batch {args.batch_size}, backend {keras.config.backend()}, "
          f"jit_compile {args.jit_compile}, device {device}:")
    print(table.to_string())
    print(f"Cached features are {speedup:.1f}x faster than CLIP in every step.")
    result = {"backend": keras.config.backend(), "device": device,
              "batch_size": args.batch_size, "steps_per_epoch": args.steps,
              "jit_compile": args.jit_compile, "paths": rows, "speedup": round(speedup, 2)}
    write_result(args.output, result)


if __name__ == "__main__":
    main()
