import keras
import numpy as np
import pytest
from keras import ops

from amsda_keras.layers.cgf import CGF
from tests.layer_checks import assert_moves, force_gate, run_layer_test

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

BATCH, LENGTH, HIDDEN = 2, 4, 16


def _inputs(seed=0, text_length=LENGTH, image_length=LENGTH):
    rng = np.random.default_rng(seed)
    return {"text": rng.normal(size=(BATCH, text_length, HIDDEN)).astype("float32"),
            "image": rng.normal(size=(BATCH, image_length, HIDDEN)).astype("float32")}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_layer_basics(tmp_path):
    run_layer_test(CGF, init_kwargs={}, input_data=_inputs(),
                   expected_output_shape=(BATCH, LENGTH, HIDDEN),
                   expected_num_trainable_weights=4, tmp_path=tmp_path)


def test_matches_numpy_equation_16():
    data = _inputs()
    layer = CGF()
    layer.build((BATCH, LENGTH, HIDDEN), (BATCH, LENGTH, HIDDEN))
    rng = np.random.default_rng(1)
    layer.set_weights([rng.normal(size=w.shape).astype("float32") for w in layer.weights])
    weights = {w.path.split("/", 1)[1]: ops.convert_to_numpy(w) for w in layer.weights}
    text, image = data["text"], data["image"]
    text_gate = _sigmoid(text @ weights["text_gate/kernel"] + weights["text_gate/bias"])
    image_gate = _sigmoid(image @ weights["image_gate/kernel"] + weights["image_gate/bias"])
    expected = text_gate * image + image_gate * text
    np.testing.assert_allclose(ops.convert_to_numpy(layer(text, image)), expected,
                               atol=1e-5, rtol=1e-5)


def test_unequal_lengths_ask_for_resampling():
    with pytest.raises(ValueError, match="resample"):
        CGF()(**_inputs(text_length=LENGTH, image_length=LENGTH + 1))


def test_unknown_lengths_are_accepted_symbolically():
    outputs = CGF()(keras.Input((None, HIDDEN)), keras.Input((None, HIDDEN)))
    assert outputs.shape == (None, None, HIDDEN)


def test_unequal_widths_are_rejected():
    with pytest.raises(ValueError, match="last dimension"):
        CGF()(keras.Input((LENGTH, HIDDEN)), keras.Input((LENGTH, HIDDEN + 1)))


@pytest.mark.parametrize("gate, passes", [("_text_gate", "image"), ("_image_gate", "text")])
def test_each_gate_lets_the_other_modality_through(gate, passes):
    layer = CGF()
    data = _inputs()
    layer(**data)
    other = next(name for name in ("_text_gate", "_image_gate") if name != gate)
    force_gate(getattr(layer, other), 1e-6)
    outputs = {}
    for value in (0.1, 0.9):
        force_gate(getattr(layer, gate), value)
        outputs[value] = ops.convert_to_numpy(layer(**data))
    # With the other gate shut, the output is this gate times the modality it lets through.
    np.testing.assert_allclose(outputs[0.9], 0.9 * data[passes], atol=1e-4)
    assert_moves(outputs[0.1], outputs[0.9], 0.5, f"CGF output as {gate} opens")
