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


def test_every_training_flag_says_what_it_does_by_group():
    import dataclasses

    from wss_tf.flag_help import GROUPS, HELP

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(HELP) == sorted(names) and sum(len(g) for g in GROUPS.values()) == len(names)  # each once
    assert all(len(text) > 20 and "see wss_tf/config.py" not in text for text in HELP.values())


def test_help_lists_the_flags_by_group_without_importing_tensorflow():
    """absl's --help shows only the main module's flags (ours are defined in wss_tf.cli): the app's usage lists
    them by group; and --help must not wait for TensorFlow's import."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run([sys.executable, "-m", "wss_tf.train_sup", "--help"], capture_output=True, text=True,
                         env=env, cwd=root, timeout=120).stdout
    for heading in ("model:", "data:", "method:", "optimisation:", "checkpoints and logging:"):
        assert f"\n  {heading}\n" in out
    assert "--base_learning_rate (default 0.0001): peak learning rate" in out  # train_sup's own default
    assert "--unlabeled_weight (default 1.0): weight of the consistency loss" in out
    for app in ("train_wss", "train_sup", "eval"):
        probe = (f"import sys, wss_tf.{app}; "
                 f"print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=root,
                                timeout=120)
        assert result.stdout.strip() == "[]", (app, result.stderr[-2000:])


def test_run_sh_commands_do_not_print_cuinit_on_a_machine_without_a_gpu():
    import glob
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if glob.glob("/dev/nvidia[0-9]*"):
        pytest.skip("this machine has an NVIDIA device")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([os.path.join(root, "run.sh"), "python", "-c",
                             "import tensorflow as tf; print(tf.config.list_physical_devices('GPU'))"],
                            capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]
    assert "cuInit" not in result.stderr
    assert "oneDNN custom operations are on" in result.stderr  # run.sh turns them on on every x86 CPU


def test_run_sh_leaves_onednn_off_when_asked():
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"}
    result = subprocess.run([os.path.join(root, "run.sh"), "python", "-c", "import tensorflow"],
                            capture_output=True, text=True, env=env, cwd=root, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "oneDNN custom operations are on" not in result.stderr
