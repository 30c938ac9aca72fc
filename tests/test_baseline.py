import keras
import numpy as np
import pytest

from amsda_keras.models.baseline import build_baseline

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch


@pytest.mark.parametrize("modality, inputs", [
    ("text", {"text_pooled": (2, 16)}),
    ("image", {"image_pooled": (2, 8)}),
    ("both", {"text_pooled": (2, 16), "image_pooled": (2, 8)}),
])
def test_shapes_and_inputs_per_modality(modality, inputs):
    model = build_baseline(num_classes=3, text_dim=16, image_dim=8, modality=modality, hidden_dim=4)
    assert sorted(t.name for t in model.inputs) == sorted(inputs)
    data = {name: np.random.rand(*shape).astype("float32") for name, shape in inputs.items()}
    assert model.predict(data, verbose=0).shape == (2, 3)


def test_save_and_reload_give_identical_predictions(tmp_path):
    model = build_baseline(num_classes=2, text_dim=5, image_dim=3, hidden_dim=4)
    data = {"text_pooled": np.random.rand(4, 5), "image_pooled": np.random.rand(4, 3)}
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(data, verbose=0), model.predict(data, verbose=0))


def test_one_training_step_lowers_the_loss():
    keras.utils.set_random_seed(0)
    model = build_baseline(num_classes=2, text_dim=4, modality="text", hidden_dim=8, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = {"text_pooled": np.eye(4, dtype="float32")}
    y = np.array([0, 1, 0, 1])
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=10, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


@pytest.mark.parametrize("kwargs, message", [
    ({"modality": "audio"}, "modality"),
    ({"num_classes": 1}, "num_classes"),
    ({"hidden_dim": 0}, "hidden_dim"),
    ({"dropout": 1.0}, "dropout"),
    ({"image_dim": None}, "image_dim"),
])
def test_invalid_arguments_are_named(kwargs, message):
    arguments = {"num_classes": 3, "text_dim": 4, "image_dim": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_baseline(**arguments)
