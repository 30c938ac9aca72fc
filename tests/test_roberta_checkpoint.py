"""A Hugging Face RoBERTa folder as a text encoder, against a NumPy copy of HF's RobertaModel."""

import json

import keras
import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf
from scipy.special import erf

from amsda_keras.encoders import build_text_encoder

WIDTH, NUM_LAYERS, NUM_HEADS, INTERMEDIATE = 16, 2, 2, 32
VOCABULARY_SIZE, MAX_POSITIONS, PAD_ID, EPSILON = 50, 40, 1, 1e-5
# keras-hub's RobertaTokenizer example ("Ġ" is a space), with every symbol its merges use.
MERGES = ["Ġ q", "u i", "c k", "ui ck", "Ġq uick", "Ġ f", "o x", "Ġf ox"]
SYMBOLS = ["<s>", "<pad>", "</s>", "<mask>", *"Ġacfikoqux", *(m.replace(" ", "") for m in MERGES)]
VOCABULARY = {symbol: index for index, symbol in enumerate(SYMBOLS)}  # ids up to 50 unused
TEXTS = ["a quick fox", "a fox"]
SEQUENCE_LENGTH = 8


def _hf_weights(rng):
    """Random float32 weights under the names of HF's RobertaForMaskedLM (DistilRoBERTa's)."""
    def normal(*shape, mean=0.0):
        return (mean + 0.5 * rng.standard_normal(shape)).astype("float32")

    embeddings = "roberta.embeddings"
    weights = {
        f"{embeddings}.word_embeddings.weight": normal(VOCABULARY_SIZE, WIDTH),
        f"{embeddings}.position_embeddings.weight": normal(MAX_POSITIONS, WIDTH),
        f"{embeddings}.token_type_embeddings.weight": normal(1, WIDTH),
        f"{embeddings}.LayerNorm.weight": normal(WIDTH, mean=1.0),
        f"{embeddings}.LayerNorm.bias": normal(WIDTH),
    }
    dense_shapes = {"attention.self.query": (WIDTH, WIDTH), "attention.self.key": (WIDTH, WIDTH),
                    "attention.self.value": (WIDTH, WIDTH),
                    "attention.output.dense": (WIDTH, WIDTH),
                    "intermediate.dense": (INTERMEDIATE, WIDTH),
                    "output.dense": (WIDTH, INTERMEDIATE)}
    for index in range(NUM_LAYERS):
        layer = f"roberta.encoder.layer.{index}"
        for name, shape in dense_shapes.items():  # torch Linear: [out, in]
            weights[f"{layer}.{name}.weight"] = normal(*shape)
            weights[f"{layer}.{name}.bias"] = normal(shape[0])
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[f"{layer}.{norm}.weight"] = normal(WIDTH, mean=1.0)
            weights[f"{layer}.{norm}.bias"] = normal(WIDTH)
    return weights


@pytest.fixture(scope="module")
def hf_roberta(tmp_path_factory):
    """A tiny random Hugging Face RoBERTa folder and its weights."""
    folder = tmp_path_factory.mktemp("hf_roberta")
    config = {
        "model_type": "roberta", "architectures": ["RobertaForMaskedLM"],
        "vocab_size": VOCABULARY_SIZE, "hidden_size": WIDTH, "num_hidden_layers": NUM_LAYERS,
        "num_attention_heads": NUM_HEADS, "intermediate_size": INTERMEDIATE,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": MAX_POSITIONS, "type_vocab_size": 1,
        "layer_norm_eps": EPSILON, "pad_token_id": PAD_ID, "bos_token_id": 0, "eos_token_id": 2,
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "vocab.json").write_text(json.dumps(VOCABULARY))
    (folder / "merges.txt").write_text("\n".join(MERGES) + "\n")
    weights = _hf_weights(np.random.default_rng(0))
    safetensors.numpy.save_file(weights, str(folder / "model.safetensors"))
    return folder, weights


