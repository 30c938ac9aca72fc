"""`python -m amsda_keras.export`: write a trained run as a TensorFlow SavedModel on raw inputs.

The SavedModel's `serve` function takes
- `texts`: a `tf.string` batch `[batch]` of posts, and
- `images`: a `tf.string` batch `[batch]` of encoded image files (JPEG, PNG, GIF, WebP or
  BMP bytes, as `tf.io.read_file` or `open(path, "rb").read()` give them),
and returns `{"probabilities": float32 [batch, classes], "label": string [batch]}`.
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
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from amsda_keras.training.errors import user_errors

DEFAULT_FOLDER = "saved_model"
EXPORT_BACKEND = "tensorflow"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m amsda_keras.export", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("--run", required=True, help="Run folder written by amsda_keras.train.")
    parser.add_argument("--output", help=f"SavedModel folder (default: RUN/{DEFAULT_FOLDER}).")
    return parser


def export_run(run_dir, output=None):
    """Writes the run in `run_dir` as a SavedModel on raw inputs. Returns the folder.

    Needs the tensorflow backend; `main` re-runs itself under it when Keras uses another.
    """
    import keras
    import tensorflow as tf

    from amsda_keras.data.images import decode_image
    from amsda_keras.inference import load_run, logits_of

    if keras.config.backend() != EXPORT_BACKEND:
        raise RuntimeError(f"Exporting needs KERAS_BACKEND={EXPORT_BACKEND}; "
                           f"Keras uses {keras.config.backend()}.")
    run = load_run(run_dir)
    output = Path(output or run.directory / DEFAULT_FOLDER)
    model = run.end_to_end_model
    preprocessors = run.preprocessors
    text_preprocessor = preprocessors["text_preprocessor"]
    image_preprocessor = preprocessors["image_preprocessor"]
    input_names = [tensor.name for tensor in model.inputs]
    class_names = tf.constant(run.class_names)

    def prepare_image(contents):
        return tf.cast(image_preprocessor(decode_image(contents)), "float32")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts"),
                                  tf.TensorSpec([None], tf.string, name="images")])
    def serve(texts, images):
        features = {}
        if text_preprocessor is not None:
            features.update(text_preprocessor(texts))
        if image_preprocessor is not None:
            image_shape = next(t for t in model.inputs if t.name == "images").shape[1:]
            features["images"] = tf.map_fn(
                prepare_image, images,
                fn_output_signature=tf.TensorSpec(image_shape, tf.float32))
        logits = logits_of(model({name: features[name] for name in input_names}, training=False))
        probabilities = tf.nn.softmax(tf.cast(logits, "float32"), axis=-1)
        return {"probabilities": probabilities,
                "label": tf.gather(class_names, tf.argmax(probabilities, axis=-1))}

    archive = keras.export.ExportArchive()
    archive.track(model)
    # Tracked so that their vocabularies and lookup tables are saved; built by one call first.
    if text_preprocessor is not None:
        text_preprocessor(tf.constant(["a"]))
        archive.track(text_preprocessor)
    if image_preprocessor is not None:
        image_preprocessor(tf.zeros([8, 8, 3], tf.uint8))
        archive.track(image_preprocessor)
    archive.add_endpoint("serve", serve)
    archive.write_out(str(output), verbose=False)
    info = {"run": str(run.directory.resolve()), "model": run.config["model"],
            "class_names": run.class_names, "inputs": {
                "texts": "tf.string [batch]: posts",
                "images": "tf.string [batch]: encoded image files"},
            "outputs": {"probabilities": "float32 [batch, classes]",
                        "label": "tf.string [batch]: the most probable class"}}
    (output / "export_info.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"SavedModel written to {output} (endpoint `serve`, classes {run.class_names})")
    return output


def main(argv=None):
    args = build_parser().parse_args(argv)
    import keras

    if keras.config.backend() != EXPORT_BACKEND:
        # A .keras file loads on any backend, but only tensorflow writes SavedModels.
        command = [sys.executable, "-m", "amsda_keras.export", *(sys.argv[1:] if argv is None
                                                                 else argv)]
        env = {**os.environ, "KERAS_BACKEND": EXPORT_BACKEND}
        returncode = subprocess.run(command, env=env).returncode
        if returncode:
            sys.exit(returncode)
        return
    with user_errors():
        export_run(args.run, args.output)


if __name__ == "__main__":
    main()
