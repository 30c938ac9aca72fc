import keras
import numpy as np
import pytest

from amsda_keras.layers.fusion_weights import FusionWeights
from amsda_keras.models.amsda import build_amsda
from tests.layer_checks import assert_moves, assert_unmoved, padded_tokens, padding_variants

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

TINY = dict(image_projection_dim=16, num_heads=2, key_dim=4, text_hidden_dims=(8,),
            image_hidden_dims=(16, 8), fusion_hidden_dims=(8,))


def _inputs(batch=4, text_length=6, seed=0):
    rng = np.random.default_rng(seed)
    tokens, mask = padded_tokens(rng, batch, text_length, 12)
    grid = rng.normal(size=(batch, 9, 10)).astype("float32")
    return {
        "text_tokens": tokens,
        "text_mask": mask,
        "image_pooled": grid.mean(axis=1),
        "image_tokens": grid,
    }


def _predict(model, data):
    names = {tensor.name for tensor in model.inputs}
    return model.predict({name: value for name, value in data.items() if name in names},
                         verbose=0)


def _model(**kwargs):
    return build_amsda(num_classes=3, text_dim=12, image_dim=10, **TINY, **kwargs)


@pytest.mark.parametrize("fusion_image_tokens", ["pooled", "grid"])
def test_logits_shape_and_padding_invariance(fusion_image_tokens):
    model = _model(fusion_image_tokens=fusion_image_tokens)
    data = _inputs()
    logits = _predict(model, data)
    assert logits.shape == (4, 3) and np.isfinite(logits).all()
    for tokens, mask in padding_variants(data["text_tokens"], data["text_mask"]):
        padded = _predict(model, {**data, "text_tokens": tokens, "text_mask": mask})
        np.testing.assert_allclose(padded, logits, atol=1e-5)


def _cross_attention_outputs(model):
    pools = ("text_to_image_pool", "image_to_text_pool")
    return keras.Model(model.inputs, [model.get_layer(name).output for name in pools])


@pytest.mark.parametrize("fusion_image_tokens, text_to_image_reads_text", [
    ("pooled", False), ("grid", True)])
def test_text_to_image_attention_reads_the_text_only_over_image_regions(
        fusion_image_tokens, text_to_image_reads_text):
    model = _model(fusion_image_tokens=fusion_image_tokens)
    attention = _cross_attention_outputs(model)
    data = _inputs()
    before = _predict(attention, data)
    other_text = {**data, "text_tokens": np.random.default_rng(3).normal(
        size=data["text_tokens"].shape).astype("float32")}
    after = _predict(attention, other_text)
    # One pooled image token is the only key: a softmax over one key is 1, so the text
    # queries change nothing (the paper's literal shapes). Over 9 regions they do.
    if text_to_image_reads_text:
        assert_moves(before[0], after[0], 0.01, "text->image output")
    else:
        assert_unmoved(before[0], after[0], "text->image output")
    assert_moves(before[1], after[1], 0.01, "image->text output")
    other_image = {**data, "image_tokens": data["image_tokens"][::-1],
                   "image_pooled": data["image_pooled"][::-1]}
    moved = _predict(attention, other_image)
    assert_moves(before[0], moved[0], 0.01, "text->image output")


def test_logits_are_the_weighted_sum_of_the_branch_logits():
    model = _model()
    data = _inputs()
    branches = keras.Model(model.inputs, [model.get_layer(f"{name}_logits").output
                                          for name in ("text", "image", "fusion")])
    weights = keras.ops.convert_to_numpy(model.get_layer("fusion_weights").normalized_weights())
    expected = sum(w * b for w, b in zip(weights, _predict(branches, data)))
    np.testing.assert_allclose(_predict(model, data), expected, atol=1e-5)


@pytest.mark.parametrize("ablate, inputs, removed, kept", [
    (["image", "fusion"], {"text_tokens", "text_mask"}, "image_projection", "text_logits"),
    (["text", "fusion"], {"image_pooled"}, "text_self_attention", "image_logits"),
    (["fusion"], {"text_tokens", "text_mask", "image_pooled"}, "fusion_logits", "image_norm"),
    (["cross_attention"], {"text_tokens", "text_mask", "image_pooled"},
     "text_to_image_attention", "fusion_logits"),
    (["self_attention"], {"text_tokens", "text_mask", "image_pooled"}, "image_self_attention",
     "image_norm"),
])
def test_ablations_remove_their_part_and_only_it(ablate, inputs, removed, kept):
    model = _model(ablate=ablate)
    assert {tensor.name for tensor in model.inputs} == inputs
    names = [layer.name for layer in model.layers]
    assert removed not in names and kept in names
    assert _predict(model, _inputs()).shape == (4, 3)


def test_grid_fusion_reads_the_image_tokens_through_the_shared_projection():
    model = _model(fusion_image_tokens="grid")
    assert {tensor.name for tensor in model.inputs} == {"text_tokens", "text_mask",
                                                        "image_pooled", "image_tokens"}
    full = _model()
    # The same layers and weights as the pooled model: only what the fusion branch reads differs.
    assert len(model.weights) == len(full.weights)
    only_fusion = _model(fusion_image_tokens="grid", ablate=["image"])
    assert "image_pooled" not in {tensor.name for tensor in only_fusion.inputs}


def test_fixed_equal_weights_ablation_freezes_the_weights():
    layer = _model(ablate=["fusion_weights"]).get_layer("fusion_weights")
    assert isinstance(layer, FusionWeights) and not layer.trainable_weights
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.normalized_weights()), [1 / 3] * 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"ablate": ["text", "image", "fusion"]}, "at least one of the branches"),
    ({"ablate": ["gate"]}, "`ablate` takes names"),
    ({"dropout": 1.0}, "`dropout`"),
    ({"num_heads": 0}, "`num_heads`"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_amsda(num_classes=3, text_dim=12, image_dim=10, **kwargs)


def test_training_moves_the_fusion_weights_and_reload_gives_identical_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    model = _model()
    data = _inputs(batch=8)
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    data = {name: data[name] for name in ("text_tokens", "text_mask", "image_pooled")}
    model.fit(data, np.arange(8) % 3, batch_size=8, epochs=3, verbose=0)
    weights = keras.ops.convert_to_numpy(model.get_layer("fusion_weights").normalized_weights())
    assert not np.allclose(weights, 1 / 3)  # they receive gradients
    assert (weights > 0).all() and np.isclose(weights.sum(), 1.0)

    model.save(tmp_path / "amsda.keras")
    reloaded = keras.saving.load_model(tmp_path / "amsda.keras")
    np.testing.assert_array_equal(reloaded.predict(data, verbose=0), model.predict(data, verbose=0))
