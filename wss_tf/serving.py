"""Serving a trained model: label maps for images of any size, as a tf.Module and as a SavedModel.

Inside the graph, for each image of H x W:
  1. if it fits the crop, nothing; if it is larger than the crop in either side, resize it down (bilinear with
     antialias, aspect ratio kept) to the largest h x w that fits;
  2. pad bottom/right to the crop with the model's mean pixel (normalises to 0), exactly as evaluation does;
  3. `predict_probabilities` at the fixed crop (inference mode, the baked-in scales and flip): the network is
     traced at one shape, [batch, crop_h, crop_w, 3], whatever the image sizes;
  4. keep the probabilities of the image region (h x w), resize them back to H x W (bilinear) if the image was
     resized, argmax.
For an image that fits the crop the labels are evaluation's: argmax at the crop, cropped to the image.

Signatures (TF Serving conventions: batch first; an input named `*_bytes` takes base64 in the REST API):
  serving_default            image_bytes string [B] (JPEG / PNG, sizes may differ)
                             -> labels int32 [B, Hmax, Wmax] (255 beyond each image), heights, widths int32 [B]
  probabilities_from_bytes   the same plus probabilities float32 [B, Hmax, Wmax, C] (0 beyond each image)
  labels_from_images         images uint8 [B, H, W, 3] -> labels int32 [B, H, W]
  probabilities_from_images  images uint8 [B, H, W, 3] -> labels, probabilities float32 [B, H, W, C]
"""
from __future__ import annotations

import json
import logging as pylogging
import os
from typing import Sequence

import tensorflow as tf
from absl import logging

from wss_tf.colormap import colormap
from wss_tf.inference import build_model, predict_probabilities, restore_weights

METADATA_FILE = "wss_tf_export.json"
PAD_LABEL = 255  # labels beyond an image's own size in a batch of encoded images of different sizes
SIGNATURES = ("serving_default", "probabilities_from_bytes", "labels_from_images", "probabilities_from_images")


