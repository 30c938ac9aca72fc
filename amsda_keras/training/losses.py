"""Losses that `train` compiles models with."""

import keras
from keras import ops

from amsda_keras.layers.arguments import check_positive


@keras.saving.register_keras_serializable(package="amsda_keras")
class OutputMean(keras.losses.Loss):
    """The batch mean of a model output that already is a per-sample loss (e.g. MAHFNet's
    InfoNCE); the target is ignored. Compiled with a loss weight, it adds `weight * mean` to
    the task loss and is logged on its own in the history (`<output>_loss`)."""

    def __init__(self, name="output_mean", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        return y_pred


@keras.saving.register_keras_serializable(package="amsda_keras")
class WeightedFocalLoss(keras.losses.Loss):
    """Focal loss with per-class weights on integer labels (A-MSDA, Section IV.C).

    For a sample of class `c` with predicted probability `p_c`:
    `loss = -class_weights[c] * alpha * (1 - p_c) ** gamma * log(p_c)`.
    With `gamma=0` and `alpha=1` it is the class-weighted cross-entropy.

    Args:
        alpha: float > 0. Balancing factor. Defaults to `0.27` (A-MSDA Table II).
        gamma: float >= 0. Focusing parameter. Defaults to `1.9` (A-MSDA Table II).
        class_weights: list of one float per class, or None (every class weighs 1).
        from_logits: bool. Whether `y_pred` holds logits rather than probabilities.
        **kwargs: `name`, `reduction` and `dtype`, passed to `keras.losses.Loss`.
    """

    def __init__(self, alpha=0.27, gamma=1.9, class_weights=None, from_logits=True,
                 name="weighted_focal_loss", **kwargs):
        check_positive("alpha", alpha)
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or gamma < 0:
            raise ValueError(f"`gamma` must be a float >= 0. Received: gamma={gamma!r}")
        if class_weights is not None:
            class_weights = [float(weight) for weight in class_weights]
            if not class_weights or min(class_weights) < 0:
                raise ValueError("`class_weights` must be a non-empty list of weights >= 0. "
                                 f"Received: class_weights={class_weights}")
        super().__init__(name=name, **kwargs)
        self.alpha, self.gamma = alpha, gamma
        self.class_weights = class_weights
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        y_pred = ops.cast(y_pred, "float32")
        log_probs = (ops.log_softmax(y_pred, axis=-1) if self.from_logits
                     else ops.log(ops.clip(y_pred, 1e-7, 1.0)))
        one_hot = ops.one_hot(labels, ops.shape(y_pred)[-1])
        log_p = ops.sum(one_hot * log_probs, axis=-1)
        loss = -self.alpha * (1.0 - ops.exp(log_p)) ** self.gamma * log_p
        if self.class_weights is not None:
            loss = loss * ops.take(ops.convert_to_tensor(self.class_weights), labels)
        return loss

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma,
                "class_weights": self.class_weights, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="amsda_keras")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy on integer labels against smoothed targets: the true class gets
    `1 - label_smoothing + label_smoothing / classes`, every other `label_smoothing / classes`
    (Keras' `SparseCategoricalCrossentropy` has no smoothing).

    Args:
        label_smoothing: float in [0, 1]. 0 is the plain cross-entropy.
        **kwargs: `name`, `reduction` and `dtype`, passed to `keras.losses.Loss`.
    """

    def __init__(self, label_smoothing=0.1, name="smoothed_sparse_crossentropy", **kwargs):
        if isinstance(label_smoothing, bool) or not 0 <= label_smoothing <= 1:
            raise ValueError("`label_smoothing` must be a float in [0, 1]. "
                             f"Received: label_smoothing={label_smoothing!r}")
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        y_pred = ops.cast(y_pred, "float32")
        return keras.losses.categorical_crossentropy(
            ops.one_hot(labels, ops.shape(y_pred)[-1]), y_pred, from_logits=True,
            label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
