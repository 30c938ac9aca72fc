"""MAHFNet (Electronics 14, 3828, 2025): AGAI -> IEEM -> HGFM (CGF + MAG) on frozen token features."""

import keras

from amsda_keras.layers.agai import AGAI, info_nce
from amsda_keras.layers.arguments import (check_choice, check_num_classes, check_positive,
                                          check_rate, checked_subset)
from amsda_keras.layers.cgf import CGF
from amsda_keras.layers.ieem import IEEM
from amsda_keras.layers.mag import MAG
from amsda_keras.layers.token_resampler import TokenResampler
from amsda_keras.model_names import ABLATIONS as MODEL_ABLATIONS
from amsda_keras.models.regularisation import feature_dropout

ALIGNMENTS = ("resample", "pooled")
# MAHFNet on the demo dataset: 0.2 M parameters instead of the paper's 12 M.
DEMO_ARGS = {"hidden_dim": 64, "num_heads": 2, "key_dim": 32, "intermediate_dim": 64,
             "common_length": 8}
ABLATIONS = MODEL_ABLATIONS["mahfnet"]


@keras.saving.register_keras_serializable(package="amsda_keras")
class SymmetricInfoNCE(keras.layers.Layer):
    """Per-sample symmetric InfoNCE (MAHFNet eq. 11) between two embedding batches."""

    def __init__(self, temperature=0.07, **kwargs):
        check_positive("temperature", temperature)
        super().__init__(**kwargs)
        self.temperature = temperature

    def call(self, text_embedding, image_embedding):
        return info_nce(text_embedding, image_embedding, self.temperature)

    def compute_output_shape(self, text_embedding_shape, image_embedding_shape):
        return (text_embedding_shape[0],)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


def build_mahfnet(*, num_classes, text_dim, image_dim, hidden_dim=512, num_heads=8, key_dim=64,
                  intermediate_dim=256, num_ieem_layers=2, dropout=0.1, layer_norm_epsilon=1e-5,
                  alignment="resample", common_length=49, dilated_conv="depthwise",
                  temperature=0.07, gate_position="output", input_dropout=0.0, ablate=()):
    """Builds MAHFNet on frozen token features.

    Text tokens and image tokens (any widths, projected to `hidden_dim`) go through AGAI
    (pooled gate, bidirectional cross-attention, pooled interaction feature X_c and contrastive
    embeddings), IEEM (a pre-norm self-attention encoder per modality), then HGFM: both
    intra-modal sequences are brought to one length (`alignment`), CGF mixes them, MAG fuses
    the result with X_c, and X_final = X_mag + X_g is mean-pooled into the linear classifier.
    Every choice where the paper's shapes do not fit is listed in `docs/mahfnet.md`.

    Args:
        num_classes: int. Number of classes.
        text_dim: int. Width of the cached text token features.
        image_dim: int. Width of the cached image token features.
        hidden_dim: int. d_model. Defaults to `512` (Table 2).
        num_heads: int. Attention heads. Defaults to `8`.
        key_dim: int. d_k of the cross-attention and resampler. Defaults to `64`.
        intermediate_dim: int. Hidden size of IEEM's feed-forward, AGAI's gate and contrastive
            projections and MAG's MLPs. Defaults to `256`.
        num_ieem_layers: int. Defaults to `2`.
        dropout: float. Defaults to `0.1`.
        layer_norm_epsilon: float. Defaults to `1e-5`.
        alignment: `"resample"` (learned common length: `common_length` learned queries attend
            to each modality) or `"pooled"` (both modalities mean-pooled to one token).
        common_length: int. Sequence length after resampling. Defaults to `49`.
        dilated_conv: `"depthwise"` or `"full"`, MAG's dilated convolution.
        temperature: float. InfoNCE temperature tau. Defaults to `0.07`.
        input_dropout: float. Dropout of the text and image token features before the
            projections (a generalisation lever, not the paper's). Defaults to `0.0`.
        gate_position: `"output"` or `"query"`: where AGAI's modality gate theta acts (`AGAI`,
            docs/mahfnet.md). Defaults to `"output"`.
        ablate: blocks to remove, any of `ABLATIONS` (the paper's Table 7):
            `"mag"`: X_final = X_g, the CGF output. `"cgf"`: X_g is the mean of the two
            aligned sequences. `"hgfm"`: no CGF and MAG; the pooled text and image features
            and X_c are averaged. `"ieem"`: the projected tokens skip IEEM. `"agai"`: plain
            bidirectional cross-attention (no gate, no contrastive loss) gives X_c.
            `"contrastive"`: no contrastive heads or loss. Table 7's cumulative rows are
            `["mag"]`, `["hgfm"]`, `["hgfm", "ieem"]` and `["hgfm", "ieem", "agai"]`.

    Returns:
        A `keras.Model` from `{"text_tokens": [B, T, text_dim], "text_mask": [B, T] bool,
        "image_tokens": [B, P, image_dim]}` to `{"logits": [B, num_classes],
        "contrastive": [B]}` (per-sample InfoNCE; the training loss takes its mean times
        lambda). Without contrastive loss (`"agai"` or `"contrastive"` ablated) the outputs
        are `{"logits"}` only.
    """
    check_choice("alignment", alignment, ALIGNMENTS)
    check_num_classes(num_classes)
    check_rate("input_dropout", input_dropout)
    ablate = checked_subset("ablate", ablate, ABLATIONS)
    with_contrastive = not {"agai", "contrastive"} & ablate
    reads_interaction = "hgfm" in ablate or "mag" not in ablate

    text_tokens = keras.Input((None, text_dim), name="text_tokens")
    text_mask = keras.Input((None,), dtype="bool", name="text_mask")
    image_tokens = keras.Input((None, image_dim), name="image_tokens")

    text = keras.layers.Dense(hidden_dim, name="text_projection")(
        feature_dropout(text_tokens, input_dropout, "text_input_dropout"))
    image = keras.layers.Dense(hidden_dim, name="image_projection")(
        feature_dropout(image_tokens, input_dropout, "image_input_dropout"))
    attention_args = dict(num_heads=num_heads, key_dim=key_dim, dropout=dropout,
                          layer_norm_epsilon=layer_norm_epsilon)
    if "agai" in ablate:
        interaction = _plain_cross_attention(text, image, text_mask, hidden_dim, attention_args)
    else:
        agai = AGAI(hidden_dim=hidden_dim, gate_hidden_dim=intermediate_dim,
                    projection_dim=intermediate_dim, contrastive_heads=with_contrastive,
                    interaction_head=reads_interaction, gate_position=gate_position,
                    **attention_args,
                    name="agai")(text, image, text_mask=text_mask)
        interaction = agai.get("interaction")

    if "ieem" in ablate:
        text_emotion, image_emotion = text, image
    else:
        encoder_args = dict(num_layers=num_ieem_layers, num_heads=num_heads,
                            intermediate_dim=intermediate_dim, dropout=dropout,
                            layer_norm_epsilon=layer_norm_epsilon)
        text_emotion = IEEM(**encoder_args, name="text_ieem")(text, padding_mask=text_mask)
        image_emotion = IEEM(**encoder_args, name="image_ieem")(image)

    if "hgfm" in ablate:
        pooled = keras.layers.Average(name="feature_average")([
            keras.layers.GlobalAveragePooling1D(name="text_pool")(text_emotion, mask=text_mask),
            keras.layers.GlobalAveragePooling1D(name="image_pool")(image_emotion),
            interaction,
        ])
    else:
        text_aligned, image_aligned = _aligned(
            text_emotion, image_emotion, text_mask, alignment, common_length, hidden_dim,
            attention_args)
        if "cgf" in ablate:
            gated = keras.layers.Average(name="aligned_average")([text_aligned, image_aligned])
        else:
            gated = CGF(name="cgf")(text_aligned, image_aligned)
        if "mag" in ablate:
            final = gated
        else:
            fused = MAG(hidden_dim=intermediate_dim, dilated_conv=dilated_conv,
                        layer_norm_epsilon=layer_norm_epsilon, name="mag")(gated, interaction)
            final = keras.layers.Add(name="residual")([fused, gated])
        pooled = keras.layers.GlobalAveragePooling1D(name="final_pool")(final)

    outputs = {"logits": keras.layers.Dense(num_classes, name="logits")(pooled)}
    if with_contrastive:
        outputs["contrastive"] = SymmetricInfoNCE(temperature, name="contrastive")(
            agai["text_embedding"], agai["image_embedding"])
    return keras.Model(
        {"text_tokens": text_tokens, "text_mask": text_mask, "image_tokens": image_tokens},
        outputs,
        name="mahfnet",
    )


