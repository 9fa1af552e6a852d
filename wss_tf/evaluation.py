"""Streaming mIoU over a split (eval.py): inference-mode logits upsampled to the crop, argmax, confusion matrix."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from deeplab.layers import resize_bilinear


def predict_labels(model, images):
    """Inference-mode logits, bilinearly upsampled (align corners) to the image size, then argmax."""
    logits = model.segmenter(images, training=False)["logits"]
    logits = resize_bilinear(tf.cast(logits, tf.float32), tf.shape(images)[1:3])
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def confusion_matrix(labels, predictions, num_classes: int, ignore_label: int = 255):
    """[C, C] counts (row = truth, column = prediction) over pixels whose label is not `ignore_label`."""
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    predictions = tf.reshape(predictions, [-1])
    keep = labels != ignore_label
    return tf.math.confusion_matrix(tf.boolean_mask(labels, keep), tf.boolean_mask(predictions, keep),
                                    num_classes=num_classes, dtype=tf.int64)


def scores(confusion: np.ndarray, class_names=None) -> dict:
    """mIoU over classes with TP+FP+FN > 0 (tf.metrics.mean_iou), per-class IoU (NaN when a class never occurs
    in truth or prediction), pixel accuracy."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    denominator = confusion.sum(0) + confusion.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denominator > 0, tp / denominator, np.nan)
    names = class_names or [str(i) for i in range(len(tp))]
    total = confusion.sum()
    return {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "per_class_iou": {name: float(v) for name, v in zip(names, iou)},
        "pixels": int(total),
    }


def evaluate(model, dataset, num_classes: int, class_names=None) -> dict:
    """Accumulates the confusion matrix over `dataset` (eval_dataset batches) with one traced function."""
    spec = dataset.element_spec

    @tf.function(input_signature=[spec["image"], spec["label"]])
    def batch_confusion(images, labels):
        return confusion_matrix(labels, predict_labels(model, images), num_classes)

    total = np.zeros((num_classes, num_classes), np.int64)
    images = 0
    for batch in dataset:
        total += batch_confusion(batch["image"], batch["label"]).numpy()
        images += int(batch["image"].shape[0])
    result = scores(total, class_names)
    result["images"] = images
    result["traces"] = batch_confusion.experimental_get_tracing_count()
    return result
