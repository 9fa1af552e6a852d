"""The second generated dataset (wss_tf.data.synthetic_objects): determinism, VOC masks with a boundary band, the VOC
tree and its splits, its records (built by build_voc) read back by the eval pipeline, caching, render_object; and
build_voc's check of ids against class_names."""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from wss_tf.data import generated
from wss_tf.data import synthetic_objects as so

TINY = dict(num_train=12, num_val=3, labeled_sizes=(4, 8), image_size_range=(40, 56))
NUM_CLASSES = len(so.CLASS_NAMES)
FOREGROUND = set(range(1, NUM_CLASSES))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return so.generate(str(tmp_path_factory.mktemp("objects") / "tiny"), seed=0, **TINY)


def _voc(dataset):
    return os.path.join(dataset.output_dir, so.VOC_DIR)


def _split(dataset, split):
    with open(os.path.join(_voc(dataset), "ImageSets", "Segmentation", split + ".txt")) as f:
        return f.read().split()


def _mask(dataset, image_id):
    with Image.open(os.path.join(_voc(dataset), "SegmentationClass", image_id + ".png")) as image:
        assert image.mode == "P"
        return np.asarray(image)


def _raw_bytes(folder):
    files = sorted(p for p in glob.glob(os.path.join(folder, "raw", "**", "*"), recursive=True) if os.path.isfile(p))
    return {os.path.relpath(p, folder): open(p, "rb").read() for p in files}


def _near(region, radius):
    """Pixels with a `region` pixel within `radius` (Chebyshev)."""
    height, width = region.shape
    padded = np.pad(region, radius)
    out = np.zeros_like(region)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy:dy + height, dx:dx + width]
    return out


def test_sample_is_deterministic_and_seeded():
    for index in range(3):
        a_image, a_mask = so.sample(0, "train", index)
        b_image, b_mask = so.sample(0, "train", index)
        np.testing.assert_array_equal(a_image, b_image)
        np.testing.assert_array_equal(a_mask, b_mask)
        c_image, _ = so.sample(1, "train", index)
        assert a_image.shape != c_image.shape or not np.array_equal(a_image, c_image)
    assert not np.array_equal(so.sample(0, "train", 0)[1], so.sample(0, "val", 0)[1])


def test_sample_format():
    for index in range(4):
        image, mask = so.sample(0, "val", index)
        assert image.dtype == np.uint8 and mask.dtype == np.uint8
        assert image.ndim == 3 and image.shape[2] == 3 and mask.shape == image.shape[:2]
        assert 128 <= mask.shape[0] <= 192 and 128 <= mask.shape[1] <= 192
        ids = set(np.unique(mask).tolist())
        assert ids <= set(range(NUM_CLASSES)) | {255} and 255 in ids
        assert so.image_classes(mask) == ids - {255}


def test_boundary_band_runs_along_every_outline_and_only_there():
    band_pixels = thin_pixels = 0
    for size in (48, 160):
        for index in range(6):
            rng = np.random.default_rng([7, size, index])
            _, instances, classes = so._render_scene(rng, size, size + 8)
            mask = so.voc_mask(instances, classes)
            band = mask == 255
            # exactly the pixels with another instance among their 8 neighbours
            height, width = instances.shape
            padded = np.pad(instances, 1, mode="edge")
            windows = np.stack([padded[dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)])
            np.testing.assert_array_equal(band, (windows != instances).any(axis=0))
            np.testing.assert_array_equal(mask[~band], classes[instances][~band])
            # on the mask alone: no two neighbouring labelled pixels of different classes (every outline is
            # covered), and the band is thin: labelled pixels within 3 px (1-px strokes crossing make rare
            # exceptions)
            for a, b in ((mask[1:], mask[:-1]), (mask[:, 1:], mask[:, :-1])):
                assert not ((a != b) & (a != 255) & (b != 255)).any()
            band_pixels += band.sum()
            thin_pixels += (band & _near(~band, 3)).sum()
            assert band.mean() < (0.5 if size < 100 else 0.2)  # tiny images are mostly outline
    assert thin_pixels >= 0.995 * band_pixels, (thin_pixels, band_pixels)


def test_voc_mask_between_two_objects_of_one_class():
    instances = np.zeros((10, 20), np.int32)
    instances[2:8, 2:10] = 1
    instances[2:8, 10:18] = 2
    mask = so.voc_mask(instances, np.array([0, 3, 3]))
    assert (mask[3:7, 9:11] == 255).all()  # 2 px between the touching objects
    assert (mask[3:7, 3:9] == 3).all() and (mask[3:7, 11:17] == 3).all()
    assert (mask[:, 0] == 0).all() and (mask[0] == 0).all()  # no band along the image border
    assert so.image_classes(mask) == {0, 3}


