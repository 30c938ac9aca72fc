"""CLIP presets as text and image encoders, on a tiny random CLIP saved as a local preset."""

import string

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from amsda_keras.data.feature_cache import extract_features
from amsda_keras.encoders import (
    CLIPTextPreprocessor,
    build_image_encoder,
    build_text_encoder,
)
from tests.helpers import make_table_frame

WIDTH = 16
PROJECTION_DIM = 12  # Not the width, so the image tokens show the projection was applied.
NUM_PATCHES = 16  # 4x4 patches of 8 pixels; the class token comes before them on request.
TEXTS = ["airplane", "an airport"]  # air plane, a n air port: 4 and 6 tokens with start and end.


@pytest.fixture(scope="module")
def clip_preset(tmp_path_factory):
    """A folder with a tiny random `CLIPBackbone`, its `CLIPPreprocessor` and image converter."""
    # keras-hub's own CLIP test merges, plus every letter so that any lowercase word tokenizes.
    merges = ["a i", "p l", "n e</w>", "p o", "r t</w>", "ai r", "pl a", "po rt</w>", "pla ne</w>"]
    letters = list(string.ascii_lowercase)
    tokens = ["<|endoftext|>", "<|startoftext|>", *letters,
              *(f"{letter}</w>" for letter in letters)]
    tokens += [merge.replace(" ", "") for merge in merges]
    vocabulary = {token: index + 1 for index, token in enumerate(tokens)}  # 0 is padding.
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=merges)
    image_converter = keras_hub.layers.CLIPImageConverter(
        image_size=(32, 32), scale=1 / 127.5, offset=-1.0
    )
    preprocessor = keras_hub.models.CLIPPreprocessor(tokenizer, image_converter)
    backbone = keras_hub.models.CLIPBackbone(
        vision_encoder=keras_hub.models.CLIPVisionEncoder(
            patch_size=8, hidden_dim=WIDTH, num_layers=2, num_heads=2,
            intermediate_dim=2 * WIDTH, image_shape=(32, 32, 3),
        ),
        text_encoder=keras_hub.models.CLIPTextEncoder(
            vocabulary_size=len(vocabulary) + 1, embedding_dim=WIDTH, hidden_dim=WIDTH,
            num_layers=2, num_heads=2, intermediate_dim=2 * WIDTH,
        ),
        projection_dim=PROJECTION_DIM,
    )
    folder = tmp_path_factory.mktemp("clip_preset")
    backbone.save_to_preset(str(folder))
    preprocessor.save_to_preset(str(folder))
    return str(folder)


def test_clip_text_encoder_gives_text_tokens_and_their_mask(clip_preset):
    encoder = build_text_encoder(clip_preset, sequence_length=8)
    assert isinstance(encoder.backbone, keras_hub.models.CLIPTextEncoder)
    assert isinstance(encoder.preprocessor, CLIPTextPreprocessor)
    inputs = encoder.preprocessor(tf.constant(TEXTS))
    outputs = encoder.feature_model.predict_on_batch(inputs)
    assert outputs["tokens"].shape == (2, 8, WIDTH) and encoder.dim == WIDTH

    # Start token, the text's tokens, end token; then padding.
    np.testing.assert_array_equal(outputs["mask"], np.arange(8) < np.array([[4], [6]]))
    np.testing.assert_array_equal(outputs["mask"], inputs["padding_mask"])
    for row in range(2):
        expected = outputs["tokens"][row][outputs["mask"][row]].mean(axis=0)
        np.testing.assert_allclose(outputs["pooled"][row], expected, rtol=1e-5, atol=1e-6)

    # The causal text encoder keeps padding out of the real tokens: more padding, same pool.
    longer = build_text_encoder(clip_preset, sequence_length=12)
    np.testing.assert_allclose(
        longer.feature_model.predict_on_batch(longer.preprocessor(tf.constant(TEXTS)))["pooled"],
        outputs["pooled"],
        rtol=1e-5,
        atol=1e-5,
    )


def test_clip_text_length_defaults_to_the_preset_and_is_bounded(clip_preset):
    assert build_text_encoder(clip_preset).preprocessor.sequence_length == 77
    with pytest.raises(ValueError, match="at most 77 tokens"):
        build_text_encoder(clip_preset, sequence_length=78)


