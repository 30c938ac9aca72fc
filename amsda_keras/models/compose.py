"""Joins a head that reads encoder features with the encoders themselves into one model."""

import keras

from amsda_keras.encoders import TOP_SUFFIX

FEATURE_MODALITIES = ("text", "image")
WITH_ENCODERS = "_with_encoders"
WITH_ENCODER_TOPS = "_with_encoder_tops"


def feature_input_names(model):
    """The model's inputs if they are all encoder features (`text_pooled`, ...), else None."""
    names = [tensor.name for tensor in model.inputs]
    if all(name.partition("_")[0] in FEATURE_MODALITIES for name in names):
        return names
    return None


def attach_encoders(head, encoders, trainable=True):
    """Builds `encoders -> head` as one model on preprocessed inputs.

    Args:
        head: a `keras.Model` whose inputs are named `<modality>_<field>` (`text_pooled`,
            `image_tokens`, ...), the outputs of the encoders' feature models.
        encoders: dict from modality to `amsda_keras.encoders.Encoder`; only the modalities the
            head reads are used.
        trainable: bool. Whether the encoders' weights are trained with the head.

    Returns:
        A `keras.Model` from the encoders' preprocessed inputs (`token_ids`, `padding_mask`,
        ..., `images`), as `raw_dataset` yields them, to the head's outputs.
    """
    names = feature_input_names(head)
    if names is None:
        inputs = [tensor.name for tensor in head.inputs]
        raise ValueError(f"The head's inputs must be encoder features; got {inputs}.")
    inputs, outputs = {}, {}
    for modality in dict.fromkeys(name.partition("_")[0] for name in names):
        encoder = encoders[modality]
        encoder.set_trainable(trainable)
        encoder_inputs = {
            key: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=key)
            for key, tensor in encoder.feature_model.input.items()
        }
        inputs.update(encoder_inputs)
        outputs[modality] = encoder.feature_model(encoder_inputs)
    features = {name: outputs[name.partition("_")[0]][name.partition("_")[2]] for name in names}
    return keras.Model(inputs, head(features), name=f"{head.name}{WITH_ENCODERS}")


def attach_encoder_tops(head, encoders):
    """Builds `encoder tops -> head`: the trainable last layers of the encoders that have them.

    Args:
        head: a `keras.Model` on encoder features, as in `attach_encoders`.
        encoders: dict from modality to `Encoder`; those with a `top` (built with
            `trainable_layers`) get it run on their features before the head.

    Returns:
        `head` itself when no encoder the head reads has a top; otherwise a model whose inputs
        are the features below the tops (`text_tokens`, `text_mask`, ...), as the encoders'
        feature models (and so the feature cache) give them.
    """
    names = feature_input_names(head)
    modalities = dict.fromkeys(name.partition("_")[0] for name in names)
    tops = {modality: encoders[modality].top for modality in modalities
            if encoders[modality].top is not None}
    if not tops:
        return head
    inputs, features = {}, {}
    for name, tensor in zip(names, head.inputs):
        modality, _, field = name.partition("_")
        if modality not in tops:
            inputs[name] = keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
            features[name] = inputs[name]
    for modality, top in tops.items():
        top_inputs = {field: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype,
                                         name=f"{modality}_{field}")
                      for field, tensor in top.input.items()}
        inputs.update({f"{modality}_{field}": tensor for field, tensor in top_inputs.items()})
        outputs = {**top(top_inputs), "mask": top_inputs["mask"]}
        features.update({name: outputs[name.partition("_")[2]] for name in names
                         if name.startswith(f"{modality}_")})
    return keras.Model(inputs, head(features), name=f"{head.name}{WITH_ENCODER_TOPS}")


def encoder_variables(model):
    """The trainable weights of the encoders (or encoder tops) that `attach_encoders` or
    `attach_encoder_tops` joined to a head; none for any other model."""
    for suffix in (WITH_ENCODERS, WITH_ENCODER_TOPS):
        if model.name.endswith(suffix):
            head = model.get_layer(model.name[:-len(suffix)])
            return [variable for layer in model.layers
                    if isinstance(layer, keras.Model) and layer is not head
                    for variable in layer.trainable_variables]
    return []


def head_and_features(model, features):
    """The model's feature head and the features it reads, given the model's input features.

    For a model from `attach_encoder_tops`, `features` go through its encoder tops first;
    any other model is its own head and reads `features` as they are.
    """
    heads = [layer for layer in model.layers
             if isinstance(layer, keras.Model) and not layer.name.endswith(TOP_SUFFIX)]
    tops = {layer.name[:-len(TOP_SUFFIX)]: layer for layer in model.layers
            if isinstance(layer, keras.Model) and layer.name.endswith(TOP_SUFFIX)}
    if not tops:
        return model, features
    head_features = dict(features)
    for modality, top in tops.items():
        outputs = top({field: features[f"{modality}_{field}"] for field in top.input})
        head_features.update({f"{modality}_{field}": value for field, value in outputs.items()})
    head, = heads
    return head, {tensor.name: head_features[tensor.name] for tensor in head.inputs}
