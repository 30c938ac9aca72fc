import pytest

from amsda_keras import train
from amsda_keras.cli import config_overrides
from amsda_keras.models import MODEL_BUILDERS, MODEL_DEFAULTS
from amsda_keras.training.config import (DEFAULTS, ConfigError, load_run_config,
                                         parse_assignment, resolve_config, save_config)


def test_defaults_file_and_flags_merge_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 7\n  learning_rate: 0.01\nmodel_args:\n  hidden_dim: 32\n")
    config = resolve_config(path, {"training.epochs": 3, "data.path": None}, MODEL_BUILDERS)
    assert config["training"]["epochs"] == 3
    assert config["training"]["learning_rate"] == 0.01
    assert config["training"]["batch_size"] == 32
    assert config["model_args"] == {"hidden_dim": 32}


def test_unknown_key_is_named_with_a_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epoch: 7\n")
    with pytest.raises(ConfigError, match=r"`training.epoch`.*Did you mean `training.epochs`"):
        resolve_config(path)


def test_wrong_type_and_bad_choice_are_named():
    with pytest.raises(ConfigError, match="`training.epochs`.*int"):
        resolve_config(overrides={"training.epochs": "ten"})
    with pytest.raises(ConfigError, match="`data.on_bad_sample`"):
        resolve_config(overrides={"data.on_bad_sample": "ignore"})


def test_model_args_are_checked_against_the_builder():
    with pytest.raises(ConfigError, match="model_args.width"):
        resolve_config(overrides={"model_args.width": 3}, model_builders=MODEL_BUILDERS)
    with pytest.raises(ConfigError, match="model_args.num_classes"):
        resolve_config(overrides={"model_args.num_classes": 3}, model_builders=MODEL_BUILDERS)


