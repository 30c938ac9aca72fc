"""AGAI attention heatmaps of a trained MAHFNet run: the maps, the figure and the CLI."""

import keras
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from amsda_keras import attention, train
from amsda_keras.inference import load_trained_run, logits_of
from amsda_keras.models.mahfnet import build_mahfnet
from amsda_keras.training import inputs
from amsda_keras.training.attention_maps import (
    compute_attention_maps,
    patch_grid,
    plot_attention_maps,
)
from amsda_keras.training.config import load_config_file

SMALL = dict(hidden_dim=32, num_heads=2, key_dim=16, intermediate_dim=32, common_length=4)
CLASSES = ["positive", "neutral", "negative"]


@pytest.fixture(scope="module")
def mahfnet_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "mahfnet"
    settings = [arg for name, value in SMALL.items()
                for arg in ("--set", f"model_args.{name}={value}")]
    # With the tiny text encoder's last layer trained, so the maps go through its top.
    train.main(["--model", "mahfnet", *settings, "--set", "encoders.text_trainable_layers=1",
                "--epochs", "1", "--output", str(run_dir), "--no-progress"])
    return run_dir


@pytest.fixture(scope="module")
def encoders(mahfnet_run):
    config = load_config_file(mahfnet_run / "config.yaml")
    return inputs.build_encoders(config["encoders"], mahfnet_run, training_texts=None)


@pytest.fixture
def image_path(tmp_path):
    path = tmp_path / "sample.png"
    pixels = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_maps_have_the_grid_shapes_and_rows_are_distributions(mahfnet_run, encoders, image_path):
    model = keras.saving.load_model(mahfnet_run / "model.keras", compile=False)
    maps = compute_attention_maps(model, encoders, "love this happy day", image_path)

    # Default sequence length 64; the tiny ViT at 32px: a class token and 4x4 patches.
    assert (maps.grid, maps.class_tokens) == (4, 1)
    assert maps.text_to_image.shape == (64, 17) and maps.image_to_text.shape == (17, 64)
    assert maps.image.shape == (32, 32, 3) and maps.image.dtype == np.uint8
    real = maps.text_mask
    assert maps.real_tokens[0] == "[CLS]" and maps.real_tokens[-1] == "[SEP]"
    assert len(maps.real_tokens) == real.sum() < 64
    np.testing.assert_allclose(maps.text_to_image[real].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(maps.image_to_text[:, real].sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(maps.image_to_text[:, ~real], 0.0, atol=1e-6)
    assert maps.patch_map.shape == (4, 4)
    assert maps.token_weights.shape == (real.sum(),)
    np.testing.assert_allclose(maps.probabilities.sum(), 1.0, atol=1e-5)

    path = image_path.with_name("maps.png")
    plot_attention_maps(path, maps, sample_id="s1", true_label=0, class_names=CLASSES)
    assert path.stat().st_size > 0


def test_patch_grid_drops_a_class_token_only_when_needed():
    assert patch_grid(49) == (7, 0)
    assert patch_grid(197) == (14, 1)
    assert patch_grid(17) == (4, 1)
    with pytest.raises(ValueError, match="square patch grid"):
        patch_grid(20)


def test_cli_writes_one_png_per_sample(mahfnet_run, tmp_path, capsys):
    ids = pd.read_csv(mahfnet_run / "splits.csv", dtype=str)["id"][:2].tolist()
    attention.main(["--run", str(mahfnet_run), "--sample", *ids, "--no-progress"])
    for sample_id in ids:
        assert (mahfnet_run / "attention" / f"{sample_id}.png").stat().st_size > 0
    assert str(mahfnet_run / "attention") in capsys.readouterr().out

    output = tmp_path / "dev"
    attention.main(["--run", str(mahfnet_run), "--split", "dev", "--count", "2",
                    "--output", str(output), "--no-progress"])
    assert len(list(output.glob("*.png"))) == 2


def test_unknown_sample_id_exits_with_valid_ids(mahfnet_run):
    first = pd.read_csv(mahfnet_run / "splits.csv", dtype=str)["id"][0]
    with pytest.raises(SystemExit) as stop:
        attention.main(["--run", str(mahfnet_run), "--sample", "no-such-id"])
    message = str(stop.value)
    assert "no-such-id" in message and first in message


def test_model_without_agai_is_refused(encoders, image_path):
    model = build_mahfnet(num_classes=3, text_dim=encoders["text"].dim,
                          image_dim=encoders["image"].dim, ablate=["agai"], **SMALL)
    with pytest.raises(ValueError, match="needs the AGAI block"):
        compute_attention_maps(model, encoders, "happy", image_path)


def test_the_reproduce_report_puts_only_the_heatmap_in_its_figures(mahfnet_run, tmp_path):
    from amsda_keras.results.experiments import MAHFNET_FULL
    from amsda_keras.results.report import attention_figure

    group, figures = tmp_path / "runs" / MAHFNET_FULL.key, tmp_path / "figures"
    group.mkdir(parents=True)
    (group / "seed-1").symlink_to(mahfnet_run, target_is_directory=True)
    path = attention_figure({"members": ["seed-1"]}, MAHFNET_FULL, group, figures,
                            progress=False)
    assert list(figures.iterdir()) == [path] and path.name == "attention_mahfnet.png"
    assert Image.open(path).size[0] > 0


def test_a_run_with_a_trained_text_top_reloads_for_raw_inputs(mahfnet_run, tmp_path):
    run = load_trained_run(mahfnet_run)
    assert [layer.name for layer in run.model.layers if "top" in layer.name] == ["text_top"]
    # The raw-input model (frozen encoder below the top, then the trained top and head)
    # gives what the trained model gives on the cached features.
    rows = inputs.load_table(run.config["data"], tmp_path, progress=False).frame.head(4)
    rows = rows.assign(row=np.arange(len(rows)))
    outputs = {}
    for name, model in (("cached", run.model), ("raw", run.end_to_end_model)):
        batches = inputs.batches_for(model, run.encoders, rows, run.config["features"],
                                     progress=False)
        outputs[name] = logits_of(model.predict(batches(rows, batch_size=4, with_labels=False),
                                                verbose=0))
    np.testing.assert_allclose(outputs["raw"], outputs["cached"], atol=2e-3)
