"""Round-trip checks every custom layer gets (the habits of keras-hub's `run_layer_test`).

`run_layer_test` builds the layer from its config, calls it eagerly and symbolically, checks the
output shape against `compute_output_shape`, counts trainable weights, rebuilds it from
`get_config` and checks the copy gives the same outputs with the same weights, saves a model
around it as `.keras` and reloads it with identical outputs, and takes one training step.
Layers with several inputs take them as keyword arguments named after the input-dict keys.

Shapes and round trips do not show that a mechanism acts: a gate that a LayerNorm cancels
passes them all. Every gate, fusion weight and attention direction also gets a sensitivity
test: `force_gate` pins a gate, and `assert_moves` / `assert_unmoved` say that the output
moved by a stated amount when it should (the gate, or the input an attention reads, changed)
and not when it should not (padding, `padding_variants`).
"""

import keras
import numpy as np
from keras import ops


def run_layer_test(cls, init_kwargs, input_data, expected_output_shape,
                   expected_num_trainable_weights=None, call_kwargs=None, tmp_path=None):
    """Runs the round-trip checks; returns the layer's eager outputs.

    Args:
        cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: dict from call-argument name to a NumPy array (batch first).
        expected_output_shape: tuple, or dict of tuples for dict outputs.
        expected_num_trainable_weights: int or None.
        call_kwargs: extra non-tensor call arguments (e.g. `training`).
        tmp_path: a folder for the `.keras` round trip; skipped when None.
    """
    call_kwargs = call_kwargs or {}
    layer = cls(**init_kwargs)
    outputs = layer(**_tensors(input_data), **call_kwargs)
    _assert_shapes(outputs, expected_output_shape)
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights

    symbolic = {name: keras.Input(shape=value.shape[1:], dtype=str(value.dtype), name=name)
                for name, value in input_data.items()}
    symbolic_outputs = cls(**init_kwargs)(**symbolic, **call_kwargs)
    _assert_shapes(symbolic_outputs, expected_output_shape, symbolic=True)

    copy = cls.from_config(layer.get_config())
    assert copy.get_config() == layer.get_config()
    copy(**_tensors(input_data), **call_kwargs)
    copy.set_weights(layer.get_weights())
    _assert_close(copy(**_tensors(input_data), **call_kwargs), outputs)

    model = _wrap(cls, init_kwargs, input_data, call_kwargs)
    reference = model.predict(input_data, verbose=0)
    if tmp_path is not None:
        model.save(tmp_path / "layer_model.keras")
        reloaded = keras.saving.load_model(tmp_path / "layer_model.keras")
        _assert_close(reloaded.predict(input_data, verbose=0), reference)
    _one_training_step(model, input_data)
    return outputs


def _wrap(cls, init_kwargs, input_data, call_kwargs):
    inputs = {name: keras.Input(shape=value.shape[1:], dtype=str(value.dtype), name=name)
              for name, value in input_data.items()}
    outputs = cls(**init_kwargs)(**inputs, **call_kwargs)
    return keras.Model(inputs, outputs)


def _one_training_step(model, input_data):
    """One SGD step pulling every output towards 0 must change some trainable weight."""
    if not model.trainable_weights:
        return
    flat = [keras.layers.Flatten()(output) for output in keras.tree.flatten(model.outputs)]
    joined = flat[0] if len(flat) == 1 else keras.layers.Concatenate()(flat)
    trainer = keras.Model(model.inputs, joined)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = [np.array(weight) for weight in trainer.trainable_weights]
    batch = len(next(iter(input_data.values())))
    trainer.fit(input_data, np.zeros((batch, joined.shape[-1])), batch_size=batch, verbose=0)
    after = [np.array(weight) for weight in trainer.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), "no weight changed"


def _tensors(input_data):
    return {name: ops.convert_to_tensor(value) for name, value in input_data.items()}


def _assert_shapes(outputs, expected, symbolic=False):
    if isinstance(expected, dict):
        assert set(outputs) == set(expected), (set(outputs), set(expected))
        for key in expected:
            _assert_shapes(outputs[key], expected[key], symbolic)
        return
    shape = tuple(outputs.shape)
    if symbolic:
        assert shape[1:] == tuple(expected)[1:], (shape, expected)
    else:
        assert shape == tuple(expected), (shape, expected)


def _assert_close(actual, expected, atol=1e-5):
    keras.tree.map_structure(
        lambda a, e: np.testing.assert_allclose(ops.convert_to_numpy(a), ops.convert_to_numpy(e),
                                                atol=atol, rtol=1e-5),
        actual, expected,
    )


def padded_tokens(rng, batch, length, dim):
    """Random float32 tokens `[batch, length, dim]` and a bool mask in which the first
    sample's last two tokens are padding."""
    mask = np.ones((batch, length), bool)
    mask[0, -2:] = False
    return rng.normal(size=(batch, length, dim)).astype("float32"), mask


def padding_variants(tokens, mask, extra=3, fill=100.0):
    """The batch `tokens` [B, T, D] with its padded tokens set to `fill`, and with `extra`
    padded tokens of `fill` appended; each with its mask. A layer that respects `mask` gives
    the same outputs at real positions for all of them."""
    changed = tokens.copy()
    changed[~mask] = fill
    appended = np.full((len(tokens), extra) + tokens.shape[2:], fill, tokens.dtype)
    longer = np.concatenate([tokens, appended], axis=1)
    longer_mask = np.concatenate([mask, np.zeros((len(mask), extra), bool)], axis=1)
    return [(changed, mask), (longer, longer_mask)]


def force_gate(dense, value):
    """Pins a sigmoid gate computed by the Dense layer `dense` (sigmoid as its activation or
    applied after it) to `value` for every input: a zero kernel and the bias logit(value)."""
    kernel, bias = dense.get_weights()
    logit = np.log(value / (1.0 - value))
    dense.set_weights([np.zeros_like(kernel), np.full_like(bias, logit)])


def assert_moves(before, after, at_least, what):
    """Asserts the largest absolute change from `before` to `after` is at least `at_least`."""
    change = float(np.max(np.abs(_numpy(after) - _numpy(before))))
    assert change >= at_least, f"{what} moved by {change:.3g}, expected at least {at_least}"


def assert_unmoved(before, after, what, atol=1e-5):
    """Asserts `after` equals `before` within `atol`."""
    np.testing.assert_allclose(_numpy(after), _numpy(before), atol=atol, err_msg=what)


def _numpy(value):
    return np.asarray(ops.convert_to_numpy(value), dtype="float64")
