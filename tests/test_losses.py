import keras
import numpy as np
import pytest

from amsda_keras.training.losses import WeightedFocalLoss

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch


def _batch(seed=0, batch=16, classes=3):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, classes, batch), (3 * rng.normal(size=(batch, classes))).astype("float32"))


def _reference(labels, logits, alpha, gamma, class_weights):
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    p = probabilities[np.arange(len(labels)), labels]
    return np.mean(-np.asarray(class_weights)[labels] * alpha * (1 - p) ** gamma * np.log(p))


def test_matches_a_numpy_reference():
    labels, logits = _batch()
    class_weights = [0.5, 2.0, 1.25]
    loss = WeightedFocalLoss(alpha=0.27, gamma=1.9, class_weights=class_weights)
    np.testing.assert_allclose(float(loss(labels, logits)),
                               _reference(labels, logits, 0.27, 1.9, class_weights), rtol=1e-5)


def test_gamma_zero_alpha_one_is_weighted_cross_entropy():
    labels, logits = _batch(seed=1)
    class_weights = np.array([0.5, 2.0, 1.25], "float32")
    focal = WeightedFocalLoss(alpha=1.0, gamma=0.0, class_weights=class_weights.tolist())
    cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(
        float(focal(labels, logits)),
        float(cross_entropy(labels, logits, sample_weight=class_weights[labels])), rtol=1e-5)


def test_probabilities_input_and_config_round_trip():
    labels, logits = _batch(seed=2)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    loss = WeightedFocalLoss(from_logits=False)
    copy = WeightedFocalLoss.from_config(loss.get_config())
    assert copy.get_config() == loss.get_config()
    np.testing.assert_allclose(float(copy(labels, probabilities)),
                               _reference(labels, logits, 0.27, 1.9, [1, 1, 1]), rtol=1e-4)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": 0}, "`alpha`"), ({"gamma": -1}, "`gamma`"), ({"class_weights": [1, -1]}, "class_weights"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WeightedFocalLoss(**kwargs)
