"""One training step on one replica: train_wss.py's graph (spec 3.6) and train_sup.py's, as plain functions.

Losses are normalised per replica, as the official per-clone losses; the replica's total is divided by the
number of replicas, so the gradients the strategy sums are the official mean over clones, and the weight
decay (`model.losses`) counts once per step.
"""
from __future__ import annotations

import tensorflow as tf

from deeplab.layers import resize_bilinear
from wss_tf.cam import class_activation_map, nearest_resize
from wss_tf.data.augment import batch_image_level_labels
from wss_tf.losses import classification_loss, consistency_loss, segmentation_cross_entropy
from wss_tf import pseudo_label_quality as quality
from wss_tf.pseudo_label import pseudo_label


def _sgc_logits(model, end_points, cam_kernel, image_labels, valid_at_logits):
    """(SGC logits, CAM): the CAM of the final feature, propagated by the SGC; valid mask nearest-resized to the
    CAM grid."""
    features = end_points[model.final_end_point]
    cam = class_activation_map(features, cam_kernel, image_labels)
    valid = nearest_resize(valid_at_logits, tf.shape(cam)[1:3])
    return model.sgc([end_points[name] for name in model.attention_end_points], cam, valid), cam


def make_pseudo_label(model, config, x_weak, valid, cls_label=None, logits_w=None):
    """The weak view's soft pseudo label (no gradient): decoder logits from a training-mode pass (`logits_w`, when
    the caller already ran it), fused with the SGC of an inference-mode backbone pass. Returns (target, confident,
    valid at the logits grid, sources): "decoder" and "sgc" logits at the logits grid (sgc None without attention)
    and, with attention, the "cam" [B,h',w',K] of the image-level labels used and the inference-mode
    classifier's "cls_logits" [B,K]."""
    if logits_w is None:
        logits_w = model.segmenter(x_weak, training=True)["logits"]
    logits_w = tf.stop_gradient(logits_w)
    grid = tf.shape(logits_w)[1:3]
    valid_w = tf.cast(nearest_resize(valid, grid), tf.float32)
    sources = {"decoder": logits_w, "sgc": None}
    if config.use_attention:
        end_points = model.segmenter.backbone(x_weak, training=False)
        cls_logits, cam_kernel = model.head(end_points[model.final_end_point], training=False)
        labels = cls_label if config.weakly else tf.cast(tf.sigmoid(cls_logits) >= 0.5, tf.float32)
        sgc, cam = _sgc_logits(model, end_points, cam_kernel, labels, valid_w)
        sources.update(sgc=resize_bilinear(sgc, grid), cam=cam, cls_logits=cls_logits)
    target, confident = pseudo_label(logits_w, sources["sgc"], config.pseudo_label())
    return target, confident, valid_w, sources


