import numpy as np
import pytest

from amsda_keras.encoders import build_image_encoder, build_text_encoder, with_trainable_top
from amsda_keras.models.baseline import build_baseline
from amsda_keras.models.compose import (attach_encoder_tops, attach_encoders,
                                        feature_input_names)
from amsda_keras.models.mahfnet import build_mahfnet
from amsda_keras.inference import logits_of
from amsda_keras.training.inputs import batches_for
from tests.helpers import make_table_frame, with_rows


HEADS = {
    "baseline": lambda: build_baseline(num_classes=3, text_dim=16, image_dim=16, hidden_dim=8),
    "mahfnet": lambda: build_mahfnet(num_classes=3, text_dim=16, image_dim=16, hidden_dim=16,
                                     num_heads=2, key_dim=8, intermediate_dim=8, common_length=4),
}


def tiny_encoders(frame):
    return {
        "text": build_text_encoder("tiny", sequence_length=8, training_texts=frame["text"]),
        "image": build_image_encoder("tiny", image_size=32),
    }


def predicted_logits(model, encoders, frame, cache_dir):
    """`model`'s logits on `frame`, through the batches `train` would give it."""
    feature_config = {"cache_dir": cache_dir, "batch_size": 4}
    batches = batches_for(model, encoders, frame, feature_config, progress=False)
    return logits_of(model.predict(batches(frame, batch_size=4, with_labels=False), verbose=0))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_composed_model_matches_the_cached_feature_path(name, tmp_path):
    frame = with_rows(make_table_frame(tmp_path, num_rows=6))
    encoders = tiny_encoders(frame)
    head = HEADS[name]()
    cached = predicted_logits(head, encoders, frame, tmp_path / "cache")

    model = attach_encoders(head, encoders, trainable=False)
    assert feature_input_names(model) is None
    assert not encoders["text"].backbone.trainable
    composed = predicted_logits(model, encoders, frame, tmp_path / "cache")
    # The cache stores float16 features.
    np.testing.assert_allclose(composed, cached, atol=2e-3)


def test_a_head_on_a_text_top_reads_the_features_below_it_like_the_whole_encoder(tmp_path):
    frame = with_rows(make_table_frame(tmp_path, num_rows=6))
    whole = tiny_encoders(frame)
    split = {**whole, "text": with_trainable_top(whole["text"], 1)}
    # MAHFNet reads the top's tokens with the mask; its pooled output is checked in
    # test_encoders.py.
    head = HEADS["mahfnet"]()
    model = attach_encoder_tops(head, split)
    expected = predicted_logits(head, whole, frame, tmp_path / "cache")
    np.testing.assert_allclose(
        predicted_logits(model, split, frame, tmp_path / "cache"), expected, atol=2e-3)
    raw = attach_encoders(model, split, trainable=False)
    np.testing.assert_allclose(
        predicted_logits(raw, split, frame, tmp_path / "cache"), expected, atol=2e-3)
    assert sorted(t.name for t in model.inputs) == sorted(
        {"text_tokens", "text_mask", *feature_input_names(head)} - {"text_pooled"})
    top_weights = {id(w) for w in split["text"].top.trainable_weights}
    assert top_weights <= {id(w) for w in model.trainable_weights}
    assert attach_encoder_tops(head, whole) is head


def test_text_only_head_uses_only_the_text_encoder(tmp_path):
    encoder = build_text_encoder("tiny", sequence_length=8, training_texts=["a b"])
    head = build_baseline(num_classes=2, text_dim=16, modality="text", hidden_dim=4)
    model = attach_encoders(head, {"text": encoder})
    assert sorted(t.name for t in model.inputs) == ["padding_mask", "segment_ids", "token_ids"]
    assert encoder.backbone.trainable


def test_head_on_raw_inputs_is_refused():
    encoder = build_image_encoder("tiny", image_size=32)
    with pytest.raises(ValueError, match="encoder features"):
        attach_encoders(encoder.feature_model, {"image": encoder})
