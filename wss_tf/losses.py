"""PseudoSeg's losses, each normalised per replica as the official per-clone losses."""
from __future__ import annotations

import tensorflow as tf

from deeplab.layers import resize_bilinear


def segmentation_cross_entropy(logits, labels, ignore_label: int = 255):
    """Softmax cross-entropy on logits upsampled (align corners) to the label size; 255 pixels are left out.

    Sum over the kept pixels divided by their count (0 when there are none), as
    add_softmax_cross_entropy_loss_for_each_scale with upsample_logits=True.
    """
    labels = tf.convert_to_tensor(labels)
    labels = tf.cast(labels[..., 0] if labels.shape.rank == 4 else labels, tf.int32)
    logits = resize_bilinear(tf.cast(logits, tf.float32), tf.shape(labels)[1:3])
    keep = tf.not_equal(labels, ignore_label)
    safe = tf.where(keep, labels, 0)
    per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe, logits=logits)
    weight = tf.cast(keep, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_pixel * weight), tf.reduce_sum(weight))


def classification_loss(logits, image_labels):
    """Sigmoid cross-entropy averaged over all B*K entries (the official multi-label loss)."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.cast(image_labels, tf.float32), logits=tf.cast(logits, tf.float32)))


def consistency_loss(target, student_logits, valid, confident=None):
    """-sum_c p_c log softmax(student)_c per pixel, times valid (and confident), summed, divided by sum(valid).

    `target`: soft probabilities [B,h,w,C] or hard ids [B,h,w]; `valid`: [B,h,w,1], 0 on padding and cutout, at
    the logits' resolution (129x129 for a 513 crop: the official loss is not upsampled). The optional confidence
    mask removes pixels from the sum but not from the normaliser, as the official code.
    """
    student_logits = tf.cast(student_logits, tf.float32)
    if target.dtype.is_integer:
        per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target, logits=student_logits)
    else:
        per_pixel = -tf.reduce_sum(target * tf.nn.log_softmax(student_logits), axis=-1)
    valid = tf.cast(valid[..., 0], tf.float32)
    weight = valid if confident is None else valid * tf.cast(confident[..., 0], tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(per_pixel * weight), tf.reduce_sum(valid))
