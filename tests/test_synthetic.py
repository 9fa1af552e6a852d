"""The generated demo dataset (wss_tf.data.synthetic): determinism, splits, class statistics, that colour alone does
not give the class, and the records it builds."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wss_tf.data import generated
from wss_tf.data import synthetic

TINY = dict(num_train=12, num_val=6, labeled_sizes=(5, 8), image_size_range=(80, 112))
NUM_CLASSES = len(synthetic.CLASS_NAMES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synthetic") / "tiny")
    return synthetic.generate(out, seed=0, **TINY)


def _split(dataset, split):
    with open(os.path.join(dataset.raw_dir, "splits", split + ".txt")) as f:
        return f.read().split()


def _load(dataset, image_id):
    image = np.asarray(Image.open(os.path.join(dataset.raw_dir, "images", image_id + ".png")))
    mask = np.asarray(Image.open(os.path.join(dataset.raw_dir, "masks", image_id + ".png")))
    return image, mask


def _raw_bytes(folder):
    files = sorted(glob.glob(os.path.join(folder, "raw", "*", "*")))
    return {os.path.relpath(p, folder): open(p, "rb").read() for p in files}


def test_sample_is_deterministic_and_seeded():
    for index in range(3):
        a_image, a_mask = synthetic.sample(0, "train", index)
        b_image, b_mask = synthetic.sample(0, "train", index)
        np.testing.assert_array_equal(a_image, b_image)
        np.testing.assert_array_equal(a_mask, b_mask)
        c_image, c_mask = synthetic.sample(1, "train", index)
        assert a_image.shape != c_image.shape or not np.array_equal(a_image, c_image)
        assert a_mask.shape != c_mask.shape or not np.array_equal(a_mask, c_mask)
    # train and val draw from different streams
    assert not np.array_equal(synthetic.sample(0, "train", 0)[1], synthetic.sample(0, "val", 0)[1])


def test_sample_format():
    for index in range(4):
        image, mask = synthetic.sample(0, "val", index, (96, 160))
        assert image.dtype == np.uint8 and mask.dtype == np.uint8
        assert image.ndim == 3 and image.shape[2] == 3 and mask.shape == image.shape[:2]
        assert 96 <= mask.shape[0] <= 160 and 96 <= mask.shape[1] <= 160
        assert mask.max() < NUM_CLASSES  # every pixel labelled: no 255 anywhere


def test_generated_files_are_byte_identical_for_a_seed(tiny, tmp_path):
    again = synthetic.generate(str(tmp_path / "again"), seed=0, **TINY)
    other = synthetic.generate(str(tmp_path / "other"), seed=1, **TINY)
    ours, same, different = _raw_bytes(tiny.output_dir), _raw_bytes(again.output_dir), _raw_bytes(other.output_dir)
    assert len(ours) == 12 + 6 + 2 * 2 + 12 + 6  # images, masks of train and val; four split lists
    assert ours == same
    images = [k for k in ours if k.startswith(os.path.join("raw", "images"))]
    assert sum(ours[k] != different[k] for k in images) == len(images)


def test_splits(tiny):
    train, val = _split(tiny, "train"), _split(tiny, "val")
    assert len(train) == 12 and len(val) == 6 and not set(train) & set(val)
    assert tiny.split_sizes == {"train": 12, "val": 6, "labeled_5": 5, "labeled_8": 8}
    small, large = _split(tiny, "labeled_5"), _split(tiny, "labeled_8")
    assert set(small) <= set(large) <= set(train)
    assert len(set(small)) == 5 and len(set(large)) == 8
    everything = set(range(NUM_CLASSES))
    for split in ("labeled_5", "labeled_8", "val"):
        present = set()
        for image_id in _split(tiny, split):
            present |= set(np.unique(_load(tiny, image_id)[1]).tolist())
        assert present == everything, f"{split} lacks classes {everything - present}"


def test_subsets_are_random_but_deterministic():
    classes = [{1, 2, 3, 4, 5}] * 40
    a = generated.choose_subsets(np.random.default_rng(0), classes, (4, 10))
    b = generated.choose_subsets(np.random.default_rng(0), classes, (4, 10))
    c = generated.choose_subsets(np.random.default_rng(1), classes, (4, 10))
    assert a == b and a != c and set(a[4]) <= set(a[10])
    with pytest.raises(RuntimeError, match="every class"):
        generated.choose_subsets(np.random.default_rng(0), [{1}] * 9 + [{2}], (1,))


def test_class_statistics(tiny):
    counts = np.zeros(NUM_CLASSES, np.int64)
    objects_per_image = []
    for image_id in _split(tiny, "train") + _split(tiny, "val"):
        mask = _load(tiny, image_id)[1]
        counts += np.bincount(mask.ravel(), minlength=NUM_CLASSES)
        objects_per_image.append(len(np.unique(mask)) - 1)
    fractions = counts / counts.sum()
    assert 0.5 < fractions[0] < 0.85, fractions
    assert (fractions[1:] > 0.02).all(), fractions
    assert np.mean(objects_per_image) >= 2
    stored = tiny.train_pixel_fractions
    assert list(stored) == list(synthetic.CLASS_NAMES) and abs(sum(stored.values()) - 1) < 1e-4


def _colour_lookup_scores(fit, evaluate, bits=4):
    """Pixel accuracy and mIoU on `evaluate` of the per-pixel colour -> class table (argmax of the quantised-RGB
    histogram) fitted on `fit`."""
    def quantise(image):
        q = (image >> (8 - bits)).astype(np.int64)
        return (q[..., 0] << (2 * bits)) | (q[..., 1] << bits) | q[..., 2]

    histogram = np.zeros((1 << (3 * bits), NUM_CLASSES))
    for image, mask in fit:
        np.add.at(histogram, (quantise(image).ravel(), mask.ravel()), 1)
    table = histogram.argmax(axis=1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES))
    for image, mask in evaluate:
        np.add.at(confusion, (mask.ravel(), table[quantise(image).ravel()]), 1)
    tp = np.diag(confusion)
    iou = tp / np.maximum(confusion.sum(0) + confusion.sum(1) - tp, 1)
    return tp.sum() / confusion.sum(), iou


def test_colour_alone_does_not_give_the_class(tiny):
    train = [_load(tiny, i) for i in _split(tiny, "train")]
    val = [_load(tiny, i) for i in _split(tiny, "val")]
    accuracy, iou = _colour_lookup_scores(train, val)
    background = sum((m == 0).sum() for _, m in val) / sum(m.size for _, m in val)
    # worse than calling everything background, and far from segmenting the objects. On the default dataset
    # (fitted on the 512 training images, 4 bits per channel): pixel accuracy 0.68 with 69% background pixels,
    # mIoU 0.19, foreground IoUs 0.05-0.18; all-background scores mIoU 0.115.
    assert accuracy < background, (accuracy, background)
    assert iou.mean() < 0.35 and iou[1:].mean() < 0.3, iou


def test_records(tiny):
    import tensorflow as tf

    from wss_tf.data.datasets import load_dataset_info
    from wss_tf.data.records import parse_example, split_files

    info = load_dataset_info(synthetic.DATASET_NAME, tiny.output_dir)
    assert info.class_names == synthetic.CLASS_NAMES and info.eval_crop == (113, 113) == tiny.eval_crop
    assert info.split_sizes == tiny.split_sizes
    for split, size in tiny.split_sizes.items():
        files = split_files(tiny.output_dir, split)
        assert files == sorted(tiny.records[split])
        seen = {}
        for serialized in tf.data.TFRecordDataset(files):
            example = parse_example(serialized)
            seen[example["filename"].numpy().decode()] = example
        assert sorted(seen) == sorted(_split(tiny, split))
    image_id, example = next(iter(seen.items()))
    image, mask = _load(tiny, image_id)
    np.testing.assert_array_equal(example["image"].numpy(), image)
    np.testing.assert_array_equal(example["label"].numpy()[..., 0], mask)
    assert (int(example["height"]), int(example["width"])) == mask.shape


def test_second_call_is_a_no_op_and_parameters_are_compared(tmp_path):
    out = str(tmp_path / "ds")
    config = dict(num_train=4, num_val=2, labeled_sizes=(3,), image_size_range=(48, 64))
    first = synthetic.generate(out, seed=3, **config)
    assert not first.reused and first.eval_crop == (65, 65)
    stamps = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)}
    second = synthetic.generate(out, seed=3, **config)
    assert second.reused and second.split_sizes == first.split_sizes and second.records == first.records
    assert second.train_pixel_fractions == first.train_pixel_fractions
    assert stamps == {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)}

    # the command line finds it too (and, on this path, never imports TensorFlow)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "wss_tf.data.synthetic", f"--output_dir={out}", "--seed=3",
                          "--num_train=4", "--num_val=2", "--labeled_sizes=3", "--image_size_range=48,64"],
                         capture_output=True, text=True, env=env, check=True)
    assert "kept" in run.stdout and "labeled_3: 3 images" in run.stdout

    # other parameters regenerate, and leave no shards of the old splits behind
    third = synthetic.generate(out, seed=3, **dict(config, labeled_sizes=(2,)))
    assert not third.reused and "labeled_2" in third.split_sizes
    assert not glob.glob(os.path.join(out, "labeled_3-*")) and not os.path.exists(
        os.path.join(out, "raw", "splits", "labeled_3.txt"))
    with open(os.path.join(out, synthetic.MANIFEST_FILE)) as f:
        assert json.load(f)["parameters"]["labeled_sizes"] == [2]


def test_refuses_a_directory_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        synthetic.generate(str(tmp_path), num_train=2, num_val=1, labeled_sizes=())
    assert (tmp_path / "notes.txt").exists()