def test_generated_files_are_byte_identical_for_a_seed(tiny, tmp_path):
    again = so.generate(str(tmp_path / "again"), seed=0, **TINY)
    other = so.generate(str(tmp_path / "other"), seed=1, **TINY)
    ours, same, different = _raw_bytes(tiny.output_dir), _raw_bytes(again.output_dir), _raw_bytes(other.output_dir)
    assert len(ours) == 2 * (12 + 3) + 4  # JPEGs and masks of train and val; four split lists
    assert ours == same
    images = [k for k in ours if "JPEGImages" in k]
    assert sum(ours[k] != different[k] for k in images) == len(images)


def test_voc_tree_and_splits(tiny):
    from wss_tf.colormap import pascal_colormap

    train, val = _split(tiny, "train"), _split(tiny, "val")
    assert len(train) == 12 and len(val) == 3 and not set(train) & set(val)
    assert tiny.split_sizes == {"train": 12, "val": 3, "labeled_4": 4, "labeled_8": 8}
    small, large = _split(tiny, "labeled_4"), _split(tiny, "labeled_8")
    assert set(small) <= set(large) <= set(train) and len(set(small)) == 4 and len(set(large)) == 8
    for split in ("labeled_4", "labeled_8"):
        present = set().union(*(so.image_classes(_mask(tiny, i)) for i in _split(tiny, split)))
        assert present >= FOREGROUND, f"{split} lacks classes {FOREGROUND - present}"
    for image_id in train + val:
        with Image.open(os.path.join(_voc(tiny), "JPEGImages", image_id + ".jpg")) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            size = image.size
        with Image.open(os.path.join(_voc(tiny), "SegmentationClass", image_id + ".png")) as mask:
            assert mask.size == size
            np.testing.assert_array_equal(np.asarray(mask.getpalette(), np.uint8).reshape(-1, 3),
                                          pascal_colormap())
            assert set(np.unique(np.asarray(mask)).tolist()) <= set(range(NUM_CLASSES)) | {255}
    stored = tiny.train_pixel_fractions
    assert list(stored) == list(so.CLASS_NAMES) and 0.5 < sum(stored.values()) < 1
    assert all(stored[n] > 0 for n in so.CLASS_NAMES)
    assert tiny.dataset_name == so.DATASET_NAME and tiny.num_classes == 8


def test_subsets_are_random_but_deterministic():
    classes = [set(FOREGROUND)] * 40
    a = generated.choose_subsets(np.random.default_rng(0), classes, (4, 10))
    b = generated.choose_subsets(np.random.default_rng(0), classes, (4, 10))
    c = generated.choose_subsets(np.random.default_rng(1), classes, (4, 10))
    assert a == b and a != c and set(a[4]) <= set(a[10])
    with pytest.raises(RuntimeError, match="every class"):
        generated.choose_subsets(np.random.default_rng(0), [{1}] * 9 + [{2}], (1,))


def test_records_read_back_by_the_eval_pipeline(tiny):
    from wss_tf.data import pipeline
    from wss_tf.data.build_folder import eval_crop_for
    from wss_tf.data.datasets import load_dataset_info

    info = load_dataset_info(so.DATASET_NAME, tiny.output_dir)
    assert info.name == so.DATASET_NAME and info.num_classes == 8 and info.class_names == so.CLASS_NAMES
    assert info.split_sizes == tiny.split_sizes
    masks = {i: _mask(tiny, i) for i in _split(tiny, "train") + _split(tiny, "val")}
    side = eval_crop_for(max(max(m.shape) for m in masks.values()))
    assert info.eval_crop == (side, side) == tiny.eval_crop
    stream = pipeline.StreamConfig(tiny.output_dir, "val", info.num_classes, batch_size=2)
    seen = []
    for batch in pipeline.eval_dataset(stream, info.eval_crop, (127.5, 127.5, 127.5)):
        assert batch["image"].shape[1:] == (side, side, 3)
        for k, name in enumerate(batch["filename"].numpy()):
            name = name.decode()
            h, w = int(batch["height"][k]), int(batch["width"][k])
            np.testing.assert_array_equal(batch["label"][k, :h, :w, 0].numpy(), masks[name])
            assert (batch["label"][k, h:].numpy() == 255).all()
            seen.append(name)
    assert sorted(seen) == _split(tiny, "val")


def test_second_call_reuses_and_parameters_are_compared(tmp_path):
    out = str(tmp_path / "ds")
    config = dict(num_train=4, num_val=1, labeled_sizes=(), image_size_range=(40, 48))
    first = so.generate(out, seed=3, **config)
    assert not first.reused
    stamps = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)}
    second = so.generate(out, seed=3, **config)
    assert second.reused and second.split_sizes == first.split_sizes and second.records == first.records
    assert second.train_pixel_fractions == first.train_pixel_fractions and second.eval_crop == first.eval_crop
    assert stamps == {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(out, "**", "*"), recursive=True)}

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "wss_tf.data.synthetic_objects", f"--output_dir={out}", "--seed=3",
                          "--num_train=4", "--num_val=1", "--labeled_sizes=", "--image_size_range=40,48"],
                         capture_output=True, text=True, env=env, check=True)
    assert "kept" in run.stdout and "train: 4 images" in run.stdout

    third = so.generate(out, seed=3, **dict(config, num_val=2))
    assert not third.reused and third.split_sizes["val"] == 2
    with open(os.path.join(out, so.MANIFEST_FILE)) as f:
        assert json.load(f)["parameters"]["num_val"] == 2


