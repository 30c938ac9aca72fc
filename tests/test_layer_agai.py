import keras
import numpy as np
import pytest
from keras import ops

from amsda_keras.layers.agai import AGAI, info_nce
from tests.layer_checks import assert_moves, assert_unmoved, force_gate, run_layer_test

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

BATCH, TEXT_LENGTH, IMAGE_LENGTH, HIDDEN, PROJECTION, HEADS = 2, 6, 5, 16, 8, 2
TINY = dict(hidden_dim=HIDDEN, num_heads=HEADS, key_dim=8, gate_hidden_dim=8,
            projection_dim=PROJECTION, dropout=0.1)
OUTPUT_SHAPES = {
    "text_attended": (BATCH, TEXT_LENGTH, HIDDEN),
    "image_attended": (BATCH, IMAGE_LENGTH, HIDDEN),
    "interaction": (BATCH, HIDDEN),
    "text_embedding": (BATCH, PROJECTION),
    "image_embedding": (BATCH, PROJECTION),
    "gate": (BATCH, 1),
}


def _inputs(seed=0, image_mask=False):
    rng = np.random.default_rng(seed)
    text_mask = np.ones((BATCH, TEXT_LENGTH), dtype=bool)
    text_mask[1, -2:] = False
    data = {
        "text": rng.normal(size=(BATCH, TEXT_LENGTH, HIDDEN)).astype("float32"),
        "image": rng.normal(size=(BATCH, IMAGE_LENGTH, HIDDEN)).astype("float32"),
        "text_mask": text_mask,
    }
    if image_mask:
        data["image_mask"] = np.ones((BATCH, IMAGE_LENGTH), dtype=bool)
        data["image_mask"][0, -1:] = False
    return data


def _numpy(outputs):
    return {name: ops.convert_to_numpy(value) for name, value in outputs.items()}


def _built_layer(**kwargs):
    keras.utils.set_random_seed(1)
    layer = AGAI(**{**TINY, **kwargs})
    layer(**_inputs())
    return layer


def test_layer_basics(tmp_path):
    run_layer_test(AGAI, init_kwargs=TINY, input_data=_inputs(image_mask=True),
                   expected_output_shape=OUTPUT_SHAPES, expected_num_trainable_weights=44,
                   tmp_path=tmp_path)


def test_without_contrastive_heads_there_are_no_embeddings(tmp_path):
    shapes = {name: shape for name, shape in OUTPUT_SHAPES.items() if "embedding" not in name}
    run_layer_test(AGAI, init_kwargs={**TINY, "contrastive_heads": False},
                   input_data=_inputs(), expected_output_shape=shapes,
                   expected_num_trainable_weights=44 - 12, tmp_path=tmp_path)


@pytest.mark.parametrize("gate_position, gated", [("output", False), ("query", True)])
def test_without_interaction_head_there_is_no_interaction_feature(gate_position, gated,
                                                                  tmp_path):
    # Gating the outputs acts only on X_c: without it the gate would get no gradient.
    shapes = {name: shape for name, shape in OUTPUT_SHAPES.items()
              if name != "interaction" and (gated or name != "gate")}
    run_layer_test(AGAI, init_kwargs={**TINY, "interaction_head": False,
                                      "gate_position": gate_position},
                   input_data=_inputs(), expected_output_shape=shapes,
                   expected_num_trainable_weights=44 - 4 - 4 * (not gated), tmp_path=tmp_path)


def _with_gate(layer, value, **call):
    force_gate(layer._gate_output, value)
    return _numpy(layer(**_inputs(), training=False, **call))


