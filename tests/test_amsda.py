import keras
import numpy as np
import pytest

from amsda_keras.layers.fusion_weights import FusionWeights
from amsda_keras.models.amsda import build_amsda
from tests.layer_checks import padded_tokens, padding_variants

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

TINY = dict(image_projection_dim=16, num_heads=2, key_dim=4, text_hidden_dims=(8,),
            image_hidden_dims=(16, 8), fusion_hidden_dims=(8,))


def _inputs(batch=4, text_length=6, seed=0):
    rng = np.random.default_rng(seed)
    tokens, mask = padded_tokens(rng, batch, text_length, 12)
    return {
        "text_tokens": tokens,
        "text_mask": mask,
        "image_pooled": rng.normal(size=(batch, 10)).astype("float32"),
    }


def _model(**kwargs):
    return build_amsda(num_classes=3, text_dim=12, image_dim=10, **TINY, **kwargs)


def test_logits_shape_and_padding_invariance():
    model = _model()
    data = _inputs()
    logits = model.predict(data, verbose=0)
    assert logits.shape == (4, 3) and np.isfinite(logits).all()
    for tokens, mask in padding_variants(data["text_tokens"], data["text_mask"]):
        padded = model.predict({**data, "text_tokens": tokens, "text_mask": mask}, verbose=0)
        np.testing.assert_allclose(padded, logits, atol=1e-5)


def test_logits_are_the_weighted_sum_of_the_branch_logits():
    model = _model()
    data = _inputs()
    branches = keras.Model(model.inputs, [model.get_layer(f"{name}_logits").output
                                          for name in ("text", "image", "fusion")])
    weights = keras.ops.convert_to_numpy(model.get_layer("fusion_weights").normalized_weights())
    expected = sum(w * b for w, b in zip(weights, branches.predict(data, verbose=0)))
    np.testing.assert_allclose(model.predict(data, verbose=0), expected, atol=1e-5)


@pytest.mark.parametrize("ablate, inputs, removed", [
    (["image", "fusion"], {"text_tokens", "text_mask"}, "image_projection"),
    (["text", "fusion"], {"image_pooled"}, "text_self_attention"),
    (["fusion"], {"text_tokens", "text_mask", "image_pooled"}, "text_to_image_attention"),
    (["self_attention"], {"text_tokens", "text_mask", "image_pooled"}, "image_self_attention"),
])
def test_ablations_remove_their_part(ablate, inputs, removed):
    model = _model(ablate=ablate)
    assert {tensor.name for tensor in model.inputs} == inputs
    assert removed not in [layer.name for layer in model.layers]
    data = {name: value for name, value in _inputs().items() if name in inputs}
    assert model.predict(data, verbose=0).shape == (4, 3)


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
    model.fit(data, np.arange(8) % 3, batch_size=8, epochs=3, verbose=0)
    weights = keras.ops.convert_to_numpy(model.get_layer("fusion_weights").normalized_weights())
    assert not np.allclose(weights, 1 / 3)  # they receive gradients
    assert (weights > 0).all() and np.isclose(weights.sum(), 1.0)

    model.save(tmp_path / "amsda.keras")
    reloaded = keras.saving.load_model(tmp_path / "amsda.keras")
    np.testing.assert_array_equal(reloaded.predict(data, verbose=0), model.predict(data, verbose=0))
