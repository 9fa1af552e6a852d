"""Visualisation (the official vis.py): colour and raw label PNGs of a split, and pseudo-label panels.

  ./run.sh vis --checkpoint_dir=runs/voc92 --vis_logdir=runs/voc92/vis --dataset_dir=records/voc --vis_split=val \\
      [--eval_scales=0.5,0.75,1.0 --add_flipped_images] [--also_save_raw_predictions] \\
      [--pseudo_label_panels --max_panels=20]

Writes vis_logdir/segmentation_results/<filename>.png (the prediction in the colour map, cropped to the image's own
size) and, with --also_save_raw_predictions, raw_segmentation_results/<filename>.png (class ids, uint8; Cityscapes
train ids become eval ids, as the official code). Predictions are the official multi-scale/flip average of
inference-mode softmaxes (`inference.predict_probabilities`).

--pseudo_label_panels (ours) adds pseudo_label_panels/<filename>.png, one row per image: image | decoder prediction |
SGC map | fused pseudo label (darker where less confident) | ground truth (grey where unknown), made as training
makes them (`pseudo_label_view`), by default with the training-mode decoder pass, whose batch statistics come from
the vis batch: --vis_batch_size=4 matches the official per-GPU unlabeled batch.

The model's flags (model_variant, atrous_rates, ...) default to the training run's config.json beside the checkpoint.
"""
from __future__ import annotations

import os
import time

import numpy as np
from absl import flags, logging

from wss_tf import app_runner
from wss_tf.cli import define_model_flags, parse_floats
from wss_tf.colormap import COLORMAP_TYPES, colorize_array

SEGMENTATION_DIR = "segmentation_results"
RAW_SEGMENTATION_DIR = "raw_segmentation_results"
PANEL_DIR = "pseudo_label_panels"

# Cityscapes is trained on 19 train ids; its evaluation server wants the original ids (official vis.py).
CITYSCAPES_TRAIN_ID_TO_EVAL_ID = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


def define_flags(fv=flags.FLAGS) -> None:
    flags.DEFINE_string("vis_logdir", None, "where the PNGs go", flag_values=fv)
    flags.DEFINE_string("checkpoint_dir", None, "a checkpoint (path prefix, as the official flag) or a directory "
                        "(its latest checkpoint)", flag_values=fv)
    flags.DEFINE_string("dataset_dir", None, "the TFRecords", flag_values=fv)
    flags.DEFINE_string("vis_split", "val", "split to visualise", flag_values=fv)
    flags.DEFINE_integer("vis_batch_size", 1, "images per batch", flag_values=fv)
    flags.DEFINE_list("vis_crop_size", None, "crop height,width every image is padded to; default: the dataset's "
                      "eval crop (513,513 VOC, 641,641 COCO)", flag_values=fv)
    flags.DEFINE_multi_string("eval_scales", ["1.0"], "scales whose softmaxes are averaged, repeated or a comma list "
                              "(the official suggestion: 0.5,0.75,1.0,1.25,1.5,1.75)", flag_values=fv)
    flags.DEFINE_bool("add_flipped_images", False, "also average horizontally flipped images", flag_values=fv)
    flags.DEFINE_enum("colormap_type", "pascal", list(COLORMAP_TYPES), "label colours", flag_values=fv)
    flags.DEFINE_bool("also_save_raw_predictions", False, "also write the class ids as uint8 PNGs", flag_values=fv)
    flags.DEFINE_integer("max_number_of_iterations", 0, "official flag, unused there and here: one pass over the "
                         "split", flag_values=fv)
    flags.DEFINE_bool("pseudo_label_panels", False, "also write pseudo-label panels (ours)", flag_values=fv)
    flags.DEFINE_integer("max_panels", 20, "panels for at most this many images; <= 0: every image", flag_values=fv)
    flags.DEFINE_enum("decoder_mode", "training", ["training", "inference"], "panels: the decoder pass of the "
                      "pseudo label (official: training mode, batch statistics and ASPP dropout)", flag_values=fv)
    flags.DEFINE_bool("weakly", False, "panels: the CAM's image-level labels from the ground-truth mask (the weakly "
                      "setting) instead of the classifier's predictions", flag_values=fv)
    flags.DEFINE_bool("shade_confidence", True, "panels: darken the pseudo label where it is less confident",
                      flag_values=fv)
    define_model_flags(fv)


def _save_png(array: np.ndarray, directory: str, name: str) -> None:
    from PIL import Image

    Image.fromarray(array).save(os.path.join(directory, name + ".png"), format="PNG")


def _name(filename) -> str:
    """The record's image name, decoded (the official raw-prediction path used the bytes' repr)."""
    if isinstance(filename, bytes):
        filename = filename.decode("utf-8")
    return os.path.basename(filename)


