"""`python -m amsda_keras.export`: write a trained run as a TensorFlow SavedModel on raw inputs.

The SavedModel's `serve` function takes
- `texts`: a `tf.string` batch `[batch]` of posts, and
- `images`: a `tf.string` batch `[batch]` of encoded image files (JPEG, PNG, GIF, WebP or
  BMP bytes, as `tf.io.read_file` or `open(path, "rb").read()` give them),
and returns `{"probabilities": float32 [batch, classes], "label": string [batch], "error":
string [batch]}`. One bad image does not fail the batch: its row gets NaN probabilities, the
label "" and the reason in `error` ("" in the other rows): "undecodable image: empty", "...:
not a JPEG/PNG/GIF/BMP/WebP file" (from its first bytes), "...: truncated or corrupt JPEG data"
(or PNG, ...: TensorFlow failed to decode it; it decodes no part of a truncated file, not even
a JPEG with a valid header) or "unsupported image: animated WebP" (TensorFlow's decoder would
crash). Images of those formats are decoded twice, the first time to find the failures. An
8-bit palette BMP still decodes to its palette indices, as in training, where
`data/validation.py` refuses it.
Tokenisation, image decoding, resizing and normalisation, and the encoders (frozen or
fine-tuned) are inside the graph, so serving needs TensorFlow and tensorflow-text (whose
tokenizer ops keras-hub uses) but not this package or Keras:

    import tensorflow as tf, tensorflow_text  # registers the tokenizer ops
    served = tf.saved_model.load("runs/mahfnet-.../saved_model")
    served.serve(texts=tf.constant(["what a day"]),
                 images=tf.constant([tf.io.read_file("photo.jpg")]))

A model that reads one modality still takes both inputs and ignores the other.

Examples:
    python -m amsda_keras.export --run runs/mahfnet-20261123-101500
    python -m amsda_keras.export --run runs/amsda-20261123-101500 --output /tmp/amsda_saved_model

From Python: `amsda_keras.export(run)` returns the SavedModel's folder.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from amsda_keras.cli import add_run_flag, make_module_callable
from amsda_keras.console import quiet_tensorflow
from amsda_keras.files import write_text_atomically
from amsda_keras.training.errors import CommandFailedError, user_errors

DEFAULT_FOLDER = "saved_model"
EXPORT_BACKEND = "tensorflow"
# The first bytes of each format `serve` decodes: (format, ((offset, bytes), ...)).
SIGNATURES = (("JPEG", ((0, b"\xff\xd8\xff"),)), ("PNG", ((0, b"\x89PNG\r\n\x1a\n"),)),
              ("GIF", ((0, b"GIF87a"),)), ("GIF", ((0, b"GIF89a"),)), ("BMP", ((0, b"BM"),)),
              ("WebP", ((0, b"RIFF"), (8, b"WEBP"))))
FORMAT_NAMES = "JPEG/PNG/GIF/BMP/WebP"
HEADER_BYTES = 21  # up to the WebP animation flag, byte 20


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.export", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    add_run_flag(parser, "one SavedModel that averages the runs' class probabilities")
    parser.add_argument("--output", help=f"SavedModel folder (default: RUN/{DEFAULT_FOLDER}).")
    return parser


def export_run(run_dirs, output=None):
    """Writes a run, or an ensemble of runs averaging their class probabilities, as one
    SavedModel on raw inputs. Returns the folder.

    Args:
        run_dirs: a run folder, or a list of them (the ensemble; one class list).
        output: the SavedModel folder. Default: RUN/saved_model, or for N runs
            RUN/saved_model-ensemble-of-N in the first run's folder.

    Needs the tensorflow backend; `export` runs this module under it when Keras uses another.
    """
    import keras
    import tensorflow as tf

    from amsda_keras.inference import load_trained_runs, logits_of

    if keras.config.backend() != EXPORT_BACKEND:
        raise RuntimeError(f"Exporting needs KERAS_BACKEND={EXPORT_BACKEND}; "
                           f"Keras uses {keras.config.backend()}.")
    runs = load_trained_runs(run_dirs)
    first = runs[0]
    output = Path(output or default_folder(first.directory, len(runs)))
    members = [_ServedMember(run) for run in runs]
    reads_images = any(member.image_preprocessor is not None for member in members)
    class_names = tf.constant(first.class_names)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts"),
                                  tf.TensorSpec([None], tf.string, name="images")])
    def serve(texts, images):
        errors = image_errors(images) if reads_images else tf.fill(tf.shape(images), "")
        good = tf.equal(errors, "")
        probabilities = tf.reduce_mean(tf.stack([
            tf.nn.softmax(tf.cast(logits_of(member(texts, images, good)), "float32"), axis=-1)
            for member in members]), axis=0)
        labels = tf.gather(class_names, tf.argmax(probabilities, axis=-1))
        return {"probabilities": tf.where(good[:, None], probabilities, float("nan")),
                "label": tf.where(good, labels, ""), "error": errors}

    archive = keras.export.ExportArchive()
    for member in members:
        member.track(archive)
    archive.add_endpoint("serve", serve)
    # TensorFlow logs "Assets written to ..." as it writes (INFO: shown in notebooks).
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        archive.write_out(str(output), verbose=False)
    finally:
        logger.setLevel(level)
    info = {"runs": [str(run.directory.resolve()) for run in runs],
            "model": first.config["model"],
            "class_names": first.class_names, "inputs": {
                "texts": "tf.string [batch]: posts",
                "images": "tf.string [batch]: encoded image files"},
            "outputs": {"probabilities": "float32 [batch, classes]: NaN for a row with an error"
                                         + (f"; the mean of {len(runs)} runs'" if len(runs) > 1
                                            else ""),
                        "label": "tf.string [batch]: the most probable class; '' for an error",
                        "error": "tf.string [batch]: why a row has no result; '' for none"}}
    write_text_atomically(output / "export_info.json", json.dumps(info, indent=2) + "\n")
    print(f"SavedModel written to {output} (endpoint `serve`, classes {first.class_names}"
          + (f", the mean of {len(runs)} runs" if len(runs) > 1 else "") + ")")
    return output


def default_folder(first_run_dir, runs):
    """RUN/saved_model, or for an ensemble of `runs` runs RUN/saved_model-ensemble-of-N in the
    first run's folder."""
    return Path(first_run_dir) / (DEFAULT_FOLDER + (f"-ensemble-of-{runs}" if runs > 1 else ""))


