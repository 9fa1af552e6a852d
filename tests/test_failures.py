"""Bad flags and config values, a checkpoint of another run, a train_logdir in use, a corrupt record: each a clear
error before or at the failing point, naming what is wrong; --skip_bad_records leaves corrupt records out and
counts them."""
import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf

from test_trainer import ROOT, toy_config
from wss_tf.config import TrainConfig
from wss_tf.data.datasets import DatasetInfo, load_dataset_info, write_dataset_info
from wss_tf.data.records import Record, encode_png, split_files, write_split
from wss_tf.logdir_lock import LogdirInUse, locked
from wss_tf.trainer import Trainer


@pytest.fixture(scope="module")
def one_cpu():
    return tf.distribute.MirroredStrategy(["/cpu:0"])


@pytest.mark.parametrize("changes, error, message", [
    ({"output_stride": 8}, ValueError, r"atrous_rates \[6, 12, 18\] are DeepLab's rates for output_stride 16.*"
                                       r"--atrous_rates=12,24,36"),
    ({"output_stride": 16, "atrous_rates": (12, 24, 36)}, ValueError, "rates for output_stride 8"),
    ({"model_variant": "xception_99"}, ValueError, "unknown model_variant 'xception_99'; known variants"),
    ({"precision": "float8"}, ValueError, "precision must be one of"),
    ({"cutout_pad_size": 20}, ValueError, r"cutout_pad_size 20 makes a cutout box of up to 40 pixels, not smaller "
                                          r"than the train crop 33x33"),
    ({"train_split_cls": "no_such_split"}, FileNotFoundError, "no records for split 'no_such_split'.*splits found "
                                                              "there: \\['pool', 'train', 'val'\\]"),
])
def test_bad_flags_fail_before_anything_is_built(toy_dataset, tmp_path, one_cpu, changes, error, message):
    with pytest.raises(error, match=message):
        Trainer(toy_config(toy_dataset, tmp_path, mode="wss", **changes), one_cpu)


def test_a_batch_that_does_not_split_over_the_replicas(toy_dataset, tmp_path, two_cpu_strategy):
    with pytest.raises(ValueError, match="train_batch_size 3 is not divisible by the 2 replicas"):
        Trainer(toy_config(toy_dataset, tmp_path, train_batch_size=3), two_cpu_strategy)


def test_resuming_a_run_of_another_class_count_names_the_checkpoint_and_keeps_its_config(toy_dataset, tmp_path,
                                                                                       one_cpu):
    """The refused resume must not have overwritten the good run's config.json (eval and export read it)."""
    Trainer(toy_config(toy_dataset, tmp_path / "run", mode="sup", training_number_of_steps=1), one_cpu).run()
    saved = (tmp_path / "run" / "config.json").read_text()
    other = tmp_path / "five_classes"
    shutil.copytree(toy_dataset, other)
    write_dataset_info(DatasetInfo("toy5", ("background", "a", "b", "c", "d"), (65, 65)), str(other))
    trainer = Trainer(toy_config(str(other), tmp_path / "run", mode="sup", dataset="toy5"), one_cpu)
    with pytest.raises(ValueError, match=r"cannot resume from .*ckpt-1: it does not fit this run \(xception_tiny, "
                                         r"5 classes of dataset 'toy5'"):
        trainer.run()
    assert (tmp_path / "run" / "config.json").read_text() == saved
    assert json.loads(saved)["dataset"] == "toy"


@pytest.mark.parametrize("values, message", [
    ({"weakly": "false"}, "config key 'weakly' must be true or false, got 'false'"),
    ({"train_batch_size": 4.5}, "config key 'train_batch_size' must be an integer, got 4.5"),
    ({"train_batch_size": 0}, "config key 'train_batch_size' must be positive, got 0"),
    ({"train_batch_size": "five"}, "config key 'train_batch_size' must be an integer, got 'five'"),
    ({"train_crop_size": [0, 65]}, r"config key 'train_crop_size' must be 2 positive integers \(height, width\), "
                                   r"got \[0, 65\]"),
    ({"train_crop_size": [65, 65, 3]}, r"'train_crop_size' must be 2 positive integers .*got \[65, 65, 3\]"),
    ({"atrous_rates": [6, "12"]}, "config key 'atrous_rates' must be a list of integers or null"),
    ({"momentum": 1.5}, r"config key 'momentum' must lie in \[0, 1\], got 1.5"),
    ({"num_clones": -1}, "config key 'num_clones' must be >= 0"),
])
def test_config_values_are_checked_against_their_fields_naming_the_key(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values)


def test_config_values_that_fit_their_fields():
    config = TrainConfig.from_dict({"base_learning_rate": 1, "batch_norm_decay": None, "train_crop_size": [65, 65],
                                    "cutout_pad_size": 6, "skip_bad_records": True})
    assert config.base_learning_rate == 1 and config.train_crop_size == (65, 65) and config.skip_bad_records
    assert TrainConfig.from_dict({"mode": "sup", "train_crop_size": [65, 65]}).cutout_pad_size == 50  # no cutout


