import keras
import numpy as np
import pytest
from keras import ops

from amsda_keras.layers.token_resampler import TokenResampler
from tests.layer_checks import padded_tokens, padding_variants, run_layer_test

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

BATCH, LENGTH, HIDDEN, NUM_TOKENS = 2, 6, 16, 4
TINY = dict(num_tokens=NUM_TOKENS, num_heads=2, key_dim=8, dropout=0.1)


def _inputs(seed=0):
    tokens, padding_mask = padded_tokens(np.random.default_rng(seed), BATCH, LENGTH, HIDDEN)
    return {"inputs": tokens, "padding_mask": padding_mask}


@pytest.mark.parametrize("with_mask", [True, False])
def test_layer_basics(with_mask, tmp_path):
    data = _inputs() if with_mask else {"inputs": _inputs()["inputs"]}
    # Queries 1, layer norm 2, attention 8.
    run_layer_test(TokenResampler, init_kwargs=TINY, input_data=data,
                   expected_output_shape=(BATCH, NUM_TOKENS, HIDDEN),
                   expected_num_trainable_weights=11, tmp_path=tmp_path)


def test_variable_input_length_in_a_functional_model():
    inputs = keras.Input((None, HIDDEN))
    outputs = TokenResampler(**TINY)(inputs, padding_mask=keras.Input((None,), dtype="bool"))
    assert outputs.shape == (None, NUM_TOKENS, HIDDEN)


def test_padding_never_changes_the_resampled_tokens():
    keras.utils.set_random_seed(0)
    layer = TokenResampler(**TINY)
    data = _inputs()
    mask = data["padding_mask"]
    reference = ops.convert_to_numpy(layer(**data, training=False))

    for tokens, padding_mask in padding_variants(data["inputs"], mask):
        outputs = layer(tokens, padding_mask=padding_mask, training=False)
        np.testing.assert_allclose(ops.convert_to_numpy(outputs), reference, atol=1e-5)

    # The unpadded sample does not depend on its mask being passed.
    unmasked = layer(data["inputs"], training=False)
    np.testing.assert_allclose(ops.convert_to_numpy(unmasked)[1], reference[1], atol=1e-5)


@pytest.mark.parametrize("name, value", [
    ("num_tokens", 0), ("num_heads", 1.5), ("key_dim", -8), ("num_tokens", None),
    ("dropout", 1.0), ("dropout", -0.5), ("layer_norm_epsilon", -1e-5),
])
def test_invalid_arguments_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        TokenResampler(**{**TINY, name: value})