class _ServedMember:
    """One run inside `serve`: its end-to-end model and preprocessors, called on raw texts and
    image bytes (`good` marks the images `image_errors` found readable)."""

    def __init__(self, run):
        self.model = run.end_to_end_model
        self.text_preprocessor = run.preprocessors["text_preprocessor"]
        self.image_preprocessor = run.preprocessors["image_preprocessor"]
        self.input_names = [tensor.name for tensor in self.model.inputs]
        self.image_shape = next((t.shape[1:] for t in self.model.inputs if t.name == "images"),
                                None)

    def __call__(self, texts, images, good):
        import tensorflow as tf

        features = {}
        if self.text_preprocessor is not None:
            features.update(self.text_preprocessor(texts))
        if self.image_preprocessor is not None:
            features["images"] = tf.map_fn(
                self._prepare_image, (good, images),
                fn_output_signature=tf.TensorSpec(self.image_shape, tf.float32))
        return self.model({name: features[name] for name in self.input_names}, training=False)

    def _prepare_image(self, good_and_contents):
        import tensorflow as tf

        from amsda_keras.data.images import decode_image

        good, contents = good_and_contents  # a blank image where `image_errors` found a fault
        return tf.cond(good,
                       lambda: tf.cast(self.image_preprocessor(decode_image(contents)), "float32"),
                       lambda: tf.zeros(self.image_shape, tf.float32))

    def track(self, archive):
        """Tracks the model and preprocessors in the `ExportArchive`, so that their variables,
        vocabularies and lookup tables are saved (each preprocessor built by one call first)."""
        import tensorflow as tf

        archive.track(self.model)
        if self.text_preprocessor is not None:
            self.text_preprocessor(tf.constant(["a"]))
            archive.track(self.text_preprocessor)
        if self.image_preprocessor is not None:
            self.image_preprocessor(tf.zeros([8, 8, 3], tf.uint8))
            archive.track(self.image_preprocessor)


