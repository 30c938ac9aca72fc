"""MAHFNet's Attention-Guided Alignment and Interaction block and its contrastive loss."""

import keras
from keras import ops

from amsda_keras.layers.arguments import (check_choice, check_positive, check_positive_ints,
                                          check_rate)

# Where the modality gate theta acts (docs/mahfnet.md): on what each attention direction
# contributes, or on each direction's (normalised) query.
GATE_POSITIONS = ("output", "query")


def _masked_mean(x, mask=None):
    """Mean over axis 1 of `x` [B, L, D] using only positions where `mask` [B, L] is True.

    A row with no True position gives zeros rather than NaN.
    """
    if mask is None:
        return ops.mean(x, axis=1)
    mask = ops.cast(mask, "bool")
    # `where` rather than a product, so non-finite padding cannot leak in.
    total = ops.sum(ops.where(mask[:, :, None], x, ops.zeros_like(x)), axis=1)
    count = ops.sum(ops.cast(mask, x.dtype), axis=1, keepdims=True)
    return total / ops.maximum(count, ops.ones_like(count))


def _key_padding_mask(mask):
    """[B, S] bool mask; a row with no real key attends to all keys (avoids NaN softmax)."""
    if mask is None:
        return None
    mask = ops.cast(mask, "bool")
    empty = ops.logical_not(ops.any(mask, axis=1, keepdims=True))
    return ops.logical_or(mask, empty)


def _zero_padding(x, mask):
    if mask is None:
        return x
    return ops.where(ops.cast(mask, "bool")[:, :, None], x, ops.zeros_like(x))