class SegmentationServer(tf.Module):
    """Label maps (and class probabilities) from uint8 images of any size or from encoded JPEG / PNG bytes.

    `model` is a PseudoSegModel (its `.segmenter` serves) or a DeepLabV3Plus. Only the network's variables are
    tracked, not the Keras model, so saving traces the signatures alone. The network is always called with
    training=False (batch norms on their moving averages, no dropout), whatever the caller does.
    """

    def __init__(self, model, *, crop_size: Sequence[int], eval_scales: Sequence[float] = (1.0,),
                 add_flipped_images: bool = False, class_names: Sequence[str], colormap_name: str = "pascal"):
        super().__init__(name="wss_tf_serving")
        segmenter = getattr(model, "segmenter", model)
        crop_h, crop_w = (int(c) for c in crop_size)
        num_classes = segmenter.config.num_classes
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for a {num_classes}-class model")
        if crop_h < 1 or crop_w < 1:
            raise ValueError(f"crop size must be positive, got {crop_h}x{crop_w}")
        scales = tuple(float(s) for s in eval_scales)
        if not scales or min(scales) <= 0:
            raise ValueError(f"inference scales must be positive, got {list(scales)}")
        colormap(colormap_name)  # an unknown colour map fails here, not in predict
        self.model_variables = list(segmenter.variables)
        # Plain Python values behind a closure: not tracked, not saved as objects.
        settings = dict(crop_size=[crop_h, crop_w], eval_scales=list(scales),
                        add_flipped_images=bool(add_flipped_images), class_names=list(class_names),
                        num_classes=num_classes, colormap=colormap_name, model_variant=segmenter.config.model_variant,
                        mean_pixel=list(segmenter.spec.mean_pixel), pad_label=PAD_LABEL,
                        signatures=list(SIGNATURES))
        self._settings = lambda: settings
        self._crop = (crop_h, crop_w)
        self._mean_pixel = tuple(float(v) for v in segmenter.spec.mean_pixel)
        self._num_classes = num_classes

        @tf.function(input_signature=[tf.TensorSpec([None, crop_h, crop_w, 3], tf.float32)])
        def network(padded):
            probabilities, _ = predict_probabilities(segmenter, padded, scales, bool(add_flipped_images))
            return probabilities

        self._network = network

    @property
    def metadata(self) -> dict:
        """What a caller needs to name classes and colour the labels (written beside an export)."""
        return dict(self._settings())

    @property
    def network_traces(self) -> int:
        """How many times the network was traced: one per crop shape, i.e. once."""
        return self._network.experimental_get_tracing_count()

    # ---- the steps, on a batch of images of one size -----------------------------------------------------
    def _fit(self, height, width):
        """(h, w) of an H x W image resized down to fit the crop, aspect kept; (H, W) if it fits already."""
        crop_h, crop_w = self._crop
        h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        scale = tf.minimum(1.0, tf.minimum(crop_h / h, crop_w / w))
        fit_h = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, crop_h)
        fit_w = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, crop_w)
        resized = tf.logical_or(height > crop_h, width > crop_w)
        return tf.where(resized, fit_h, height), tf.where(resized, fit_w, width), resized

    def _preprocess(self, images):
        """uint8 [B, H, W, 3] -> float32 [B, crop_h, crop_w, 3] (resized down if needed, padded), (h, w, resized)."""
        crop_h, crop_w = self._crop
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        tf.debugging.assert_positive(tf.stack([height, width]), message="empty image")
        fit_h, fit_w, resized = self._fit(height, width)
        images = tf.cast(images, tf.float32)
        images = tf.cond(resized,
                         lambda: tf.image.resize(images, tf.stack([fit_h, fit_w]), "bilinear", antialias=True),
                         lambda: images)
        # As augment.pad_to_size (evaluation's padding): the padded pixels are exactly the mean pixel.
        paddings = [[0, 0], [0, crop_h - fit_h], [0, crop_w - fit_w], [0, 0]]
        inside = tf.pad(tf.ones_like(images[..., :1], tf.bool), paddings, constant_values=False)
        padded = tf.where(inside, tf.pad(images, paddings), tf.constant(self._mean_pixel, tf.float32))
        return tf.ensure_shape(padded, [None, crop_h, crop_w, 3]), (fit_h, fit_w, resized)

    def _postprocess(self, probabilities, height, width, fit):
        """Probabilities at the crop -> (labels int32 [B, H, W], probabilities [B, H, W, C]) at the image's size."""
        fit_h, fit_w, resized = fit
        probabilities = probabilities[:, :fit_h, :fit_w, :]
        probabilities = tf.cond(resized,
                                lambda: tf.image.resize(probabilities, tf.stack([height, width]), "bilinear"),
                                lambda: probabilities)
        probabilities = tf.ensure_shape(probabilities, [None, None, None, self._num_classes])
        return tf.argmax(probabilities, axis=-1, output_type=tf.int32), probabilities

    def _from_images(self, images):
        shape = tf.shape(images)
        padded, fit = self._preprocess(images)
        return self._postprocess(self._network(padded), shape[1], shape[2], fit)

    def _from_bytes(self, image_bytes):
        crop_h, crop_w = self._crop

        def prepare(data):
            image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
            padded, (fit_h, fit_w, resized) = self._preprocess(image[tf.newaxis])
            size = tf.shape(image)[:2]
            return padded[0], tf.stack([size[0], size[1], fit_h, fit_w, tf.cast(resized, tf.int32)])

        padded, sizes = tf.map_fn(prepare, image_bytes, fn_output_signature=(
            tf.TensorSpec([crop_h, crop_w, 3], tf.float32), tf.TensorSpec([5], tf.int32)))
        probabilities = self._network(padded)  # one batched network call for the whole request
        max_h, max_w = tf.reduce_max(sizes[:, 0]), tf.reduce_max(sizes[:, 1])  # an empty batch pads nothing

        def finish(args):
            probs, size = args
            labels, probs = self._postprocess(probs[tf.newaxis], size[0], size[1],
                                              (size[2], size[3], tf.cast(size[4], tf.bool)))
            pad = [[0, max_h - size[0]], [0, max_w - size[1]]]
            return (tf.pad(labels[0], pad, constant_values=PAD_LABEL), tf.pad(probs[0], pad + [[0, 0]]))

        labels, probabilities = tf.map_fn(finish, (probabilities, sizes), fn_output_signature=(
            tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None, self._num_classes], tf.float32)))
        return labels, probabilities, sizes[:, 0], sizes[:, 1]

    # ---- signatures -----------------------------------------------------------------------------------
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def labels_from_bytes(self, image_bytes):
        labels, _, heights, widths = self._from_bytes(image_bytes)
        return {"labels": labels, "heights": heights, "widths": widths}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def probabilities_from_bytes(self, image_bytes):
        labels, probabilities, heights, widths = self._from_bytes(image_bytes)
        return {"labels": labels, "probabilities": probabilities, "heights": heights, "widths": widths}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def labels_from_images(self, images):
        labels, _ = self._from_images(images)
        return {"labels": labels}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def probabilities_from_images(self, images):
        labels, probabilities = self._from_images(images)
        return {"labels": labels, "probabilities": probabilities}

    def signature_functions(self) -> dict:
        return {"serving_default": self.labels_from_bytes,
                "probabilities_from_bytes": self.probabilities_from_bytes,
                "labels_from_images": self.labels_from_images,
                "probabilities_from_images": self.probabilities_from_images}


