import json

import pytest
from absl import flags

from wss_tf.cli import config_from_flags, define_train_flags
from wss_tf.config import SUP_DEFAULTS, TrainConfig


def _parse(argv, defaults=None):
    fv = flags.FlagValues()
    define_train_flags(defaults, flag_values=fv)
    fv(["prog", *argv])
    return config_from_flags(fv, defaults)


def test_official_flag_forms():
    config = _parse(["--atrous_rates=12", "--atrous_rates=24", "--atrous_rates=36", "--output_stride=8",
                     "--train_crop_size=321,321", "--train_split=16_clean_3", "--weakly",
                     "--decoder_output_stride=none", "--att_strides=15,16", "--base_learning_rate=0.01",
                     "--batch_norm_decay=0.99"])
    assert config.atrous_rates == (12, 24, 36) and config.output_stride == 8
    assert config.train_crop_size == (321, 321) and config.train_split == "16_clean_3" and config.weakly
    assert config.decoder_output_stride is None and config.att_strides == (15, 16)
    assert config.base_learning_rate == 0.01 and config.mode == "wss" and config.batch_norm_decay == 0.99
    assert _parse([]).batch_norm_decay is None


def test_train_sup_defaults_are_the_official_ones():
    config = _parse([], SUP_DEFAULTS)
    assert config.mode == "sup" and config.base_learning_rate == 1e-4 and config.initialize_last_layer
    assert not config.last_layers_contain_logits_only and not config.save_summaries_images


def test_config_file_then_command_line(tmp_path):
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps({"train_split": "8_clean", "training_number_of_steps": 100, "atrous_rates": [6, 12, 18]}))
    config = _parse([f"--config={path}", "--training_number_of_steps=7"])
    assert config.train_split == "8_clean" and config.training_number_of_steps == 7
    assert config.atrous_rates == (6, 12, 18)
    path.write_text(json.dumps({"train_splt": "x"}))
    with pytest.raises(ValueError, match="unknown config keys \\['train_splt'\\]"):
        _parse([f"--config={path}"])


def test_bad_values_fail_before_training():
    with pytest.raises(ValueError, match="unknown model_variant"):
        TrainConfig(model_variant="xception_99")
    with pytest.raises(ValueError, match="strong_augmentation"):
        TrainConfig(strong_augmentation="mixup")
    with pytest.raises(ValueError, match="pseudo_src"):
        TrainConfig(pseudo_src="max")
