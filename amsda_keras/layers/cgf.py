"""CGF: MAHFNet's cross-gated fusion of the two intra-modal token sequences."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="amsda_keras")
class CGF(keras.layers.Layer):
    """Cross-Gated Fusion (MAHFNet, Section 3.4.1, eq. 16).

    Each modality gates the other, element by element:
    `X_g = sigmoid(W_t text) * image + sigmoid(W_p image) * text`, where `W_t` and `W_p` are
    `d -> d` dense projections. The paper writes them as `R^{d x d}` matrices; here they also
    have a bias. Both inputs must have the same shape: text and image sequences of different
    lengths (e.g. CLIP's 77 and 197 tokens) have to be brought to one length first (with
    `TokenResampler`, or by pooling both to one token).

    Args:
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`,
            `trainable` and `dtype`.

    Call arguments:
        text: float tensor of shape `[batch_size, length, d]`, the text emotion features.
        image: float tensor of shape `[batch_size, length, d]`, the image emotion features.
        return_gates: bool. Whether to also return the two gates. Defaults to `False`.

    Returns:
        A float tensor of shape `[batch_size, length, d]`, the cross-gated features `X_g`; with
        `return_gates=True` a dict with `"fused"` (`X_g`), `"text_gate"` (`sigmoid(W_t text)`,
        which gates the image) and `"image_gate"` (`sigmoid(W_p image)`, which gates the text).

    Example:

    ```python
    text = keras.random.uniform((2, 4, 16))
    image = keras.random.uniform((2, 4, 16))
    gated = CGF()(text, image)  # [2, 4, 16]
    ```

    References:
        - [Huang et al., 2025](https://doi.org/10.3390/electronics14193828), MAHFNet
    """

    def build(self, text_shape, image_shape):
        if len(text_shape) != 3 or len(image_shape) != 3:
            raise ValueError("`text` and `image` must be rank 3, [batch_size, length, d]. "
                             f"Received: text_shape={text_shape}, image_shape={image_shape}")
        if text_shape[-1] is None or text_shape[-1] != image_shape[-1]:
            raise ValueError("`text` and `image` must have the same known last dimension. "
                             f"Received: text_shape={text_shape}, image_shape={image_shape}")
        if None not in (text_shape[1], image_shape[1]) and text_shape[1] != image_shape[1]:
            raise ValueError(
                "`text` and `image` must have the same sequence length; resample them to a "
                "common length first (e.g. with `TokenResampler`, or pool both to one token). "
                f"Received: text_shape={text_shape}, image_shape={image_shape}")
        hidden_dim = text_shape[-1]
        self._text_gate = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy,
                                             name="text_gate")
        self._text_gate.build(text_shape)
        self._image_gate = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy,
                                              name="image_gate")
        self._image_gate.build(image_shape)

    def call(self, text, image, return_gates=False):
        text_gate = ops.sigmoid(self._text_gate(text))
        image_gate = ops.sigmoid(self._image_gate(image))
        fused = text_gate * image + image_gate * text
        if return_gates:
            return {"fused": fused, "text_gate": text_gate, "image_gate": image_gate}
        return fused

    def compute_output_spec(self, text, image, return_gates=False):
        fused = keras.KerasTensor(text.shape, dtype=self.compute_dtype)
        if return_gates:
            return {"fused": fused, "text_gate": keras.KerasTensor(text.shape, self.compute_dtype),
                    "image_gate": keras.KerasTensor(image.shape, self.compute_dtype)}
        return fused
