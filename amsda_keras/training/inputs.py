"""What `train` and `evaluate` share: the cleaned table, the encoders and the model's batches."""

from pathlib import Path

import pandas as pd

from amsda_keras import encoders as encoder_lib
from amsda_keras.data import read_dataset
from amsda_keras.data.demo import make_demo_dataset
from amsda_keras.data.feature_cache import default_cache_root, extract_features
from amsda_keras.data.pipeline import feature_dataset, raw_dataset
from amsda_keras.data.validation import apply_bad_sample_policy
from amsda_keras.files import folder_replaced_atomically
from amsda_keras.models import MODEL_DEMO_ARGS
from amsda_keras.models.compose import feature_input_names

MODALITIES = ("text", "image")


def resolve_data(config):
    """`resolve_data_path` for a run's config; on the demo dataset, the model's demo size
    (`models.MODEL_DEMO_ARGS`) fills in the `model_args` the config does not set."""
    demo = config["data"]["path"] is None
    resolve_data_path(config["data"])
    demo_args = MODEL_DEMO_ARGS.get(config["model"], {}) if demo else {}
    added = {key: value for key, value in demo_args.items() if key not in config["model_args"]}
    if added:
        config["model_args"].update(added)
        sizes = ", ".join(f"{key}={value}" for key, value in added.items())
        print(f"Note: on the demo dataset {config['model']} trains at a demo size ({sizes}); "
              f"with --data it has the paper's size, or set these with "
              f"--set model_args.KEY=VALUE.")


def resolve_data_path(data_config):
    """Makes `data.path` absolute; None becomes the built-in demo dataset (made on first use)."""
    if data_config["path"] is None:
        data_config["path"] = str(make_demo_dataset(default_cache_root().parent / "demo"))
        print(f"No --data given: using the built-in demo dataset ({data_config['path']}).")
    # Absolute, so the run's config.yaml works from any working directory.
    data_config["path"] = str(Path(data_config["path"]).resolve())


def load_table(data_config, output_dir, *, class_names=None, progress=True):
    """Reads the configured dataset and applies the bad-sample policy.

    Prints the reader's notes and the skip summary; writes `skipped_samples.csv` to `output_dir`.
    """
    table = read_dataset(
        data_config["path"],
        data_format=data_config["format"],
        label_rule=data_config["label_rule"],
        class_names=class_names or data_config["class_names"],
        image_dir=data_config["image_dir"],
    )
    for note in table.notes:
        print(f"Note: {note}")
    return apply_bad_sample_policy(
        table, data_config["on_bad_sample"], output_dir=output_dir, progress=progress
    )


def describe_splits(frame, class_names):
    """A table of class counts per split, for printing."""
    names = frame["label"].map(dict(enumerate(class_names)))
    counts = pd.crosstab(frame["split"].fillna("all"), names).reindex(columns=class_names, fill_value=0)
    counts["total"] = counts.sum(axis=1)
    return counts


def build_encoder(encoder_config, modality, spec=None, training_texts=None):
    """Builds one encoder with the config's sequence length or image size."""
    if modality == "text":
        kwargs = {"sequence_length": encoder_config["sequence_length"],
                  "training_texts": training_texts,
                  "trainable_layers": encoder_config["text_trainable_layers"]}
    else:
        kwargs = {"image_size": encoder_config["image_size"],
                  "clip_class_token": encoder_config["clip_class_token"]}
    return encoder_lib.build_encoder(modality, spec or encoder_config[modality], **kwargs)


def build_encoders(encoder_config, run_dir, training_texts):
    """Builds both encoders; `tiny` ones are saved in (and later reloaded from) the run folder."""
    built = {}
    for modality in MODALITIES:
        saved = Path(run_dir) / "encoders" / modality
        tiny = encoder_config[modality] == encoder_lib.TINY
        if tiny and saved.is_dir():
            built[modality] = build_encoder(encoder_config, modality, spec=str(saved))
        else:
            built[modality] = build_encoder(encoder_config, modality, training_texts=training_texts)
            if tiny:
                with folder_replaced_atomically(saved) as written:
                    built[modality].save(written)
    return built


def preprocessors_for(model, encoders):
    """`{"text_preprocessor": ..., "image_preprocessor": ...}` for a model on preprocessed
    inputs, as `raw_dataset` takes them; None for a modality the model does not read."""
    input_names = {tensor.name for tensor in model.inputs}
    return {
        "text_preprocessor": encoders["text"].preprocessor
        if input_names & set(encoders["text"].input_names) else None,
        "image_preprocessor": encoders["image"].preprocessor
        if "images" in input_names else None,
    }


def batches_for(model, encoders, frame, feature_config, progress=True):
    """Returns `make(part, **options)`, which builds `model`'s batches for rows of `frame`.

    A model on encoder features (inputs named `<modality>_<field>`, e.g. `text_pooled`) reads
    the feature cache, filled here for all of `frame` first; a model that contains its encoders
    reads raw text and images. `options` are those of `raw_dataset` / `feature_dataset`
    (`batch_size`, `with_labels`, `shuffle`, `seed`, `oversample_classes`, `class_weights`).
    """
    names = feature_input_names(model)
    if names is None:
        preprocessors = preprocessors_for(model, encoders)
        return lambda part, **options: raw_dataset(part, **preprocessors, **options)

    features = {}
    for modality in dict.fromkeys(name.partition("_")[0] for name in names):
        cache = extract_features(
            encoders[modality],
            frame,
            cache_root=feature_config["cache_dir"],
            batch_size=feature_config["batch_size"],
            progress=progress,
        )
        features.update({
            name: cache.arrays[name.partition("_")[2]]
            for name in names if name.startswith(f"{modality}_")
        })
    return lambda part, **options: feature_dataset(part, features, **options)
