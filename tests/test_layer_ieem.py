import keras
import numpy as np
import pytest
from keras import ops

from amsda_keras.layers.ieem import IEEM
from tests.layer_checks import padded_tokens, padding_variants, run_layer_test

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

BATCH, LENGTH, HIDDEN = 2, 6, 16
TINY = dict(num_layers=2, num_heads=2, intermediate_dim=8, dropout=0.1)


def _inputs(seed=0):
    tokens, padding_mask = padded_tokens(np.random.default_rng(seed), BATCH, LENGTH, HIDDEN)
    return {"inputs": tokens, "padding_mask": padding_mask}


def test_layer_basics(tmp_path):
    # Per encoder layer: attention 8, two layer norms 4, feed-forward 4.
    run_layer_test(IEEM, init_kwargs=TINY, input_data=_inputs(),
                   expected_output_shape=(BATCH, LENGTH, HIDDEN),
                   expected_num_trainable_weights=32, tmp_path=tmp_path)


def test_without_padding_mask():
    outputs = IEEM(**TINY)(_inputs()["inputs"])
    assert tuple(outputs.shape) == (BATCH, LENGTH, HIDDEN)


def test_padding_never_changes_real_positions():
    keras.utils.set_random_seed(0)
    layer = IEEM(**TINY)
    data = _inputs()
    mask = data["padding_mask"]
    reference = ops.convert_to_numpy(layer(**data, training=False))

    for tokens, padding_mask in padding_variants(data["inputs"], mask):
        outputs = ops.convert_to_numpy(layer(tokens, padding_mask=padding_mask, training=False))
        np.testing.assert_allclose(outputs[:, :LENGTH][mask], reference[mask], atol=1e-5)


def test_width_must_divide_by_num_heads():
    with pytest.raises(ValueError, match="num_heads"):
        IEEM(num_heads=3, intermediate_dim=8)(np.zeros((BATCH, LENGTH, HIDDEN), "float32"))


@pytest.mark.parametrize("name, value", [
    ("num_layers", 0), ("num_heads", -1), ("intermediate_dim", 2.5), ("num_layers", True),
    ("dropout", 1.0), ("dropout", -0.1), ("layer_norm_epsilon", 0.0),
])
def test_invalid_arguments_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        IEEM(**{**TINY, name: value})
