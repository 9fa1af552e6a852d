import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags
from PIL import Image

from test_serving import CLASSES, eval_reference, smooth_images, tiny_config, trained_like_model
from wss_tf import export, predict
from wss_tf.colormap import colormap
from wss_tf.config import RUN_CONFIG_FILE
from wss_tf.data.datasets import DatasetInfo, write_dataset_info

EVAL_CROP = (65, 65)
# name -> size: fits the crop (PNG), larger than the crop in height (JPEG, upper-case extension), fits (JPEG)
IMAGES = {"a.png": (40, 52), "b.JPG": (97, 50), "c.jpeg": (65, 60)}


def _flags(define, argv):
    fv = flags.FlagValues()
    define(fv)
    fv(["prog", *argv])
    return fv


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A checkpoint as the trainer writes it (object checkpoint + config.json naming the dataset), a folder of
    images, then predictions through the checkpoint and through an export made by the export command."""
    tmp = tmp_path_factory.mktemp("predict")
    dataset_dir, logdir, inputs = tmp / "records", tmp / "train", tmp / "images"
    write_dataset_info(DatasetInfo("toy", CLASSES, EVAL_CROP), str(dataset_dir))
    model = trained_like_model()
    tf.train.Checkpoint(model=model).save(str(logdir / "ckpt"))
    (logdir / RUN_CONFIG_FILE).write_text(tiny_config(dataset_dir=str(dataset_dir)).to_json())
    inputs.mkdir()
    for i, (name, (h, w)) in enumerate(IMAGES.items()):
        Image.fromarray(smooth_images(1, h, w, seed=10 + i)[0]).save(inputs / name, quality=90)
    (inputs / "notes.txt").write_text("not an image")

    # the model flags, dataset and crop come from the run's config.json and the dataset's dataset_info.json
    export_dir = export.export_from_flags(_flags(export.define_flags, [
        f"--checkpoint_path={logdir}", f"--export_path={tmp / 'export'}"]))
    from_checkpoint = _flags(predict.define_flags, [
        f"--checkpoint_dir={logdir}", f"--input={inputs}", f"--output_dir={tmp / 'out_checkpoint'}"])
    predictor = predict.predictor_from_flags(from_checkpoint)
    summaries = {"checkpoint": predict.predict_images(predictor, predict.list_images(str(inputs)),
                                                      str(tmp / "out_checkpoint"), log_every=2)}
    summaries["export"] = predict.predict_from_flags(_flags(predict.define_flags, [
        f"--export_dir={export_dir}", f"--input={inputs}", f"--output_dir={tmp / 'out_export'}", "--log_every=2"]))
    return dict(tmp=tmp, model=model, inputs=inputs, predictor=predictor, summaries=summaries,
                outputs={k: tmp / f"out_{k}" for k in summaries})


def _png(path):
    return np.asarray(Image.open(path))


def test_checkpoint_and_export_routes_write_the_same_label_maps(run):
    assert run["predictor"].metadata["crop_size"] == list(EVAL_CROP)  # the dataset's eval crop
    seen = set()
    for route, summary in run["summaries"].items():
        assert summary["images"] == len(IMAGES) and summary["skipped"] == [], route
    for name, (h, w) in IMAGES.items():
        stem = os.path.splitext(name)[0]
        image = predict.read_image(str(run["inputs"] / name))
        outputs = {route: {kind: _png(directory / f"{stem}{kind}.png") for kind in ("", "_color", "_overlay")}
                   for route, directory in run["outputs"].items()}
        labels = outputs["checkpoint"][""]
        assert labels.shape == (h, w) and labels.dtype == np.uint8
        assert labels.max() < len(CLASSES)
        for kind in ("", "_color", "_overlay"):
            np.testing.assert_array_equal(outputs["export"][kind], outputs["checkpoint"][kind], err_msg=name + kind)
        colours = outputs["checkpoint"]["_color"]
        np.testing.assert_array_equal(colours, colormap("pascal")[labels])
        overlay = outputs["checkpoint"]["_overlay"].astype(np.float32)
        background = labels == 0
        np.testing.assert_array_equal(overlay[background], image[background])
        blend = 0.5 * image[~background].astype(np.float32) + 0.5 * colours[~background]
        assert np.abs(overlay[~background] - blend).max() <= 0.5 + 1e-3
        if h <= EVAL_CROP[0] and w <= EVAL_CROP[1]:  # what evaluation predicts for this image
            np.testing.assert_array_equal(labels, eval_reference(run["model"], image), err_msg=name)
        seen |= set(np.unique(labels).tolist())
    assert len(seen) >= 2, seen
    assert sorted(os.listdir(run["outputs"]["export"])) == sorted(
        f"{os.path.splitext(n)[0]}{k}.png" for n in IMAGES for k in ("", "_color", "_overlay"))


def test_unreadable_image_is_named_or_skipped(run, tmp_path):
    inputs = tmp_path / "images"
    inputs.mkdir()
    Image.fromarray(smooth_images(1, 30, 40, seed=3)[0]).save(inputs / "a.png")
    (inputs / "b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    jpeg = (run["inputs"] / "c.jpeg").read_bytes()
    (inputs / "c_truncated.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    paths = predict.list_images(str(inputs))
    with pytest.raises(predict.BadImageError, match="b_broken.png"):
        predict.predict_images(run["predictor"], paths, str(tmp_path / "out"))
    with pytest.raises(predict.BadImageError, match="c_truncated.jpg"):
        predict.predict_images(run["predictor"], [p for p in paths if "broken" not in p], str(tmp_path / "out"))
    summary = predict.predict_images(run["predictor"], paths, str(tmp_path / "out"), skip_bad_images=True)
    assert summary["images"] == 1 and [os.path.basename(p) for p in summary["skipped"]] == [
        "b_broken.png", "c_truncated.jpg"]
    assert sorted(os.listdir(tmp_path / "out")) == ["a.png", "a_color.png", "a_overlay.png"]


def test_inputs_and_routes_are_checked(run, tmp_path):
    assert predict.list_images(str(run["inputs"] / "b.JPG")) == [str(run["inputs"] / "b.JPG")]
    with pytest.raises(ValueError, match="not a .jpg/.jpeg/.png"):
        predict.list_images(str(run["inputs"] / "notes.txt"))
    (tmp_path / "x.jpg").write_bytes(b"")
    (tmp_path / "x.PNG").write_bytes(b"")
    with pytest.raises(ValueError, match="overwrite each other"):
        predict.list_images(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no .jpg/.jpeg/.png images"):
        predict.list_images(str(run["tmp"] / "records"))
    for routes in ([], ["--export_dir=e", "--checkpoint_dir=c"]):
        with pytest.raises(app.UsageError, match="exactly one of --export_dir"):
            predict.predictor_from_flags(_flags(predict.define_flags, routes))
