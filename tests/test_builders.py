"""The VOC, COCO and folder builders on tiny synthetic trees, and their input checks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from wss_tf.data.build_coco import build_coco
from wss_tf.data.build_folder import build_folder, eval_crop_for
from wss_tf.data.build_voc import build_voc
from wss_tf.data.datasets import load_dataset_info
from wss_tf.data.records import FEATURES, parse_example

H, W = 20, 30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(0)


def _image(path, size=(H, W), mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def _mask(path, array, palette=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(array, np.uint8), "P" if palette else "L")
    if palette:  # colours unrelated to the ids, like VOC's: the index is what counts
        image.putpalette(RNG.integers(0, 256, 768, dtype=np.uint8).tolist())
    image.save(path)
    return path


def _ids_mask(num_classes, size=(H, W)):
    mask = RNG.integers(0, num_classes, size, dtype=np.uint8)
    mask[0, :3] = 255
    return mask


def _records(paths):
    """filename -> (image uint8, mask uint8 [H, W], raw image bytes, height, width)."""
    out = {}
    for serialized in tf.data.TFRecordDataset(paths):
        parsed = parse_example(serialized)
        raw = tf.io.parse_single_example(serialized, FEATURES)
        out[parsed["filename"].numpy().decode()] = (parsed["image"].numpy(), parsed["label"].numpy()[..., 0],
                                                    raw["image/encoded"].numpy(), int(parsed["height"]),
                                                    int(parsed["width"]))
    return out


def _start(module, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def commands(tmp_path_factory):
    """The three builder commands on their tiny trees, started together (each spends seconds importing TF)."""
    folder_dir, voc_dir, coco_dir = (tmp_path_factory.mktemp(n) for n in ("folder", "voc", "coco"))
    folder, _ = _folder(folder_dir)
    root, _ = _voc(voc_dir)
    coco = _coco(coco_dir)
    started = {
        "folder": (_start("wss_tf.data.build_folder", f"--folder={folder}", f"--output_dir={folder_dir / 'out'}",
                          "--num_classes=3", "--num_shards=1"), folder_dir / "out"),
        "voc": (_start("wss_tf.data.build_voc", f"--voc_root={root}", f"--output_dir={voc_dir / 'out'}",
                       f"--splits={voc_dir / 'mine.txt'}", "--mask_dir=SegmentationClass", "--num_shards=1"),
                voc_dir / "out"),
        "coco": (_start("wss_tf.data.build_coco", f"--coco_root={coco}", f"--output_dir={coco_dir / 'out'}",
                        "--splits=train", "--num_shards=1"), coco_dir / "out"),
    }

    def result(name):
        process, out = started[name]
        stdout, stderr = process.communicate(timeout=180)
        return process.returncode, stdout, stderr, out

    yield result
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


# ------------------------------------------------------------------------------------------------ folder


def _folder(tmp_path, num_classes=3):
    folder = tmp_path / "data"
    masks = {"a": _ids_mask(num_classes), "sub/c": _ids_mask(num_classes, (H + 3, W))}
    _image(str(folder / "images/a.jpg"))
    _image(str(folder / "images/b.png"))  # no mask: unlabeled
    _image(str(folder / "images/sub/c.jpeg"), (H + 3, W), mode="L")  # greyscale
    _mask(str(folder / "masks/a.png"), masks["a"])
    _mask(str(folder / "masks/sub/c.png"), masks["sub/c"], palette=True)
    return folder, masks


def test_build_folder(tmp_path):
    folder, masks = _folder(tmp_path)
    out = str(tmp_path / "out")
    written = build_folder(str(folder), out, num_classes=3, dataset_name="mine")
    assert list(written) == ["train"] and len(written["train"]) == 2
    recs = _records(written["train"])
    assert sorted(recs) == ["a", "b", "sub/c"]
    np.testing.assert_array_equal(recs["a"][1], masks["a"])
    np.testing.assert_array_equal(recs["sub/c"][1], masks["sub/c"])  # palette indices are the ids
    assert np.all(recs["b"][1] == 255) and recs["b"][1].shape == (H, W)
    assert recs["sub/c"][0].shape == (H + 3, W, 3) and recs["sub/c"][3:] == (H + 3, W)
    assert recs["a"][2] == (folder / "images/a.jpg").read_bytes()  # JPEG copied as is
    info = load_dataset_info("mine", out)
    assert info.class_names == ("background", "class_1", "class_2") and info.num_classes == 3
    assert info.eval_crop == (33, 33) and info.split_sizes == {"train": 3}


def test_build_folder_splits(tmp_path):
    folder, _ = _folder(tmp_path)
    os.makedirs(folder / "splits")
    (folder / "splits/labeled.txt").write_text("a\nsub/c\n")
    (folder / "splits/unlabeled.txt").write_text("b\n")
    out = str(tmp_path / "out")
    written = build_folder(str(folder), out, num_classes=3, class_names=["bg", "x", "y"], eval_crop=(65, 81))
    assert sorted(written) == ["labeled", "unlabeled"] and len(written["unlabeled"]) == 1  # no empty shards
    assert sorted(_records(written["labeled"])) == ["a", "sub/c"]
    info = load_dataset_info("folder", out)
    assert info.class_names == ("bg", "x", "y") and info.eval_crop == (65, 81)
    assert info.split_sizes == {"labeled": 2, "unlabeled": 1}
    written = build_folder(str(folder), str(tmp_path / "out2"), num_classes=3, splits={"only": ["b"]})
    assert list(written) == ["only"]  # the argument overrides splits/
    with pytest.raises(ValueError, match=r"splits.nope\.txt: 2 of 3 ids are not in the dataset.*first missing: x, y"):
        (folder / "splits/nope.txt").write_text("a\nx\ny\n")
        build_folder(str(folder), str(tmp_path / "out3"), num_classes=3)


def test_a_failing_rebuild_leaves_the_earlier_record_set_as_it_was(tmp_path):
    """The first split rebuilds fine, the second hits a corrupt image: nothing of the new build may land beside
    the old shards and the old dataset_info.json."""
    folder, _ = _folder(tmp_path)
    os.makedirs(folder / "splits")
    (folder / "splits/labeled.txt").write_text("a\nsub/c\n")
    (folder / "splits/unlabeled.txt").write_text("b\n")
    out = tmp_path / "out"
    build_folder(str(folder), str(out), num_classes=3, num_shards=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    data = (folder / "images/b.png").read_bytes()
    (folder / "images/b.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"unreadable or corrupt image .*images.b\.png"):
        build_folder(str(folder), str(out), num_classes=3, class_names=["bg", "x", "y"], num_shards=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_eval_crop_rule():
    assert [eval_crop_for(s) for s in (1, 30, 33, 34, 500, 513, 640)] == [33, 33, 33, 49, 513, 513, 641]


def test_build_folder_command(commands):
    returncode, _, stderr, out = commands("folder")
    assert returncode == 0, stderr
    assert "writing train: 3" in stderr
    assert sorted(os.listdir(out)) == ["dataset_info.json", "train-00000-of-00001.tfrecord"]


def test_folder_bad_inputs(tmp_path):
    folder, _ = _folder(tmp_path)
    out = str(tmp_path / "out")
    with pytest.raises(ValueError, match=r"masks.a\.png has class ids 3, 7 >= num_classes=3"):
        _mask(str(folder / "masks/a.png"), np.where(_ids_mask(3) == 1, 7, 3))
        build_folder(str(folder), out, num_classes=3)
    with pytest.raises(ValueError, match=r"masks.a\.png is 21x30 \(HxW\) but its image .*a\.jpg is 20x30"):
        _mask(str(folder / "masks/a.png"), _ids_mask(3, (H + 1, W)))
        build_folder(str(folder), out, num_classes=3)
    _mask(str(folder / "masks/a.png"), _ids_mask(3))
    with pytest.raises(ValueError, match=r"unreadable or corrupt image .*images.b\.png"):
        data = (folder / "images/b.png").read_bytes()
        (folder / "images/b.png").write_bytes(data[: len(data) // 2])
        build_folder(str(folder), out, num_classes=3)
    assert not os.path.exists(out) or not [f for f in os.listdir(out) if f.startswith("train")]
    with pytest.raises(ValueError, match=r"mask .*masks.a\.png is a RGB image"):
        _image(str(folder / "images/b.png"))
        Image.fromarray(RNG.integers(0, 3, (H, W, 3), dtype=np.uint8)).save(folder / "masks/a.png")
        build_folder(str(folder), out, num_classes=3)
    _mask(str(folder / "masks/a.png"), _ids_mask(3))
    with pytest.raises(ValueError, match="split name 'train-small' cannot name record shards"):
        build_folder(str(folder), out, num_classes=3, splits={"train-small": ["a"]})
    with pytest.raises(ValueError, match=r"mask .*masks.b\.jpg is a JPEG"):
        Image.fromarray(_ids_mask(3)).save(folder / "masks/b.jpg")
        build_folder(str(folder), out, num_classes=3)


# ------------------------------------------------------------------------------------------------ VOC


def _voc(tmp_path):
    root = tmp_path / "VOCdevkit/VOC2012"
    masks = {}
    for i, image_id in enumerate(["2007_000032", "2007_000039", "2011_003276"]):
        _image(str(root / f"JPEGImages/{image_id}.jpg"))
        masks[image_id] = _ids_mask(21)
        masks[image_id][5, 5:9] = [0, 15, 20, 255]
        _mask(str(root / f"SegmentationClass/{image_id}.png"), masks[image_id], palette=True)
        _mask(str(root / f"SegmentationClassAug/{image_id}.png"), masks[image_id])
    (tmp_path / "mine.txt").write_text("2007_000032\n2011_003276\n")
    (tmp_path / "all.txt").write_text("\n".join(masks) + "\n")
    return root, masks


def test_build_voc(tmp_path):
    root, masks = _voc(tmp_path)
    lists = [str(tmp_path / "mine.txt"), str(tmp_path / "all.txt")]
    for mask_dir in ("SegmentationClass", "SegmentationClassAug"):
        out = tmp_path / mask_dir
        written = build_voc(str(tmp_path / "VOCdevkit"), str(out), lists, mask_dir=mask_dir, num_shards=4)
        assert sorted(written) == ["all", "mine"] and len(written["all"]) == 3 and len(written["mine"]) == 2
        recs = _records(written["all"])
        assert sorted(recs) == sorted(masks)
        for image_id, mask in masks.items():
            np.testing.assert_array_equal(recs[image_id][1], mask)
            assert recs[image_id][2] == (root / f"JPEGImages/{image_id}.jpg").read_bytes()
            assert recs[image_id][3:] == (H, W)
        assert not os.path.exists(out / "dataset_info.json")


def test_build_voc_command(commands):
    returncode, _, stderr, out = commands("voc")
    assert returncode == 0, stderr
    assert "writing mine: 2" in stderr
    assert os.listdir(out) == ["mine-00000-of-00001.tfrecord"]


def test_voc_bad_inputs(tmp_path):
    root, masks = _voc(tmp_path)
    out = str(tmp_path / "out")
    mine = str(tmp_path / "mine.txt")
    with pytest.raises(ValueError, match=r"pascal_voc_seg.val\.txt: 1449 of 1449 ids are not in the dataset .*"
                                         r"JPEGImages.*first missing: 2007_000033"):
        build_voc(str(root), out, ["val"])  # a shipped list name
    os.remove(root / "SegmentationClassAug/2011_003276.png")
    with pytest.raises(FileNotFoundError, match=r"1 mask files needed by split list .*mine\.txt are missing; "
                                                r"first: .*SegmentationClassAug.2011_003276\.png"):
        build_voc(str(root), out, [mine])
    _mask(str(root / "SegmentationClassAug/2011_003276.png"), np.full((H, W), 21))
    with pytest.raises(ValueError, match=r"2011_003276\.png has class ids 21 >= num_classes=21"):
        build_voc(str(root), out, [mine])
    _mask(str(root / "SegmentationClassAug/2011_003276.png"), masks["2011_003276"])
    (root / "JPEGImages/2007_000032.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"corrupt image .*2007_000032\.jpg"):
        build_voc(str(root), out, [mine])
    with pytest.raises(FileNotFoundError, match="no JPEGImages folder"):
        build_voc(str(tmp_path), out, [mine])


# ------------------------------------------------------------------------------------------------ COCO


def _rle(mask):
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _coco(tmp_path):
    root = tmp_path / "coco"
    categories = [{"id": 7, "name": "kite"}, {"id": 2, "name": "bicycle"}, {"id": 90, "name": "toothbrush"}]
    box = lambda y0, y1, x0, x1: np.pad(np.ones((y1 - y0, x1 - x0), bool), ((y0, H - y1), (x0, W - x1)))  # noqa
    train_anns = [  # image 1
        {"id": 10, "image_id": 1, "category_id": 7, "iscrowd": 1, "segmentation": _rle(box(0, 5, 0, 30))},
        {"id": 11, "image_id": 1, "category_id": 90, "iscrowd": 0, "segmentation": _rle(box(2, 12, 0, 10))},
        {"id": 12, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": _rle(box(8, 16, 5, 15))},
        {"id": 13, "image_id": 1, "category_id": 7, "iscrowd": 0,  # a polygon: x,y pairs
         "segmentation": [[20.0, 10.0, 29.0, 10.0, 29.0, 19.0, 20.0, 19.0]]}]
    val_anns = [{"id": 20, "image_id": 5, "category_id": 2, "iscrowd": 0, "segmentation": _rle(box(0, 20, 0, 15))}]
    for subset, images, anns in (("train2017", [1, 2], train_anns), ("val2017", [5], val_anns)):
        entries = []
        for img_id in images:
            name = f"{img_id:012d}.jpg"
            _image(str(root / subset / name))
            entries.append({"id": img_id, "file_name": name, "height": H, "width": W})
        os.makedirs(root / "annotations", exist_ok=True)
        (root / f"annotations/instances_{subset}.json").write_text(json.dumps(
            {"images": entries, "annotations": anns, "categories": categories}))
    (tmp_path / "some.txt").write_text("train2017/000000000002\nval2017/000000000005\ntrain2017/000000000001\n")
    return root


def test_build_coco(tmp_path):
    root = _coco(tmp_path)
    out = str(tmp_path / "out")
    written = build_coco(str(root), out, ["train", str(tmp_path / "some.txt")], num_shards=2)
    assert sorted(written) == ["some", "train"]
    recs = _records(written["train"])
    assert sorted(recs) == ["train2017/000000000001", "train2017/000000000002"]
    mask = recs["train2017/000000000001"][1]
    # category ids 2, 7, 90 -> classes 1, 2, 3
    assert np.all(mask[:5] == 255)  # crowd wins, though it comes first in the JSON
    assert np.all(mask[5:8, :10] == 3) and np.all(mask[8:12, :5] == 3)
    assert np.all(mask[8:12, 5:10] == 1)  # the later annotation overwrites the earlier one
    assert np.all(mask[12:16, 5:15] == 1) and np.all(mask[12:18, 22:28] == 2)  # polygon interior
    assert mask[18, 17] == 0 and mask[5, 29] == 0  # background
    assert np.all(recs["train2017/000000000002"][1] == 0)  # no annotations: all background
    assert recs["train2017/000000000002"][2] == (root / "train2017/000000000002.jpg").read_bytes()
    some = _records(written["some"])
    assert sorted(some) == ["train2017/000000000001", "train2017/000000000002", "val2017/000000000005"]
    assert np.all(some["val2017/000000000005"][1][:, :15] == 1) and np.all(some["val2017/000000000005"][1][:, 15:] == 0)
    info = load_dataset_info("coco", out)  # categories differ from COCO's 80: described beside the records
    assert info.class_names == ("background", "bicycle", "kite", "toothbrush") and info.eval_crop == (641, 641)


def test_build_coco_command(commands):
    returncode, _, stderr, out = commands("coco")
    assert returncode == 0, stderr
    assert "writing train: 2" in stderr
    assert "train-00000-of-00001.tfrecord" in os.listdir(out)


def test_coco_bad_inputs(tmp_path):
    root = _coco(tmp_path)
    out = str(tmp_path / "out")
    with pytest.raises(ValueError, match=r"coco.512_all\.txt: 232 of 232 ids are not in the dataset "
                                         r"\(.*instances_train2017\.json\); first missing: train2017/000000"):
        build_coco(str(root), out, ["512_all"])
    _image(str(root / "train2017/000000000002.jpg"), (H, W + 1))
    with pytest.raises(ValueError, match=r"instances_train2017\.json \(image id 2\) is 20x30 .* but its image "
                                         r".*000000000002\.jpg is 20x31"):
        build_coco(str(root), out, ["train"])
    os.remove(root / "train2017/000000000002.jpg")
    with pytest.raises(FileNotFoundError, match=r"1 image files needed by split list train .*000000000002\.jpg"):
        build_coco(str(root), out, ["train"])
    os.remove(root / "annotations/instances_val2017.json")
    with pytest.raises(FileNotFoundError, match=r"instances_val2017\.json not found \(needed by split list "
                                                r".*some\.txt\)"):
        build_coco(str(root), out, [str(tmp_path / "some.txt")])
