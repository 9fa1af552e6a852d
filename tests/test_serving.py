import json
import logging as pylogging
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import logging as absl_logging
from PIL import Image

from deeplab import official_variable_map
from wss_tf.config import TrainConfig
from wss_tf.data.augment import pad_to_size
from wss_tf.inference import build_model, predict_probabilities
from wss_tf.serving import METADATA_FILE, SegmentationServer, _DropRenamedInputNotes, export_saved_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "tests", "scripts", "serve_export.py")
CROP = (65, 65)
CLASSES = ("background", "disc", "ring", "star")
SCALES = (0.75,)  # baked into the export, with flipped images: two passes, neither the plain one
# smaller than the crop, equal, larger in height only, larger in width only (both resized), non-square
SIZES = [(40, 52), (65, 65), (97, 50), (30, 90), (64, 33)]


def tiny_config(**changes) -> TrainConfig:
    return TrainConfig(model_variant="xception_tiny", aspp_convs_filters=16, decoder_filters=16, dataset="toy",
                       **changes)


def smooth_images(n, height, width, seed):
    """uint8 images with structure at several scales (so labels vary across the image)."""
    rng = np.random.RandomState(seed)
    low = rng.uniform(0, 255, (n, 5, 5, 3)).astype(np.float32)
    smooth = tf.image.resize(low, (height, width), "bicubic").numpy().clip(0, 255)
    return (0.8 * smooth + rng.uniform(0, 51, (n, height, width, 3))).astype(np.uint8)


def trained_like_model(num_classes=len(CLASSES)):
    """A tiny PseudoSeg model whose labels depend on the image: batch-norm moving statistics taken from a batch
    (a decay of 0.01, two training-mode passes), a unit-scale random logits kernel, and biases that centre the
    logits so every class wins somewhere. (Fresh init gives one class everywhere, which would hide errors.)"""
    model = build_model(tiny_config(batch_norm_decay=0.01), num_classes)
    calibration = smooth_images(4, *CROP, seed=100).astype(np.float32)
    for _ in range(2):
        model.segmenter(calibration, training=True)
    variables = official_variable_map(model.segmenter)
    kernel, bias = variables["logits/semantic/weights"], variables["logits/semantic/biases"]
    kernel.assign(np.random.RandomState(7).normal(0, 1, kernel.shape).astype(np.float32))
    logits = model.segmenter(calibration, training=False)["logits"].numpy()
    bias.assign(-logits.mean((0, 1, 2)))
    return model


def eval_reference(model, image, scales=(1.0,), flip=False):
    """Evaluation's labels for an image that fits the crop: pad bottom/right with the mean pixel
    (augment.pad_to_size, as pad_for_eval), predict at the crop, argmax, crop to the image."""
    padded = pad_to_size(tf.cast(image, tf.float32), *CROP, model.spec.mean_pixel)[tf.newaxis]
    probabilities, _ = predict_probabilities(model.segmenter, padded, scales, flip)
    labels = tf.argmax(probabilities, -1, output_type=tf.int32)[0].numpy()
    return labels[:image.shape[0], :image.shape[1]]


