"""Bad flags, a checkpoint of another run and a corrupt record: each a clear error before or at the failing
point, naming what is wrong; --skip_bad_records leaves corrupt records out and counts them."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from test_trainer import toy_config
from wss_tf.config import TrainConfig
from wss_tf.data.datasets import DatasetInfo, write_dataset_info
from wss_tf.data.records import Record, encode_png, write_split
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
    ({"train_split_cls": "no_such_split"}, FileNotFoundError, "no records for split 'no_such_split'.*splits found "
                                                              "there: \\['pool', 'train', 'val'\\]"),
])
def test_bad_flags_fail_before_anything_is_built(toy_dataset, tmp_path, one_cpu, changes, error, message):
    with pytest.raises(error, match=message):
        Trainer(toy_config(toy_dataset, tmp_path, mode="wss", **changes), one_cpu)


def test_a_batch_that_does_not_split_over_the_replicas(toy_dataset, tmp_path, two_cpu_strategy):
    with pytest.raises(ValueError, match="train_batch_size 3 is not divisible by the 2 replicas"):
        Trainer(toy_config(toy_dataset, tmp_path, train_batch_size=3), two_cpu_strategy)


def test_resuming_a_run_of_another_class_count_names_the_checkpoint(toy_dataset, tmp_path, one_cpu):
    Trainer(toy_config(toy_dataset, tmp_path / "run", mode="sup"), one_cpu).save()
    other = tmp_path / "five_classes"
    shutil.copytree(toy_dataset, other)
    write_dataset_info(DatasetInfo("toy5", ("background", "a", "b", "c", "d"), (65, 65)), str(other))
    trainer = Trainer(toy_config(str(other), tmp_path / "run", mode="sup", dataset="toy5"), one_cpu)
    with pytest.raises(ValueError, match=r"cannot resume from .*ckpt-0: it does not fit this run \(xception_tiny, "
                                         r"5 classes of dataset 'toy5'"):
        trainer.restore_or_initialize()


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


def test_skip_bad_records_leaves_them_out_and_counts_them(corrupt_dataset, tmp_path, one_cpu):
    config = toy_config(corrupt_dataset, tmp_path / "run", mode="sup", training_number_of_steps=6,
                        skip_bad_records=True)
    trainer = Trainer(config, one_cpu)
    trainer.run()
    assert trainer.step == 6
    (skipped,) = trainer.skip_records["train"]
    assert skipped.startswith("train-0000") and skipped.count(":") == 1
    assert os.path.exists(os.path.join(tmp_path / "run", "checkpoint"))
    assert isinstance(TrainConfig.from_dict({"skip_bad_records": True}), TrainConfig)