def _aligned(text, image, text_mask, alignment, common_length, hidden_dim, attention_args):
    """Both modalities at one sequence length, for CGF and MAG (docs/mahfnet.md, eq. 16-21)."""
    if alignment == "resample":
        text = TokenResampler(common_length, **attention_args, name="text_resampler")(
            text, padding_mask=text_mask)
        image = TokenResampler(common_length, **attention_args, name="image_resampler")(image)
        return text, image
    text = keras.layers.GlobalAveragePooling1D(name="text_pool")(text, mask=text_mask)
    image = keras.layers.GlobalAveragePooling1D(name="image_pool")(image)
    return (keras.layers.Reshape((1, hidden_dim), name="text_pooled_token")(text),
            keras.layers.Reshape((1, hidden_dim), name="image_pooled_token")(image))


def _plain_cross_attention(text, image, text_mask, hidden_dim, attention_args):
    """The "-(AGAI)" stand-in: ungated pre-norm cross-attention both ways, pooled and joined."""
    tokens = {"text": text, "image": image}
    masks = {"text": text_mask, "image": None}
    epsilon = attention_args["layer_norm_epsilon"]
    pooled = []
    for query, other in (("text", "image"), ("image", "text")):
        direction = f"{query}_to_{other}"
        attention = keras.layers.MultiHeadAttention(
            attention_args["num_heads"], attention_args["key_dim"],
            dropout=attention_args["dropout"], output_shape=hidden_dim,
            name=f"{direction}_attention")
        query_norm = keras.layers.LayerNormalization(epsilon=epsilon, name=f"{direction}_query_norm")
        other_norm = keras.layers.LayerNormalization(
            epsilon=epsilon, name=f"{direction}_key_value_norm")
        attended = attention(query_norm(tokens[query]), other_norm(tokens[other]),
                             query_mask=masks[query], value_mask=masks[other])
        pooled.append(keras.layers.GlobalAveragePooling1D(name=f"{direction}_pool")(
            attended, mask=masks[query]))
    return keras.layers.Dense(hidden_dim, name="interaction")(
        keras.layers.Concatenate(name="attended_concat")(pooled))
