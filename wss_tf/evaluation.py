"""Streaming evaluation over a split (eval.py): inference-mode prediction at the eval crop (single scale, or the
official multi-scale + flipped average), a confusion matrix accumulated batch by batch, mIoU / per-class IoU /
pixel accuracy, and with `weakly` the classifier head's element-wise accuracy, precision and recall."""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from wss_tf.inference import predict_probabilities


def confusion_matrix(labels, predictions, num_classes: int, ignore_label: int = 255):
    """[C, C] counts (row = truth, column = prediction) over pixels whose label is not `ignore_label`."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    predictions = tf.reshape(predictions, [-1])
    keep = labels != ignore_label
    return tf.math.confusion_matrix(tf.boolean_mask(labels, keep), tf.boolean_mask(predictions, keep),
                                    num_classes=num_classes, dtype=tf.int64)


def scores(confusion: np.ndarray, class_names: Optional[Sequence[str]] = None) -> dict:
    """The official figures from an accumulated confusion matrix.

    mIoU: `tf.metrics.mean_iou`, the mean of TP/(TP+FP+FN) over classes with TP+FP+FN > 0.
    Per-class IoU: eval.py's `miou_class_c`, TP/(TP+FP+FN) where the class occurs in the ground truth
    (TP+FN > 0), NaN otherwise; so a class only ever predicted counts 0 in the mIoU but is NaN per class.
    """
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    in_truth, predicted = confusion.sum(1), confusion.sum(0)
    union = in_truth + predicted - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / union
    names = list(class_names) if class_names else [str(i) for i in range(len(tp))]
    if len(names) != len(tp):
        raise ValueError(f"{len(names)} class names for a {len(tp)}-class confusion matrix")
    total = confusion.sum()
    return {
        "miou": float(iou[union > 0].mean()) if (union > 0).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "per_class_iou": {name: float(v) if t > 0 else float("nan") for name, v, t in zip(names, iou, in_truth)},
        "pixels": int(total),
    }


def classification_scores(counts) -> dict:
    """Element-wise accuracy, precision and recall of thresholded multi-label predictions from [tp, fp, fn, tn]
    (eval.py --weakly: tf.metrics.accuracy / precision / recall over every (image, class) entry)."""
    tp, fp, fn, tn = (float(c) for c in counts)
    total = tp + fp + fn + tn
    return {"cls_overall": (tp + tn) / total if total else float("nan"),
            "cls_precision": tp / (tp + fp) if tp + fp else 0.0,
            "cls_recall": tp / (tp + fn) if tp + fn else 0.0}


class Evaluator:
    """Evaluates a PseudoSegModel on an `eval_dataset` stream with one traced function for the whole split.

    Images arrive padded to the eval crop (static shape), so the function is traced once, whatever the image
    sizes; the padding's label is 255 and never counts.
    """

    def __init__(self, model, num_classes: int, *, class_names: Optional[Sequence[str]] = None,
                 eval_scales: Sequence[float] = (1.0,), add_flipped_images: bool = False, weakly: bool = False,
                 ignore_label: int = 255):
        self.model = model
        self.num_classes = num_classes
        self.class_names = class_names
        self.eval_scales = tuple(eval_scales)
        self.add_flipped_images = add_flipped_images
        self.weakly = weakly
        self.ignore_label = ignore_label
        self._batch_fn = None

    def _counts(self, batch):
        probabilities, end_points = predict_probabilities(
            self.model.segmenter, batch["image"], self.eval_scales, self.add_flipped_images)
        predictions = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        counts = {"confusion": confusion_matrix(batch["label"], predictions, self.num_classes, self.ignore_label)}
        if self.weakly:
            if end_points is None:  # no unflipped scale-1 pass to share
                end_points = self.model.segmenter.backbone(batch["image"], training=False)
            cls_logits, _ = self.model.head(end_points[self.model.final_end_point], training=False)
            predicted = tf.sigmoid(cls_logits) >= 0.5
            truth = batch["cls_label"] > 0.5

            def count(a, b):
                return tf.reduce_sum(tf.cast(a & b, tf.int64))

            counts["classification"] = tf.stack([count(predicted, truth), count(predicted, ~truth),
                                                 count(~predicted, truth), count(~predicted, ~truth)])
        return counts

    def evaluate(self, dataset: tf.data.Dataset, *, total_images: Optional[int] = None,
                 progress: Optional[Callable[[int, Optional[int], float], None]] = None) -> dict:
        """Runs over `dataset` once. `progress(images_done, total_images, seconds)` is called after each batch."""
        keys = ["image", "label"] + (["cls_label"] if self.weakly else [])
        if self._batch_fn is None:
            spec = {k: dataset.element_spec[k] for k in keys}
            self._batch_fn = tf.function(self._counts, input_signature=[spec])
        confusion = np.zeros((self.num_classes, self.num_classes), np.int64)
        classification = np.zeros(4, np.int64)
        images, started, first_batch_seconds = 0, time.time(), None
        for batch in dataset:
            counts = self._batch_fn({k: batch[k] for k in keys})
            confusion += counts["confusion"].numpy()
            if self.weakly:
                classification += counts["classification"].numpy()
            images += int(batch["image"].shape[0])
            if first_batch_seconds is None:
                first_batch_seconds, first_batch_images = time.time() - started, images
            if progress:
                progress(images, total_images, time.time() - started)
        seconds = time.time() - started
        result = scores(confusion, self.class_names)
        if self.weakly:
            result.update(classification_scores(classification))
        steady = seconds - (first_batch_seconds or 0.0)
        result.update(
            images=images, seconds=seconds, traces=self._batch_fn.experimental_get_tracing_count(),
            # the first batch carries the trace; the rate after it is what a long split sees
            images_per_second=(images - first_batch_images) / steady if images and steady > 0 else float("nan"),
            eval_scales=list(self.eval_scales), add_flipped_images=self.add_flipped_images,
            confusion_matrix=confusion.tolist())
        return result


def evaluate(model, dataset, num_classes: int, class_names=None, **options) -> dict:
    """One pass of `Evaluator(model, ...)` over `dataset`."""
    return Evaluator(model, num_classes, class_names=class_names, **options).evaluate(dataset)
