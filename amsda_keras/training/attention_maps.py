"""MAHFNet's AGAI cross-attention for single samples, drawn as heatmaps (the paper's Figure 7).

`compute_attention_maps` runs one text+image pair through the encoders, the model's input
projections and its AGAI block, and returns the head-averaged attention in both directions.
`plot_attention_maps` draws them into one PNG, and `write_attention_maps` does both for
samples of a trained run, named by id or taken from a split.
"""

import dataclasses
import math
import re
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from amsda_keras.data.images import load_image
from amsda_keras.data.splits import apply_splits_file
from amsda_keras.layers.agai import AGAI
from amsda_keras.models.compose import head_and_features
from amsda_keras.training import inputs
from amsda_keras.training.config import load_run_config
from amsda_keras.training.reporting import save_figure

AGAI_LAYER = "agai"
LISTED_IDS = 5
# How tokenizers split words: CLIP's BPE ends a word's last piece with `</w>`; WordPiece (BERT,
# MiniLM) starts every piece after a word's first with `##`.
END_OF_WORD = "</w>"
CONTINUATION = "##"
# The label of a word's later pieces, before their text.
LATER_PIECE = "…"


@dataclasses.dataclass
class AttentionMaps:
    """The head-averaged AGAI attention of one sample, with what is needed to draw it.

    Attributes:
        tokens: list of str, the text token at every position, padding included, as the
            tokenizer writes it (`py</w>`, `##py`).
        text_mask: bool array `[text_length]`, True for real (masked-in) tokens.
        image: uint8 array `[height, width, 3]`, the image as the encoder sees it (resized
            and cropped by its image converter, not normalised).
        grid: int, the side of the square patch grid.
        class_tokens: int, image tokens before the patches (1 for a ViT class token, else 0).
        text_to_image: float array `[text_length, image_length]`; each row is a distribution
            over all image tokens.
        image_to_text: float array `[image_length, text_length]`; each row is a
            distribution over the real text tokens (padding gets 0).
        probabilities: float array `[num_classes]`, the model's prediction.
        special_tokens: tuple of str, the tokenizer's special tokens (`[CLS]`), each a word
            of its own in `labels`. Defaults to `()`.
    """

    tokens: list
    text_mask: np.ndarray
    image: np.ndarray
    grid: int
    class_tokens: int
    text_to_image: np.ndarray
    image_to_text: np.ndarray
    probabilities: np.ndarray
    special_tokens: tuple = ()

    @property
    def real_tokens(self):
        """The real text tokens, in order."""
        return [token for token, real in zip(self.tokens, self.text_mask) if real]

    @property
    def labels(self):
        """Readable labels of the real text tokens, one per token (`readable_tokens`)."""
        return readable_tokens(self.real_tokens, self.special_tokens)

    @property
    def token_by_patch(self):
        """`[real_tokens, patches]`: text-to-image attention without padding or class token."""
        return self.text_to_image[self.text_mask, self.class_tokens:]

    @property
    def patch_map(self):
        """`[grid, grid]`: the attention the real text tokens pay to each patch, averaged."""
        return self.token_by_patch.mean(axis=0).reshape(self.grid, self.grid)

    @property
    def token_weights(self):
        """`[real_tokens]`: the attention the patches pay to each real text token, averaged."""
        return self.image_to_text[self.class_tokens:, self.text_mask].mean(axis=0)


def readable_tokens(tokens, special_tokens=()):
    """Labels for a tokenizer's word pieces, one per piece: a word's first piece shows the
    whole word, its later pieces `…` and their own text.

    CLIP's `["hap", "py</w>", "day</w>"]` and WordPiece's `["hap", "##py", "day"]` both give
    `["happy", "…py", "day"]`. Special tokens are words of their own; other tokenizers'
    pieces (RoBERTa's `Ġday`) are kept as they are.

    Args:
        tokens: list of str, the pieces in order.
        special_tokens: collection of str, the tokenizer's special tokens (`<|startoftext|>`).

    Returns:
        A list of str as long as `tokens`.
    """
    ends_words = any(token.endswith(END_OF_WORD) for token in tokens)
    words, after_piece, word_open = [], False, False
    for token in tokens:
        special = token in special_tokens
        piece = token if special else token.removeprefix(CONTINUATION).removesuffix(END_OF_WORD)
        if after_piece and not special and (word_open or token.startswith(CONTINUATION)):
            words[-1].append(piece)
        else:
            words.append([piece])
        after_piece = not special
        word_open = ends_words and not token.endswith(END_OF_WORD)
    return [label for pieces in words
            for label in ["".join(pieces)] + [LATER_PIECE + piece for piece in pieces[1:]]]


