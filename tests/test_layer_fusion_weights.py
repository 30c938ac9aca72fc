import keras
import numpy as np
import pytest
from keras import ops

from amsda_keras.layers.fusion_weights import FusionWeights
from tests.layer_checks import assert_moves

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

BRANCHES = ["text", "image", "fusion"]


def _logits(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(4, 3)).astype("float32") for _ in BRANCHES]


@pytest.mark.parametrize("normalization", ["softmax", "sum"])
def test_weights_start_equal_stay_positive_and_sum_to_one(normalization):
    layer = FusionWeights(BRANCHES, normalization=normalization)
    logits = _logits()
    np.testing.assert_allclose(ops.convert_to_numpy(layer(logits)), sum(logits) / 3, atol=1e-6)

    inputs = [keras.Input((3,)) for _ in BRANCHES]
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(5.0), loss="mse")
    model.fit(logits, np.zeros((4, 3)), epochs=5, verbose=0)
    weights = ops.convert_to_numpy(layer.normalized_weights())
    assert not np.allclose(weights, 1 / 3)  # the mix receives gradients
    assert (weights > 0).all()
    np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-6)
    expected = sum(w * x for w, x in zip(weights, logits))
    np.testing.assert_allclose(ops.convert_to_numpy(layer(logits)), expected, atol=1e-5)


def test_config_round_trip_and_save(tmp_path):
    layer = FusionWeights(BRANCHES, normalization="sum", name="mix")
    layer(_logits())
    layer.raw_weights.assign([1.0, 2.0, 5.0])
    copy = FusionWeights.from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()

    inputs = [keras.Input((3,)) for _ in BRANCHES]
    model = keras.Model(inputs, FusionWeights(BRANCHES, normalization="sum", name="mix")(inputs))
    model.get_layer("mix").raw_weights.assign([1.0, 2.0, 5.0])
    model.save(tmp_path / "mix.keras")
    reloaded = keras.saving.load_model(tmp_path / "mix.keras")
    np.testing.assert_allclose(ops.convert_to_numpy(reloaded.get_layer("mix").normalized_weights()),
                               [1 / 8, 2 / 8, 5 / 8], atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"branch_names": ["text"]}, "at least 2 distinct"),
    ({"branch_names": ["text", "text"]}, "at least 2 distinct"),
    ({"branch_names": BRANCHES, "normalization": "l1"}, "`normalization`"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusionWeights(**kwargs)


def test_wrong_number_of_inputs_is_refused():
    with pytest.raises(ValueError, match="Expected 3 logits tensors"):
        FusionWeights(BRANCHES)(_logits()[:2])


def test_moving_a_weight_moves_the_mix_towards_its_branch():
    layer = FusionWeights(BRANCHES)
    logits = _logits()
    equal = ops.convert_to_numpy(layer(logits))
    layer.raw_weights.assign([12.0, 0.0, 0.0])  # softmax: nearly all weight on text
    text_heavy = ops.convert_to_numpy(layer(logits))
    assert_moves(equal, text_heavy, 0.1, "the mixed logits")
    np.testing.assert_allclose(text_heavy, logits[0], atol=1e-4)