def wss_losses(model, config, labeled, unlabeled, tape):
    """The PseudoSeg losses of one replica's batch, top to bottom (train_wss.py `_build_pseudo_seg`)."""
    losses = {}
    x_l, y_l, valid_l, cls_l = labeled["image"], labeled["label"], labeled["valid"], labeled["cls_label"]

    # Labeled images: one training-mode pass feeds the supervised loss, the classifier and the SGC (the official
    # graph runs the backbone twice here, in the same mode on the same images; official_duplicate_passes=True too).
    out_l = model.segmenter(x_l, training=True)
    losses["supervised"] = segmentation_cross_entropy(out_l["logits"], y_l)
    if config.use_attention:
        features_l = out_l if not config.official_duplicate_passes else model.segmenter.backbone(x_l, training=True)
        cls_logits_l, cam_kernel = model.head(features_l[model.final_end_point], training=True)
        valid_l_grid = nearest_resize(valid_l, tf.shape(out_l["logits"])[1:3])
        att_l, _ = _sgc_logits(model, features_l, cam_kernel, cls_l, valid_l_grid)  # trains only the SGC
        losses["sgc"] = segmentation_cross_entropy(att_l, y_l)
        if not config.weakly:
            losses["classification"] = classification_loss(cls_logits_l, cls_l)
    logits_w = None
    if config.weakly:  # image-level labels of the unlabeled images train the classifier
        if config.cls_with_cls:
            # The weak view's training-mode pass feeds the classifier here and the pseudo label below (the
            # official graph runs it twice, like the labeled one).
            if config.official_duplicate_passes:
                end_points_w = model.segmenter.backbone(unlabeled["weak"], training=True)
            else:
                end_points_w = model.segmenter(unlabeled["weak"], training=True)
                logits_w = end_points_w["logits"]
            cls_logits_w, _ = model.head(end_points_w[model.final_end_point], training=True)
            losses["classification"] = classification_loss(cls_logits_w, unlabeled["cls_label"])
        elif config.use_attention:
            losses["classification"] = classification_loss(cls_logits_l, cls_l)

    # Unlabeled images: a pseudo label from the weak view, without gradient ...
    with tape.stop_recording():
        target, confident, valid_u, sources = make_pseudo_label(
            model, config, unlabeled["weak"], unlabeled["valid"], unlabeled.get("cls_label"), logits_w)
    # ... taught to the strong view, at the logits' resolution, over valid (non-padding, non-cutout) pixels.
    logits_s = model.segmenter(unlabeled["strong"], training=True)["logits"]
    losses["consistency"] = config.unlabeled_weight * consistency_loss(target, logits_s, valid_u, confident)

    with tape.stop_recording():
        monitors = pseudo_label_monitors(target, sources, logits_s, unlabeled["label"], valid_u)
        visuals = {"labeled/image": x_l, "labeled/ground_truth": y_l, "labeled/prediction": out_l["logits"],
                   "unlabeled/weak": unlabeled["weak"], "unlabeled/strong": unlabeled["strong"],
                   "unlabeled/pseudo_label": target, "unlabeled/strong_prediction": logits_s,
                   "unlabeled/ground_truth": unlabeled["label"]}
    return losses, monitors, visuals


def sup_losses(model, config, labeled, classification=None):
    """train_sup.py: the supervised loss; with --weakly also the classifier on the image-labeled stream."""
    logits = model.segmenter(labeled["image"], training=True)["logits"]
    losses = {"supervised": segmentation_cross_entropy(logits, labeled["label"])}
    if config.weakly and classification is not None:
        end_points = model.segmenter.backbone(classification["image"], training=True)
        cls_logits, _ = model.head(end_points[model.final_end_point], training=True)
        losses["classification"] = classification_loss(cls_logits, classification["cls_label"])
    visuals = {"labeled/image": labeled["image"], "labeled/ground_truth": labeled["label"],
               "labeled/prediction": logits}
    return losses, {}, visuals


_RGB_VISUALS = ("labeled/image", "unlabeled/weak", "unlabeled/strong")


def summary_images(visuals: dict, count: int = 2) -> dict:
    """The first `count` examples as images: inputs as uint8 RGB; labels, logits and soft targets as int32 class
    maps [B,h,w,1] (argmax where there is a class axis), each at its own resolution."""
    images = {}
    for key, value in visuals.items():
        value = value[:count]
        if key in _RGB_VISUALS:
            images[key] = tf.cast(tf.clip_by_value(value, 0, 255), tf.uint8)
        elif value.dtype.is_floating:
            images[key] = tf.argmax(value, axis=-1, output_type=tf.int32)[..., tf.newaxis]
        else:
            images[key] = tf.cast(value if value.shape.rank == 4 else value[..., tf.newaxis], tf.int32)
    return images


