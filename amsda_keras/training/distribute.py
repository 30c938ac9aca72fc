"""Data-parallel training on all local accelerators (`training.distribute: data-parallel`).

The global batch (`training.batch_size`) is split evenly across the devices, so it must be a
multiple of their count. TensorFlow uses `tf.distribute.MirroredStrategy`, which handles a
last batch of any size. JAX uses Keras' own `keras.distribution.DataParallel`, which needs
every batch to split evenly: `split_evenly` trims the last training batch of each epoch to a
multiple of the device count and pads the last selection batch with zero-weight copies, and
feature extraction and scoring, which need no parallelism, run `without_data_sharding`. The
torch backend has no Keras data-parallel path.
"""

import contextlib

import keras
import tensorflow as tf

from amsda_keras.training.config import ConfigError


def distribution_scope(mode, batch_size):
    """The context to build, compile and train in: nothing for `none`, all local devices for
    `data-parallel`."""
    if mode == "none":
        return contextlib.nullcontext()
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        raise ConfigError(
            f"training.distribute=data-parallel needs the jax or tensorflow backend; this is "
            f"{backend}. Set KERAS_BACKEND=jax (or tensorflow), or train on one device.")
    devices = _local_devices()
    if batch_size % len(devices):
        raise ConfigError(
            f"training.batch_size={batch_size} cannot be split evenly across the "
            f"{len(devices)} devices of training.distribute=data-parallel; pick a multiple of "
            f"{len(devices)}.")
    if backend == "jax":
        return keras.distribution.DataParallel(devices=devices).scope()
    return tf.distribute.MirroredStrategy([device.name for device in devices]).scope()


def device_count(mode):
    """How many devices a run with this `training.distribute` trains on."""
    return 1 if mode == "none" else len(_local_devices())


def split_evenly(dataset, training):
    """Under a JAX data-parallel scope, makes each `(inputs, labels[, weights])` batch a
    multiple of the device count; else returns `dataset`.

    Training batches lose their last `size % devices` samples (at most devices - 1 an epoch,
    others each epoch, as the order is reshuffled): copies would be in-batch negatives of
    MAHFNet's contrastive loss identical to their positives, and would enter BatchNorm's batch
    statistics. Other batches (the selection split) are padded with copies of their last sample
    weighted 0, so every sample counts in the weighted metrics: the accuracy that picks the
    epoch is exact, while the loss of a padded batch (a mean over the padded size, with the
    copies among the contrastive negatives), read only by ReduceLROnPlateau, is approximate.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        return dataset
    multiple = len(distribution.device_mesh.devices.flatten())

    def trim(inputs, labels, *weights):
        kept = tf.shape(labels)[0] // multiple * multiple
        return tf.nest.map_structure(lambda tensor: tensor[:kept], (inputs, labels, *weights))

    if training:
        return dataset.map(trim).filter(lambda inputs, labels, *weights: tf.size(labels) > 0)

    def pad(inputs, labels, *weights):
        count = tf.shape(labels)[0]
        missing = -count % multiple

        def padded(tensor):
            return tf.concat([tensor, tf.repeat(tensor[-1:], missing, axis=0)], axis=0)

        weight = weights[0] if weights else tf.ones([count], tf.float32)
        return (tf.nest.map_structure(padded, inputs), padded(labels),
                tf.concat([weight, tf.zeros([missing], weight.dtype)], axis=0))

    return dataset.map(pad)


@contextlib.contextmanager
def without_data_sharding():
    """Runs models on whole batches of any size: lifts a JAX data-parallel distribution (the
    variables stay replicated on every device) for the duration."""
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def _local_devices():
    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()
    return tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