def _layer_norm(x, gamma, beta):
    mean, variance = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + EPSILON) * gamma + beta


def _reference_tokens(weights, token_ids, token_type=True):
    """HF's RobertaModel forward pass (eval mode) in float64: `[batch, length, width]`."""
    w = {name: value.astype("float64") for name, value in weights.items()}
    embeddings, real = "roberta.embeddings", token_ids != PAD_ID
    # `create_position_ids_from_input_ids`: real tokens count from PAD_ID + 1, padding is PAD_ID.
    positions = np.cumsum(real, axis=1) * real + PAD_ID
    x = w[f"{embeddings}.word_embeddings.weight"][token_ids]
    x = x + w[f"{embeddings}.position_embeddings.weight"][positions]
    if token_type:
        x = x + w[f"{embeddings}.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w[f"{embeddings}.LayerNorm.weight"], w[f"{embeddings}.LayerNorm.bias"])
    batch, length, head_dim = *token_ids.shape, WIDTH // NUM_HEADS
    for index in range(NUM_LAYERS):
        def dense(name, inputs, layer=f"roberta.encoder.layer.{index}"):
            return inputs @ w[f"{layer}.{name}.weight"].T + w[f"{layer}.{name}.bias"]

        def norm(name, inputs, layer=f"roberta.encoder.layer.{index}"):
            return _layer_norm(inputs, w[f"{layer}.{name}.weight"], w[f"{layer}.{name}.bias"])

        q, k, v = (dense(f"attention.self.{name}", x).reshape(batch, length, NUM_HEADS, head_dim)
                   .transpose(0, 2, 1, 3) for name in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim)
        scores = np.where(real[:, None, None, :], scores, -1e9)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        context = (attention @ v).transpose(0, 2, 1, 3).reshape(batch, length, WIDTH)
        x = norm("attention.output.LayerNorm", dense("attention.output.dense", context) + x)
        hidden = dense("intermediate.dense", x)
        hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))  # HF's "gelu": exact
        x = norm("output.LayerNorm", dense("output.dense", hidden) + x)
    return x


def test_hf_roberta_folder_matches_hugging_face(hf_roberta, tmp_path):
    folder, weights = hf_roberta
    encoder = build_text_encoder(str(folder), sequence_length=SEQUENCE_LENGTH)
    inputs = encoder.preprocessor(tf.constant(TEXTS))
    token_ids, mask = inputs["token_ids"].numpy(), inputs["padding_mask"].numpy()
    a, quick, fox = VOCABULARY["a"], VOCABULARY["Ġquick"], VOCABULARY["Ġfox"]
    np.testing.assert_array_equal(token_ids[:, :5], [[0, a, quick, fox, 2], [0, a, fox, 2, PAD_ID]])
    np.testing.assert_array_equal(mask, token_ids != PAD_ID)
    tokens = encoder.feature_model.predict_on_batch(inputs)["tokens"]

    # The token-type row is folded into the positions, which skip HF's first PAD_ID + 1 rows.
    positions = encoder.backbone.embeddings.position_embedding.position_embeddings
    embeddings = "roberta.embeddings"
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(positions),
        weights[f"{embeddings}.position_embeddings.weight"][PAD_ID + 1:]
        + weights[f"{embeddings}.token_type_embeddings.weight"][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tokens[mask], _reference_tokens(weights, token_ids)[mask],
                               rtol=1e-4, atol=1e-4)
    without_fold = _reference_tokens(weights, token_ids, token_type=False)[mask]
    assert np.abs(tokens[mask] - without_fold).max() > 0.1

    # Saved as a keras-hub preset, it holds the folded weights: not folded twice.
    encoder.save(tmp_path / "saved")
    reloaded = build_text_encoder(str(tmp_path / "saved"), sequence_length=SEQUENCE_LENGTH)
    assert reloaded.fingerprint() == encoder.fingerprint()
    np.testing.assert_array_equal(reloaded.feature_model.predict_on_batch(inputs)["tokens"],
                                  tokens)
