"""Pseudo-label quality as numbers: the mIoU of each source of the pseudo label against known masks, and the
classifier's mean average precision (mAP) over image-level labels.

Pixel accuracy is dominated by background, so each source is judged by the mIoU of its argmax:
  decoder       the weak view's decoder logits (the pass the pseudo label uses)
  cam           the CAM of the image-level labels the pseudo label used, with the background 1 - max_c CAM_c (the
                official monitoring copy `cam_weak`; the CAM itself has no background), resized to the logits grid
  sgc           the SGC logits (the CAM propagated over the hypercolumn affinities)
  pseudo_label  the fused, sharpened target
  strong        the strong view's prediction (what the consistency loss trains)
In training the tallies come from the step (the unlabeled pool's masks, seen by nothing else, where known and not
padding or cutout) and are summed over a window of steps; after training, `PseudoLabelQuality` does the same on
unaugmented pool images.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from deeplab.layers import resize_bilinear
from wss_tf.data.augment import batch_image_level_labels
from wss_tf.evaluation import scores

SOURCES = ("decoder", "cam", "sgc", "pseudo_label", "strong")
CONFUSION_PREFIX = "tally/confusion/"
CLASSIFIER_SCORES = "tally/classifier/scores"
CLASSIFIER_TRUTH = "tally/classifier/truth"


def cam_class_map_logits(cam, grid):
    """[bg, CAM] with bg = 1 - max_c CAM_c, resized (bilinear, align corners) to `grid`: argmax is the CAM's label."""
    cam = tf.cast(cam, tf.float32)
    with_background = tf.concat([1.0 - tf.reduce_max(cam, axis=-1, keepdims=True), cam], axis=-1)
    return resize_bilinear(with_background, grid)


def confusions(class_maps: dict, truth, known, num_classes: int) -> dict:
    """{CONFUSION_PREFIX + source: [C, C] float32 counts (row truth, column prediction)} over `known` pixels.

    class_maps: source -> int class map [B,h,w]; truth int [B,h,w]; known bool [B,h,w]. The counts are
    evaluation.confusion_matrix's, as one-hot products rather than a boolean mask: static shapes, so the step also
    compiles under XLA."""
    weight = tf.reshape(tf.cast(known, tf.float32), [-1, 1])
    truth = tf.one_hot(tf.reshape(tf.cast(truth, tf.int32), [-1]), num_classes) * weight
    return {CONFUSION_PREFIX + name: tf.matmul(
        truth, tf.one_hot(tf.reshape(tf.cast(prediction, tf.int32), [-1]), num_classes), transpose_a=True)
        for name, prediction in class_maps.items()}


def inspector_tallies(sources: dict, label, num_classes: int, ignore_label: int = 255) -> dict:
    """The step's tallies from `PseudoLabelInspector` outputs (unaugmented images, after training): confusions of
    the decoder, CAM, SGC and pseudo label at the logits grid over known, non-padding pixels, and the classifier's
    scores against the masks' image-level labels."""
    from wss_tf.cam import nearest_resize

    grid = tf.shape(sources["decoder"])[1:3]
    truth = nearest_resize(tf.cast(label, tf.int32), grid)[..., 0]
    known = (truth != ignore_label) & (sources["valid"][..., 0] > 0)
    class_maps = {"decoder": tf.argmax(sources["decoder"], -1), "pseudo_label": tf.argmax(sources["pseudo_label"], -1)}
    tallies = {}
    if "sgc" in sources:
        class_maps["sgc"] = tf.argmax(sources["sgc"], -1)
        class_maps["cam"] = tf.argmax(cam_class_map_logits(sources["cam"], grid), -1)
        tallies[CLASSIFIER_SCORES] = sources["cls_scores"]
        tallies[CLASSIFIER_TRUTH] = batch_image_level_labels(label, num_classes)
    tallies.update(confusions(class_maps, truth, known, num_classes))
    return tallies


def average_precision(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-class AP over images [K] (NaN for a class with no positive): the mean of the precision at each
    positive, images ranked by score (ties in the given order)."""
    scores, truth = np.asarray(scores, np.float64), np.asarray(truth) > 0.5
    aps = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        if not truth[:, k].any():
            continue
        order = np.argsort(-scores[:, k], kind="stable")
        hits = truth[order, k]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps[k] = precision[hits].mean()
    return aps


class QualityWindow:
    """Sums the step's tallies over a window of steps; `summary()` gives mIoU per source and the classifier mAP."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.confusion = {}
        self.scores, self.truth = [], []
        self.images = 0

    def add(self, tallies: dict, images: int):
        """One step's (or batch's) tallies, over `images` unlabeled images."""
        self.images += images
        for key, value in tallies.items():
            if key.startswith(CONFUSION_PREFIX):
                name = key[len(CONFUSION_PREFIX):]
                self.confusion[name] = self.confusion.get(name, 0) + np.asarray(value, np.float64)
        if CLASSIFIER_SCORES in tallies:
            self.scores.append(np.asarray(tallies[CLASSIFIER_SCORES]))
            self.truth.append(np.asarray(tallies[CLASSIFIER_TRUTH]))

    def summary(self) -> dict:
        """{"miou/<source>": ..., "classifier_map": ...} for what the window saw (empty if nothing)."""
        out = {f"miou/{name}": scores(c)["miou"] for name, c in self.confusion.items() if np.sum(c) > 0}
        if self.scores:
            truth = np.concatenate(self.truth)
            aps = average_precision(np.concatenate(self.scores), truth)
            if np.isfinite(aps).any():
                out["classifier_map"] = float(np.nanmean(aps))
                # A classifier scoring at random ranks positives anywhere: its expected AP is the class prevalence.
                out["classifier_map_chance"] = float(np.mean(truth.mean(0)[np.isfinite(aps)]))
        return out


def format_summary(summary: dict) -> str:
    """One line: 'pseudo-label mIoU decoder 41.2 cam 30.1 ... | classifier mAP 81.0 (chance 45.0)'."""
    titles = {"pseudo_label": "fused"}
    parts = [f"{titles.get(s, s)} {100 * summary[f'miou/{s}']:.1f}" for s in SOURCES if f"miou/{s}" in summary]
    text = ("pseudo-label mIoU " + " ".join(parts)) if parts else ""
    if "classifier_map" in summary:
        text += f"{' | ' if text else ''}classifier mAP {100 * summary['classifier_map']:.1f}"
        if "classifier_map_chance" in summary:
            text += f" (chance {100 * summary['classifier_map_chance']:.1f})"
    return text
