import numpy as np
import pytest

from amsda_keras.data.pipeline import (
    balanced_class_weights,
    epoch_variable,
    feature_dataset,
    oversample,
    raw_dataset,
)
from amsda_keras.encoders import build_image_encoder, build_text_encoder
from tests.helpers import make_table_frame, with_rows


def test_balanced_class_weights_and_oversampling():
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    weights = balanced_class_weights(labels, 4)
    np.testing.assert_allclose(weights, [7 / 16, 7 / 4, 7 / 8, 1.0])
    rows = oversample(np.arange(7), labels, seed=0)
    assert np.bincount(labels[rows]).tolist() == [4, 4, 4]
    assert set(rows[:7]) == set(range(7))  # every original row kept once


def test_raw_dataset_tokenizes_and_decodes_in_order(tmp_path):
    frame = make_table_frame(tmp_path, num_rows=5)
    text = build_text_encoder("tiny", sequence_length=6, training_texts=frame["text"])
    image = build_image_encoder("tiny", image_size=32)
    data = raw_dataset(frame, batch_size=2, text_preprocessor=text.preprocessor,
                       image_preprocessor=image.preprocessor)
    batches = list(data.as_numpy_iterator())
    assert [len(labels) for _, labels in batches] == [2, 2, 1]
    inputs, labels = batches[0]
    assert inputs["images"].shape == (2, 32, 32, 3)
    assert inputs["token_ids"].shape == (2, 6)
    np.testing.assert_array_equal(labels, frame["label"][:2])
    np.testing.assert_array_equal(
        inputs["token_ids"], text.preprocessor(frame["text"][:2].tolist())["token_ids"]
    )


def test_raw_dataset_needs_a_preprocessor(tmp_path):
    with pytest.raises(ValueError, match="preprocessor"):
        raw_dataset(make_table_frame(tmp_path, num_rows=2), batch_size=2)


def test_feature_dataset_gathers_the_rows_of_a_subset(tmp_path):
    frame = with_rows(make_table_frame(tmp_path, num_rows=6))
    pooled = np.arange(12, dtype=np.float16).reshape(6, 2)
    mask = np.arange(18).reshape(6, 3) % 2 == 0
    subset = frame.iloc[[4, 1, 5]]
    data = feature_dataset(subset, {"text_pooled": pooled, "text_mask": mask}, batch_size=2,
                           class_weights=np.array([1.0, 2.0, 3.0]))
    (inputs, labels, weights), _ = list(data.as_numpy_iterator())
    np.testing.assert_array_equal(inputs["text_pooled"], pooled[[4, 1]].astype(np.float32))
    assert inputs["text_pooled"].dtype == np.float32 and inputs["text_mask"].dtype == bool
    np.testing.assert_array_equal(inputs["text_mask"], mask[[4, 1]])
    np.testing.assert_array_equal(labels, frame["label"][[4, 1]])
    np.testing.assert_array_equal(weights, [2.0, 2.0])


def test_shuffle_order_depends_on_seed_and_epoch_only(tmp_path):
    frame = with_rows(make_table_frame(tmp_path, num_rows=30, image_size=4))
    features = {"text_pooled": np.arange(30, dtype=np.float32)[:, None]}

    def epoch_orders(seed, epochs):
        epoch = epoch_variable()
        data = feature_dataset(frame, features, batch_size=30, shuffle=True, seed=seed,
                               epoch=epoch, with_labels=False)
        orders = {}
        for number in epochs:
            epoch.assign(number)
            orders[number] = next(iter(data.as_numpy_iterator()))["text_pooled"][:, 0].tolist()
        return orders

    orders = epoch_orders(3, [0, 1])
    assert sorted(orders[0]) == list(range(30)) and orders[0] != orders[1]
    # Known length, so Keras shows progress and needs no `steps_per_epoch`: 30 rows / 7 -> 5.
    batches = feature_dataset(frame, features, batch_size=7, shuffle=True, epoch=epoch_variable())
    assert int(batches.cardinality()) == 5
    # A run resumed at epoch 1 sees epoch 1's order without replaying epoch 0.
    assert epoch_orders(3, [1]) == {1: orders[1]}
    assert epoch_orders(4, [0])[0] != orders[0]


def test_shuffling_without_an_epoch_variable_fails(tmp_path):
    frame = with_rows(make_table_frame(tmp_path, num_rows=4, image_size=4))
    with pytest.raises(ValueError, match="epoch"):
        feature_dataset(frame, {"text_pooled": np.zeros((4, 1), np.float32)}, batch_size=2,
                        shuffle=True)


def test_oversampled_training_stream_is_balanced(tmp_path):
    frame = with_rows(make_table_frame(tmp_path, num_rows=8, num_classes=3, image_size=4))
    frame.loc[frame.index[:5], "label"] = 0
    features = {"text_pooled": np.zeros((8, 1), np.float32)}
    data = feature_dataset(frame, features, batch_size=100, shuffle=True, epoch=epoch_variable(),
                           oversample_classes=True)
    _, labels = next(iter(data.as_numpy_iterator()))
    assert np.bincount(frame["label"]).tolist() == [6, 1, 1]
    assert np.bincount(labels).tolist() == [6, 6, 6]
