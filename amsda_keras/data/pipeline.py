"""The one tf.data input pipeline every model trains, evaluates and extracts features from.

Two sources share the same example stream (row indices, labels, sample weights, seeded shuffle
that depends on the epoch only, optional random oversampling, batching, prefetch):
- `raw_dataset`: decodes and converts images and tokenizes text inside tf.data, for models that
  run their encoders (fine-tuning, feature extraction, deployment);
- `feature_dataset`: gathers cached encoder features from memory-mapped files, for models that
  train on frozen encoders.
Batches are `(inputs, labels, sample_weights)`, `(inputs, labels)` or `inputs` alone, which
`model.fit` accepts on the tensorflow, jax and torch backends alike.
"""

import numpy as np
import tensorflow as tf

from amsda_keras.data.images import load_image

AUTOTUNE = tf.data.AUTOTUNE


def balanced_class_weights(labels, num_classes):
    """Per-class weights `n / (num_classes * count)`; classes absent from `labels` get 1."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    weights = np.ones(num_classes, dtype=np.float32)
    present = counts > 0
    weights[present] = len(labels) / (num_classes * counts[present])
    return weights


def oversample(rows, labels, seed):
    """Random oversampling: repeats random rows of each class up to the largest class's count."""
    rows, labels = np.asarray(rows), np.asarray(labels)
    rng = np.random.default_rng(seed)
    target = np.bincount(labels).max()
    extra = [
        rng.choice(rows[labels == label], target - count, replace=True)
        for label, count in zip(*np.unique(labels, return_counts=True))
        if count < target
    ]
    return np.concatenate([rows, *extra]) if extra else rows


def epoch_variable():
    """A variable for the `epoch` argument of a shuffled dataset, starting at 0."""
    return tf.Variable(0, dtype=tf.int64, trainable=False, name="shuffle_epoch")


def raw_dataset(
    frame,
    *,
    batch_size,
    text_preprocessor=None,
    image_preprocessor=None,
    with_labels=True,
    shuffle=False,
    seed=0,
    epoch=None,
    oversample_classes=False,
    class_weights=None,
):
    """Batches of tokenized text and/or decoded, converted images read from `frame`.

    Args:
        frame: a dataset table's DataFrame (`text`, `image`, `label` columns).
        batch_size: int.
        text_preprocessor: a keras-hub text preprocessor (strings to token dict), or None to
            leave text out.
        image_preprocessor: an image converter (uint8 image to model input), or None to leave
            images out.
        with_labels, shuffle, seed, epoch, oversample_classes, class_weights: see
            `feature_dataset`.
    """
    if text_preprocessor is None and image_preprocessor is None:
        raise ValueError("`raw_dataset` needs a text preprocessor, an image preprocessor or both.")
    texts = tf.constant(frame["text"].to_numpy(dtype=str))
    paths = tf.constant(frame["image"].to_numpy(dtype=str))

    def load_row(row):
        inputs = {}
        if text_preprocessor is not None:
            inputs["text"] = tf.gather(texts, row)
        if image_preprocessor is not None:
            inputs["images"] = image_preprocessor(load_image(tf.gather(paths, row)))
        return inputs

    def tokenize(inputs):
        if text_preprocessor is None:
            return inputs
        inputs = dict(inputs)
        return {**text_preprocessor(inputs.pop("text")), **inputs}

    examples = _examples(frame, with_labels, shuffle, seed, epoch, oversample_classes,
                         class_weights)
    examples = examples.map(_on_inputs(load_row), num_parallel_calls=AUTOTUNE)
    batches = examples.batch(batch_size).map(_on_inputs(tokenize), num_parallel_calls=AUTOTUNE)
    return batches.prefetch(AUTOTUNE)


def feature_dataset(
    frame,
    features,
    *,
    batch_size,
    with_labels=True,
    shuffle=False,
    seed=0,
    epoch=None,
    oversample_classes=False,
    class_weights=None,
):
    """Batches of cached features for the rows of `frame`.

    Args:
        frame: the DataFrame whose rows the features belong to; it must have a `row` column with
            each sample's row in the feature arrays (a subset of the table keeps its rows).
        features: dict from input name (e.g. `"text_pooled"`) to an array with one entry per
            cached row (a read-only memory map). Only the names given are read.
        batch_size: int.
        with_labels: bool. Yield `(inputs, labels[, weights])` rather than `inputs` alone.
        shuffle: bool. Shuffle the rows on every pass over the dataset.
        seed: int.
        epoch: a `tf.Variable` (int64) holding the current epoch, needed when shuffling. Each
            pass reads it, so an epoch's order depends on `(seed, epoch)` alone and a resumed
            run sees the batches an uninterrupted one would (`callbacks.ShuffleEpoch` sets it).
        oversample_classes: bool. Randomly oversample minority classes (training only).
        class_weights: array of per-class weights, yielded as sample weights; or None.
    """
    names = sorted(features)
    arrays = [features[name] for name in names]

    def gather(rows):
        return [np.asarray(array[rows], dtype=_float_or_bool(array)) for array in arrays]

    def load_batch(rows):
        values = tf.numpy_function(gather, [rows], [tf.as_dtype(_float_or_bool(a)) for a in arrays])
        for value, array in zip(values, arrays):
            value.set_shape((None,) + array.shape[1:])
        return dict(zip(names, values))

    examples = _examples(frame, with_labels, shuffle, seed, epoch, oversample_classes,
                         class_weights, rows=frame["row"].to_numpy())
    batches = examples.batch(batch_size).map(_on_inputs(load_batch), num_parallel_calls=AUTOTUNE)
    return batches.prefetch(AUTOTUNE)


def _float_or_bool(array):
    return np.bool_ if array.dtype == np.bool_ else np.float32


def _examples(frame, with_labels, shuffle, seed, epoch, oversample_classes, class_weights,
              rows=None):
    """The shared example stream: `(row, label, weight)` tuples before any loading."""
    positions = np.arange(len(frame))
    rows = positions if rows is None else np.asarray(rows)
    labels = frame["label"].to_numpy(dtype=np.int64) if with_labels else None
    if oversample_classes:
        if labels is None:
            raise ValueError("Oversampling needs labels.")
        positions = oversample(positions, labels, seed)
    parts = [rows[positions]]
    if with_labels:
        parts.append(labels[positions])
        if class_weights is not None:
            parts.append(np.asarray(class_weights, dtype=np.float32)[labels[positions]])
    if not shuffle:
        return tf.data.Dataset.from_tensor_slices(tuple(parts))
    if epoch is None:
        raise ValueError("A shuffled dataset needs `epoch` (see `epoch_variable`).")
    parts = tuple(tf.constant(part) for part in parts)
    count = len(positions)

    def shuffled(_):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([tf.constant(seed, tf.int64), epoch.read_value()]))
        return tf.data.Dataset.from_tensor_slices(tuple(tf.gather(part, order) for part in parts))

    dataset = tf.data.Dataset.range(1).flat_map(shuffled)
    return dataset.apply(tf.data.experimental.assert_cardinality(count))


def _on_inputs(fn):
    """Lifts `fn(inputs)` to act on the first element of `(inputs, labels, ...)` tuples."""

    def apply(first, *rest):
        return (fn(first), *rest) if rest else fn(first)

    return apply