@pytest.mark.parametrize("class_token", [False, True])
def test_clip_image_encoder_projects_the_patch_tokens(clip_preset, class_token):
    encoder = build_image_encoder(clip_preset, clip_class_token=class_token)
    assert isinstance(encoder.preprocessor, keras_hub.layers.CLIPImageConverter)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 40, 50, 3), dtype=np.uint8)
    pixels = encoder.preprocessor(images)
    outputs = encoder.feature_model.predict_on_batch({"images": pixels})
    assert outputs["tokens"].shape == (2, NUM_PATCHES + class_token, PROJECTION_DIM)
    np.testing.assert_allclose(outputs["pooled"], outputs["tokens"].mean(axis=1), atol=1e-6)

    # keras-hub's vision encoder puts the class token first; the patches follow it.
    clip = keras_hub.models.CLIPBackbone.from_preset(clip_preset)
    vision_tokens = clip.vision_encoder.predict_on_batch({"images": pixels})
    expected = vision_tokens @ np.asarray(clip.vision_projection.kernel)
    expected = expected if class_token else expected[:, 1:]
    np.testing.assert_allclose(outputs["tokens"], expected, rtol=1e-5, atol=1e-5)

    # The projection belongs to the backbone: in its fingerprint, and frozen with it.
    assert len(encoder.backbone.weights) == len(clip.vision_encoder.weights) + 1
    encoder.set_trainable(False)
    assert not encoder.feature_model.trainable_weights


def test_clip_class_token_has_a_cache_of_its_own_and_other_encoders_ignore_it(clip_preset):
    patches = build_image_encoder(clip_preset)
    with_class_token = build_image_encoder(clip_preset, clip_class_token=True)
    assert [w.shape for w in patches.backbone.weights] == [
        w.shape for w in with_class_token.backbone.weights]
    assert patches.fingerprint() != with_class_token.fingerprint()
    assert patches.fingerprint() == build_image_encoder(clip_preset).fingerprint()
    fingerprints = []
    for flag in (False, True):
        keras.utils.set_random_seed(0)  # `tiny` weights are random
        fingerprints.append(build_image_encoder("tiny", clip_class_token=flag).fingerprint())
    assert fingerprints[0] == fingerprints[1]


@pytest.mark.parametrize("modality", ["text", "image"])
def test_saved_clip_encoder_reloads_identically(clip_preset, tmp_path, modality):
    build = {"text": build_text_encoder, "image": build_image_encoder}[modality]
    kwargs = {"sequence_length": 8} if modality == "text" else {}
    encoder = build(clip_preset, **kwargs)
    encoder.save(tmp_path / modality)
    reloaded = build(str(tmp_path / modality))  # The saved text length comes back too.
    assert reloaded.fingerprint() == encoder.fingerprint()
    raw = tf.constant(TEXTS) if modality == "text" else np.zeros((2, 32, 32, 3), np.uint8)

    def features(encoder):
        inputs = encoder.preprocessor(raw)
        inputs = inputs if modality == "text" else {"images": inputs}
        return encoder.feature_model.predict_on_batch(inputs)

    for field, values in features(encoder).items():
        np.testing.assert_array_equal(features(reloaded)[field], values)


def test_clip_features_are_cached(clip_preset, tmp_path):
    frame = make_table_frame(tmp_path, num_rows=5)
    text = build_text_encoder(clip_preset, sequence_length=8)
    caches = {
        encoder.modality: extract_features(encoder, frame, cache_root=tmp_path / "cache",
                                           batch_size=2, progress=False)
        for encoder in (text, build_image_encoder(clip_preset))
    }
    assert caches["text"].arrays["tokens"].shape == (5, 8, WIDTH)
    assert caches["image"].arrays["tokens"].shape == (5, NUM_PATCHES, PROJECTION_DIM)
    assert "mask" not in caches["image"].arrays
    expected = text.feature_model.predict_on_batch(text.preprocessor(frame["text"].tolist()))
    np.testing.assert_array_equal(caches["text"].arrays["mask"], expected["mask"])
    np.testing.assert_allclose(caches["text"].arrays["pooled"], expected["pooled"],
                               rtol=2e-3, atol=2e-3)