def export_saved_model(model, export_dir: str, *, crop_size: Sequence[int], eval_scales: Sequence[float] = (1.0,),
                       add_flipped_images: bool = False, class_names: Sequence[str],
                       colormap_name: str = "pascal") -> str:
    """Writes a SavedModel serving `model` (see the module docstring) and `wss_tf_export.json` beside it."""
    server = SegmentationServer(model, crop_size=crop_size, eval_scales=eval_scales,
                                add_flipped_images=add_flipped_images, class_names=class_names,
                                colormap_name=colormap_name)
    return save_server(server, export_dir)


class _DropRenamedInputNotes(pylogging.Filter):
    """TF's saver notes, per signature and at INFO, every captured-variable input it renames (several KB of
    numbers that say nothing to a user); the notes go, everything else stays."""

    def filter(self, record):
        return "contains input name(s)" not in str(record.msg)


def save_server(server: SegmentationServer, export_dir: str) -> str:
    note_filter = _DropRenamedInputNotes()
    logging.get_absl_logger().addFilter(note_filter)
    try:
        tf.saved_model.save(server, export_dir, signatures=server.signature_functions())
    finally:
        logging.get_absl_logger().removeFilter(note_filter)
    with open(os.path.join(export_dir, METADATA_FILE), "w") as f:
        f.write(json.dumps(server.metadata, indent=2) + "\n")
    return export_dir


def server_from_checkpoint(checkpoint: str, config, class_names: Sequence[str], *, crop_size: Sequence[int],
                           eval_scales: Sequence[float] = (1.0,), add_flipped_images: bool = False,
                           colormap_name: str = "pascal") -> tuple[SegmentationServer, str]:
    """The trained network of `checkpoint` (a prefix or a train_logdir) rebuilt from `config` (its TrainConfig),
    restored, wrapped. Returns (server, the checkpoint prefix used)."""
    model = build_model(config, len(class_names))
    path = restore_weights(model, checkpoint)
    logging.info("serving %s (%s, %d classes)", path, config.model_variant, len(class_names))
    server = SegmentationServer(model, crop_size=crop_size, eval_scales=eval_scales,
                                add_flipped_images=add_flipped_images, class_names=class_names,
                                colormap_name=colormap_name)
    return server, path


def load_metadata(export_dir: str) -> dict:
    path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{export_dir} has no {METADATA_FILE}: not a wss_tf export (./run.sh export)")
    with open(path) as f:
        return json.load(f)
