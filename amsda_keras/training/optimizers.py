"""Adam and AdamW that give the encoder weights trained with a head their own learning rate.

A pretrained encoder wants a smaller rate than a head that starts from random weights, and a
Keras optimizer has one rate for every weight. These multiply the rate of the variables given
to `set_encoder_variables` by `encoder_rate_multiplier` at every step, so schedules (warm-up,
cosine decay, StepLR, ReduceLROnPlateau) move both rates together. AdamW's decoupled weight
decay stays at the head's rate for every variable, as Keras applies it before the update step.
"""

import keras

from amsda_keras.layers.arguments import check_positive


class _EncoderLearningRate:
    def __init__(self, *args, encoder_rate_multiplier=1.0, **kwargs):
        check_positive("encoder_rate_multiplier", encoder_rate_multiplier)
        super().__init__(*args, **kwargs)
        self.encoder_rate_multiplier = float(encoder_rate_multiplier)
        self._encoder_keys = frozenset()

    def set_encoder_variables(self, variables):
        """The variables that train at `encoder_rate_multiplier` times the learning rate."""
        variables = list(variables)
        if not variables:
            raise ValueError("An encoder learning rate needs encoder weights that train, and "
                             "the model has none: set `encoders.text_trainable_layers` or "
                             "`encoders.trainable: true`, or leave "
                             "`training.encoder_learning_rate` null.")
        self._encoder_keys = frozenset(self._var_key(variable) for variable in variables)

    def update_step(self, gradient, variable, learning_rate):
        if self._var_key(variable) in self._encoder_keys:
            learning_rate = learning_rate * self.encoder_rate_multiplier
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "encoder_rate_multiplier": self.encoder_rate_multiplier}


@keras.saving.register_keras_serializable(package="amsda_keras")
class EncoderRateAdam(_EncoderLearningRate, keras.optimizers.Adam):
    """`keras.optimizers.Adam` with `encoder_rate_multiplier` (see the module docstring)."""


@keras.saving.register_keras_serializable(package="amsda_keras")
class EncoderRateAdamW(_EncoderLearningRate, keras.optimizers.AdamW):
    """`keras.optimizers.AdamW` with `encoder_rate_multiplier` (see the module docstring)."""


def build_optimizer(settings, encoder_variables=()):
    """Adam, or AdamW when `settings["weight_decay"]` is set, from the `training` settings.

    With `settings["encoder_learning_rate"]`, `encoder_variables` train at that rate (scaled
    by the schedule as the head's rate is) and every other variable at `learning_rate`.
    """
    arguments = {"learning_rate": settings["learning_rate"]}
    if settings["ema"]:
        arguments.update(use_ema=True, ema_momentum=settings["ema_momentum"])
    if settings["weight_decay"]:
        arguments["weight_decay"] = settings["weight_decay"]
    if settings["encoder_learning_rate"] is None:
        optimizer_class = (keras.optimizers.AdamW if settings["weight_decay"]
                           else keras.optimizers.Adam)
        return optimizer_class(**arguments)
    optimizer_class = EncoderRateAdamW if settings["weight_decay"] else EncoderRateAdam
    optimizer = optimizer_class(
        encoder_rate_multiplier=settings["encoder_learning_rate"] / settings["learning_rate"],
        **arguments)
    optimizer.set_encoder_variables(encoder_variables)
    return optimizer