@keras.saving.register_keras_serializable(package="amsda_keras")
class AGAI(keras.layers.Layer):
    """Attention-Guided Alignment and Interaction block of MAHFNet.

    The block gates the two modalities against each other, lets each attend
    to the other, and produces a pooled interaction feature plus one
    contrastive embedding per modality (MAHFNet, Section 3.2):

    1. Dynamic modality weighting (eq. 3-5): a scalar gate `theta` per sample
       from an MLP on the masked means of both token sequences, weighing the
       text by `theta` and the image by `1 - theta`.
    2. Bidirectional cross-attention (eq. 6-7), pre-norm, no residual. With
       `gate_position="output"`, theta weighs what each direction contributes:
       `X_t~ = theta * MHA_t(LN(X_t), LN(X_p))`,
       `X_p~ = (1 - theta) * MHA_p(LN(X_p), LN(X_t))`. With `"query"`, it scales
       each direction's normalised query, `MHA_t(theta * LN(X_t), LN(X_p))`
       (eq. 4-6 as written, after the pre-norm that would otherwise cancel it;
       theta then sharpens or flattens each direction's attention).
    3. Interaction feature (eq. 8): `X_c = Dense(GELU(Dropout(LN([mean(X_t~); mean(X_p~)]))))`;
       the joint LayerNorm keeps the text/image ratio that theta sets.
    4. Contrastive heads (eq. 9-10): `Dense(ReLU(Dense(LN(mean(X~)))))` per modality.

    The contrastive loss (eq. 11) is not computed here; pass the two
    embeddings to `info_nce`. Text and image sequences may have different
    lengths. Padded positions are ignored by every pooling and attention step,
    and zeroed in `text_attended` and `image_attended`.

    Args:
        hidden_dim: int. Width `d` of both inputs and of the attended and
            interaction outputs. Defaults to `512`.
        num_heads: int. Attention heads of each cross-attention. Defaults to `8`.
        key_dim: int. Size `d_k` of each attention head. Defaults to `64`.
        gate_hidden_dim: int. Hidden width of the gate MLP. Defaults to `256`.
        projection_dim: int. Hidden and output width of the contrastive
            projection heads. Defaults to `256`.
        dropout: float. Dropout rate of the gate MLP, the attention weights and
            the interaction projection. Defaults to `0.1`.
        layer_norm_epsilon: float. Epsilon of every LayerNorm. Defaults to `1e-5`.
        contrastive_heads: bool. Whether to build the contrastive projection
            heads and return their embeddings. Defaults to `True`; `False`
            is the "without contrastive loss" ablation.
        interaction_head: bool. Whether to build the interaction projection
            and return `"interaction"`. Defaults to `True`; `False` when
            nothing reads `X_c` (MAHFNet without MAG), so that no weight
            is left without a gradient. With `gate_position="output"` the
            gate then acts on nothing that is trained, and is not built.
        gate_position: `"output"` or `"query"`, where theta acts (see above).
            Defaults to `"output"`.
        **kwargs: other keyword arguments passed to `keras.layers.Layer`,
            including `name`, `dtype` and `trainable`.

    Call arguments:
        text: float tensor of shape `[batch_size, text_length, hidden_dim]`.
        image: float tensor of shape `[batch_size, image_length, hidden_dim]`.
        text_mask: optional bool tensor of shape `[batch_size, text_length]`,
            True for real tokens. Defaults to `None` (all real).
        image_mask: optional bool tensor of shape `[batch_size, image_length]`.
            Defaults to `None` (all real).
        training: bool. Whether dropout is active. Defaults to `None`.
        return_attention_scores: bool. Whether to add the attention weights
            to the outputs. Defaults to `False`.

    Returns:
        A dict with `"text_attended"` `[batch_size, text_length, hidden_dim]`,
        `"image_attended"` `[batch_size, image_length, hidden_dim]`,
        `"gate"` `[batch_size, 1]` (theta, unless it is not built), with
        `interaction_head=True`
        `"interaction"` `[batch_size, hidden_dim]` and, with
        `contrastive_heads=True`, `"text_embedding"` and `"image_embedding"`
        `[batch_size, projection_dim]`. With `return_attention_scores=True` also
        `"text_to_image_attention"` `[batch_size, num_heads, text_length,
        image_length]` and `"image_to_text_attention"` `[batch_size,
        num_heads, image_length, text_length]`.

    Example:
    ```python
    text = keras.random.uniform((2, 77, 512))
    image = keras.random.uniform((2, 197, 512))
    text_mask = keras.ops.arange(77)[None, :] < keras.ops.array([[12], [30]])
    outputs = AGAI()(text, image, text_mask=text_mask)
    loss = keras.ops.mean(
        info_nce(outputs["text_embedding"], outputs["image_embedding"], 0.07))
    ```

    References:
        - [Huang et al., 2025. Multimodal Alignment and Hierarchical Fusion
          Network for Multimodal Sentiment Analysis. Electronics 14, 3828](
          https://doi.org/10.3390/electronics14193828)
    """

    def __init__(
        self,
        hidden_dim=512,
        num_heads=8,
        key_dim=64,
        gate_hidden_dim=256,
        projection_dim=256,
        dropout=0.1,
        layer_norm_epsilon=1e-5,
        contrastive_heads=True,
        interaction_head=True,
        gate_position="output",
        **kwargs,
    ):
        check_positive_ints(hidden_dim=hidden_dim, num_heads=num_heads, key_dim=key_dim,
                            gate_hidden_dim=gate_hidden_dim, projection_dim=projection_dim)
        check_rate("dropout", dropout)
        check_positive("layer_norm_epsilon", layer_norm_epsilon)
        check_choice("gate_position", gate_position, GATE_POSITIONS)
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.num_heads = int(num_heads)
        self.key_dim = int(key_dim)
        self.gate_hidden_dim = int(gate_hidden_dim)
        self.projection_dim = int(projection_dim)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.contrastive_heads = bool(contrastive_heads)
        self.interaction_head = bool(interaction_head)
        self.gate_position = gate_position
        self.gated = self.interaction_head or gate_position == "query"

    def _norm(self, name):
        return keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name)

    def _dense(self, units, name, activation=None):
        return keras.layers.Dense(units, activation=activation, dtype=self.dtype_policy, name=name)

    def _dropout(self, name):
        return keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name=name)

    def build(self, text_shape, image_shape, text_mask_shape=None, image_mask_shape=None):
        for name, shape in (("text", text_shape), ("image", image_shape)):
            if len(shape) != 3 or shape[-1] != self.hidden_dim:
                raise ValueError(
                    f"`{name}` must have shape [batch_size, length, hidden_dim] with "
                    f"hidden_dim={self.hidden_dim}. Received: {name}.shape={tuple(shape)}")
        batch = text_shape[0]
        pooled = (batch, self.hidden_dim)

        # Dynamic modality weighting (eq. 3).
        if self.gated:
            self._gate_hidden = self._dense(self.gate_hidden_dim, "gate_hidden", "relu")
            self._gate_hidden.build((batch, 2 * self.hidden_dim))
            self._gate_dropout = self._dropout("gate_dropout")
            self._gate_output = self._dense(1, "gate_output", "sigmoid")
            self._gate_output.build((batch, self.gate_hidden_dim))

        # Bidirectional cross-attention (eq. 6-7).
        self._attention = {}
        self._query_norm = {}
        self._key_value_norm = {}
        for query, other, query_shape, other_shape in (
                ("text", "image", text_shape, image_shape),
                ("image", "text", image_shape, text_shape)):
            direction = f"{query}_to_{other}"
            self._query_norm[query] = self._norm(f"{direction}_query_norm")
            self._query_norm[query].build(query_shape)
            self._key_value_norm[query] = self._norm(f"{direction}_key_value_norm")
            self._key_value_norm[query].build(other_shape)
            self._attention[query] = keras.layers.MultiHeadAttention(
                num_heads=self.num_heads, key_dim=self.key_dim, dropout=self.dropout,
                output_shape=self.hidden_dim, dtype=self.dtype_policy,
                name=f"{direction}_attention")
            self._attention[query].build(query_shape, other_shape, other_shape)

        # Interaction feature X_c (eq. 8).
        if self.interaction_head:
            self._interaction_norm = self._norm("interaction_norm")
            self._interaction_norm.build((batch, 2 * self.hidden_dim))
            self._interaction_dropout = self._dropout("interaction_dropout")
            self._interaction_dense = self._dense(self.hidden_dim, "interaction_dense")
            self._interaction_dense.build((batch, 2 * self.hidden_dim))

        # Contrastive projection heads (eq. 9-10).
        self._projection_norm = {}
        self._projection_hidden = {}
        self._projection_output = {}
        for modality in ("text", "image") if self.contrastive_heads else ():
            self._projection_norm[modality] = self._norm(f"{modality}_projection_norm")
            self._projection_norm[modality].build(pooled)
            self._projection_hidden[modality] = self._dense(
                self.projection_dim, f"{modality}_projection_hidden", "relu")
            self._projection_hidden[modality].build(pooled)
            self._projection_output[modality] = self._dense(
                self.projection_dim, f"{modality}_projection_output")
            self._projection_output[modality].build((batch, self.projection_dim))
        self.built = True

    def call(self, text, image, text_mask=None, image_mask=None, training=None,
             return_attention_scores=False):
        text_mask = None if text_mask is None else ops.cast(text_mask, "bool")
        image_mask = None if image_mask is None else ops.cast(image_mask, "bool")

        outputs = {}
        weights = {"text": None, "image": None}
        if self.gated:
            pooled = ops.concatenate(
                [_masked_mean(text, text_mask), _masked_mean(image, image_mask)], axis=-1)
            hidden = self._gate_dropout(self._gate_hidden(pooled), training=training)
            outputs["gate"] = self._gate_output(hidden)  # [B, 1]
            theta = outputs["gate"][:, :, None]
            weights = {"text": theta, "image": 1.0 - theta}

        inputs = {"text": text, "image": image}
        masks = {"text": text_mask, "image": image_mask}
        attended, scores = {}, {}
        for query, other in (("text", "image"), ("image", "text")):
            key_value = self._key_value_norm[query](inputs[other])
            query_tokens = self._query_norm[query](inputs[query])
            if self.gate_position == "query" and self.gated:
                query_tokens = weights[query] * query_tokens
            result = self._attention[query](
                query=query_tokens,
                value=key_value,
                key=key_value,
                value_mask=_key_padding_mask(masks[other]),
                training=training,
                return_attention_scores=return_attention_scores,
            )
            output, score = result if return_attention_scores else (result, None)
            if self.gate_position == "output" and self.gated:
                output = weights[query] * output
            attended[query] = _zero_padding(output, masks[query])
            scores[f"{query}_to_{other}_attention"] = score

        pooled_attended = {name: _masked_mean(attended[name], masks[name])
                           for name in ("text", "image")}
        outputs.update(text_attended=attended["text"], image_attended=attended["image"])
        if self.interaction_head:
            interaction = self._interaction_norm(
                ops.concatenate([pooled_attended["text"], pooled_attended["image"]], axis=-1))
            interaction = self._interaction_dropout(interaction, training=training)
            outputs["interaction"] = self._interaction_dense(ops.gelu(interaction))
        for name in self._projection_norm:
            x = self._projection_norm[name](pooled_attended[name])
            outputs[f"{name}_embedding"] = self._projection_output[name](
                self._projection_hidden[name](x))
        if return_attention_scores:
            outputs.update(scores)
        return outputs

    def compute_output_shape(self, text_shape, image_shape, text_mask_shape=None,
                             image_mask_shape=None):
        batch = text_shape[0]
        shapes = {
            "text_attended": (batch, text_shape[1], self.hidden_dim),
            "image_attended": (batch, image_shape[1], self.hidden_dim),
        }
        if self.gated:
            shapes["gate"] = (batch, 1)
        if self.interaction_head:
            shapes["interaction"] = (batch, self.hidden_dim)
        if self.contrastive_heads:
            shapes["text_embedding"] = shapes["image_embedding"] = (batch, self.projection_dim)
        return shapes

    def compute_output_spec(self, text, image, text_mask=None, image_mask=None, training=None,
                            return_attention_scores=False):
        shapes = self.compute_output_shape(text.shape, image.shape)
        if return_attention_scores:
            batch, text_length, image_length = text.shape[0], text.shape[1], image.shape[1]
            shapes["text_to_image_attention"] = (batch, self.num_heads, text_length, image_length)
            shapes["image_to_text_attention"] = (batch, self.num_heads, image_length, text_length)
        return {name: keras.KerasTensor(shape, dtype=self.compute_dtype)
                for name, shape in shapes.items()}

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "gate_hidden_dim": self.gate_hidden_dim,
            "projection_dim": self.projection_dim,
            "dropout": self.dropout,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "contrastive_heads": self.contrastive_heads,
            "interaction_head": self.interaction_head,
            "gate_position": self.gate_position,
        }


