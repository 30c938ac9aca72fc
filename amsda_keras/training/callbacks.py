"""Training callbacks beyond Keras' own."""

import keras
from keras import ops

from amsda_keras.layers.fusion_weights import FusionWeights
from amsda_keras.training.reporting import FUSION_WEIGHT_PREFIX


def fusion_weights_layer(model):
    """The model's `FusionWeights` layer (searched in nested models too), or None."""
    for layer in model.layers:
        if isinstance(layer, FusionWeights):
            return layer
        if isinstance(layer, keras.Model):
            found = fusion_weights_layer(layer)
            if found is not None:
                return found
    return None


def fusion_weights(model):
    """`{"fusion_weight_<branch>": weight}` of the model's `FusionWeights` layer; `{}` if none."""
    layer = fusion_weights_layer(model)
    if layer is None:
        return {}
    values = ops.convert_to_numpy(layer.normalized_weights())
    return {f"{FUSION_WEIGHT_PREFIX}{name}": float(value)
            for name, value in zip(layer.branch_names, values)}


class FusionWeightsLogger(keras.callbacks.Callback):
    """Adds the learned fusion weights to each epoch's logs (and so to `history.csv`)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(fusion_weights(self.model))