def resized_reference(model, image, scales=(1.0,), flip=False):
    """For an image larger than the crop: resize down to fit (aspect kept), pad, predict, crop, resize the
    probabilities back, argmax."""
    h, w = image.shape[:2]
    s = min(CROP[0] / h, CROP[1] / w)
    fit = (min(CROP[0], round(h * s)), min(CROP[1], round(w * s)))
    small = tf.image.resize(tf.cast(image[np.newaxis], tf.float32), fit, "bilinear", antialias=True)[0]
    padded = pad_to_size(small, *CROP, model.spec.mean_pixel)[tf.newaxis]
    probabilities, _ = predict_probabilities(model.segmenter, padded, scales, flip)
    probabilities = tf.image.resize(probabilities[:, :fit[0], :fit[1]], (h, w), "bilinear")
    return tf.argmax(probabilities, -1, output_type=tf.int32)[0].numpy()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One model, exported once and run in a fresh process; the live server beside it."""
    tmp = tmp_path_factory.mktemp("serving")
    model = trained_like_model()
    notes = []  # what the export logs

    class Keep(pylogging.Handler):
        def emit(self, record):
            notes.append(record.getMessage())

    keep, verbosity = Keep(), absl_logging.get_verbosity()
    absl_logging.get_absl_logger().addHandler(keep)
    absl_logging.set_verbosity(absl_logging.INFO)  # as the export command runs
    try:
        export_dir = export_saved_model(model, str(tmp / "export"), crop_size=CROP, eval_scales=SCALES,
                                        add_flipped_images=True, class_names=CLASSES, colormap_name="pascal")
    finally:
        absl_logging.get_absl_logger().removeHandler(keep)
        absl_logging.set_verbosity(verbosity)
    images = {f"image_{i}": smooth_images(1, h, w, seed=i)[0] for i, (h, w) in enumerate(SIZES)}
    np.savez(tmp / "images.npz", **images)
    pngs = []
    for key, image in sorted(images.items()):
        pngs.append(str(tmp / f"{key}.png"))
        Image.fromarray(image).save(pngs[-1])
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen([sys.executable, SCRIPT, export_dir, str(tmp / "images.npz"), str(tmp / "out.npz"),
                                *pngs], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    # the live side runs while the fresh process loads the export
    server = SegmentationServer(model, crop_size=CROP, eval_scales=SCALES, add_flipped_images=True,
                                class_names=CLASSES)
    live = {key: server.probabilities_from_images(tf.constant(image[np.newaxis])) for key, image in images.items()}
    live = {key: {k: v.numpy()[0] for k, v in out.items()} for key, out in live.items()}
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    signatures = json.loads([l for l in stdout.splitlines() if l.startswith("SIGNATURES ")][-1][len("SIGNATURES "):])
    return dict(model=model, server=server, images=images, live=live, export_dir=export_dir, export_log=notes,
                reloaded=dict(np.load(tmp / "out.npz")), signatures=signatures)


def test_reloaded_export_gives_the_live_and_eval_labels_at_every_size(served):
    model, images, live, reloaded = served["model"], served["images"], served["live"], served["reloaded"]
    seen = set()
    for key, image in sorted(images.items()):
        h, w = image.shape[:2]
        labels = reloaded["labels_" + key]
        assert labels.shape == (h, w) and labels.dtype == np.int32
        np.testing.assert_array_equal(labels, live[key]["labels"], err_msg=f"{key} {h}x{w}: reloaded vs live")
        fits = h <= CROP[0] and w <= CROP[1]
        reference = (eval_reference if fits else resized_reference)(model, image, SCALES, True)
        np.testing.assert_array_equal(labels, reference, err_msg=f"{key} {h}x{w}: vs the reference")
        seen |= set(np.unique(labels).tolist())
    assert len(seen) >= 3, seen  # labels depend on the image: a wrong crop, pad or resize would show

    # encoded PNGs of different sizes in one batch: each image's labels, 255 beyond its own size
    heights, widths = reloaded["bytes_heights"], reloaded["bytes_widths"]
    np.testing.assert_array_equal(np.stack([heights, widths], 1), [images[k].shape[:2] for k in sorted(images)])
    batch = reloaded["bytes_labels"]
    assert batch.shape == (len(SIZES), max(h for h, _ in SIZES), max(w for _, w in SIZES))
    for i, key in enumerate(sorted(images)):
        h, w = images[key].shape[:2]
        np.testing.assert_array_equal(batch[i, :h, :w], reloaded["labels_" + key], err_msg=key)
        assert (batch[i, h:] == 255).all() and (batch[i, :, w:] == 255).all()


def test_the_export_does_not_log_a_note_per_renamed_input(served):
    """TF's saver notes every captured-variable input it renames, per signature (KB of numbers); they are
    dropped, and only they."""
    assert not [n for n in served["export_log"] if "contains input name(s)" in n]
    probe = pylogging.LogRecord("absl", pylogging.INFO, __file__, 1, "Function `f` contains input name(s) 1, 2",
                                None, None)
    assert not _DropRenamedInputNotes().filter(probe)
    probe.msg = "something else"
    assert _DropRenamedInputNotes().filter(probe)


def test_signatures_follow_tf_serving_conventions_and_metadata_is_written(served):
    signatures = served["signatures"]
    assert signatures["serving_default"] == {"image_bytes": ["string", [None]]}
    assert signatures["probabilities_from_bytes"] == {"image_bytes": ["string", [None]]}
    assert signatures["labels_from_images"] == {"images": ["uint8", [None, None, None, 3]]}
    assert signatures["probabilities_from_images"] == {"images": ["uint8", [None, None, None, 3]]}
    with open(os.path.join(served["export_dir"], METADATA_FILE)) as f:
        metadata = json.load(f)
    assert metadata["class_names"] == list(CLASSES) and metadata["crop_size"] == list(CROP)
    assert metadata["eval_scales"] == list(SCALES) and metadata["add_flipped_images"] is True
    assert metadata["model_variant"] == "xception_tiny" and metadata["colormap"] == "pascal"


def test_probabilities_sum_to_one_and_give_the_labels(served):
    images, server = served["images"], served["server"]
    for key, image in images.items():
        probabilities = served["live"][key]["probabilities"]
        assert probabilities.shape == (*image.shape[:2], len(CLASSES)) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
        assert probabilities.min() >= 0.0
        np.testing.assert_array_equal(probabilities.argmax(-1), served["live"][key]["labels"])
    # from encoded bytes: the same probabilities, zero beyond each image
    keys = ["image_0", "image_2"]  # 40x52 (fits) and 97x50 (resized)
    data = tf.constant([tf.io.encode_png(images[k]).numpy() for k in keys])
    out = {k: v.numpy() for k, v in server.probabilities_from_bytes(data).items()}
    assert out["probabilities"].shape == (2, 97, 52, len(CLASSES))
    for i, key in enumerate(keys):
        h, w = images[key].shape[:2]
        np.testing.assert_allclose(out["probabilities"][i, :h, :w], served["live"][key]["probabilities"],
                                   atol=1e-5)  # batch of 2 vs 1: the convolutions sum in another order
        assert (out["probabilities"][i, h:] == 0).all() and (out["probabilities"][i, :, w:] == 0).all()
        np.testing.assert_array_equal(out["labels"][i, :h, :w], served["live"][key]["labels"])


def test_scales_and_flip_change_the_result_and_the_network_is_traced_once(served):
    model, images, server = served["model"], served["images"], served["server"]
    changed = 0
    for key, image in images.items():
        if image.shape[0] > CROP[0] or image.shape[1] > CROP[1]:
            continue
        single = eval_reference(model, image)  # single scale, no flip
        changed += int((single != served["live"][key]["labels"]).sum())
    assert changed > 0  # the baked-in scales and flip move some labels
    # images of five sizes (and a batch of bytes) went through the server: the network was traced once
    assert server.network_traces == 1
    assert server.probabilities_from_images.experimental_get_tracing_count() == 1


def test_bad_settings_are_refused(served):
    with pytest.raises(ValueError, match="3 class names for a 4-class model"):
        SegmentationServer(served["model"], crop_size=CROP, class_names=CLASSES[:3])
    with pytest.raises(ValueError, match="scales must be positive"):
        SegmentationServer(served["model"], crop_size=CROP, eval_scales=(0.0,), class_names=CLASSES)
    with pytest.raises(ValueError, match="colormap"):
        SegmentationServer(served["model"], crop_size=CROP, class_names=CLASSES, colormap_name="rainbow")
