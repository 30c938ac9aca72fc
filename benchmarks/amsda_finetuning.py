"""A-MSDA fine-tuning: samples/s and peak memory of the train step, fp32 vs mixed precision.

Builds the end-to-end A-MSDA model with the paper's encoder shapes and random weights
(DistilRoBERTa-shaped `RobertaBackbone`, 6 layers, width 768; keras.applications
EfficientNetB0 at 224x224), both encoders trainable, with `WeightedFocalLoss` and
`Adam(1e-5)` (wrapped in a `LossScaleOptimizer` under mixed_float16, as Keras does). On the
JAX backend it jits a stateless train step (forward, backward, optimizer update; the model,
non-trainable and optimizer state are donated, as in Keras' own JAX trainer) and reports:

- samples/s over `--steps` timed steps, after one untimed step;
- XLA's memory analysis of the compiled program:
  peak estimate = argument + output + temp - alias,
  where `argument` is the inputs (weights, optimizer state, batch), `output` the updated
  state and loss, `temp` the scratch buffers (activations kept for the backward pass,
  gradients), and `alias` the outputs written in place of donated arguments; generated-code
  bytes are reported but left out of the estimate;
- the measured peak: on a device with `memory_stats()` (GPU) the allocator's
  `peak_bytes_in_use`, and always the process's peak resident memory (on CPU the step's
  memory lives there, next to the Python and XLA runtime).

Each policy is measured in a fresh process. Run from the repository root:

    python benchmarks/amsda_finetuning.py            # batch 32, float32 and both mixed policies

Caveats: without a GPU the program is compiled for XLA-CPU, whose fusion and algorithms differ
from the GPU's. CPUs have no fast float16 units, so mixed precision is not faster there and its
samples/s says nothing about a GPU's; the memory analysis only approximates the GPU program's.
On a GPU, `device_peak_bytes_in_use` is the number to trust (add the CUDA context and library
workspaces, a few hundred MB, on top).
"""

import argparse
import concurrent.futures
import functools
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"  # the measurement uses JAX's memory analysis
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd

from amsda_keras.cli import comma_list

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

GIB = 2**30
NUM_CLASSES = 3
VOCABULARY_SIZE = 50265
TEXT_DIM = 768
IMAGE_DIM = 1280
POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def _attention_in_float32(jax):
    """Makes `jax.nn.dot_product_attention` compute in float32.

    For float16 inputs it asks for a F16_F16_F32 dot, which XLA-CPU cannot compile, so the
    mixed_float16 step fails on CPU. Only the head's attention layers (dropout 0, 4 heads of
    8, at most 20 tokens) take this path, so computing them in float32 changes the memory by
    a few KB. GPUs support the dot and are left alone.
    """
    attention = jax.nn.dot_product_attention

    def attention_in_float32(query, key, value, **kwargs):
        dtype = query.dtype
        query, key, value = (t.astype("float32") for t in (query, key, value))
        return attention(query, key, value, **kwargs).astype(dtype)

    jax.nn.dot_product_attention = attention_in_float32