def patch_grid(num_tokens):
    """Finds the square patch grid in a flattened sequence of image tokens.

    Args:
        num_tokens: int, the number of image tokens (e.g. 49 for a 7x7 feature map, 197 for
            ViT-B/16 at 224px: a class token and 14x14 patches).

    Returns:
        `(side, class_tokens)`: `class_tokens` is 0 when `num_tokens` is a square, 1 when
        `num_tokens - 1` is (the first token is a class token).

    Raises:
        ValueError: neither is a perfect square.
    """
    for class_tokens in (0, 1):
        side = math.isqrt(num_tokens - class_tokens)
        if side > 0 and side * side == num_tokens - class_tokens:
            return side, class_tokens
    raise ValueError(
        f"Cannot lay {num_tokens} image tokens out as a square patch grid (with or without "
        "one class token first); the attention heatmap needs a square grid.")


def compute_attention_maps(model, encoders, text, image_path):
    """The head-averaged AGAI attention of one sample, and the model's prediction.

    The encoders' features are projected with the model's `text_projection` and
    `image_projection` layers and passed to its `agai` layer with
    `return_attention_scores=True`, eagerly and without dropout.

    Args:
        model: a MAHFNet `keras.Model` on encoder features (`build_mahfnet`), with its AGAI
            block.
        encoders: dict from `"text"` and `"image"` to the run's `Encoder`s.
        text: str, the sample's text.
        image_path: str or path, the sample's image file.

    Returns:
        An `AttentionMaps`.

    Raises:
        ValueError: the model has no AGAI block (e.g. built with `ablate=["agai"]`), or the
            image tokens do not form a square grid.
    """
    text_inputs = encoders["text"].preprocessor([text])
    text_features = encoders["text"].feature_model(text_inputs)
    image = load_image(str(image_path)).numpy()
    image_converter = encoders["image"].preprocessor
    image_features = encoders["image"].feature_model({"images": image_converter(image[None])})
    features = {"text_tokens": text_features["tokens"], "text_mask": text_features["mask"],
                "image_tokens": image_features["tokens"]}

    head, head_features = head_and_features(model, features)
    outputs = _agai_layer(head)(
        head.get_layer("text_projection")(head_features["text_tokens"]),
        head.get_layer("image_projection")(head_features["image_tokens"]),
        text_mask=features["text_mask"], training=False, return_attention_scores=True)
    logits = model(features, training=False)["logits"]
    grid, class_tokens = patch_grid(int(features["image_tokens"].shape[1]))
    tokenizer = encoders["text"].preprocessor.tokenizer
    token_ids = keras.ops.convert_to_numpy(text_inputs["token_ids"])[0]
    view = keras.ops.convert_to_numpy(image_converter.resizing(image))
    return AttentionMaps(
        tokens=[tokenizer.id_to_token(int(token_id)) for token_id in token_ids],
        text_mask=keras.ops.convert_to_numpy(features["text_mask"])[0],
        image=np.clip(view, 0, 255).astype(np.uint8),
        grid=grid,
        class_tokens=class_tokens,
        text_to_image=_head_mean(outputs["text_to_image_attention"]),
        image_to_text=_head_mean(outputs["image_to_text_attention"]),
        probabilities=keras.ops.convert_to_numpy(keras.ops.softmax(logits[0])),
        special_tokens=tuple(tokenizer.special_tokens),
    )


def plot_attention_maps(path, maps, *, sample_id, true_label, class_names):
    """Draws one sample's attention maps into a PNG.

    Three panels: (a) the image under the text-to-image attention, averaged over the real
    text tokens and stretched over the patch grid; (b) the image-to-text attention,
    averaged over the patches, per text token; (c) the full text-token by patch matrix.

    Args:
        path: the PNG file to write.
        maps: an `AttentionMaps`.
        sample_id: str, shown in the title.
        true_label: int, index of the sample's label in `class_names`.
        class_names: ordered class names.
    """
    labels = maps.labels
    height = max(4.0, 0.22 * len(labels) + 1.5)
    figure = Figure(figsize=(16, height))
    image_axes, token_axes, matrix_axes = figure.subplots(
        1, 3, gridspec_kw={"width_ratios": [1.3, 0.8, 2.0]})

    rows, columns = maps.image.shape[:2]
    image_axes.imshow(maps.image)
    overlay = image_axes.imshow(maps.patch_map, cmap="jet", alpha=0.45, interpolation="bilinear",
                                extent=(0, columns, rows, 0))
    figure.colorbar(overlay, ax=image_axes, fraction=0.046)
    image_axes.set(title="(a) text-to-image attention", xticks=[], yticks=[])

    positions = np.arange(len(labels))
    token_axes.barh(positions, maps.token_weights, color="tab:orange")
    token_axes.set(title="(b) image-to-text attention", xlabel="mean over patches",
                   yticks=positions, ylim=(len(labels) - 0.5, -0.5))
    token_axes.set_yticklabels(labels)

    matrix = matrix_axes.imshow(maps.token_by_patch, aspect="auto", cmap="viridis",
                                interpolation="nearest")
    figure.colorbar(matrix, ax=matrix_axes, fraction=0.046)
    matrix_axes.set(title="(c) text token x image patch", xlabel="patch (row-major)",
                    yticks=positions)
    matrix_axes.set_yticklabels(labels)

    predicted = int(np.argmax(maps.probabilities))
    figure.suptitle(f"{sample_id}: true {class_names[true_label]}, predicted "
                    f"{class_names[predicted]} ({maps.probabilities[predicted]:.2f})")
    save_figure(figure, path)


