"""MAG: MAHFNet's multi-scale attention gating of the cross-gated tokens with X_C."""

import keras
from keras import ops

from amsda_keras.layers.arguments import check_choice, check_positive, check_positive_ints

DILATED_CONVS = ("depthwise", "full")


@keras.saving.register_keras_serializable(package="amsda_keras")
class MAG(keras.layers.Layer):
    """Multi-Scale Attention Gating (MAHFNet, Section 3.4.2, eq. 17-21).

    Fuses the cross-gated token features `X_g` with the cross-modal interaction feature `X_C`
    in three steps:

    1. Multi-scale temporal convolutions (eq. 17): a depthwise convolution and a dilated
       convolution run in parallel along the sequence axis (channels last, so no transposes),
       are summed and layer-normalized: `X_temp = LN(DWConv(X_g) + DilatedConv(X_g))`.
    2. Squeeze-and-excitation channel attention (eq. 18-19):
       `w_c = sigmoid(W_channel ReLU(W_temp mean_L(X_temp)))`, `X_chan = X_temp * w_c`.
    3. Adaptive gate (eq. 20-21), one scalar per sample:
       `g = sigmoid(W_k ReLU(W_total [mean_L(X_chan); X_C]))`,
       `X_mag = g * X_chan + (1 - g) * X_C`, with `X_C` broadcast over the sequence.

    The residual `X_final = X_mag + X_g` (eq. 22) is left to the model. All dense layers
    have biases. Works for any sequence length, including 1 (pooled features).

    Args:
        hidden_dim: int. Hidden size of the channel-attention and gate MLPs. Defaults to `256`
            (Table 2).
        kernel_size: int. Kernel size of both convolutions. Defaults to `3` (Table 2).
        dilation_rate: int. Dilation rate of the dilated convolution. Defaults to `2`
            (Table 2).
        dilated_conv: `"depthwise"` or `"full"`. The dilated convolution is a
            `DepthwiseConv1D` (one filter per channel, the paper's "without increasing the
            parameter count") or a full `Conv1D` mixing all `d` channels. Defaults to
            `"depthwise"`.
        layer_norm_epsilon: float. Epsilon of the layer normalization. Defaults to `1e-5`.
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`,
            `trainable` and `dtype`.

    Call arguments:
        inputs: float tensor of shape `[batch_size, length, d]`, the cross-gated features
            `X_g` (unpadded).
        interaction: float tensor of shape `[batch_size, d]`, the interaction feature `X_C`.
        training: bool. Unused (MAG has no dropout); accepted for a uniform call signature.
        return_gate: bool. Whether to also return the gate. Defaults to `False`.

    Returns:
        A float tensor of shape `[batch_size, length, d]` (`X_mag`), or with
        `return_gate=True` a dict with `"fused"` (`X_mag`) and `"gate"` (`g`, shape
        `[batch_size, 1]`).

    Example:

    ```python
    gated = keras.random.uniform((2, 4, 16))
    interaction = keras.random.uniform((2, 16))
    fused = MAG(hidden_dim=8)(gated, interaction)  # [2, 4, 16]
    ```

    References:
        - [Huang et al., 2025](https://doi.org/10.3390/electronics14193828), MAHFNet
        - [Hu et al., 2018](https://arxiv.org/abs/1709.01507), Squeeze-and-Excitation Networks
    """

    def __init__(self, hidden_dim=256, kernel_size=3, dilation_rate=2, dilated_conv="depthwise",
                 layer_norm_epsilon=1e-5, **kwargs):
        check_positive_ints(hidden_dim=hidden_dim, kernel_size=kernel_size,
                            dilation_rate=dilation_rate)
        check_choice("dilated_conv", dilated_conv, DILATED_CONVS)
        check_positive("layer_norm_epsilon", layer_norm_epsilon)
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.kernel_size = kernel_size
        self.dilation_rate = dilation_rate
        self.dilated_conv = dilated_conv
        self.layer_norm_epsilon = layer_norm_epsilon

    def build(self, inputs_shape, interaction_shape):
        if len(inputs_shape) != 3 or len(interaction_shape) != 2:
            raise ValueError(
                "`inputs` must be [batch_size, length, d] and `interaction` [batch_size, d]. "
                f"Received: inputs_shape={inputs_shape}, interaction_shape={interaction_shape}")
        hidden_dim = inputs_shape[-1]
        if hidden_dim is None or hidden_dim != interaction_shape[-1]:
            raise ValueError(
                "`inputs` and `interaction` must have the same known last dimension. "
                f"Received: inputs_shape={inputs_shape}, interaction_shape={interaction_shape}")
        batch_size = inputs_shape[0]
        pooled_shape = (batch_size, hidden_dim)

        # Multi-scale temporal convolutions (eq. 17).
        self._local_conv = keras.layers.DepthwiseConv1D(
            self.kernel_size, padding="same", dtype=self.dtype_policy, name="local_conv")
        self._local_conv.build(inputs_shape)
        if self.dilated_conv == "depthwise":
            self._dilated_conv = keras.layers.DepthwiseConv1D(
                self.kernel_size, dilation_rate=self.dilation_rate, padding="same",
                dtype=self.dtype_policy, name="dilated_conv")
        else:
            self._dilated_conv = keras.layers.Conv1D(
                hidden_dim, self.kernel_size, dilation_rate=self.dilation_rate, padding="same",
                dtype=self.dtype_policy, name="dilated_conv")
        self._dilated_conv.build(inputs_shape)
        self._temporal_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="temporal_layer_norm")
        self._temporal_layer_norm.build(inputs_shape)

        # Channel attention (eq. 18).
        self._channel_squeeze = keras.layers.Dense(
            self.hidden_dim, activation="relu", dtype=self.dtype_policy, name="channel_squeeze")
        self._channel_squeeze.build(pooled_shape)
        self._channel_excite = keras.layers.Dense(
            hidden_dim, activation="sigmoid", dtype=self.dtype_policy, name="channel_excite")
        self._channel_excite.build((batch_size, self.hidden_dim))

        # Adaptive gate (eq. 20).
        self._gate_hidden = keras.layers.Dense(
            self.hidden_dim, activation="relu", dtype=self.dtype_policy, name="gate_hidden")
        self._gate_hidden.build((batch_size, 2 * hidden_dim))
        self._gate_logit = keras.layers.Dense(1, dtype=self.dtype_policy, name="gate_logit")
        self._gate_logit.build((batch_size, self.hidden_dim))

    def call(self, inputs, interaction, training=None, return_gate=False):
        temporal = self._temporal_layer_norm(
            self._local_conv(inputs) + self._dilated_conv(inputs))
        # [B, 1, d]
        channel_weights = ops.expand_dims(
            self._channel_excite(self._channel_squeeze(ops.mean(temporal, axis=1))), 1)
        channel = temporal * channel_weights
        # [B, 1]
        gate = ops.sigmoid(self._gate_logit(self._gate_hidden(
            ops.concatenate([ops.mean(channel, axis=1), interaction], axis=-1))))
        gate_3d = ops.expand_dims(gate, 1)
        fused = gate_3d * channel + (1.0 - gate_3d) * ops.expand_dims(interaction, 1)
        if return_gate:
            return {"fused": fused, "gate": gate}
        return fused

    def compute_output_shape(self, inputs_shape, interaction_shape):
        return tuple(inputs_shape)

    def compute_output_spec(self, inputs, interaction, training=None, return_gate=False):
        fused = keras.KerasTensor(self.compute_output_shape(inputs.shape, interaction.shape),
                                  dtype=self.compute_dtype)
        if return_gate:
            return {"fused": fused,
                    "gate": keras.KerasTensor((inputs.shape[0], 1), dtype=self.compute_dtype)}
        return fused

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate,
            "dilated_conv": self.dilated_conv,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
