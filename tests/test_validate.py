"""validate: passes on good records, reports each kind of bad record with its shard, index and filename."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wss_tf.data.datasets import DatasetInfo, write_dataset_info
from wss_tf.data.records import Record, encode_png, write_split
from wss_tf.data.validate import validate

H, W = 20, 30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _record(name, mask=None, height=H, width=W, image=None):
    rng = np.random.default_rng(len(name))
    image = encode_png(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)) if image is None else image
    mask = np.zeros((H, W), np.uint8) if mask is None else mask
    return Record(name, image, "png", height, width, mask if isinstance(mask, bytes) else encode_png(mask))


def _good():
    mask = np.zeros((H, W), np.uint8)
    mask[:10] = 1
    mask[0, 0] = 255
    return [_record("a", mask), _record("b", np.full((H, W), 255, np.uint8)), _record("c", np.where(mask == 1, 2, mask))]


def test_validate_good(tmp_path):
    write_split(_good(), str(tmp_path), "train", num_shards=2)
    write_dataset_info(DatasetInfo("toy", ("background", "x", "y")), str(tmp_path))
    report = validate(str(tmp_path), "train")
    assert report.ok, report.problems
    assert (report.records, report.labeled, report.unlabeled, report.num_classes) == (3, 2, 1, 3)
    assert report.histogram[0] == 2 * (H * W - 10 * W) and report.histogram[1] == 10 * W - 1
    assert report.histogram[2] == 10 * W - 1 and report.histogram[255] == H * W + 2
    summary = report.summary()
    assert "3 records (2 labeled, 1 unlabeled" in summary and summary.endswith("OK")
    assert "x" in summary and "ignore" in summary


def test_validate_reports_bad_records(tmp_path):
    palette = Image.fromarray(np.zeros((H, W), np.uint8), "P")
    palette.putpalette([200, 10, 10] * 256)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    bad = [_record("garbage_image", image=b"\xff\xd8 definitely not a jpeg"),   # shard 0 index 0
           _record("bad_id", np.full((H, W), 21, np.uint8)),                    # shard 1 index 0
           _record("wrong_size", np.zeros((H + 1, W), np.uint8)),               # shard 0 index 1
           _record("wrong_fields", height=H + 5),                               # shard 1 index 1
           _record("palette_mask", buffer.getvalue()),                          # shard 0 index 2
           _record("fine")]                                                     # shard 1 index 2
    write_split(bad, str(tmp_path), "val", num_shards=2)
    report = validate(str(tmp_path), "val", dataset="pascal_voc_seg")
    assert not report.ok and report.records == 6 and report.num_classes == 21
    text = "\n".join(report.problems)
    assert "val-00000-of-00002.tfrecord record 0 ('garbage_image'): image does not decode" in text
    assert "val-00001-of-00002.tfrecord record 0 ('bad_id'): mask has class ids [21] >= num_classes=21" in text
    assert "val-00000-of-00002.tfrecord record 1 ('wrong_size'): mask is 21x30 but the image is 20x30" in text
    assert "val-00001-of-00002.tfrecord record 1 ('wrong_fields'): image/height,width = 25x30" in text
    assert "val-00000-of-00002.tfrecord record 2 ('palette_mask'): mask PNG has 3 channels" in text
    assert "'fine'" not in text and len(report.problems) == 5
    assert report.summary().endswith("FAILED: 5 problem(s)")


def test_validate_needs_class_count(tmp_path):
    write_split(_good(), str(tmp_path), "train", num_shards=1)
    with pytest.raises(ValueError, match="cannot tell the number of classes"):
        validate(str(tmp_path), "train")
    assert validate(str(tmp_path), "train", num_classes=3, progress=False).ok
    report = validate(str(tmp_path), "train", num_classes=2, progress=False)
    assert report.problems == ["train-00000-of-00001.tfrecord record 2 ('c'): mask has class ids [2] >= "
                               "num_classes=2 (other than 255)"]


def test_validate_truncated_shard(tmp_path):
    (path,) = write_split(_good(), str(tmp_path), "train", num_shards=1)
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) - 40])
    report = validate(str(tmp_path), "train", num_classes=3, progress=False)
    assert report.records == 2
    assert report.problems[0].startswith("train-00000-of-00001.tfrecord: unreadable after record 1")


def test_validate_command(tmp_path):
    write_split(_good() + [_record("bad_id", np.full((H, W), 9, np.uint8))], str(tmp_path), "train", num_shards=2)
    write_dataset_info(DatasetInfo("toy", ("background", "x", "y")), str(tmp_path))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    result = subprocess.run([sys.executable, "-m", "wss_tf.data.validate", f"--dataset_dir={tmp_path}",
                             "--split=train"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "4 records (3 labeled, 1 unlabeled" in result.stdout
    assert "train-00001-of-00002.tfrecord record 1 ('bad_id'): mask has class ids [9]" in result.stdout
    assert "validating train: 4" in result.stderr
