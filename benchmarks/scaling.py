"""Scaling: the feature cache and MAHFNet training as the dataset grows (1 k, 10 k, 100 k pairs).

For each size, in a fresh process:
- `write`: writes a text and an image feature cache in the package's on-disk format
  (`FeatureCache`: float16 `tokens.npy`, `pooled.npy`, a text `mask.npy`) with CLIP ViT-B/16
  shapes (77 text tokens and 197 image tokens, 512 wide; about 280 KB a pair), and times it.
  The content is one random block of 1024 pairs repeated: speed does not depend on it.
- `stream`: one shuffled epoch of the package's `feature_dataset` over the memory-mapped cache,
  with no model: the input pipeline's rate.
- `train`: one epoch of `model.fit` of the MAHFNet head (paper settings) on that pipeline,
  after an untimed warm-up epoch of 4 batches; for the sizes in `--train-sizes` only (a 100 k
  epoch of the 512-wide head takes hours on a laptop CPU).
Memory is the process's peak anonymous resident memory (`RssAnon`, sampled every 50 ms), which
excludes the page cache that memory maps fill: a cache streamed from disk keeps it flat as
the data grows, where loading it would add 280 KB a pair. Disk is the cache's size.

Prints a table and writes JSON. Run from the repository root (needs about 30 GB free disk for
100 k pairs, in `--workdir`):

    python benchmarks/scaling.py                         # 1000,10000,100000; train 1000,10000
    python benchmarks/scaling.py --sizes 1000 --train-sizes 1000
"""

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pandas as pd

from amsda_keras.cli import comma_list
from amsda_keras.data.feature_cache import COMPLETE, FeatureCache
from amsda_keras.data.pipeline import epoch_variable, feature_dataset
from amsda_keras.models.mahfnet import build_mahfnet

sys.path.insert(0, str(Path(__file__).parent))
from common import (EpochTimer, device_name, keep_tensorflow_off_the_gpu,  # noqa: E402
                    write_result)
from mahfnet_training import (IMAGE_TOKENS, NUM_CLASSES, TEXT_TOKENS, WIDTH,  # noqa: E402
                              compiled, with_targets)

BLOCK = 1024
REAL_TEXT_TOKENS = 20
GIB = 2**30


class PeakAnonymousMemory:
    """Samples this process's `RssAnon` in a thread; `peak_gib` is the largest value seen."""

    def __enter__(self):
        self.peak_gib, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _sample(self):
        while not self._stop.wait(0.05):
            self.peak_gib = max(self.peak_gib, anonymous_memory_gib())


def anonymous_memory_gib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024 / GIB
    return float("nan")


def write_cache(folder, modality, count, rng):
    """A complete `FeatureCache` folder of `count` rows with CLIP shapes."""
    folder.mkdir(parents=True)
    length = TEXT_TOKENS if modality == "text" else IMAGE_TOKENS
    fields = {"tokens": ((length, WIDTH), np.float16), "pooled": ((WIDTH,), np.float16)}
    if modality == "text":
        fields["mask"] = ((length,), bool)
    for field, (shape, dtype) in fields.items():
        if field == "mask":
            block = np.zeros((BLOCK, *shape), bool)
            block[:, :REAL_TEXT_TOKENS] = True
        else:
            block = rng.standard_normal((BLOCK, *shape), dtype=np.float32).astype(dtype)
        array = np.lib.format.open_memmap(folder / f"{field}.npy", "w+", dtype, (count, *shape))
        for start in range(0, count, BLOCK):
            array[start:start + BLOCK] = block[: count - start]
        array.flush()
        del array
    (folder / "ids.txt").write_text("".join(f"s{i}\n" for i in range(count)))
    (folder / COMPLETE).write_text("ok\n")
    return FeatureCache(folder)


def measure(count, batch_size, train, workdir):
    """Writes, streams and (with `train`) trains on `count` pairs; returns the row."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    row = {"pairs": count}
    folder = Path(tempfile.mkdtemp(dir=workdir))
    try:
        with PeakAnonymousMemory() as memory:
            start = time.perf_counter()
            caches = {modality: write_cache(folder / modality, modality, count, rng)
                      for modality in ("text", "image")}
            row["write_seconds"] = round(time.perf_counter() - start, 1)
            row["disk_gib"] = round(sum(f.stat().st_size for f in folder.rglob("*.npy")) / GIB, 2)
            features = {f"{modality}_{field}": cache.arrays[field]
                        for modality, cache in caches.items() for field in ("tokens", "mask")
                        if field in cache.arrays}
            frame = pd.DataFrame({"label": rng.integers(0, NUM_CLASSES, count),
                                  "row": np.arange(count)})
            data = feature_dataset(frame, features, batch_size=batch_size, shuffle=True,
                                   epoch=epoch_variable())
            start = time.perf_counter()
            for _ in data:
                pass
            row["stream_pairs_per_s"] = round(count / (time.perf_counter() - start), 1)
            row["stream_peak_anon_gib"] = round(memory.peak_gib, 2)
            if train:
                row.update(train_epoch(with_targets(data), count, batch_size))
                row["train_peak_anon_gib"] = round(memory.peak_gib, 2)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return row


def train_epoch(data, count, batch_size):
    model = compiled(build_mahfnet(num_classes=NUM_CLASSES, text_dim=WIDTH, image_dim=WIDTH,
                                   temperature=0.4, dropout=0.1), jit_compile="auto")
    model.fit(data.take(4), epochs=1, verbose=0)  # compiles
    timer = EpochTimer()
    model.fit(data, epochs=1, callbacks=[timer], verbose=0)
    return {"train_epoch_seconds": round(timer.seconds[0], 1),
            "train_pairs_per_s": round(count / timer.seconds[0], 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sizes = functools.partial(comma_list, item_type=int)
    parser.add_argument("--sizes", type=sizes, default=[1000, 10000, 100000])
    parser.add_argument("--train-sizes", type=sizes, default=[1000, 10000],
                        help="The sizes that also train one epoch.")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()),
                        help="Where the caches are written (and removed after).")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/scaling.json"))
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        keep_tensorflow_off_the_gpu()
        print(json.dumps(measure(args.worker, args.batch_size, args.worker in args.train_sizes,
                                 args.workdir)))
        return

    rows = []
    for size in args.sizes:
        worker = subprocess.run(
            [sys.executable, __file__, "--worker", str(size),
             "--train-sizes", ",".join(map(str, args.train_sizes)),
             "--batch-size", str(args.batch_size), "--workdir", str(args.workdir)],
            capture_output=True, text=True, check=True)
        rows.append(json.loads(worker.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows).set_index("pairs")
    device = device_name()
    print(f"Feature cache and MAHFNet training by dataset size, batch {args.batch_size}, "
          f"backend {keras.config.backend()}, device {device}:")
    print(table.to_string())
    write_result(args.output, {"backend": keras.config.backend(), "device": device,
                               "batch_size": args.batch_size, "rows": rows})


if __name__ == "__main__":
    main()
