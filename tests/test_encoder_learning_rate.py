"""`training.encoder_learning_rate`: the encoder weights that train with a head take their own
learning rate (issue 26's "separate encoder / head learning rates")."""

import keras
import numpy as np
import pytest

from amsda_keras import train
from amsda_keras.encoders import build_text_encoder, with_trainable_top
from amsda_keras.models.baseline import build_baseline
from amsda_keras.models.compose import attach_encoder_tops, attach_encoders, encoder_variables
from amsda_keras.training.config import ConfigError, resolve_config
from amsda_keras.training.optimizers import EncoderRateAdam, EncoderRateAdamW, build_optimizer
from amsda_keras.training.run import compile_for_training

pytestmark = pytest.mark.backends


def first_step(optimizer_class, multiplier):
    """The change of a head and an encoder variable after one step on the same gradient."""
    head, encoder = keras.Variable(np.zeros(3)), keras.Variable(np.zeros(3))
    optimizer = optimizer_class(learning_rate=0.1, encoder_rate_multiplier=multiplier)
    optimizer.set_encoder_variables([encoder])
    gradient = keras.ops.ones(3)
    optimizer.apply_gradients([(gradient, head), (gradient, encoder)])
    return keras.ops.convert_to_numpy(head), keras.ops.convert_to_numpy(encoder)


@pytest.mark.parametrize("optimizer_class", [EncoderRateAdam, EncoderRateAdamW])
def test_encoder_variables_step_at_the_multiplied_rate(optimizer_class):
    # Adam's first step moves every weight by about the learning rate, whatever the gradient.
    head, encoder = first_step(optimizer_class, 0.01)
    np.testing.assert_allclose(head, -0.1, rtol=1e-4)
    np.testing.assert_allclose(encoder, -0.001, rtol=1e-4)
    head, encoder = first_step(optimizer_class, 1.0)
    np.testing.assert_allclose(encoder, head)


def test_the_multiplier_round_trips_and_is_validated():
    optimizer = EncoderRateAdamW(learning_rate=0.01, weight_decay=0.1,
                                 encoder_rate_multiplier=0.1)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is EncoderRateAdamW
    assert restored.encoder_rate_multiplier == pytest.approx(0.1)
    assert restored.weight_decay == pytest.approx(0.1)
    for bad in (0, -1.0, True, "0.1"):
        with pytest.raises(ValueError, match="encoder_rate_multiplier"):
            EncoderRateAdam(encoder_rate_multiplier=bad)
    with pytest.raises(ValueError, match="needs encoder weights that train"):
        EncoderRateAdam(encoder_rate_multiplier=0.1).set_encoder_variables([])


def test_encoder_variables_are_the_encoders_not_the_head():
    encoder = build_text_encoder("tiny", sequence_length=8, training_texts=["a b c"])
    split = with_trainable_top(encoder, 1)
    head = build_baseline(num_classes=2, text_dim=16, modality="text", hidden_dim=4)
    assert encoder_variables(head) == []
    on_top = attach_encoder_tops(head, {"text": split})
    assert {id(v) for v in encoder_variables(on_top)} == {
        id(v) for v in split.top.trainable_variables}
    whole = attach_encoders(head, {"text": encoder}, trainable=True)
    assert {id(v) for v in encoder_variables(whole)} == {
        id(v) for v in encoder.feature_model.trainable_variables}
    assert not {id(v) for v in encoder_variables(whole)} & {
        id(v) for v in head.trainable_variables}


def weight_changes_after_fit(encoder_learning_rate):
    """How far `fit` moves the text top's and the head's weights, largest change of each."""
    keras.utils.set_random_seed(0)
    encoder = with_trainable_top(
        build_text_encoder("tiny", sequence_length=8, training_texts=["a b c"]), 1)
    head = build_baseline(num_classes=2, text_dim=16, modality="text", hidden_dim=4)
    model = attach_encoder_tops(head, {"text": encoder})
    settings = resolve_config(overrides={"training.learning_rate": 1e-2,
                                         "training.encoder_learning_rate": encoder_learning_rate,
                                         "encoders.text_trainable_layers": 1})["training"]
    compile_for_training(model, settings)
    assert type(model.optimizer) is EncoderRateAdam
    rng = np.random.default_rng(0)
    inputs = {"text_tokens": rng.normal(size=(8, 8, 16)).astype("float32"),
              "text_mask": np.ones((8, 8), bool)}
    before = [[keras.ops.convert_to_numpy(v) for v in part.trainable_variables]
              for part in (encoder.top, head)]
    model.fit(inputs, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    return [max(float(np.abs(keras.ops.convert_to_numpy(v) - old).max())
                for v, old in zip(part.trainable_variables, weights))
            for part, weights in zip((encoder.top, head), before)]


def test_fit_moves_the_encoder_weights_at_their_own_rate():
    # Two Adam steps move a weight by at most about 2 learning rates.
    slow_top, slow_head = weight_changes_after_fit(1e-7)
    assert slow_top < 3e-7 < 1e-3 < slow_head
    fast_top, fast_head = weight_changes_after_fit(1e-2)
    assert fast_top > 1e-3
    assert fast_head == pytest.approx(slow_head, rel=0.5)
    plain = build_optimizer({**resolve_config()["training"], "encoder_learning_rate": None})
    assert isinstance(plain, keras.optimizers.Adam) and not isinstance(plain, EncoderRateAdam)


def test_an_encoder_rate_without_trained_encoder_weights_is_refused():
    with pytest.raises(ConfigError, match="none do: set `encoders.text_trainable_layers`"):
        resolve_config(overrides={"training.encoder_learning_rate": 1e-5})
    with pytest.raises(ConfigError, match="encoder_learning_rate` must be a number > 0 or null"):
        resolve_config(overrides={"training.encoder_learning_rate": -1e-5,
                                  "encoders.text_trainable_layers": 1})


def test_a_run_with_an_encoder_rate_trains_and_saves_it(tmp_path):
    flags = ["--model", "baseline", "--epochs", "1", "--output", str(tmp_path / "run"),
             "--no-progress", "--no-tensorboard", "--set", "encoders.sequence_length=16",
             "--train-text-layers", "1", "--encoder-learning-rate", "1e-5"]
    train.main(flags)
    config = resolve_config(tmp_path / "run" / "config.yaml")
    assert config["training"]["encoder_learning_rate"] == pytest.approx(1e-5)
    saved = keras.saving.load_model(tmp_path / "run" / "model.keras")
    assert type(saved.optimizer) is EncoderRateAdam
    assert saved.optimizer.encoder_rate_multiplier == pytest.approx(1e-5 / 1e-3)