def info_nce(text_embeddings, image_embeddings, temperature):
    """Per-sample symmetric InfoNCE loss between paired embeddings (MAHFNet eq. 11).

    With `S[i, j] = cos(text_i, image_j) / temperature`, sample `i` gets
    `-0.5 * (log_softmax(S, axis=1)[i, i] + log_softmax(S, axis=0)[i, i])`:
    the other samples of the batch are the negatives in both directions.
    The loss is computed in float32 with `log_softmax`, so it stays finite
    for small temperatures.

    Args:
        text_embeddings: float tensor of shape `[batch_size, dim]`.
        image_embeddings: float tensor of shape `[batch_size, dim]`, row `i`
            paired with text row `i`.
        temperature: positive float, the temperature `tau`.

    Returns:
        Float32 tensor of shape `[batch_size]`, the per-sample losses; the
        contrastive loss is their mean.

    Example:
    ```python
    loss = keras.ops.mean(info_nce(
        keras.random.normal((8, 256)), keras.random.normal((8, 256)), 0.07))
    ```
    """
    check_positive("temperature", temperature)
    text_embeddings = ops.cast(text_embeddings, "float32")
    image_embeddings = ops.cast(image_embeddings, "float32")
    if len(text_embeddings.shape) != 2 or len(image_embeddings.shape) != 2:
        raise ValueError(
            "`text_embeddings` and `image_embeddings` must be rank 2 [batch_size, dim]. "
            f"Received: text_embeddings.shape={text_embeddings.shape}, "
            f"image_embeddings.shape={image_embeddings.shape}")
    text_embeddings = ops.normalize(text_embeddings, axis=-1, epsilon=1e-12)
    image_embeddings = ops.normalize(image_embeddings, axis=-1, epsilon=1e-12)
    similarity = ops.matmul(text_embeddings, ops.transpose(image_embeddings)) / float(temperature)
    text_to_image = ops.diagonal(ops.log_softmax(similarity, axis=1))
    image_to_text = ops.diagonal(ops.log_softmax(similarity, axis=0))
    return -0.5 * (text_to_image + image_to_text)