def measure(policy, batch_size, sequence_length, image_size, steps):
    """Builds the model under `policy`, compiles it and times `steps` train steps; returns a dict."""
    import jax
    import keras
    import keras_hub
    import numpy as np

    from amsda_keras import encoders
    from amsda_keras.models.amsda import build_amsda
    from amsda_keras.models.compose import attach_encoders
    from amsda_keras.training.losses import WeightedFocalLoss

    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    patch_attention = jax.default_backend() == "cpu" and "float16" in policy
    if patch_attention:
        _attention_in_float32(jax)
    text_backbone = keras_hub.models.RobertaBackbone(
        vocabulary_size=VOCABULARY_SIZE, num_layers=6, num_heads=12, hidden_dim=TEXT_DIM,
        intermediate_dim=3072, max_sequence_length=512,
    )
    text_encoder = encoders.Encoder(
        "text", "distilroberta-shape", text_backbone, preprocessor=None,
        feature_model=encoders._text_feature_model(text_backbone),
    )
    image_encoder = encoders.build_image_encoder("efficientnetb0:none", image_size=image_size)
    head = build_amsda(num_classes=NUM_CLASSES, text_dim=TEXT_DIM, image_dim=IMAGE_DIM)
    model = attach_encoders(head, {"text": text_encoder, "image": image_encoder}, trainable=True)
    loss_fn = WeightedFocalLoss()
    optimizer = keras.optimizers.Adam(1e-5)
    if policy == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)

    def train_step(trainable, non_trainable, optimizer_vars, x, y):
        def scaled_loss(trainable):
            logits, new_non_trainable = model.stateless_call(
                trainable, non_trainable, x, training=True)
            loss = loss_fn(y, logits)
            # The loss scale is an optimizer variable: read it from `optimizer_vars`.
            mapping = list(zip(optimizer.variables, optimizer_vars, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                return optimizer.scale_loss(loss), (loss, new_non_trainable)

        (_, (loss, non_trainable)), grads = jax.value_and_grad(scaled_loss, has_aux=True)(trainable)
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        return loss, trainable, non_trainable, optimizer_vars

    rng = np.random.default_rng(0)
    tokens = (batch_size, sequence_length)
    batch = {
        "token_ids": rng.integers(0, VOCABULARY_SIZE, tokens, dtype="int32"),
        "padding_mask": np.ones(tokens, dtype="bool"),
        "images": rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32"),
    }
    args = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
        batch,
        rng.integers(0, NUM_CLASSES, (batch_size,), dtype="int32"),
    )
    start = time.perf_counter()
    compiled = jax.jit(train_step, donate_argnums=(0, 1, 2)).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()

    def run_step(args):
        loss, *state = compiled(*args)
        return jax.block_until_ready(loss), (*state, *args[3:])

    start = time.perf_counter()
    loss, args = run_step(args)
    first_step_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        loss, args = run_step(args)
    step_seconds = (time.perf_counter() - start) / steps

    stats = jax.devices()[0].memory_stats() or {}
    row = {
        "policy": policy,
        "loss_scaling": isinstance(optimizer, keras.optimizers.LossScaleOptimizer),
        "attention_in_float32": patch_attention,
        "argument_bytes": memory.argument_size_in_bytes,
        "output_bytes": memory.output_size_in_bytes,
        "temp_bytes": memory.temp_size_in_bytes,
        "alias_bytes": memory.alias_size_in_bytes,
        "generated_code_bytes": memory.generated_code_size_in_bytes,
    }
    row["peak_estimate_bytes"] = (row["argument_bytes"] + row["output_bytes"]
                                  + row["temp_bytes"] - row["alias_bytes"])
    row.update(
        device_peak_bytes_in_use=stats.get("peak_bytes_in_use"),
        process_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        compile_seconds=round(compile_seconds, 1),
        first_step_seconds=round(first_step_seconds, 2),
        step_seconds=round(step_seconds, 2),
        samples_per_s=round(batch_size / step_seconds, 2),
        loss=float(loss),
        device=str(jax.devices()[0].device_kind),
    )

    def count(weights):
        return int(sum(np.prod(w.shape) for w in weights))

    parts = {"text encoder": text_backbone, "image encoder": image_encoder.backbone,
             "head": head, "total": model}
    parameters = [{"part": name, "parameters": count(part.weights),
                   "trainable": count(part.trainable_weights)} for name, part in parts.items()]
    return {"memory": row, "parameters": parameters}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sequence-length", type=int, default=20)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--policies", type=functools.partial(comma_list, choices=POLICIES),
                        default=list(POLICIES))
    parser.add_argument("--steps", type=int, default=3, help="Timed steps after the first.")
    parser.add_argument("--output", type=Path,
                        default=Path("benchmarks/results/amsda_finetuning.json"))
    args = parser.parse_args()

    results = []
    for policy in args.policies:
        # A fresh process per policy: the dtype policy is global and device memory stats
        # are per process.
        with concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn")) as pool:
            results.append(pool.submit(measure, policy, args.batch_size, args.sequence_length,
                                       args.image_size, args.steps).result())

    memory = pd.DataFrame([result["memory"] for result in results]).set_index("policy")
    parameters = pd.DataFrame(results[0]["parameters"]).set_index("part")
    gib = memory.filter(like="bytes").astype(float).div(GIB).round(3)
    gib.columns = [column.replace("_bytes", "_GiB") for column in gib.columns]
    print(f"Train step, batch {args.batch_size}, {args.sequence_length} tokens, "
          f"{args.image_size}x{args.image_size} images, on {memory['device'].iloc[0]}:")
    flags = ["samples_per_s", "step_seconds", "first_step_seconds", "compile_seconds",
             "loss_scaling", "attention_in_float32"]
    print(gib.join(memory[flags]).to_string())
    print()
    print(parameters.to_string())

    write_result(args.output, {
        "batch_size": args.batch_size,
        "sequence_length": args.sequence_length,
        "image_size": args.image_size,
        "timed_steps": args.steps,
        "peak_estimate": "argument + output + temp - alias (XLA memory_analysis)",
        "memory": [result["memory"] for result in results],
        "parameters": results[0]["parameters"],
    })


if __name__ == "__main__":
    main()
