"""A-MSDA (IJACSA 16(11), 2025): text and image self-attention branches, cross-attention fusion,
and trainable fusion weights over the three branches' logits."""

import keras

from amsda_keras.layers.arguments import (check_choice, check_num_classes, check_positive_ints,
                                          check_rate, checked_subset)
from amsda_keras.layers.fusion_weights import FusionWeights
from amsda_keras.model_names import ABLATIONS as MODEL_ABLATIONS
from amsda_keras.model_names import AMSDA_BRANCHES as BRANCHES
from amsda_keras.models.regularisation import feature_dropout

ABLATIONS = MODEL_ABLATIONS["amsda"]
# The image tokens the fusion branch's cross-attention reads (docs/amsda.md).
FUSION_IMAGE_TOKENS = ("pooled", "grid")
# The paper's training recipe (Section IV.C), applied under `--model amsda` before any config
# file: fine-tuned encoders, weighted focal loss, oversampling, early stopping and
# ReduceLROnPlateau. Learning rate and batch size are per dataset, in configs/amsda_*.yaml.
TRAINING_DEFAULTS = {
    "encoders": {"trainable": True, "sequence_length": 20},
    "training": {"loss": "focal", "class_weight": "balanced", "oversample": True,
                 "early_stopping_patience": 5, "reduce_lr_patience": 3},
}