def test_malformed_file_and_assignment(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve_config(path)
    assert parse_assignment("training.oversample=true") == ("training.oversample", True)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignment("training.epochs")


def test_model_defaults_sit_between_the_global_defaults_and_the_file(tmp_path):
    amsda = resolve_config(overrides={"model": "amsda"}, model_defaults=MODEL_DEFAULTS)
    assert amsda["encoders"]["trainable"] and amsda["training"]["loss"] == "focal"
    assert amsda["training"]["reduce_lr_patience"] == 3
    path = tmp_path / "c.yaml"
    path.write_text("model: amsda\ntraining:\n  loss: cross_entropy\n")
    config = resolve_config(path, {"encoders.trainable": False}, model_defaults=MODEL_DEFAULTS)
    assert config["training"]["loss"] == "cross_entropy" and not config["encoders"]["trainable"]
    assert config["training"]["oversample"]  # still the model's default
    baseline = resolve_config(model_defaults=MODEL_DEFAULTS)
    assert baseline["training"]["loss"] == "cross_entropy" and not baseline["encoders"]["trainable"]


def test_every_shipped_config_resolves():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        config = resolve_config(path, model_builders=MODEL_BUILDERS)
        assert config["model"] in MODEL_BUILDERS, path


def test_optional_ints_must_be_positive_when_set():
    assert resolve_config(overrides={"training.lr_step_epochs": 2})["training"]["lr_step_epochs"] == 2
    for value in (0, 1.5, "2", True):
        with pytest.raises(ConfigError, match="`training.lr_step_epochs` must be a positive int"):
            resolve_config(overrides={"training.lr_step_epochs": value})
    with pytest.raises(ConfigError, match="`encoders.image_size`"):
        resolve_config(overrides={"encoders.image_size": -32})


def test_jit_compile_takes_auto_or_a_yaml_boolean(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  jit_compile: false\n")
    assert resolve_config(path)["training"]["jit_compile"] is False
    assert resolve_config()["training"]["jit_compile"] == "auto"
    with pytest.raises(ConfigError, match="`training.jit_compile` must be one of"):
        resolve_config(overrides={"training.jit_compile": "xla"})
    args = train.build_parser().parse_args(["--jit-compile", "True"])
    assert config_overrides(args)["training.jit_compile"] is True


def test_text_trainable_layers_needs_frozen_encoders_and_a_count():
    assert resolve_config(overrides={"encoders.text_trainable_layers": 2})["encoders"][
        "text_trainable_layers"] == 2
    with pytest.raises(ConfigError, match="`encoders.text_trainable_layers` must be 0 or more"):
        resolve_config(overrides={"encoders.text_trainable_layers": -1})
    with pytest.raises(ConfigError, match="already trains them all"):
        resolve_config(overrides={"encoders.text_trainable_layers": 1, "encoders.trainable": True})


def test_exponent_floats_as_keras_users_write_them(tmp_path):
    # PyYAML reads `1e-4` as a string (YAML 1.1 wants `1.0e-4`), which the float check refused.
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  learning_rate: 1e-4\n")
    assert resolve_config(path)["training"]["learning_rate"] == 1e-4
    override = dict([parse_assignment("training.learning_rate=5E-5")])
    assert resolve_config(overrides=override)["training"]["learning_rate"] == 5e-5
    assert parse_assignment("data.path=1e4x") == ("data.path", "1e4x")


def test_the_demo_dataset_trains_mahfnet_at_a_demo_size_unless_told_otherwise(capsys):
    from amsda_keras.models import MODEL_DEMO_ARGS
    from amsda_keras.training.inputs import resolve_data

    overrides = {"model": "mahfnet", "model_args.hidden_dim": 32}
    config = resolve_config(overrides=overrides, model_builders=MODEL_BUILDERS)
    resolve_data(config)
    assert config["model_args"] == {**MODEL_DEMO_ARGS["mahfnet"], "hidden_dim": 32}
    assert "demo size" in capsys.readouterr().out
    with_data = resolve_config(overrides={"model": "mahfnet", "data.path": __file__})
    resolve_data(with_data)
    assert with_data["model_args"] == {}


def test_a_run_saved_before_a_setting_existed_reads_as_it_behaved(tmp_path):
    clip_folder = tmp_path / "clip"
    clip_folder.mkdir()
    (clip_folder / "config.json").write_text('{"class_name": "keras_hub>CLIPBackbone"}')
    kept = {}
    for image in ("tiny", "clip_vit_base_patch16", str(clip_folder)):
        config = resolve_config(None, {"model": "baseline", "encoders.image": image},
                                model_builders=MODEL_BUILDERS)
        del config["encoders"]["clip_class_token"], config["training"]["checkpoint_every"]
        save_config(config, tmp_path / "config.yaml")
        loaded = load_run_config(tmp_path / "config.yaml")
        assert loaded["training"]["checkpoint_every"] == DEFAULTS["training"]["checkpoint_every"]
        kept[image] = loaded["encoders"]["clip_class_token"]
    # CLIP encoders kept their class token then; for the others the setting means nothing.
    assert kept == {"tiny": False, "clip_vit_base_patch16": True, str(clip_folder): True}


def test_resume_and_longer_runs_read_a_run_folder_config_as_the_run_behaved(tmp_path):
    config = resolve_config(None, {"model": "baseline", "encoders.image": "clip_vit_base_patch16"},
                            model_builders=MODEL_BUILDERS)
    del config["encoders"]["clip_class_token"]
    save_config(config, tmp_path / "config.yaml")
    # A plain YAML file gets today's default (the paper's 196 patches) ...
    assert not resolve_config(tmp_path / "config.yaml")["encoders"]["clip_class_token"]
    # ... a run folder's config (beside its splits.csv) what that run did.
    (tmp_path / "splits.csv").write_text("id,split\n")
    assert resolve_config(tmp_path / "config.yaml")["encoders"]["clip_class_token"]


def test_every_shipped_search_space_resolves_for_its_model():
    from pathlib import Path

    from amsda_keras.training.search import check_space, read_space

    spaces = sorted((Path(__file__).resolve().parents[1] / "configs" / "search").glob("*.yaml"))
    assert spaces
    for path in spaces:
        model = path.stem.split("_")[0]  # mahfnet_head.yaml searches MAHFNet
        check_space(read_space(path), {"model": model}, {}, MODEL_BUILDERS)
