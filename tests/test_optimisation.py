"""The generalisation switches of `training` (issue 26): AdamW's weight decay, label smoothing,
warm-up, cosine decay, an EMA of the weights, and the heads' input dropout. Each is off by default
and changes what it names when on."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from amsda_keras import train
from amsda_keras.models import MODEL_BUILDERS
from amsda_keras.training.config import ConfigError, resolve_config
from amsda_keras.training.losses import SmoothedSparseCrossentropy
from amsda_keras.training.run import compile_for_training, epoch_learning_rate


def test_label_smoothing_moves_the_targets_towards_uniform():
    labels = np.array([0, 2])
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype="float32")
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(SmoothedSparseCrossentropy(0.0)(labels, logits)) == pytest.approx(
        float(plain), rel=1e-5)
    targets = np.full((2, 3), 0.3 / 3) + 0.7 * np.eye(3)[labels]
    expected = -(targets * log_probs).sum(axis=1).mean()
    assert float(SmoothedSparseCrossentropy(0.3)(labels, logits)) == pytest.approx(expected,
                                                                                   rel=1e-5)
    restored = SmoothedSparseCrossentropy.from_config(SmoothedSparseCrossentropy(0.3).get_config())
    assert restored.label_smoothing == 0.3
    with pytest.raises(ValueError, match="label_smoothing"):
        SmoothedSparseCrossentropy(1.5)


def test_warm_up_and_cosine_decay_per_epoch():
    settings = resolve_config(overrides={"training.learning_rate": 1.0, "training.epochs": 6,
                                         "training.warmup_epochs": 2,
                                         "training.cosine_decay": True})["training"]
    rates = [epoch_learning_rate(settings)(epoch) for epoch in range(6)]
    assert rates[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert rates[2:] == pytest.approx([0.5 * (1 + np.cos(np.pi * k / 4)) for k in range(4)])
    step = resolve_config(overrides={"training.learning_rate": 1.0, "training.lr_step_epochs": 2,
                                     "training.lr_step_gamma": 0.5})["training"]
    assert [epoch_learning_rate(step)(epoch) for epoch in range(5)] == [1, 1, 0.5, 0.5, 0.25]


def test_weight_decay_takes_adamw_and_smoothing_the_smoothed_loss():
    model = MODEL_BUILDERS["baseline"](num_classes=3, text_dim=8, image_dim=8, hidden_dim=8)
    settings = resolve_config(overrides={"training.weight_decay": 0.01,
                                         "training.label_smoothing": 0.1})["training"]
    compile_for_training(model, settings)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == pytest.approx(0.01)
    assert isinstance(model.loss, SmoothedSparseCrossentropy)
    compile_for_training(model, resolve_config()["training"])
    assert type(model.optimizer) is keras.optimizers.Adam


def test_settings_that_contradict_each_other_are_refused():
    with pytest.raises(ConfigError, match="label_smoothing` smooths the cross-entropy"):
        resolve_config(overrides={"training.label_smoothing": 0.1, "training.loss": "focal"})
    with pytest.raises(ConfigError, match="warmup_epochs` must be fewer"):
        resolve_config(overrides={"training.warmup_epochs": 3, "training.epochs": 3})
    with pytest.raises(ConfigError, match="weight_decay` must be a number >= 0"):
        resolve_config(overrides={"training.weight_decay": -1.0})


def test_a_run_logs_the_scheduled_learning_rate(tmp_path):
    train.main(["--model", "baseline", "--epochs", "4", "--output", str(tmp_path / "run"),
                "--no-progress", "--no-tensorboard", "--set", "encoders.sequence_length=16",
                "--set", "training.warmup_epochs=1", "--set", "training.cosine_decay=true",
                "--set", "training.weight_decay=0.01", "--set", "training.label_smoothing=0.1"])
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    settings = resolve_config(tmp_path / "run" / "config.yaml")["training"]
    np.testing.assert_allclose(history["learning_rate"],
                               [epoch_learning_rate(settings)(epoch) for epoch in range(4)],
                               rtol=1e-5)


def test_ema_scores_and_keeps_the_averaged_weights(tmp_path):
    flags = ["--model", "baseline", "--epochs", "3", "--no-progress", "--no-tensorboard",
             "--set", "encoders.sequence_length=16"]
    train.main([*flags, "--output", str(tmp_path / "plain")])
    train.main([*flags, "--output", str(tmp_path / "ema"), "--set", "training.ema=true",
                "--set", "training.ema_momentum=0.9"])
    plain, ema = (pd.read_csv(tmp_path / name / "history.csv") for name in ("plain", "ema"))
    # The training steps are the same; the selection split sees the averaged weights.
    np.testing.assert_allclose(ema["loss"], plain["loss"], rtol=1e-5)
    assert not np.allclose(ema["val_loss"], plain["val_loss"])
    # The kept model.keras holds the averaged weights: it scores what validation saw.
    metrics = json.loads((tmp_path / "ema" / "metrics.json").read_text())
    assert metrics["dev"]["accuracy"] == pytest.approx(ema["val_accuracy"].max())
    assert metrics["dev"]["role"] == "selection"


@pytest.mark.parametrize("name", ["mahfnet", "amsda"])
def test_input_dropout_drops_features_in_training_only(name):
    # The heads' own dropout off, so that only the input dropout is random.
    sizes = ({"hidden_dim": 16, "intermediate_dim": 16, "num_heads": 2, "key_dim": 8,
              "common_length": 4, "dropout": 0.0} if name == "mahfnet"
             else {"image_projection_dim": 16, "text_hidden_dims": (8,),
                   "image_hidden_dims": (8,), "fusion_hidden_dims": (8,), "dropout": 0.0,
                   "text_dropout": 0.0})
    def logits(model, training):
        inputs = {tensor.name: (np.ones((2, 5), bool) if tensor.dtype == "bool"
                                else np.random.default_rng(0).normal(
                                    size=(2, *([5] * (len(tensor.shape) - 2)), 8))
                                .astype("float32"))
                  for tensor in model.inputs}
        outputs = model(inputs, training=training)
        return keras.ops.convert_to_numpy(outputs["logits"] if isinstance(outputs, dict)
                                          else outputs)

    plain = MODEL_BUILDERS[name](num_classes=3, text_dim=8, image_dim=8, **sizes)
    assert not [layer for layer in plain.layers if "input_dropout" in layer.name]
    np.testing.assert_allclose(logits(plain, True), logits(plain, True), rtol=1e-5)
    model = MODEL_BUILDERS[name](num_classes=3, text_dim=8, image_dim=8, input_dropout=0.5,
                                 **sizes)
    np.testing.assert_allclose(logits(model, False), logits(model, False))
    assert not np.allclose(logits(model, True), logits(model, True))
    with pytest.raises(ValueError, match="input_dropout"):
        MODEL_BUILDERS[name](num_classes=3, text_dim=8, image_dim=8, input_dropout=1.5, **sizes)
