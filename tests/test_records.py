"""The DeepLab record schema: write_split + parse_example round trip, hand-made official records, shard hygiene."""
import io
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from wss_tf.data import records
from wss_tf.data.records import Record, encode_png, parse_example, split_files, write_split

H, W = 20, 30


def _jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _read(dataset_dir, split):
    return [parse_example(r) for r in tf.data.TFRecordDataset(split_files(dataset_dir, split))]


def test_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    image_png = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    image_jpg = rng.integers(0, 256, (H + 2, W, 3), dtype=np.uint8)
    mask_a = rng.integers(0, 21, (H, W), dtype=np.uint8)
    mask_a[0, :5] = 255
    mask_b = np.full((H + 2, W), 255, np.uint8)
    jpeg_bytes = _jpeg(image_jpg)
    recs = [Record("2007_000033", encode_png(image_png), "png", H, W, encode_png(mask_a)),
            Record("train2017/000000177254", jpeg_bytes, "jpeg", H + 2, W, encode_png(mask_b))]
    paths = write_split(recs, str(tmp_path), "train", num_shards=2, total=2)
    assert [os.path.basename(p) for p in paths] == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert split_files(str(tmp_path), "train") == paths
    a, b = _read(str(tmp_path), "train")  # shard 0 holds record 0, shard 1 record 1
    np.testing.assert_array_equal(a["image"].numpy(), image_png)
    np.testing.assert_array_equal(a["label"].numpy()[..., 0], mask_a)
    assert a["filename"].numpy() == b"2007_000033" and (int(a["height"]), int(a["width"])) == (H, W)
    np.testing.assert_array_equal(b["image"].numpy(), tf.io.decode_jpeg(jpeg_bytes, 3).numpy())
    np.testing.assert_array_equal(b["label"].numpy()[..., 0], mask_b)
    assert b["filename"].numpy() == b"train2017/000000177254" and int(b["height"]) == H + 2
    raw = tf.io.parse_single_example(next(iter(tf.data.TFRecordDataset(paths[1]))), records.FEATURES)
    assert raw["image/encoded"].numpy() == jpeg_bytes  # JPEG bytes are stored untouched
    assert raw["image/format"].numpy() == b"jpeg" and raw["image/segmentation/class/format"].numpy() == b"png"


def test_hand_made_official_record_parses(tmp_path):
    """A record made like DeepLab's build_data.image_seg_to_tfexample (no image/channels key needed)."""
    image = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.uint8)
    mask[5:10, 5:10] = 15
    jpeg_bytes = _jpeg(image)

    def feature(value):
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": feature(jpeg_bytes), "image/filename": feature(b"2008_000002"),
        "image/format": feature(b"jpeg"), "image/height": feature(H), "image/width": feature(W),
        "image/segmentation/class/encoded": feature(encode_png(mask)),
        "image/segmentation/class/format": feature(b"png")}))
    path = str(tmp_path / "val-00000-of-00001.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(example.SerializeToString())
    (parsed,) = _read(str(tmp_path), "val")
    assert parsed["image"].shape == (H, W, 3) and parsed["label"].shape == (H, W, 1)
    np.testing.assert_array_equal(parsed["label"].numpy()[..., 0], mask)
    assert parsed["filename"].numpy() == b"2008_000002"


def test_failed_write_leaves_nothing_and_rebuild_drops_stale_shards(tmp_path):
    mask = encode_png(np.zeros((H, W), np.uint8))
    good = Record("a", encode_png(np.zeros((H, W, 3), np.uint8)), "png", H, W, mask)

    def failing():
        yield good
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        write_split(failing(), str(tmp_path), "train", num_shards=2)
    assert os.listdir(tmp_path) == []
    write_split([good] * 4, str(tmp_path), "train", num_shards=4)
    write_split([good] * 2, str(tmp_path), "train", num_shards=2)
    assert sorted(os.listdir(tmp_path)) == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    with pytest.raises(FileNotFoundError, match="'val'.*splits found there: \\['train'\\]"):
        split_files(str(tmp_path), "val")
