"""The probe: a linear classifier on the pooled frozen features, every table's floor."""

import keras

from amsda_keras.layers.arguments import check_num_classes
from amsda_keras.models.baseline import pooled_features


def build_probe(*, num_classes, text_dim=None, image_dim=None, modality="both"):
    """Builds the probe: pooled features -> Dense(`num_classes`) logits.

    Its weights are not trained by `fit`: `training.probe.fit_probe` fits a multinomial
    logistic regression with scikit-learn and writes it into the `logits` layer.

    Args:
        num_classes: int. Number of classes.
        text_dim: int. Width of the pooled text feature (needed unless `modality="image"`).
        image_dim: int. Width of the pooled image feature (needed unless `modality="text"`).
        modality: `"text"`, `"image"` or `"both"`. Defaults to `"both"`.

    Returns:
        A `keras.Model` from a dict of pooled features to logits `[batch, num_classes]`.
    """
    check_num_classes(num_classes)
    inputs, features = pooled_features(modality, text_dim, image_dim)
    logits = keras.layers.Dense(num_classes, name="logits")(features)
    return keras.Model(inputs, logits, name=f"probe_{modality}")
