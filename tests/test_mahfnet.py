import keras
import numpy as np
import pytest

from amsda_keras.models.mahfnet import ABLATIONS, build_mahfnet
from tests.layer_checks import assert_moves, force_gate, padded_tokens, padding_variants

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

TINY = dict(hidden_dim=16, num_heads=2, key_dim=8, intermediate_dim=8, common_length=4)


def _inputs(batch=2, text_length=6, image_length=5, seed=0):
    rng = np.random.default_rng(seed)
    tokens, mask = padded_tokens(rng, batch, text_length, 12)
    return {
        "text_tokens": tokens,
        "text_mask": mask,
        "image_tokens": rng.normal(size=(batch, image_length, 10)).astype("float32"),
    }


@pytest.mark.parametrize("alignment", ["resample", "pooled"])
def test_outputs_and_padding_invariance(alignment):
    model = build_mahfnet(num_classes=3, text_dim=12, image_dim=10, alignment=alignment, **TINY)
    data = _inputs()
    outputs = model.predict(data, verbose=0)
    assert outputs["logits"].shape == (2, 3) and outputs["contrastive"].shape == (2,)
    assert np.isfinite(outputs["contrastive"]).all()

    for tokens, mask in padding_variants(data["text_tokens"], data["text_mask"]):
        padded = {**data, "text_tokens": tokens, "text_mask": mask}
        for name, value in model.predict(padded, verbose=0).items():
            np.testing.assert_allclose(value, outputs[name], atol=1e-4, err_msg=name)


@pytest.mark.parametrize("gate_position", ["output", "query"])
def test_agai_gate_moves_the_logits(gate_position):
    model = build_mahfnet(num_classes=3, text_dim=12, image_dim=10,
                          gate_position=gate_position, **TINY)
    data = _inputs()
    logits = {}
    for theta in (0.1, 0.9):
        force_gate(model.get_layer("agai")._gate_output, theta)
        logits[theta] = model.predict(data, verbose=0)["logits"]
    assert_moves(logits[0.1], logits[0.9], 0.01, "logits")


def test_save_and_reload_give_identical_outputs(tmp_path):
    model = build_mahfnet(num_classes=2, text_dim=12, image_dim=10, **TINY)
    data = _inputs()
    model.save(tmp_path / "mahfnet.keras")
    reloaded = keras.saving.load_model(tmp_path / "mahfnet.keras")
    expected, actual = model.predict(data, verbose=0), reloaded.predict(data, verbose=0)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], atol=1e-6)


def test_invalid_alignment_is_named():
    with pytest.raises(ValueError, match="alignment"):
        build_mahfnet(num_classes=3, text_dim=4, image_dim=4, alignment="truncate")


# Blocks each ablation must remove (by layer name) and whether the contrastive output stays.
ABLATED_LAYERS = {
    ("mag",): ({"mag", "residual"}, True),
    ("cgf",): ({"cgf"}, True),
    ("hgfm",): ({"cgf", "mag", "text_resampler", "image_resampler"}, True),
    ("hgfm", "ieem"): ({"cgf", "mag", "text_ieem", "image_ieem"}, True),
    ("hgfm", "ieem", "agai"): ({"cgf", "mag", "text_ieem", "agai"}, False),
    ("agai",): ({"agai"}, False),
    ("contrastive",): (set(), False),
}


@pytest.mark.parametrize("ablate", sorted(ABLATED_LAYERS), ids="-".join)
def test_ablations_remove_their_blocks_and_keep_padding_invariance(ablate):
    removed, with_contrastive = ABLATED_LAYERS[ablate]
    full = build_mahfnet(num_classes=3, text_dim=12, image_dim=10, **TINY)
    model = build_mahfnet(num_classes=3, text_dim=12, image_dim=10, ablate=list(ablate), **TINY)
    names = {layer.name for layer in model.layers}
    assert removed <= {layer.name for layer in full.layers} and not removed & names
    assert model.count_params() < full.count_params()
    data = _inputs()
    outputs = model.predict(data, verbose=0)
    assert sorted(outputs) == (["contrastive", "logits"] if with_contrastive else ["logits"])
    for tokens, mask in padding_variants(data["text_tokens"], data["text_mask"]):
        padded = model.predict({**data, "text_tokens": tokens, "text_mask": mask}, verbose=0)
        np.testing.assert_allclose(padded["logits"], outputs["logits"], atol=1e-4)


def test_without_mag_no_weight_is_left_unused():
    # X_c only feeds MAG, so -(MAG) must not build the interaction head (no gradient would reach it).
    model = build_mahfnet(num_classes=3, text_dim=12, image_dim=10, ablate=["mag"], **TINY)
    assert not [weight.path for weight in model.weights if "interaction" in weight.path]
    full = build_mahfnet(num_classes=3, text_dim=12, image_dim=10, **TINY)
    assert [weight.path for weight in full.weights if "interaction" in weight.path]


def test_unknown_ablation_is_named():
    with pytest.raises(ValueError, match="`ablate` takes names from"):
        build_mahfnet(num_classes=3, text_dim=4, image_dim=4, ablate=["attention"])
    assert "agai" in ABLATIONS