def build_amsda(*, num_classes, text_dim, image_dim, image_projection_dim=768, num_heads=4,
                key_dim=8, text_hidden_dims=(512, 256), image_hidden_dims=(1024, 512, 256),
                fusion_hidden_dims=(512, 256), text_dropout=0.3, dropout=0.4,
                weight_normalization="softmax", fusion_image_tokens="pooled", input_dropout=0.0,
                ablate=()):
    """Builds the A-MSDA head on encoder features.

    - Text branch (Section III.A): the text encoder's tokens -> self-attention -> masked global
      average pooling -> tanh dense layers with dropout -> text logits.
    - Image branch (III.B): the pooled image feature map -> Dense(`image_projection_dim`, ReLU)
      -> one token -> self-attention with residual, LayerNorm and dropout -> ReLU dense layers,
      each followed by BatchNorm and dropout -> image logits.
    - Fusion branch (III.C): cross-attention text->image (text tokens query the image tokens)
      and image->text (the image tokens query the text tokens), each pooled, joined -> ReLU
      dense layers with BatchNorm and dropout -> fusion logits. Its image tokens are the image
      branch's one pooled token (`fusion_image_tokens="pooled"`, the paper's shapes: the
      text->image attention then has one key and ignores the text) or the encoder's spatial
      map (`"grid"`: 7x7 = 49 tokens for EfficientNet, through the same projection and
      self-attention block), so that text queries attend over image regions.
    - `FusionWeights` mixes the three logits with learned weights that sum to 1 (eq. 25-27).
    With the encoders attached (`models.compose.attach_encoders`) this is the paper's end-to-end
    model; on cached features it trains the heads of frozen encoders. Choices the paper leaves
    open are listed in `docs/amsda.md`.

    Args:
        num_classes: int. Number of classes.
        text_dim: int. Width of the text encoder's token features (768 for DistilRoBERTa).
        image_dim: int. Width of the image features (1280 for EfficientNetB0).
        image_projection_dim: int. Width of the image tokens, and of both cross-attention
            outputs. Defaults to `768` (eq. 10).
        num_heads: int. Heads of every attention layer. Defaults to `4` (Section IV.B.2).
        key_dim: int. Key size of every attention layer. Defaults to `8`.
        text_hidden_dims, image_hidden_dims, fusion_hidden_dims: tuples of int, the widths of
            each branch's dense layers. Defaults to `(512, 256)`, `(1024, 512, 256)` and
            `(512, 256)`.
        text_dropout: float. Dropout of the text branch. Defaults to `0.3` (IV.B.1).
        dropout: float. Dropout of the image and fusion branches. Defaults to `0.4` (Table II).
        weight_normalization: `"softmax"` or `"sum"`, see `FusionWeights`.
        fusion_image_tokens: `"pooled"` or `"grid"`, the fusion branch's image tokens (above).
            Defaults to `"pooled"`.
        input_dropout: float. Dropout of the text tokens and image features the head reads (a
            generalisation lever, not the paper's). Defaults to `0.0`.
        ablate: parts to remove, any of `ABLATIONS` (the paper's Table V): `"text"`,
            `"image"`, `"fusion"` drop that branch's logits from the mix (`["image",
            "fusion"]` is the unimodal text row, `["text", "fusion"]` the unimodal visual row);
            `"cross_attention"` ("w/o cross attention") keeps the fusion branch but joins the
            pooled self-attended text and image features instead of cross-attending them;
            `"self_attention"` ("w/o self-attention") removes both branches' self-attention
            (and the image block's residual around it; its LayerNorm and dropout stay);
            `"fusion_weights"` keeps the branch weights fixed and equal.

    Returns:
        A `keras.Model` from the features it reads (`text_tokens` `[B, T, text_dim]` and
        `text_mask` `[B, T]` bool, `image_pooled` `[B, image_dim]`, with `"grid"`
        `image_tokens` `[B, P, image_dim]`; only those the kept branches need) to logits
        `[B, num_classes]`.
    """
    check_num_classes(num_classes)
    check_positive_ints(image_projection_dim=image_projection_dim, num_heads=num_heads,
                        key_dim=key_dim)
    for name, widths in (("text_hidden_dims", text_hidden_dims),
                         ("image_hidden_dims", image_hidden_dims),
                         ("fusion_hidden_dims", fusion_hidden_dims)):
        check_positive_ints(**{f"{name}[{index}]": width for index, width in enumerate(widths)})
    check_rate("text_dropout", text_dropout)
    check_rate("dropout", dropout)
    check_rate("input_dropout", input_dropout)
    check_choice("fusion_image_tokens", fusion_image_tokens, FUSION_IMAGE_TOKENS)
    ablate = _checked_ablations(ablate)
    branches = [name for name in BRANCHES if name not in ablate]
    self_attention = "self_attention" not in ablate
    attention = dict(num_heads=num_heads, key_dim=key_dim)
    fusion_grid = "fusion" in branches and fusion_image_tokens == "grid"
    reads_text = "text" in branches or "fusion" in branches
    reads_pooled_image = "image" in branches or ("fusion" in branches and not fusion_grid)

    inputs, logits = {}, {}
    if reads_text:
        inputs["text_tokens"] = keras.Input((None, text_dim), name="text_tokens")
        inputs["text_mask"] = keras.Input((None,), dtype="bool", name="text_mask")
        text = feature_dropout(inputs["text_tokens"], input_dropout, "text_input_dropout")
        mask = inputs["text_mask"]
        if self_attention:
            text = keras.layers.MultiHeadAttention(**attention, name="text_self_attention")(
                text, text, query_mask=mask, value_mask=mask)
        if "text" in branches:
            pooled = keras.layers.GlobalAveragePooling1D(name="text_pool")(text, mask=mask)
            logits["text"] = _dense_stack(pooled, text_hidden_dims, "tanh", text_dropout,
                                          num_classes, "text", batch_norm=False)
    if reads_pooled_image or fusion_grid:
        image_tokens = _image_token_block(image_projection_dim, attention, self_attention,
                                          dropout)
    if reads_pooled_image:
        inputs["image_pooled"] = keras.Input((image_dim,), name="image_pooled")
        image = keras.layers.Reshape((1, image_dim), name="image_token")(
            feature_dropout(inputs["image_pooled"], input_dropout, "image_input_dropout"))
        image = image_tokens(image)
        if "image" in branches:
            flat = keras.layers.Flatten(name="image_flatten")(image)
            logits["image"] = _dense_stack(flat, image_hidden_dims, "relu", dropout,
                                           num_classes, "image", batch_norm=True)
    if fusion_grid:
        inputs["image_tokens"] = keras.Input((None, image_dim), name="image_tokens")
        image = image_tokens(feature_dropout(inputs["image_tokens"], input_dropout,
                                             "image_tokens_input_dropout"))
    if "fusion" in branches:
        if "cross_attention" in ablate:
            joined = keras.layers.Concatenate(name="fusion_concat")([
                keras.layers.GlobalAveragePooling1D(name="fusion_text_pool")(text, mask=mask),
                keras.layers.GlobalAveragePooling1D(name="fusion_image_pool")(image)])
        else:
            joined = _cross_attention(text, mask, image, image_projection_dim, attention)
        logits["fusion"] = _dense_stack(joined, fusion_hidden_dims, "relu", dropout,
                                        num_classes, "fusion", batch_norm=True)

    if len(logits) == 1:
        output = keras.layers.Identity(name="logits")(next(iter(logits.values())))
    else:
        output = FusionWeights(list(logits), normalization=weight_normalization,
                               trainable="fusion_weights" not in ablate,
                               name="fusion_weights")(list(logits.values()))
    return keras.Model(inputs, output, name="amsda")


