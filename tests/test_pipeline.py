import numpy as np
import pytest
import tensorflow as tf

from wss_tf.data import pipeline
from wss_tf.data.augment import AugmentConfig
from wss_tf.data.randaugment import RandAugmentForSegmentation

from conftest import write_toy_records


def _write(tmp_path, split, n=6, size=(40, 52), num_classes=4, bad_id=None, seed=0):
    return write_toy_records(tmp_path, split, n, size, num_classes, bad_id, seed)


def _stream(directory, split, batch=2, seed=0):
    return pipeline.StreamConfig(directory, split, num_classes=4, batch_size=batch, seed=seed)


def test_labeled_stream_batches(tmp_path):
    directory = _write(tmp_path, "train")
    batch = next(iter(pipeline.labeled_dataset(_stream(directory, "train"), AugmentConfig(crop_size=(33, 33)))))
    assert batch["image"].shape == (2, 33, 33, 3) and batch["image"].dtype == tf.float32
    assert batch["label"].shape == (2, 33, 33, 1) and batch["label"].dtype == tf.int32
    assert batch["valid"].shape == (2, 33, 33, 1) and batch["cls_label"].shape == (2, 3)
    for label, cls in zip(batch["label"].numpy(), batch["cls_label"].numpy()):
        present = {k for k in np.unique(label) if 0 < k < 255}
        assert {k for k in range(1, 4) if cls[k - 1]} == present


def test_unlabeled_stream_with_image_level_labels(tmp_path):
    directory = _write(tmp_path, "pool")
    config = AugmentConfig(crop_size=(33, 33), cutout_pad_size=8)
    batch = next(iter(pipeline.unlabeled_dataset(_stream(directory, "pool", batch=3), config, with_cls=True)))
    assert set(batch) == {"weak", "strong", "label", "valid", "filename", "cls_label"}
    assert batch["weak"].shape == batch["strong"].shape == (3, 33, 33, 3)


def test_a_seed_reproduces_the_stream(tmp_path):
    directory = _write(tmp_path, "train")
    config = AugmentConfig(crop_size=(33, 33), cutout_pad_size=6)

    def first_batches(seed):
        ds = pipeline.unlabeled_dataset(_stream(directory, "train", seed=seed), config)
        return [b["strong"].numpy() for b in ds.take(4)]

    a, b, c = first_batches(1), first_batches(1), first_batches(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(np.abs(x - z).max() > 0 for x, z in zip(a, c))


def test_eval_stream_pads_to_the_crop_with_one_static_shape(tmp_path):
    directory = _write(tmp_path, "val", n=3)
    ds = pipeline.eval_dataset(_stream(directory, "val", batch=2), (65, 65), (127.5,) * 3)
    assert ds.element_spec["image"].shape.as_list() == [None, 65, 65, 3]
    batches = list(ds)
    assert sum(b["image"].shape[0] for b in batches) == 3
    b = batches[0]
    h, w = int(b["height"][0]), int(b["width"][0])
    assert b["valid"].numpy()[0, :h, :w].all() and b["valid"].numpy()[0].sum() == h * w


def test_eval_image_larger_than_crop_names_the_record(tmp_path):
    directory = _write(tmp_path, "val", n=2)
    ds = pipeline.eval_dataset(_stream(directory, "val"), (33, 33), (127.5,) * 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image img_. of size \[\d+ \d+\] is larger than the eval crop 33x33"):
        list(ds)


def test_bad_class_id_at_train_time_names_the_record(tmp_path):
    directory = _write(tmp_path, "train", bad_id=9)
    ds = pipeline.labeled_dataset(_stream(directory, "train"), AugmentConfig(crop_size=(33, 33)))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"record img_2: mask holds class ids outside \[0, 4\)"):
        for _ in ds.take(6):
            pass


def test_missing_split_is_a_clear_error(tmp_path):
    directory = _write(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="no records for split 'val'.*splits found there: \\['train'\\]"):
        pipeline.labeled_dataset(_stream(directory, "val"), AugmentConfig())


def test_distributed_batches_per_replica(tmp_path, two_cpu_strategy):
    directory = _write(tmp_path, "train")
    strategy = two_cpu_strategy
    dist = pipeline.distribute(
        strategy, lambda batch, ctx: pipeline.labeled_dataset(_stream(directory, "train", batch=batch),
                                                              AugmentConfig(crop_size=(17, 17)), ctx), 4)
    batch = next(iter(dist))
    shards = strategy.experimental_local_results(batch["image"])
    assert len(shards) == 2 and all(s.shape == (2, 17, 17, 3) for s in shards)
    with pytest.raises(ValueError, match="not divisible by 2 replicas"):
        pipeline.distribute(strategy, lambda b, c: None, 3)


def test_randaugment_fills_are_ignored_and_views_stay_aligned():
    """Pixels RandAugment fills become 255 / valid 0; weak and strong keep one geometry."""
    ra = RandAugmentForSegmentation(num_ops=2, factor=0.9, fill_value=127.5, seed=3)
    h = w = 48
    label = np.zeros((h, w, 1), np.int32)
    label[:, 24:] = 1
    label[24:, :12] = 2
    weak = tf.constant(np.where(label == 0, 30.0, np.where(label == 1, 200.0, 90.0)).repeat(3, -1), tf.float32)
    filled_seen = 0
    for _ in range(12):
        moved_weak, strong, out_label, valid = [t.numpy() for t in ra(weak, tf.constant(label),
                                                                       tf.ones((h, w, 1), tf.int32))]
        assert set(np.unique(out_label)) <= {0, 1, 2, 255}
        assert ((out_label == 255) == (valid == 0)).all()
        filled = out_label[..., 0] == 255
        filled_seen += filled.sum()
        # every kept pixel's class agrees with the weak view's colour (away from interpolated borders)
        colour = moved_weak[..., 0]
        expected = np.select([np.abs(colour - 30) < 1, np.abs(colour - 200) < 1, np.abs(colour - 90) < 1], [0, 1, 2], -1)
        sure = (expected >= 0) & ~filled
        assert (expected[sure] == out_label[..., 0][sure]).mean() > 0.97
        assert strong.shape == (h, w, 3)
    assert filled_seen > 0  # geometric ops did fill pixels in 12 draws


def test_randaugment_stream_runs(tmp_path):
    directory = _write(tmp_path, "pool")
    config = AugmentConfig(crop_size=(33, 33), strong_augmentation="randaugment_cutout", cutout_pad_size=5)
    batch = next(iter(pipeline.unlabeled_dataset(_stream(directory, "pool"), config)))
    assert batch["strong"].shape == (2, 33, 33, 3)
    assert ((batch["label"].numpy() == 255) >= (batch["valid"].numpy() == 0)).all()
