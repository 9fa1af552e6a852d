import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from PIL import Image

from wss_tf.colormap import pascal_colormap
from wss_tf.config import RUN_CONFIG_FILE, TrainConfig
from wss_tf.pseudo_label import fuse, sharpen
from wss_tf.pseudo_label_view import (PANEL_GAP, TITLE_HEIGHT, UNKNOWN_GREY, PanelInputs, PseudoLabelInspector,
                                      batch_norm_statistics, grid_to_image, render_panel, restore_for_pseudo_labels,
                                      tile_scale)

# batch_norm_decay 0.5: one training-mode call moves the moving averages visibly.
CONFIG = TrainConfig(model_variant="xception_tiny", aspp_convs_filters=16, decoder_filters=16, attention_dim=8,
                     dataset="toy", batch_norm_decay=0.5)


@pytest.fixture(scope="module")
def model():
    from wss_tf.inference import build_model

    return build_model(CONFIG, 4, with_sgc=True)


@pytest.fixture(scope="module")
def inspector(model):
    return PseudoLabelInspector(model, CONFIG)


def _spread_predictions(model, images):
    """An untrained model predicts one class almost everywhere: centre its logits over `images` per class."""
    logits = model.segmenter(images, training=False)["logits"].numpy()
    for v in model.segmenter.trainable_variables:
        if v.path == "logits.semantic/bias":
            v.assign(v - logits.mean(axis=(0, 1, 2)))


def _batch(seed=0, n=2, size=65):
    rng = np.random.RandomState(seed)
    images = tf.constant(rng.uniform(0, 255, (n, size, size, 3)), tf.float32)
    valid = np.ones((n, size, size, 1), np.float32)
    valid[:, 50:] = 0  # padding rows
    return images, tf.constant(valid)


def _snapshot(model):
    return [v.numpy().copy() for v in batch_norm_statistics(model)]


def test_inspector_keeps_batch_norm_statistics(model, inspector):
    from wss_tf.step import make_pseudo_label

    images, valid = _batch()
    assert len(batch_norm_statistics(model)) == 2 * 63  # backbone, ASPP, decoder and the SGC's batch norms
    before, stats = model.segmenter(images, training=False)["logits"].numpy(), _snapshot(model)
    inspector(images, valid)
    np.testing.assert_array_equal(model.segmenter(images, training=False)["logits"].numpy(), before)
    for old, new in zip(stats, _snapshot(model)):
        np.testing.assert_array_equal(old, new)
    # The same pseudo-label computation without the protection moves them, and the inference output with them.
    make_pseudo_label(model, CONFIG, images, valid)
    assert any(not np.allclose(old, new) for old, new in zip(stats, _snapshot(model)))
    after = model.segmenter(images, training=False)["logits"].numpy()
    assert np.abs(after - before).max() > 10 * np.abs(before).max()  # relative: the logits here are tiny