def image_errors(images):
    """Why `serve` cannot decode each of a batch of encoded images ("" for the good ones).

    The format comes from the file's first bytes; an image of a known format is then decoded
    once in a `tf.data` pipeline that drops failures (graphs have no `try`), which finds the
    truncated and corrupt ones without failing the batch.

    Args:
        images: `tf.string` tensor `[batch]`, encoded image files.

    Returns:
        `tf.string` tensor `[batch]`.
    """
    import tensorflow as tf

    from amsda_keras.data.images import decode_image

    # Short files are padded so that every header slice exists.
    padded = tf.strings.join([images, b"\0" * HEADER_BYTES])
    formats = tf.fill(tf.shape(images), "")
    for name, parts in SIGNATURES:
        match = tf.reduce_all([tf.equal(tf.strings.substr(padded, start, len(magic)), magic)
                               for start, magic in parts], axis=0)
        formats = tf.where(match, name, formats)
    # TensorFlow's WebP decoder aborts the process on an animation (data/images.py).
    animation_flag = tf.reshape(tf.io.decode_raw(tf.strings.substr(padded, 20, 1), tf.uint8),
                                [-1]) & 2
    animated = (tf.equal(formats, "WebP") & tf.equal(tf.strings.substr(padded, 12, 4), b"VP8X")
                & (animation_flag > 0))
    known = tf.not_equal(formats, "") & ~animated

    def mark_decoded(seen, position_and_shape):
        # The shape, not just the position, so that the decoding is not pruned away.
        position, shape = position_and_shape
        return tf.tensor_scatter_nd_update(seen, [[position]], [tf.reduce_prod(shape) > 0])

    positions = tf.where(known)[:, 0]
    decoded = (tf.data.Dataset.from_tensor_slices((positions, tf.gather(images, positions)))
               .map(lambda position, contents: (position, tf.shape(decode_image(contents))))
               .ignore_errors()
               .reduce(tf.zeros_like(known), mark_decoded))
    corrupt = tf.strings.join(["undecodable image: truncated or corrupt ", formats, " data"])
    errors = tf.where(decoded, "", corrupt)
    errors = tf.where(animated, "unsupported image: animated WebP", errors)
    errors = tf.where(tf.equal(formats, ""), f"undecodable image: not a {FORMAT_NAMES} file",
                      errors)
    return tf.where(tf.equal(tf.strings.length(images), 0), "undecodable image: empty", errors)


def export(run, output=None):
    """Writes a trained run as a TensorFlow SavedModel on raw inputs (above). Returns its folder.

    Only TensorFlow writes SavedModels: under another Keras backend this runs `python -m
    amsda_keras.export` with `KERAS_BACKEND=tensorflow` and prints its output.

    Args:
        run: a run folder written by `train` or its `Run`; or several (a list, a `RunGroup`
            or a --seeds/--folds folder): an ensemble averaging their class probabilities.
        output: the SavedModel folder. Default: RUN/saved_model (RUN/saved_model-ensemble-of-N
            in the first run's folder for N runs).

    Raises:
        CommandFailedError: the export under the tensorflow backend failed (its message).
    """
    import keras

    from amsda_keras.runs import run_directories

    quiet_tensorflow()
    directories = run_directories(run)
    if keras.config.backend() == EXPORT_BACKEND:
        return export_run(directories, output)
    command = [sys.executable, "-m", "amsda_keras.export",
               *[part for directory in directories for part in ("--run", str(directory))]]
    command += ["--output", str(output)] if output is not None else []
    result = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": EXPORT_BACKEND},
                            capture_output=True, text=True, check=False)
    print(result.stdout, end="")
    if result.returncode:
        message = result.stderr.strip().splitlines()
        raise CommandFailedError(
            f"{' '.join(command[1:])} under KERAS_BACKEND={EXPORT_BACKEND} failed: "
            + next((line.removeprefix("Error: ") for line in message
                    if line.startswith("Error: ")), "\n".join(message[-20:])))
    return Path(output or default_folder(directories[0], len(directories)))


def main(argv=None):
    args = build_parser().parse_args(argv)
    quiet_tensorflow()
    with user_errors():
        export(args.run, args.output)


if __name__ == "__main__":
    main()
else:
    make_module_callable(__name__)