def _checked_ablations(ablate):
    ablate = checked_subset("ablate", ablate, ABLATIONS)
    if set(BRANCHES) <= ablate:
        raise ValueError(f"`ablate` must keep at least one of the branches {BRANCHES}.")
    return ablate


def _dense_stack(x, widths, activation, dropout, num_classes, branch, batch_norm):
    """Dense layers (each followed by [BatchNorm and] dropout), then the branch's logits."""
    for index, width in enumerate(widths, start=1):
        x = keras.layers.Dense(width, activation=activation, name=f"{branch}_dense_{index}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"{branch}_norm_{index}")(x)
        x = keras.layers.Dropout(dropout, name=f"{branch}_dropout_{index}")(x)
    return keras.layers.Dense(num_classes, name=f"{branch}_logits")(x)


def _image_token_block(width, attention, self_attention, dropout):
    """Eq. 10-15 as a function of image tokens `[B, P, image_dim]`: Dense(`width`, ReLU), then
    self-attention with a residual, LayerNorm and dropout. Its layers are shared by every call,
    so the pooled token and the grid tokens go through the same weights."""
    projection = keras.layers.Dense(width, activation="relu", name="image_projection")
    if self_attention:
        attend = keras.layers.MultiHeadAttention(**attention, name="image_self_attention")
        residual = keras.layers.Add(name="image_residual")
    norm = keras.layers.LayerNormalization(name="image_norm")
    drop = keras.layers.Dropout(dropout, name="image_attention_dropout")

    def block(tokens):
        tokens = projection(tokens)
        if self_attention:
            tokens = residual([attend(tokens, tokens), tokens])
        return drop(norm(tokens))

    return block


def _cross_attention(text, mask, image, width, attention):
    """Eq. 19-21: both cross-attention directions, each mean-pooled over its queries (the real
    text tokens; the image tokens), joined into one vector.

    With one pooled image token, text->image attention gives every text position the same
    vector (a softmax over one key is 1) and image->text has one query.
    """
    text_to_image = keras.layers.MultiHeadAttention(
        **attention, output_shape=width, name="text_to_image_attention")(
            text, image, query_mask=mask)
    text_to_image = keras.layers.GlobalAveragePooling1D(name="text_to_image_pool")(
        text_to_image, mask=mask)
    image_to_text = keras.layers.MultiHeadAttention(
        **attention, output_shape=width, name="image_to_text_attention")(
            image, text, value_mask=mask)
    image_to_text = keras.layers.GlobalAveragePooling1D(name="image_to_text_pool")(image_to_text)
    return keras.layers.Concatenate(name="cross_attention_concat")([text_to_image, image_to_text])