def test_a_dataset_name_that_is_not_the_records_and_a_missing_dataset_dir(toy_dataset, tmp_path):
    with pytest.raises(ValueError, match=r"--dataset=my_data but .*dataset_info.json describes dataset 'toy': "
                                         r"pass --dataset=toy"):
        load_dataset_info("my_data", toy_dataset)
    with pytest.raises(FileNotFoundError, match=r"dataset_dir '.*nowhere' does not exist"):
        split_files(str(tmp_path / "nowhere"), "train")


def test_a_second_training_in_one_train_logdir_is_refused(toy_dataset, tmp_path, one_cpu):
    trainer = Trainer(toy_config(toy_dataset, tmp_path / "run", mode="sup", training_number_of_steps=1), one_cpu)
    with locked(str(tmp_path / "run")):  # as another process training there would hold it
        with pytest.raises(LogdirInUse, match=r"train_logdir .*run is in use by another training \(pid \d+ on "):
            trainer.run()
    assert tf.train.latest_checkpoint(str(tmp_path / "run")) is None
    trainer.run()  # the lock went with its holder
    assert trainer.step == 1


def test_a_lock_dies_with_its_process(tmp_path):
    """flock belongs to the open file: a SIGKILLed holder leaves the file but no lock."""
    import subprocess
    import sys
    import time

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from wss_tf.logdir_lock import locked\n"
                               "with locked(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)",
                               str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": ROOT})
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LogdirInUse, match=f"pid {holder.pid}"):
        with locked(str(tmp_path)):
            pass
    holder.kill()
    holder.wait()
    time.sleep(0.1)
    with locked(str(tmp_path)):
        assert os.path.exists(tmp_path / ".lock")


def test_eval_of_a_directory_without_checkpoints(tmp_path):
    """Without a checkpoint the defaults would name a dataset the records do not hold: say what is missing; the
    polling eval waits, saying so, until the run writes one."""
    from absl import flags

    from wss_tf.cli import define_model_flags, model_config_from_flags
    from wss_tf.eval_loop import wait_for_a_checkpoint

    fv = flags.FlagValues()
    define_model_flags(fv)
    fv(["eval"])
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"no checkpoint in directory '.*empty'"):
        model_config_from_flags(str(tmp_path / "empty"), fv)
    sleeps = []

    def sleep(seconds):  # the training run writes its first checkpoint while eval waits
        sleeps.append(seconds)
        if len(sleeps) == 2:
            tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(tmp_path / "empty" / "ckpt"))

    assert wait_for_a_checkpoint(str(tmp_path / "empty"), 7, sleep).endswith("ckpt-1")
    assert sleeps == [7, 7]


@pytest.fixture(scope="module")
def corrupt_dataset(tmp_path_factory):
    """6 PNG records, one of which (img_2) carries bytes that are not an image."""
    rng = np.random.RandomState(0)
    records = []
    for i in range(6):
        image = encode_png(rng.randint(0, 256, (40, 40, 3), dtype=np.uint8))
        label = np.zeros((40, 40), np.uint8)
        label[5:20, 5:20] = 1 + i % 3
        if i == 2:
            image = image[:60] + b"\x00" * 40  # a truncated PNG
        records.append(Record(f"img_{i}", image, "png", 40, 40, encode_png(label)))
    directory = str(tmp_path_factory.mktemp("corrupt"))
    write_split(records, directory, "train", num_shards=2)
    write_dataset_info(DatasetInfo("toy", ("background", "a", "b", "c"), (65, 65)), directory)
    return directory


def test_a_corrupt_record_stops_training_naming_its_file_and_index(corrupt_dataset, tmp_path, one_cpu):
    config = toy_config(corrupt_dataset, tmp_path / "run", mode="sup", training_number_of_steps=6)
    with pytest.raises(ValueError, match=r"(?s)training data error at step \d+: bad records:\n  train-0000\d-of-00002"
                                         r"\.tfrecord record \d \('img_2'\).*--skip_bad_records") as raised:
        Trainer(config, one_cpu).run()
    assert "image" in str(raised.value)
    if "at step 1:" in str(raised.value):  # the corrupt record came in the first batch
        assert "no checkpoint has been written yet" in str(raised.value)
    else:
        assert re.search(r"the checkpoint of step \d+ is kept", str(raised.value))


def test_skip_bad_records_leaves_them_out_and_counts_them(corrupt_dataset, tmp_path, one_cpu):
    config = toy_config(corrupt_dataset, tmp_path / "run", mode="sup", training_number_of_steps=6,
                        skip_bad_records=True)
    trainer = Trainer(config, one_cpu)
    trainer.run()
    assert trainer.step == 6
    (skipped,) = trainer.skip_records["train"]
    assert skipped.startswith("train-0000") and skipped.count(":") == 1
    assert os.path.exists(os.path.join(tmp_path / "run", "checkpoint"))