def run(fv=flags.FLAGS) -> dict:
    """One pass over the split; returns {"images": n, "panels": m, "seconds": s}."""
    import tensorflow as tf

    from wss_tf.cli import model_config_from_flags
    from wss_tf.data.datasets import load_dataset_info
    from wss_tf.data.pipeline import StreamConfig, eval_dataset
    from wss_tf.inference import build_model, predict_probabilities, resolve_checkpoint, restore_weights
    from wss_tf.pseudo_label_view import (PanelInputs, PseudoLabelInspector, render_panel,
                                          restore_for_pseudo_labels, with_run_pseudo_label_settings)

    for name in ("vis_logdir", "checkpoint_dir", "dataset_dir"):
        if not fv[name].value:
            raise ValueError(f"--{name} is required")
    checkpoint = resolve_checkpoint(fv.checkpoint_dir)
    config = with_run_pseudo_label_settings(model_config_from_flags(fv.checkpoint_dir, fv), fv.checkpoint_dir)
    info = load_dataset_info(config.dataset, fv.dataset_dir)
    crop = tuple(int(s) for s in fv.vis_crop_size) if fv.vis_crop_size else tuple(info.eval_crop)
    panels = fv.pseudo_label_panels
    model = build_model(config, info.num_classes, with_sgc=panels and config.use_attention)
    if panels:
        restore_for_pseudo_labels(model, checkpoint)
    else:
        restore_weights(model, checkpoint)

    directories = {"colour": os.path.join(fv.vis_logdir, SEGMENTATION_DIR)}
    if fv.also_save_raw_predictions:
        directories["raw"] = os.path.join(fv.vis_logdir, RAW_SEGMENTATION_DIR)
    if panels:
        directories["panels"] = os.path.join(fv.vis_logdir, PANEL_DIR)
    for directory in directories.values():
        os.makedirs(directory, exist_ok=True)
    train_to_eval = (np.array(CITYSCAPES_TRAIN_ID_TO_EVAL_ID + (0,) * (256 - 19), np.uint8)
                     if info.name == "cityscapes" else None)

    stream = StreamConfig(fv.dataset_dir, fv.vis_split, info.num_classes, fv.vis_batch_size)
    dataset = eval_dataset(stream, crop, model.spec.mean_pixel, info.ignore_label, with_cls=panels and fv.weakly)
    scales, flipped = parse_floats(fv.eval_scales), fv.add_flipped_images

    @tf.function(input_signature=[tf.TensorSpec([None, *crop, 3], tf.float32)], autograph=False)
    def predict(images):
        probabilities, _ = predict_probabilities(model.segmenter, images, scales, flipped)
        return tf.cast(tf.argmax(probabilities, axis=-1), tf.uint8)

    inspector = (PseudoLabelInspector(model, config, decoder_mode=fv.decoder_mode, weakly=fv.weakly)
                 if panels else None)
    max_panels = fv.max_panels if fv.max_panels > 0 else None
    total = info.split_sizes.get(fv.vis_split)
    logging.info("visualising %s split %s (%s images) with %s; scales %s%s; crop %dx%d", info.name, fv.vis_split,
                 total or "?", checkpoint, list(scales), " + flips" if flipped else "", *crop)
    done = panel_count = 0
    start = last_log = time.time()
    for batch in dataset:
        images = tf.cast(batch["image"], tf.float32)
        predictions = predict(images).numpy()
        names = [_name(f) for f in batch["filename"].numpy()]
        heights, widths = batch["height"].numpy(), batch["width"].numpy()
        for i, name in enumerate(names):
            prediction = predictions[i, :heights[i], :widths[i]]
            _save_png(colorize_array(prediction, fv.colormap_type), directories["colour"], name)
            if "raw" in directories:
                raw = prediction if train_to_eval is None else train_to_eval[prediction]
                _save_png(raw, directories["raw"], name)
        if inspector is not None and (max_panels is None or panel_count < max_panels):
            sources = inspector(images, batch["valid"], batch.get("cls_label"))
            sources = {k: v.numpy() for k, v in sources.items()}
            image_np, label_np = images.numpy(), batch["label"].numpy()[..., 0]
            for i, name in enumerate(names):
                if max_panels is not None and panel_count >= max_panels:
                    break
                panel = render_panel(PanelInputs(
                    image_np[i], label_np[i], int(heights[i]), int(widths[i]), sources["decoder"][i],
                    sources["sgc"][i] if "sgc" in sources else None, sources["pseudo_label"][i]),
                    fv.colormap_type, fv.shade_confidence)
                panel.save(os.path.join(directories["panels"], name + ".png"), format="PNG")
                panel_count += 1
        done += len(names)
        if time.time() - last_log > 10:
            last_log = time.time()
            logging.info("vis: %d/%s images, %.1f images/s", done, total or "?", done / (last_log - start))
    seconds = time.time() - start
    logging.info("vis: %d images (%d panels) in %.1fs into %s", done, panel_count, seconds, fv.vis_logdir)
    return {"images": done, "panels": panel_count, "seconds": seconds}


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    run(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["vis_logdir", "checkpoint_dir", "dataset_dir"])
    app_runner.run(main)
