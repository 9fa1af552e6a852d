"""Inference shared by eval, vis, the calibration report, export and predict: rebuilding a trained model from its
checkpoint, and the official single-scale / multi-scale + flipped prediction (core/model.py `predict_labels`,
`predict_labels_multi_scale`)."""
from __future__ import annotations

import os
from typing import Sequence

import tensorflow as tf
from absl import logging

from deeplab import load_official_checkpoint
from deeplab.layers import resize_bilinear, scale_dimension
from wss_tf.config import TrainConfig
from wss_tf.model import PseudoSegModel

_OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a directory (its latest checkpoint) or a prefix; a clear error otherwise."""
    if not path:
        raise ValueError("no checkpoint given (--checkpoint_dir)")
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"no checkpoint in directory {path!r} (no 'checkpoint' state file naming one)")
        return latest
    if tf.io.gfile.exists(path + ".index"):
        return path
    raise FileNotFoundError(f"{path!r} is neither a directory with checkpoints nor a checkpoint prefix "
                            f"(no {path}.index)")


def build_model(config: TrainConfig, num_classes: int, *, with_sgc: bool = False) -> PseudoSegModel:
    """The trained network's structure, every variable created: segmenter and classifier head (and the SGC)."""
    return PseudoSegModel(config.deeplab(num_classes), use_attention=with_sgc, attention_dim=config.attention_dim,
                          att_strides=config.att_strides).build_all()


def restore_weights(model: PseudoSegModel, checkpoint: str, *, need_head: bool = False) -> str:
    """Loads a checkpoint of this port's trainer (object-based) or of the official code (TF1, slim names).

    Every part of `model` must be found in a trainer checkpoint (optimizer state and seeds are skipped). An
    official checkpoint must hold the whole segmentation network, and the classifier head when `need_head`
    (official train_sup.py without --weakly never creates one). A model of another variant or class count is an
    error that names the checkpoint.
    """
    path = resolve_checkpoint(checkpoint)
    keys = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    if _OBJECT_GRAPH_KEY in keys:
        try:
            status = tf.train.Checkpoint(model=model).restore(path)
            status.expect_partial()
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise ValueError(f"checkpoint {path} does not fit this model ({model.spec.name}, "
                             f"{model.config.num_classes} classes): was it trained with another model_variant, "
                             f"class count or architecture flags? {str(e)[:600]}") from None
        logging.info("restored %s", path)
        return path
    report = load_official_checkpoint(model, path)
    optional = ("hyper_column/", "pixel_normalization/") + (() if need_head else (f"{model.spec.scope}/logits/",))
    missing = [n for n in report.uninitialized if not n.startswith(optional)]
    if missing:
        raise ValueError(f"official checkpoint {path} lacks {len(missing)} variables this model needs, e.g. "
                         f"{missing[:4]}")
    logging.info("restored official checkpoint: %s", report.summary())
    return path


def _scaled(size, factor: float):
    """scale_dimension on a static int or a scalar tensor."""
    if isinstance(size, int):
        return scale_dimension(size, factor)
    return tf.cast((tf.cast(size, tf.float32) - 1.0) * factor + 1.0, tf.int32)


def _size(images):
    static = images.shape[1:3]
    dynamic = tf.shape(images)[1:3]
    return [static[i] if static[i] is not None else dynamic[i] for i in range(2)]


def predict_probabilities(segmenter, images, eval_scales: Sequence[float] = (1.0,),
                          add_flipped_images: bool = False):
    """Class probabilities at the input size, averaged over scales (and flips), inference mode: [B,H,W,C].

    As the official `predict_labels_multi_scale`: each scale resizes the (padded) images to s(H, scale) (bilinear,
    align corners), the logits are resized to s(H, max(1, scale) / logits_stride) as `multi_scale_logits` does,
    then to the input size, and the softmaxes are averaged. With one scale of 1.0 and no flip, the argmax of the
    result is the official single-scale `predict_labels` (the softmax keeps the argmax).
    Returns (probabilities, end points of the unflipped scale-1.0 pass, or None).
    """
    height, width = _size(images)
    stride = segmenter.config.decoder_output_stride or segmenter.config.output_stride
    probabilities, end_points = [], None
    for scale in eval_scales:
        scaled = images if scale == 1.0 else resize_bilinear(images, [_scaled(height, scale), _scaled(width, scale)])
        logits_size = [_scaled(height, max(1.0, scale) / stride), _scaled(width, max(1.0, scale) / stride)]
        views = [(scaled, False)] + ([(tf.reverse(scaled, [2]), True)] if add_flipped_images else [])
        for view, flipped in views:
            out = segmenter(view, training=False)
            if scale == 1.0 and not flipped:
                end_points = out
            logits = resize_bilinear(tf.cast(out["logits"], tf.float32), logits_size)
            if flipped:
                logits = tf.reverse(logits, [2])
            probabilities.append(tf.nn.softmax(resize_bilinear(logits, [height, width])))
    return tf.add_n(probabilities) / len(probabilities), end_points