def test_output_gate_weighs_each_direction_and_shifts_the_interaction_feature():
    layer = _built_layer()
    low, high = _with_gate(layer, 0.27), _with_gate(layer, 0.73)
    np.testing.assert_allclose(low["gate"], 0.27, atol=1e-6)
    # Each direction's contribution is scaled by its weight: theta for text, 1 - theta for image.
    np.testing.assert_allclose(low["text_attended"] * 0.73 / 0.27, high["text_attended"],
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(low["image_attended"] * 0.27 / 0.73, high["image_attended"],
                               rtol=1e-4, atol=1e-5)
    # X_c's joint LayerNorm keeps the ratio: the interaction feature moves by O(1)
    # (the pre-norm gate of earlier versions moved it by < 1e-4).
    assert_moves(low["interaction"], high["interaction"], 0.1, "interaction")
    # The contrastive embeddings read each direction alone through a LayerNorm: unmoved, up
    # to its epsilon (1e-3 beside the variance), which a 0.27 scale makes show at ~1e-3.
    for name in ("text_embedding", "image_embedding"):
        assert_unmoved(low[name], high[name], name, atol=1e-2)


def test_query_gate_sharpens_attention():
    layer = _built_layer(gate_position="query")
    low = _with_gate(layer, 0.05, return_attention_scores=True)
    high = _with_gate(layer, 0.95, return_attention_scores=True)
    for direction in ("text_to_image_attention", "image_to_text_attention"):
        assert_moves(low[direction], high[direction], 0.01, direction)
    assert_moves(low["interaction"], high["interaction"], 0.01, "interaction")


@pytest.mark.parametrize("changed, moved", [("image", "text_attended"),
                                            ("text", "image_attended")])
def test_each_attention_direction_reads_the_other_modality(changed, moved):
    layer = _built_layer()
    data = _inputs()
    before = _numpy(layer(**data, training=False))
    other = dict(data)
    other[changed] = np.random.default_rng(9).normal(size=data[changed].shape).astype("float32")
    after = _numpy(layer(**other, training=False))
    assert_moves(before[moved], after[moved], 0.1, f"{moved} when {changed} changes")


def test_missing_masks_mean_all_tokens_are_real():
    layer = _built_layer()
    data = _inputs()
    without = _numpy(layer(data["text"], data["image"]))
    with_masks = _numpy(layer(data["text"], data["image"],
                              text_mask=np.ones((BATCH, TEXT_LENGTH), bool),
                              image_mask=np.ones((BATCH, IMAGE_LENGTH), bool)))
    for name, value in without.items():
        np.testing.assert_allclose(value, with_masks[name], atol=1e-5, err_msg=name)


def test_variable_lengths_in_a_functional_model():
    inputs = {"text": keras.Input((None, HIDDEN), name="text"),
              "image": keras.Input((None, HIDDEN), name="image"),
              "text_mask": keras.Input((None,), dtype="bool", name="text_mask")}
    outputs = AGAI(**TINY)(**inputs, return_attention_scores=True)
    assert outputs["text_to_image_attention"].shape == (None, HEADS, None, None)
    model = keras.Model(inputs, outputs)
    for text_length, image_length in ((6, 5), (3, 9)):
        data = {"text": np.ones((BATCH, text_length, HIDDEN), "float32"),
                "image": np.ones((BATCH, image_length, HIDDEN), "float32"),
                "text_mask": np.ones((BATCH, text_length), bool)}
        result = model.predict(data, verbose=0)
        assert result["text_attended"].shape == (BATCH, text_length, HIDDEN)
        assert result["image_to_text_attention"].shape == (BATCH, HEADS, image_length,
                                                           text_length)


@pytest.mark.parametrize("modality", ["text", "image"])
def test_padding_never_changes_the_outputs(modality):
    layer = _built_layer()
    data = _inputs(image_mask=True)
    mask_name, length = f"{modality}_mask", data[modality].shape[1]
    reference = _numpy(layer(**data, training=False))
    padded = ~data[mask_name]

    changed = dict(data)
    changed[modality] = data[modality].copy()
    changed[modality][padded] = np.random.default_rng(5).normal(
        scale=50.0, size=changed[modality][padded].shape)
    for name, value in _numpy(layer(**changed, training=False)).items():
        np.testing.assert_allclose(value, reference[name], atol=1e-5, err_msg=name)

    extended = dict(data)
    extra = np.random.default_rng(6).normal(size=(BATCH, 3, HIDDEN)).astype("float32")
    extended[modality] = np.concatenate([data[modality], extra], axis=1)
    extended[mask_name] = np.concatenate([data[mask_name], np.zeros((BATCH, 3), bool)], axis=1)
    result = _numpy(layer(**extended, training=False))
    attended = f"{modality}_attended"
    np.testing.assert_allclose(result[attended][:, :length], reference[attended], atol=1e-5)
    np.testing.assert_array_equal(result[attended][:, length:], 0.0)
    for name in reference:
        if name != attended:
            np.testing.assert_allclose(result[name], reference[name], atol=1e-5, err_msg=name)


def test_gate_and_attention_weights():
    layer = _built_layer()
    data = _inputs()
    outputs = _numpy(layer(**data, training=False, return_attention_scores=True))
    assert np.all(outputs["gate"] > 0.0) and np.all(outputs["gate"] < 1.0)

    text_to_image = outputs["text_to_image_attention"]
    image_to_text = outputs["image_to_text_attention"]
    assert text_to_image.shape == (BATCH, HEADS, TEXT_LENGTH, IMAGE_LENGTH)
    assert image_to_text.shape == (BATCH, HEADS, IMAGE_LENGTH, TEXT_LENGTH)
    np.testing.assert_allclose(text_to_image.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(image_to_text.sum(-1), 1.0, atol=1e-5)
    padded = ~data["text_mask"]
    assert np.all(image_to_text.transpose(0, 3, 1, 2)[padded] == 0.0)
    assert np.all(image_to_text.transpose(0, 3, 1, 2)[~padded] > 0.0)

    # The fused attention path (no scores) must agree with the explicit one.
    plain = _numpy(layer(**data, training=False))
    for name, value in plain.items():
        np.testing.assert_allclose(value, outputs[name], atol=1e-5, err_msg=name)


def test_fully_padded_rows_stay_finite_and_agree_across_attention_paths():
    # dropout=0 without scores takes MultiHeadAttention's fused `dot_product_attention` path.
    layer = _built_layer(dropout=0.0)
    data = _inputs(image_mask=True)
    data["text_mask"][0] = False
    data["image_mask"][1] = False
    fused = _numpy(layer(**data))
    explicit = _numpy(layer(**data, return_attention_scores=True))
    assert all(np.isfinite(value).all() for value in explicit.values())
    for name, value in fused.items():
        np.testing.assert_allclose(value, explicit[name], atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(fused["text_attended"][0], 0.0)
    np.testing.assert_array_equal(fused["image_attended"][1], 0.0)


def test_dropout_is_active_only_in_training():
    layer = _built_layer(dropout=0.5)
    data = _inputs()
    first = _numpy(layer(**data, training=True))["interaction"]
    second = _numpy(layer(**data, training=True))["interaction"]
    assert not np.allclose(first, second)
    np.testing.assert_allclose(_numpy(layer(**data))["interaction"],
                               _numpy(layer(**data, training=False))["interaction"])


def _reference_info_nce(text, image, temperature):
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    image = image / np.linalg.norm(image, axis=1, keepdims=True)
    batch = len(text)
    similarity = np.zeros((batch, batch))
    for i in range(batch):
        for j in range(batch):
            similarity[i, j] = np.dot(text[i], image[j]) / temperature
    losses = np.zeros(batch)
    for i in range(batch):
        row = sum(np.exp(similarity[i, j]) for j in range(batch))
        column = sum(np.exp(similarity[j, i]) for j in range(batch))
        losses[i] = -0.5 * (np.log(np.exp(similarity[i, i]) / row)
                            + np.log(np.exp(similarity[i, i]) / column))
    return losses


TEXT = np.array([[1.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, -1.0, 2.0], [1.0, 1.0, 1.0]])
IMAGE = np.array([[2.0, 0.1, 0.0], [0.0, 1.0, 0.5], [0.3, -0.5, 1.0], [-1.0, 0.2, 0.4]])


@pytest.mark.parametrize("temperature", [1.0, 0.07, 0.01])
def test_info_nce_matches_a_numpy_reference(temperature):
    loss = ops.convert_to_numpy(info_nce(TEXT.astype("float32"), IMAGE.astype("float32"),
                                         temperature))
    assert loss.shape == (4,) and np.isfinite(loss).all()
    np.testing.assert_allclose(loss, _reference_info_nce(TEXT, IMAGE, temperature),
                               rtol=1e-4, atol=1e-4)


def test_info_nce_is_symmetric_and_prefers_aligned_pairs():
    rng = np.random.default_rng(0)
    text = rng.normal(size=(8, 16)).astype("float32")
    image = (text + 0.1 * rng.normal(size=(8, 16))).astype("float32")
    forward = ops.convert_to_numpy(info_nce(text, image, 0.1))
    np.testing.assert_allclose(forward, ops.convert_to_numpy(info_nce(image, text, 0.1)),
                               rtol=1e-5, atol=1e-6)
    shuffled = ops.convert_to_numpy(info_nce(text, image[rng.permutation(8)[::-1]], 0.1))
    assert forward.mean() < shuffled.mean()
    tiny = ops.convert_to_numpy(info_nce(text, image[::-1], 0.01))
    assert np.isfinite(tiny).all() and tiny.max() > 10.0


@pytest.mark.parametrize("temperature", [0.0, -0.1, "0.07", True])
def test_info_nce_rejects_bad_temperatures(temperature):
    with pytest.raises(ValueError, match="temperature"):
        info_nce(TEXT, IMAGE, temperature)


@pytest.mark.parametrize("argument, value", [
    ("hidden_dim", 0), ("num_heads", -1), ("key_dim", 8.0), ("gate_hidden_dim", None),
    ("projection_dim", "8"), ("dropout", 1.0), ("dropout", -0.1),
    ("layer_norm_epsilon", 0.0),
])
def test_constructor_validation_names_the_argument(argument, value):
    with pytest.raises(ValueError, match=argument):
        AGAI(**{**TINY, argument: value})


@pytest.mark.parametrize("name", ["text", "image"])
def test_build_validates_input_widths(name):
    shapes = {"text_shape": (2, 6, HIDDEN), "image_shape": (2, 5, HIDDEN)}
    shapes[f"{name}_shape"] = (2, 6, HIDDEN + 1)
    with pytest.raises(ValueError, match=f"`{name}`"):
        AGAI(**TINY).build(**shapes)


def test_info_nce_rejects_unbatched_embeddings():
    with pytest.raises(ValueError, match="text_embeddings"):
        info_nce(TEXT[0], IMAGE, 0.07)