def test_inspector_sources_are_the_training_ones(model, inspector):
    images, valid = _batch(seed=1)
    out = inspector(images, valid)
    assert out["decoder"].shape == (2, 17, 17, 4) and out["sgc"].shape == (2, 17, 17, 4)
    assert out["cam"].shape == (2, 5, 5, 3) and out["valid"].shape == (2, 17, 17, 1)
    np.testing.assert_allclose(out["fused"], fuse(out["decoder"], out["sgc"], CONFIG.pseudo_label()), atol=1e-6)
    np.testing.assert_allclose(out["pseudo_label"], sharpen(out["fused"], 0.5), atol=1e-6)
    np.testing.assert_allclose(tf.reduce_sum(out["pseudo_label"], -1), 1.0, atol=1e-5)
    # The official decoder pass is training mode: batch statistics and dropout, unlike inference.
    inference_logits = model.segmenter(images, training=False)["logits"].numpy()
    assert np.abs(out["decoder"].numpy() - inference_logits).max() > 1e-3

    cls_label = tf.constant([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    weak = PseudoLabelInspector(model, CONFIG, decoder_mode="inference", weakly=True)
    first, second = weak(images, valid, cls_label), weak(images, valid, cls_label)
    np.testing.assert_allclose(first["decoder"], inference_logits, atol=1e-4)
    np.testing.assert_array_equal(first["image_labels"], cls_label)
    # The CAM of the given labels: ReLU(F . W_c) of the inference-mode final feature, max-normalised, 0 if absent.
    features = model.segmenter.backbone(images, training=False)[model.final_end_point].numpy()
    cam = np.maximum(np.einsum("bhwc,ck->bhwk", features, model.head.conv.kernel.numpy()[0, 0]), 0)
    cam = cam * cls_label.numpy()[:, None, None, :]
    peak = cam.max(axis=(1, 2), keepdims=True)
    cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    np.testing.assert_allclose(first["cam"], cam, atol=1e-5)
    assert not first["cam"].numpy()[0, ..., 1:].any() and not first["cam"].numpy()[1, ..., 0].any()  # absent: 0
    np.testing.assert_allclose(first["decoder"], second["decoder"])  # inference mode is deterministic
    with pytest.raises(ValueError, match="decoder_mode"):
        PseudoLabelInspector(model, CONFIG, decoder_mode="eval")


def test_pseudo_labels_need_the_sgc_of_an_official_checkpoint(model, tmp_path):
    from deeplab import official_variable_map, save_official_checkpoint

    restore_for_pseudo_labels(model, save_official_checkpoint(model, str(tmp_path / "wss" / "model.ckpt")))
    # An official train_sup checkpoint: no SGC variables (restore_weights would leave them uninitialised).
    mapping = {n: v for n, v in official_variable_map(model).items()
               if not n.startswith(("hyper_column/", "pixel_normalization/"))}
    prefix = str(tmp_path / "sup" / "model.ckpt")
    os.makedirs(os.path.dirname(prefix))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=sorted(mapping), shape_and_slices=[""] * len(mapping),
                      tensors=[tf.convert_to_tensor(mapping[n]) for n in sorted(mapping)])
    with pytest.raises(ValueError, match="has no SGC"):
        restore_for_pseudo_labels(model, prefix)


def test_grid_mapping_and_unknown_truth_is_grey():
    crop, image_size = (17, 17), (10, 12)
    grid = np.zeros((5, 5, 3), np.float32)
    grid[..., 0] = 1.0
    grid[2, 3] = [0.0, 0.0, 1.0]  # grid (2, 3) covers pixels round(y / 4) == 2, round(x / 4) == 3
    classes = np.argmax(grid_to_image(grid, crop, image_size), -1)
    expected = np.zeros(image_size, int)
    expected[6:10, 10:12] = 2
    np.testing.assert_array_equal(classes, expected)
    inputs = PanelInputs(np.zeros((17, 17, 3), np.float32), np.full((17, 17), 255), 10, 12, grid, None, grid)
    panel = np.asarray(render_panel(inputs, shade_confidence=False))
    scale = tile_scale(12)
    assert panel.shape == (TITLE_HEIGHT + 10 * scale, 5 * 12 * scale + 4 * PANEL_GAP, 3)
    tiles = [panel[TITLE_HEIGHT:, i * (12 * scale + PANEL_GAP):][:, :12 * scale] for i in range(5)]
    assert (tiles[2] == UNKNOWN_GREY).all() and (tiles[4] == UNKNOWN_GREY).all()  # no SGC, no known label
    np.testing.assert_array_equal(tiles[3][::scale, ::scale], pascal_colormap()[expected])


def test_vis_writes_colour_raw_and_panels(model, toy_dataset, tmp_path):
    from wss_tf import vis
    from wss_tf.data.pipeline import StreamConfig, eval_dataset
    from wss_tf.inference import predict_probabilities, restore_weights

    first = next(iter(eval_dataset(StreamConfig(toy_dataset, "val", 4, 4), (65, 65), model.spec.mean_pixel)))
    _spread_predictions(model, first["image"])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    prefix = tf.train.Checkpoint(model=model).save(str(run_dir / "ckpt"))
    (run_dir / RUN_CONFIG_FILE).write_text(CONFIG.to_json())
    fv = flags.FlagValues()
    vis.define_flags(fv)
    fv(["prog", f"--checkpoint_dir={prefix}", f"--vis_logdir={tmp_path / 'vis'}", f"--dataset_dir={toy_dataset}",
        "--vis_batch_size=2", "--also_save_raw_predictions", "--pseudo_label_panels", "--max_panels=3"])
    assert vis.run(fv)["images"] == 4

    restore_weights(model, prefix)  # the weights vis used
    expected = {}
    for sample in eval_dataset(StreamConfig(toy_dataset, "val", 4, 1), (65, 65), model.spec.mean_pixel):
        name = sample["filename"].numpy()[0].decode()
        h, w = int(sample["height"][0]), int(sample["width"][0])
        probabilities, _ = predict_probabilities(model.segmenter, sample["image"])
        expected[name] = (np.argmax(probabilities[0].numpy(), -1)[:h, :w], sample["label"].numpy()[0, :h, :w, 0])
    assert sorted(expected) == [f"img_{i}" for i in range(4)]
    assert sorted(os.listdir(tmp_path / "vis" / "raw_segmentation_results")) == [f"img_{i}.png" for i in range(4)]
    classes = set()
    for name, (prediction, label) in expected.items():
        raw = np.asarray(Image.open(tmp_path / "vis" / "raw_segmentation_results" / f"{name}.png"))
        colour = np.asarray(Image.open(tmp_path / "vis" / "segmentation_results" / f"{name}.png"))
        assert raw.dtype == np.uint8 and raw.shape == prediction.shape and colour.shape == prediction.shape + (3,)
        np.testing.assert_array_equal(raw, prediction)
        np.testing.assert_array_equal(colour, pascal_colormap()[prediction])
        classes |= set(np.unique(prediction))
    assert len(classes) >= 2  # the colour check saw more than one class

    panels = sorted(os.listdir(tmp_path / "vis" / "pseudo_label_panels"))
    assert len(panels) == 3
    for file in panels:
        label = expected[file[:-4]][1]
        h, w = label.shape
        scale = tile_scale(w)
        panel = np.asarray(Image.open(tmp_path / "vis" / "pseudo_label_panels" / file))
        assert panel.shape == (TITLE_HEIGHT + h * scale, 5 * w * scale + 4 * PANEL_GAP, 3)
        truth = panel[TITLE_HEIGHT::scale, 4 * (w * scale + PANEL_GAP)::scale]
        np.testing.assert_array_equal(truth, pascal_colormap()[label])