def write_attention_maps(run_dir, *, sample_ids=None, split=None, count=8, output=None,
                         progress=True):
    """Writes an attention heatmap PNG for samples of a trained MAHFNet run.

    The data, encoders and model are the run's own (`config.yaml`, `splits.csv`,
    `model.keras`, `encoders/`).

    Args:
        run_dir: a run folder written by `train` with a MAHFNet model on frozen encoders.
        sample_ids: list of str, the samples to draw; or None to take them from `split`.
        split: str, take the first `count` samples of this split (when `sample_ids` is None).
        count: int, how many samples of `split`. Defaults to `8`.
        output: folder for `<id>.png`. Defaults to `<run_dir>/attention`.
        progress: bool, whether to show the data check's progress bar. Defaults to `True`.

    Returns:
        The list of PNG paths written.

    Raises:
        ValueError: unknown sample ids or split, a run with fine-tuned encoders, or a model
            without an AGAI block.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir / "config.yaml")
    if config["encoders"]["trainable"] or not config["features"]["cache"]:
        raise ValueError(f"{run_dir} ran its encoders inside the model (encoders.trainable: "
                         "true or features.cache: false); attention maps need a run on "
                         "cached features.")
    splits = pd.read_csv(run_dir / "splits.csv", dtype=str)
    selected = _selected_ids(splits, sample_ids, split, count)
    directory = Path(output or run_dir / "attention")
    directory.mkdir(parents=True, exist_ok=True)

    class_names = config["data"]["class_names"]
    table = inputs.load_table(config["data"], directory, class_names=class_names,
                              progress=progress)
    frame = apply_splits_file(table.frame, run_dir / "splits.csv").set_index("id")
    encoders = inputs.build_encoders(config["encoders"], run_dir, training_texts=None)
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    paths = []
    for sample_id in selected:
        sample = frame.loc[sample_id]
        maps = compute_attention_maps(model, encoders, sample["text"], sample["image"])
        path = directory / f"{_file_name(sample_id)}.png"
        plot_attention_maps(path, maps, sample_id=sample_id, true_label=int(sample["label"]),
                            class_names=class_names)
        paths.append(path)
    print(f"Attention maps of {len(paths)} samples written to {directory}")
    return paths


def _selected_ids(splits, sample_ids, split, count):
    """The ids to draw, checked against the run's `splits.csv` (`id`, `split` columns)."""
    if sample_ids is not None:
        unknown = [i for i in sample_ids if i not in set(splits["id"])]
        if unknown:
            raise ValueError(f"Unknown sample ids {unknown}: the run has no such samples. "
                             f"Valid ids include {list(splits['id'][:LISTED_IDS])}.")
        return list(sample_ids)
    if split not in set(splits["split"]):
        raise ValueError(f"The run has no split {split!r}; it has {sorted(set(splits['split']))}.")
    return list(splits["id"][splits["split"] == split][:count])


def _file_name(sample_id):
    """A sample id made safe as a file name (path separators and the like become `_`)."""
    return re.sub(r"[^\w.-]", "_", sample_id)


def _agai_layer(model):
    try:
        layer = model.get_layer(AGAI_LAYER)
    except ValueError:
        layer = None
    if not isinstance(layer, AGAI):
        raise ValueError(
            f"The attention heatmap needs the AGAI block, but model {model.name!r} has no "
            f"AGAI layer named {AGAI_LAYER!r} (a MAHFNet built with ablate=['agai'] has none).")
    return layer


def _head_mean(scores):
    """`[1, heads, queries, keys]` attention to a `[queries, keys]` NumPy array."""
    return keras.ops.convert_to_numpy(keras.ops.mean(scores, axis=1))[0]
