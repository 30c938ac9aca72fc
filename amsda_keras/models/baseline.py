"""The baseline classifier: pooled encoder features -> small MLP -> logits."""

import keras

from amsda_keras.layers.arguments import check_choice, check_num_classes

MODALITIES = ("text", "image", "both")


def build_baseline(*, num_classes, text_dim=None, image_dim=None, modality="both", hidden_dim=256,
                   dropout=0.3):
    """Builds the baseline head on pooled features: the unimodal rows of the papers' tables.

    The input is the pooled text feature (`text_pooled`, `[batch, text_dim]`), the pooled
    image feature (`image_pooled`, `[batch, image_dim]`) or both, concatenated; then
    Dense(`hidden_dim`, ReLU) -> Dropout -> Dense(`num_classes`) logits.

    Args:
        num_classes: int. Number of classes.
        text_dim: int. Width of the pooled text feature (needed unless `modality="image"`).
        image_dim: int. Width of the pooled image feature (needed unless `modality="text"`).
        modality: `"text"`, `"image"` or `"both"`. Defaults to `"both"`.
        hidden_dim: int. Width of the hidden layer. Defaults to `256`.
        dropout: float in [0, 1). Defaults to `0.3`.

    Returns:
        A `keras.Model` from a dict of pooled features to logits `[batch, num_classes]`.
    """
    check_num_classes(num_classes)
    if not isinstance(hidden_dim, int) or hidden_dim <= 0:
        raise ValueError(f"`hidden_dim` must be a positive int. Received: hidden_dim={hidden_dim}")
    if not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    inputs, x = pooled_features(modality, text_dim, image_dim)
    x = keras.layers.Dense(hidden_dim, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, logits, name=f"baseline_{modality}")


def pooled_features(modality, text_dim, image_dim):
    """The pooled-feature inputs of `modality` and their concatenation.

    Returns:
        `(inputs, features)`: a dict of `keras.Input`s named `text_pooled` / `image_pooled`,
        and the tensor the head reads (the one input, or both concatenated, text first).
    """
    check_choice("modality", modality, MODALITIES)
    widths = {"text": text_dim, "image": image_dim}
    used = ["text", "image"] if modality == "both" else [modality]
    for name in used:
        if not widths[name]:
            raise ValueError(f"`{name}_dim` is needed for modality={modality!r}.")
    inputs = {f"{name}_pooled": keras.Input((widths[name],), name=f"{name}_pooled") for name in used}
    features = list(inputs.values())
    x = features[0] if len(features) == 1 else keras.layers.Concatenate(name="concat")(features)
    return inputs, x