def pseudo_label_monitors(target, sources, logits_s, label, valid):
    """The official monitors: accuracy of the pseudo label, the decoder (weak), the SGC and the strong view's
    prediction against the unlabeled images' masks (where known and valid), and the pseudo label's confidence."""
    grid = tf.shape(logits_s)[1:3]
    truth = nearest_resize(label, grid)[..., 0]
    known = tf.cast((truth != 255) & (valid[..., 0] > 0), tf.float32)
    count = tf.reduce_sum(known)

    def accuracy(prediction):
        hit = tf.cast(tf.equal(tf.cast(prediction, tf.int32), tf.cast(truth, tf.int32)), tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(hit * known), count)

    hard = target if target.dtype.is_integer else tf.argmax(target, -1)
    monitors = {"pseudo_label_accuracy": accuracy(hard),
                "weak_accuracy": accuracy(tf.argmax(sources["decoder"], -1)),
                "strong_accuracy": accuracy(tf.argmax(logits_s, -1))}
    if sources["sgc"] is not None:
        monitors["sgc_accuracy"] = accuracy(tf.argmax(sources["sgc"], -1))
    if not target.dtype.is_integer:
        valid_count = tf.reduce_sum(valid)
        monitors["pseudo_label_confidence"] = tf.math.divide_no_nan(
            tf.reduce_sum(tf.reduce_max(target, -1) * valid[..., 0]), valid_count)

    # Tallies for the pseudo-label quality window (mIoU per source, classifier mAP), summed over steps.
    num_classes = logits_s.shape[-1]
    class_maps = {"decoder": tf.argmax(sources["decoder"], -1), "pseudo_label": hard,
                  "strong": tf.argmax(logits_s, -1)}
    if sources["sgc"] is not None:
        class_maps["sgc"] = tf.argmax(sources["sgc"], -1)
        class_maps["cam"] = tf.argmax(quality.cam_class_map_logits(sources["cam"], grid), -1)
        monitors[quality.CLASSIFIER_SCORES] = tf.sigmoid(sources["cls_logits"])
        monitors[quality.CLASSIFIER_TRUTH] = batch_image_level_labels(label, num_classes)
    monitors.update(quality.confusions(class_maps, truth, known > 0, num_classes))
    return monitors


def gradients(model, tape, total, multipliers: dict, loss_scale=None):
    """Gradients of the replica's total, one per trainable variable (None where it gets none): with `loss_scale`,
    `total` was multiplied by its scale on the tape and the gradients are divided by it here; variables named in
    `multipliers` (the logits biases) scaled."""
    scale = loss_scale.scale if loss_scale is not None else None
    grads = tape.gradient(total, model.trainable_variables)
    out = []
    for g, v in zip(grads, model.trainable_variables):
        if g is not None and scale is not None:
            g = g / tf.cast(scale, g.dtype)
        if g is not None and id(v) in multipliers:
            g = g * multipliers[id(v)]
        out.append(g)
    return out


def apply_if_finite(optimizer, grads_and_vars, finite, loss_scale=None, skipped=None):
    """Applies the update on every replica if every replica's losses and gradients are finite, else on none.

    The decision is all-reduced first, then taken in cross-replica context (a cond around the optimizer's own
    all-reduce must be taken the same way on every replica). A skipped step leaves the weights, the optimizer
    state and the step counter as they were and adds one to `skipped`; `loss_scale` grows or halves.
    Returns the decision (bool, the same on every replica)."""
    context = tf.distribute.get_replica_context()
    finite &= tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g, _ in grads_and_vars])
    failures = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
    all_finite = failures < 0.5

    def cross_replica(strategy, grads_and_vars, all_finite):
        decision = strategy.experimental_local_results(all_finite)[0]

        def apply():
            strategy.extended.call_for_each_replica(optimizer.apply_gradients, args=(grads_and_vars,))
            return tf.constant(True)

        applied = tf.cond(decision, apply, lambda: tf.constant(False))
        with tf.control_dependencies([applied]):
            if loss_scale is not None:
                loss_scale.update(decision)
            if skipped is not None:
                skipped.assign_add(tf.cast(~decision, skipped.dtype))
        return tf.identity(decision)

    return context.merge_call(cross_replica, args=(grads_and_vars, all_finite))
