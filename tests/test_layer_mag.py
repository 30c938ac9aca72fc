import numpy as np
import pytest
from keras import ops

from amsda_keras.layers.mag import MAG
from tests.layer_checks import run_layer_test

pytestmark = pytest.mark.backends  # run under tensorflow, jax and torch

BATCH, LENGTH, HIDDEN = 2, 4, 16
TINY = dict(hidden_dim=8)


def _inputs(seed=0, length=LENGTH):
    rng = np.random.default_rng(seed)
    return {"inputs": rng.normal(size=(BATCH, length, HIDDEN)).astype("float32"),
            "interaction": rng.normal(size=(BATCH, HIDDEN)).astype("float32")}


def _randomized_layer(length=LENGTH, gate_bias=None, **kwargs):
    layer = MAG(**{**TINY, **kwargs})
    layer.build((BATCH, length, HIDDEN), (BATCH, HIDDEN))
    rng = np.random.default_rng(1)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32")
                       for w in layer.weights])
    if gate_bias is not None:
        _weights(layer)["gate_logit/bias"].assign(np.array([gate_bias], "float32"))
    return layer


def _weights(layer):
    return {w.path.split("/", 1)[1]: w for w in layer.weights}


def _conv(x, kernel, bias, dilation_rate):
    """'same'-padded 1D convolution; kernel [k, d, 1] (depthwise) or [k, d, d_out] (full)."""
    size = kernel.shape[0]
    left = ((size - 1) * dilation_rate) // 2
    padded = np.pad(x, ((0, 0), (left, (size - 1) * dilation_rate - left), (0, 0)))
    outputs = 0.0
    for tap in range(size):
        window = padded[:, tap * dilation_rate:tap * dilation_rate + x.shape[1]]
        if kernel.shape[-1] == 1:
            outputs = outputs + window * kernel[tap, :, 0]
        else:
            outputs = outputs + window @ kernel[tap]
    return outputs + bias


def _reference(layer, inputs, interaction):
    """NumPy X_chan (eq. 17-19) and gate g (eq. 20) with the layer's own weights."""
    w = {name: ops.convert_to_numpy(value) for name, value in _weights(layer).items()}
    summed = (_conv(inputs, w["local_conv/kernel"], w["local_conv/bias"], 1)
              + _conv(inputs, w["dilated_conv/kernel"], w["dilated_conv/bias"],
                      layer.dilation_rate))
    mean, var = summed.mean(-1, keepdims=True), summed.var(-1, keepdims=True)
    temporal = ((summed - mean) / np.sqrt(var + layer.layer_norm_epsilon)
                * w["temporal_layer_norm/gamma"] + w["temporal_layer_norm/beta"])
    squeezed = np.maximum(temporal.mean(1) @ w["channel_squeeze/kernel"]
                          + w["channel_squeeze/bias"], 0)
    channel_weights = _sigmoid(squeezed @ w["channel_excite/kernel"] + w["channel_excite/bias"])
    channel = temporal * channel_weights[:, None, :]
    hidden = np.maximum(np.concatenate([channel.mean(1), interaction], -1)
                        @ w["gate_hidden/kernel"] + w["gate_hidden/bias"], 0)
    gate = _sigmoid(hidden @ w["gate_logit/kernel"] + w["gate_logit/bias"])
    return channel, gate


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("dilated_conv, return_gate", [("depthwise", True), ("full", False)])
def test_layer_basics(dilated_conv, return_gate, tmp_path):
    expected = (BATCH, LENGTH, HIDDEN)
    if return_gate:
        expected = {"fused": expected, "gate": (BATCH, 1)}
    # Two convolutions 4, layer norm 2, four dense layers 8.
    run_layer_test(MAG, init_kwargs={**TINY, "dilated_conv": dilated_conv},
                   input_data=_inputs(), expected_output_shape=expected,
                   expected_num_trainable_weights=14, call_kwargs={"return_gate": return_gate},
                   tmp_path=tmp_path)


@pytest.mark.parametrize("length", [LENGTH, 1])
@pytest.mark.parametrize("dilated_conv", ["depthwise", "full"])
def test_matches_numpy_equations_17_to_21(dilated_conv, length):
    data = _inputs(length=length)
    layer = _randomized_layer(length, dilated_conv=dilated_conv)
    outputs = layer(**data, return_gate=True)
    channel, gate = _reference(layer, data["inputs"], data["interaction"])
    fused = gate[:, :, None] * channel + (1 - gate[:, :, None]) * data["interaction"][:, None]
    np.testing.assert_allclose(ops.convert_to_numpy(outputs["gate"]), gate, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(outputs["fused"]), fused, atol=1e-5)


def test_gate_is_one_scalar_strictly_between_zero_and_one():
    gate = ops.convert_to_numpy(MAG(**TINY)(**_inputs(), return_gate=True)["gate"])
    assert gate.shape == (BATCH, 1)
    assert np.all((gate > 0) & (gate < 1))


def test_open_gate_gives_channel_features_and_closed_gate_the_interaction():
    data = _inputs()
    opened = _randomized_layer(gate_bias=1e4)
    channel, _ = _reference(opened, data["inputs"], data["interaction"])
    np.testing.assert_allclose(ops.convert_to_numpy(opened(**data)), channel, atol=1e-5)

    closed = _randomized_layer(gate_bias=-1e4)
    expected = np.broadcast_to(data["interaction"][:, None], (BATCH, LENGTH, HIDDEN))
    np.testing.assert_allclose(ops.convert_to_numpy(closed(**data)), expected, atol=1e-6)


def test_depthwise_dilated_conv_has_fewer_parameters():
    counts = {}
    for dilated_conv in ("depthwise", "full"):
        layer = MAG(**TINY, dilated_conv=dilated_conv)
        layer.build((None, None, HIDDEN), (None, HIDDEN))
        counts[dilated_conv] = layer.count_params()
    # Depthwise: k * d + d; full: k * d * d + d.
    assert counts["full"] - counts["depthwise"] == 3 * HIDDEN * HIDDEN - 3 * HIDDEN


def test_mismatched_widths_are_rejected():
    with pytest.raises(ValueError, match="last dimension"):
        MAG(**TINY)(np.zeros((BATCH, LENGTH, HIDDEN), "float32"),
                    np.zeros((BATCH, HIDDEN + 1), "float32"))


@pytest.mark.parametrize("name, value", [
    ("hidden_dim", 0), ("kernel_size", 2.0), ("dilation_rate", -1), ("hidden_dim", False),
    ("dilated_conv", "separable"), ("layer_norm_epsilon", 0),
])
def test_invalid_arguments_are_named(name, value):
    with pytest.raises(ValueError, match=name):
        MAG(**{**TINY, name: value})
