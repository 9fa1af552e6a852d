"""Pseudo-label calibration report: is the fused pseudo label better calibrated than its two sources?

  ./run.sh calibration --checkpoint_dir=runs/voc92 --dataset_dir=records/voc --split=train_aug \\
      --report_dir=runs/voc92/calibration [--max_images=500] [--weakly] [--decoder_mode=inference]

Runs the training code's pseudo-label generation (`pseudo_label_view.PseudoLabelInspector`: training-mode decoder
pass, inference-mode CAM + SGC, fusion, sharpening) on a split whose masks are known but treated as unlabeled
(VOC train_aug, the generated data's train), unaugmented and padded to the crop, `--batch_size` images at a time
(4, the official per-GPU unlabeled batch: the training-mode decoder's batch statistics and the fusion's RMS
normaliser are per batch). For each source (decoder softmax, SGC softmax, fused before sharpening, sharpened pseudo
label) it bins the top-class confidence of every pixel with a known label that is not padding, at the logits grid
(1/4 resolution, where the consistency loss applies; labels nearest-resized as the training monitors do), and
reports pixel accuracy, mean confidence and the expected calibration error (ECE).

Writes report_dir/calibration.json and report_dir/reliability.png and prints a table; with --save_pixels also
report_dir/pixels.npz (every counted pixel's confidence and correctness: small runs only).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Optional

import numpy as np
from absl import flags, logging

from wss_tf import app_runner
from wss_tf import pseudo_label_quality as quality
from wss_tf.cli import define_model_flags

REPORT_FILE = "calibration.json"
PLOT_FILE = "reliability.png"
PIXELS_FILE = "pixels.npz"


def define_flags(fv=flags.FLAGS) -> None:
    flags.DEFINE_string("checkpoint_dir", None, "a checkpoint prefix or a directory (its latest checkpoint)",
                        flag_values=fv)
    flags.DEFINE_string("dataset_dir", None, "the TFRecords", flag_values=fv)
    flags.DEFINE_string("split", "train_aug", "a split whose masks are known, treated as unlabeled (VOC train_aug, "
                        "COCO train, the generated data's train)", flag_values=fv)
    flags.DEFINE_integer("batch_size", 4, "images per pseudo-label batch (official per-GPU unlabeled batch: 4)",
                         flag_values=fv)
    flags.DEFINE_list("crop_size", None, "crop height,width every image is padded to; default: the dataset's eval "
                      "crop", flag_values=fv)
    flags.DEFINE_integer("num_bins", 15, "confidence bins", flag_values=fv)
    flags.DEFINE_integer("max_images", 0, "stop after this many images; <= 0: the whole split", flag_values=fv)
    flags.DEFINE_bool("weakly", False, "the CAM's image-level labels from the ground-truth mask (weakly setting) "
                      "instead of the classifier's predictions", flag_values=fv)
    flags.DEFINE_enum("decoder_mode", "training", ["training", "inference"], "the decoder pass of the pseudo label "
                      "(official: training mode)", flag_values=fv)
    flags.DEFINE_string("report_dir", None, "where calibration.json and reliability.png go", flag_values=fv)
    flags.DEFINE_bool("save_pixels", False, "also save every counted pixel's confidence and correctness per source "
                      "(pixels.npz; holds the whole split: small runs only)", flag_values=fv)
    define_model_flags(fv)


def format_table(reliabilities: dict) -> str:
    from wss_tf.calibration import SOURCE_TITLES

    lines = [f"{'source':<28}{'pixel acc':>10}{'mean conf':>11}{'ECE':>9}"]
    for name, rel in reliabilities.items():
        lines.append(f"{SOURCE_TITLES.get(name, name):<28}{rel.accuracy:>10.4f}{rel.mean_confidence:>11.4f}"
                     f"{rel.ece:>9.4f}")
    return "\n".join(lines)


def compare_fused(reliabilities: dict) -> dict:
    """{single source: True if the fused label's ECE is lower} for the decoder and the SGC (those present)."""
    fused = reliabilities["fused"].ece
    return {name: bool(fused < reliabilities[name].ece) for name in ("decoder", "sgc") if name in reliabilities}


@dataclasses.dataclass(frozen=True)
class CalibrationSettings:
    checkpoint: str  # a checkpoint prefix or a directory (its latest checkpoint)
    dataset_dir: str
    report_dir: str
    split: str = "train_aug"
    batch_size: int = 4
    crop_size: Optional[tuple[int, int]] = None  # None: the dataset's eval crop
    num_bins: int = 15
    max_images: int = 0  # <= 0: the whole split
    weakly: bool = False
    decoder_mode: str = "training"
    save_pixels: bool = False

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")


def run(fv=flags.FLAGS) -> dict:
    """The report from command-line flags; returns what calibration.json holds."""
    from wss_tf.cli import model_config_from_flags

    for name in ("checkpoint_dir", "dataset_dir", "report_dir"):
        if not fv[name].value:
            raise ValueError(f"--{name} is required")
    settings = CalibrationSettings(
        fv.checkpoint_dir, fv.dataset_dir, fv.report_dir, split=fv.split, batch_size=fv.batch_size,
        crop_size=tuple(int(s) for s in fv.crop_size) if fv.crop_size else None, num_bins=fv.num_bins,
        max_images=fv.max_images, weakly=fv.weakly, decoder_mode=fv.decoder_mode, save_pixels=fv.save_pixels)
    return calibration_report(settings, model_config_from_flags(fv.checkpoint_dir, fv))


def calibration_report(settings: CalibrationSettings, model_config) -> dict:
    """Measures, writes calibration.json and reliability.png, prints the table; returns the JSON's content.
    `model_config`: the trained model's TrainConfig (its pseudo-label settings are the run's, from config.json)."""
    from wss_tf.calibration import SOURCES, Reliability, plot_reliability, source_statistics
    from wss_tf.data.datasets import load_dataset_info
    from wss_tf.data.pipeline import StreamConfig, eval_dataset
    from wss_tf.inference import build_model, resolve_checkpoint
    from wss_tf.pseudo_label_view import (PseudoLabelInspector, restore_for_pseudo_labels,
                                          with_run_pseudo_label_settings)

    checkpoint = resolve_checkpoint(settings.checkpoint)
    config = with_run_pseudo_label_settings(model_config, settings.checkpoint)
    info = load_dataset_info(config.dataset, settings.dataset_dir)
    crop = tuple(settings.crop_size or info.eval_crop)
    model = build_model(config, info.num_classes, with_sgc=config.use_attention)
    restore_for_pseudo_labels(model, checkpoint)
    inspector = PseudoLabelInspector(model, config, decoder_mode=settings.decoder_mode, weakly=settings.weakly)

    stream = StreamConfig(settings.dataset_dir, settings.split, info.num_classes, settings.batch_size)
    dataset = eval_dataset(stream, crop, model.spec.mean_pixel, info.ignore_label, with_cls=settings.weakly)
    if settings.max_images > 0:
        dataset = dataset.unbatch().take(settings.max_images).batch(settings.batch_size)
    total = settings.max_images if settings.max_images > 0 else info.split_sizes.get(settings.split)
    logging.info("calibration of %s on %s/%s (%s images), batch %d, crop %dx%d, decoder pass in %s mode, "
                 "image-level labels %s", checkpoint, info.name, settings.split, total or "?", settings.batch_size,
                 *crop, settings.decoder_mode,
                 "from the masks (weakly)" if settings.weakly else "predicted (sigmoid >= 0.5)")

    reliabilities, pixels = {}, {}
    window = quality.QualityWindow()  # mIoU of each source's argmax, classifier mAP
    images = 0
    start = last_log = time.time()
    for batch in dataset:
        sources = inspector(batch["image"], batch["valid"], batch.get("cls_label"))
        window.add({k: v.numpy() for k, v in quality.inspector_tallies(
            sources, batch["label"], info.num_classes, info.ignore_label).items()}, int(batch["image"].shape[0]))
        statistics = source_statistics(sources, batch["label"], info.ignore_label)
        known = statistics.pop("known").numpy()
        for name, (confidence, correct) in statistics.items():
            confidence, correct = confidence.numpy(), correct.numpy()
            reliabilities.setdefault(name, Reliability(settings.num_bins)).update(confidence, correct, known)
            if settings.save_pixels:
                pixels.setdefault(f"{name}/confidence", []).append(confidence[known])
                pixels.setdefault(f"{name}/correct", []).append(correct[known])
        images += int(batch["image"].shape[0])
        if time.time() - last_log > 10:
            last_log = time.time()
            logging.info("calibration: %d/%s images, %.1f images/s", images, total or "?", images / (last_log - start))
    reliabilities = {k: reliabilities[k] for k in SOURCES if k in reliabilities}
    if not reliabilities or reliabilities["decoder"].total == 0:
        raise ValueError(f"split {settings.split!r} has no pixel with a known label (masks all {info.ignore_label}?): "
                         f"calibration needs a split whose masks are known")

    os.makedirs(settings.report_dir, exist_ok=True)
    comparison = compare_fused(reliabilities)
    report = {"checkpoint": checkpoint, "dataset": info.name, "split": settings.split, "images": images,
              "batch_size": settings.batch_size, "crop_size": list(crop), "decoder_mode": settings.decoder_mode,
              "weakly": settings.weakly, "temperature": config.temperature, "logit_norm": config.logit_norm,
              "pseudo_src": config.pseudo_src, "resolution": "logits grid (1/4)",
              "sources": {k: v.to_dict() for k, v in reliabilities.items()},
              "fused_lower_ece_than": comparison, "quality": window.summary()}
    with open(os.path.join(settings.report_dir, REPORT_FILE), "w") as f:
        json.dump(report, f, indent=2)
    plot_reliability(reliabilities, os.path.join(settings.report_dir, PLOT_FILE),
                     f"{info.name}/{settings.split}, {images} images, {reliabilities['decoder'].total} pixels")
    if settings.save_pixels:
        np.savez_compressed(os.path.join(settings.report_dir, PIXELS_FILE),
                            **{k: np.concatenate(v) for k, v in pixels.items()})

    logging.info("calibration over %d images, %d labelled pixels at the logits grid (%.1fs):", images,
                 reliabilities["decoder"].total, time.time() - start)
    print(format_table(reliabilities), flush=True)
    print(quality.format_summary(report["quality"]) + " (argmax against the masks, logits grid)", flush=True)
    fused = reliabilities["fused"].ece
    for name, better in comparison.items():
        logging.info("fused ECE %.4f %s %s ECE %.4f: on this data the fused label is %s calibrated than the %s",
                     fused, "<" if better else ">=", name, reliabilities[name].ece,
                     "better" if better else "NOT better", name)
    logging.info("report: %s, %s", os.path.join(settings.report_dir, REPORT_FILE),
                 os.path.join(settings.report_dir, PLOT_FILE))
    return report


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    run(flags.FLAGS)


if __name__ == "__main__":
    define_flags()
    flags.mark_flags_as_required(["checkpoint_dir", "dataset_dir", "report_dir"])
    app_runner.run(main)