def test_refuses_a_directory_with_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        so.generate(str(tmp_path), num_train=2, num_val=1, labeled_sizes=(), image_size_range=(40, 48))
    assert (tmp_path / "notes.txt").exists()


def test_render_object():
    assert so.OBJECT_NAMES[len(so.CLASS_NAMES)] == so.EXTRA_CLASS_NAMES[0] and len(so.EXTRA_CLASS_NAMES) >= 3
    assert not set(so.EXTRA_CLASS_NAMES) & set(so.CLASS_NAMES)
    images = []
    for cls in range(1, len(so.OBJECT_NAMES)):
        image = so.render_object(np.random.default_rng(11), cls, 60, 72)
        assert image.shape == (60, 72, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, so.render_object(np.random.default_rng(11), cls, 60, 72))
        images.append(image)
        for seed in range(3):
            _, region = so._render_object_scene(np.random.default_rng(seed), cls, 96, 96)
            assert 0.1 < region.mean() < 0.55, (so.OBJECT_NAMES[cls], region.mean())
            ys, xs = np.nonzero(region)
            assert abs(ys.mean() - 48) < 20 and abs(xs.mean() - 48) < 20  # roughly centred
    for a in range(len(images)):
        for b in range(a):
            assert not np.array_equal(images[a], images[b])
    for cls in (0, len(so.OBJECT_NAMES)):
        with pytest.raises(ValueError, match="object class"):
            so.render_object(np.random.default_rng(0), cls, 32, 32)


def _palette_png(mask, path):
    from wss_tf.colormap import pascal_colormap

    image = Image.fromarray(mask, "P")
    image.putpalette(pascal_colormap().ravel().tolist())  # without a palette Pillow saves other indices
    image.save(path)


def _voc_tree(tmp_path, masks):
    root = tmp_path / "VOC2012"
    for folder in ("JPEGImages", "SegmentationClass"):
        (root / folder).mkdir(parents=True)
    for image_id, mask in masks.items():
        Image.fromarray(np.full((*mask.shape, 3), 128, np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        _palette_png(mask, root / "SegmentationClass" / f"{image_id}.png")
    (tmp_path / "all.txt").write_text("".join(f"{i}\n" for i in masks))
    return root, str(tmp_path / "all.txt")


def test_build_voc_with_class_names(tmp_path):
    import tensorflow as tf

    from wss_tf.data.build_voc import build_voc
    from wss_tf.data.datasets import load_dataset_info
    from wss_tf.data.records import parse_example

    names = so.CLASS_NAMES
    ok = np.zeros((20, 30), np.uint8)
    ok[5:9, 5:9] = 7
    ok[4, 4:10] = 255
    beyond = ok.copy()
    beyond[0, 0] = 8
    root, split = _voc_tree(tmp_path, {"a": ok, "b": ok[:18]})
    written = build_voc(str(root), str(tmp_path / "out"), [split], mask_dir="SegmentationClass", num_shards=1,
                        class_names=names, dataset_name="mine")
    assert list(written) == ["all"]
    labels = [parse_example(r)["label"].numpy()[..., 0] for r in tf.data.TFRecordDataset(written["all"])]
    assert sorted(np.unique(np.concatenate([l.ravel() for l in labels])).tolist()) == [0, 7, 255]
    info = load_dataset_info("mine", str(tmp_path / "out"))
    assert info.class_names == names and info.eval_crop == (33, 33) and info.split_sizes == {"all": 2}

    _palette_png(beyond[:18], root / "SegmentationClass" / "b.png")
    with pytest.raises(ValueError, match=r"mask .*SegmentationClass.b\.png has class ids 8 >= num_classes=8"):
        build_voc(str(root), str(tmp_path / "out2"), [split], mask_dir="SegmentationClass", class_names=names)
    # without class_names it is PASCAL VOC: 21 classes, so id 8 is fine, and no dataset_info.json
    build_voc(str(root), str(tmp_path / "out3"), [split], mask_dir="SegmentationClass")
    assert not os.path.exists(tmp_path / "out3" / "dataset_info.json")
    with pytest.raises(ValueError, match="needs class_names"):
        build_voc(str(root), str(tmp_path / "out4"), [split], mask_dir="SegmentationClass", dataset_name="mine")
