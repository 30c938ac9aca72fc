"""Trainable fusion weights: A-MSDA's weighted average of its branches' logits."""

import keras
from keras import ops

from amsda_keras.layers.arguments import check_choice

NORMALIZATIONS = ("softmax", "sum")


@keras.saving.register_keras_serializable(package="amsda_keras")
class FusionWeights(keras.layers.Layer):
    """Mixes branch logits with learned weights that are positive and sum to 1 (A-MSDA eq. 25-26).

    `y = sum_i w_i * logits_i`, one scalar weight per branch (text, visual, fusion). The raw
    weights start equal, so every branch starts with weight `1 / num_branches`.

    Args:
        branch_names: list of str, one name per input, used to report the weights
            (`fusion_weight_<name>` in the training history).
        normalization: how raw weights become positive weights summing to 1. `"softmax"`
            (default): `softmax(raw)`, unconstrained raw weights. `"sum"`: `raw / sum(raw)`
            as eq. 25 writes it, with raw weights kept non-negative (clipped at `1e-6`).
        **kwargs: other keyword arguments passed to `keras.layers.Layer`, including `name`,
            `trainable` (False keeps the weights equal: the "fixed equal weights" ablation)
            and `dtype`.

    Call arguments:
        logits: list of float tensors of the same shape `[batch_size, num_classes]`, in the
            order of `branch_names`.

    Returns:
        The mixed logits, `[batch_size, num_classes]`.

    Example:

    ```python
    mix = FusionWeights(["text", "visual", "fusion"])
    logits = mix([keras.random.normal((2, 3)) for _ in range(3)])  # [2, 3]
    ops.convert_to_numpy(mix.normalized_weights())  # [1/3, 1/3, 1/3] before training
    ```
    """

    def __init__(self, branch_names, normalization="softmax", **kwargs):
        branch_names = list(branch_names)
        if len(branch_names) < 2 or len(set(branch_names)) != len(branch_names):
            raise ValueError("`branch_names` must hold at least 2 distinct names. "
                             f"Received: branch_names={branch_names}")
        check_choice("normalization", normalization, NORMALIZATIONS)
        super().__init__(**kwargs)
        self.branch_names = branch_names
        self.normalization = normalization

    def build(self, logits_shape):
        if len(logits_shape) != len(self.branch_names):
            raise ValueError(f"Expected {len(self.branch_names)} logits tensors, one per branch "
                             f"{self.branch_names}. Received {len(logits_shape)}.")
        initial = 0.0 if self.normalization == "softmax" else 1.0
        self.raw_weights = self.add_weight(
            shape=(len(self.branch_names),),
            initializer=keras.initializers.Constant(initial),
            constraint=None if self.normalization == "softmax" else _AtLeast(1e-6),
            dtype=self.variable_dtype,
            name="raw_weights",
        )

    def normalized_weights(self):
        """The branch weights in use: positive, summing to 1, in the order of `branch_names`."""
        if self.normalization == "softmax":
            return ops.softmax(self.raw_weights)
        return self.raw_weights / ops.sum(self.raw_weights)

    def call(self, logits):
        weights = ops.cast(self.normalized_weights(), logits[0].dtype)
        return sum(weights[index] * branch for index, branch in enumerate(logits))

    def compute_output_shape(self, logits_shape):
        return tuple(logits_shape[0])

    def get_config(self):
        return {**super().get_config(), "branch_names": self.branch_names,
                "normalization": self.normalization}


@keras.saving.register_keras_serializable(package="amsda_keras")
class _AtLeast(keras.constraints.Constraint):
    """Clips a weight from below, keeping eq. 25's raw weights positive."""

    def __init__(self, minimum):
        self.minimum = minimum

    def __call__(self, weight):
        return ops.maximum(weight, self.minimum)

    def get_config(self):
        return {"minimum": self.minimum}
