"""Pseudo labels for inspection: the sources training fuses, computed exactly as training computes them, and the
image rows (`vis --pseudo_label_panels`) that show them.

`PseudoLabelInspector` runs `step.make_pseudo_label` (the training code itself) on padded, unaugmented images and
returns what it fuses: the decoder logits, the SGC logits, the CAM, the fused probabilities before sharpening
(`pseudo_label.fuse`) and the sharpened pseudo label. The official decoder pass runs in training mode (batch
statistics, ASPP dropout); in Keras that call also moves every batch norm's moving averages, which would change
each later inference-mode prediction of the process. The inspector therefore restores them after each call
(`preserved_batch_norm_statistics`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import types
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from wss_tf.cli import find_run_config
from wss_tf.colormap import colorize_array
from wss_tf.config import TrainConfig
from wss_tf.pseudo_label import fuse
from wss_tf.step import make_pseudo_label

DECODER_MODES = ("training", "inference")

# Training settings that change how a pseudo label is made but not the model's variables: taken from the run's
# config.json beside the checkpoint (fine_tune_batch_norm decides whether the training-mode pass uses batch
# statistics and the head's dropout).
PSEUDO_LABEL_FIELDS = ("use_attention", "pseudo_src", "logit_norm", "temperature", "soft_pseudo_label",
                       "pseudo_label_threshold", "fine_tune_batch_norm")


def with_run_pseudo_label_settings(config: TrainConfig, checkpoint: str) -> TrainConfig:
    """`config` with the pseudo-label settings of the training run that wrote `checkpoint` (its config.json), if
    there is one; the official defaults otherwise."""
    path = find_run_config(checkpoint)
    if not path:
        return config
    with open(path) as f:
        saved = json.load(f)
    return config.replace(**{k: saved[k] for k in PSEUDO_LABEL_FIELDS if k in saved})


def restore_for_pseudo_labels(model, checkpoint: str) -> str:
    """`inference.restore_weights` for pseudo labels: the classifier head is required, and an official (TF1)
    checkpoint must hold the SGC too (restore_weights leaves it uninitialised where it is missing)."""
    from wss_tf.inference import resolve_checkpoint, restore_weights

    path = resolve_checkpoint(checkpoint)
    names = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    if (model.sgc is not None and "_CHECKPOINTABLE_OBJECT_GRAPH" not in names
            and not any(n.startswith("hyper_column/") for n in names)):
        raise ValueError(f"official checkpoint {path} has no SGC (hyper_column/...): pseudo labels need a "
                         f"train_wss checkpoint")
    return restore_weights(model, path, need_head=True)


def batch_norm_statistics(model) -> list:
    """The moving mean and variance of every batch norm in `model` (backbone, ASPP, decoder, SGC)."""
    layers = model._flatten_layers(include_self=True, recursive=True)  # Keras 3 has no public recursive walk
    return [v for layer in layers if isinstance(layer, keras.layers.BatchNormalization)
            for v in (layer.moving_mean, layer.moving_variance)]


@contextlib.contextmanager
def preserved_batch_norm_statistics(model):
    """Restores every batch norm's moving mean and variance on exit: training-mode calls inside leave the
    inference-mode model as it was. Eager only (wrap the call of a tf.function, not code inside one)."""
    if not tf.executing_eagerly():
        raise RuntimeError("preserved_batch_norm_statistics works eagerly: wrap the tf.function call, not its body")
    variables = batch_norm_statistics(model)
    saved = [tf.identity(v) for v in variables]
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


class _SegmenterView:
    """What `make_pseudo_label` sees as `model.segmenter`: the real segmenter with its decoder pass in the mode
    asked for."""

    def __init__(self, segmenter, decoder_training: bool):
        self._segmenter = segmenter
        self._decoder_training = decoder_training

    def __call__(self, images, training):
        del training  # the official pass is training=True; decoder_mode="inference" overrides it
        return self._segmenter(images, training=self._decoder_training)

    def backbone(self, images, training):
        return self._segmenter.backbone(images, training=training)


class PseudoLabelInspector:
    """Computes, for batches of padded unaugmented images, what training fuses into a pseudo label.

    `__call__(images, valid, cls_label=None)` -> dict of tensors, all at the logits grid (1/4 resolution) except
    the CAM (1/16):
      decoder       decoder logits [B,h,w,C] (training-mode pass unless decoder_mode="inference")
      sgc           SGC logits resized to the logits grid [B,h,w,C] (None without attention)
      cam           CAM of the final feature [B,h',w',K] for the image-level labels used (None without attention)
      image_labels  those labels [B,K]: predicted (sigmoid >= 0.5), or the ground truth's with weakly=True
      cls_scores    the inference-mode classifier's sigmoid scores [B,K] (None without attention)
      fused         calibrated probabilities before sharpening [B,h,w,C]
      pseudo_label  the training target: sharpened probabilities (one-hot with soft_pseudo_label=False) [B,h,w,C]
      valid         the valid mask at the logits grid [B,h,w,1]
    One trace per image size (the batch size may change). Batch norm moving averages are restored after each call.
    Training-mode calls draw new dropout masks each time, as training does.
    """

    def __init__(self, model, config: TrainConfig, *, decoder_mode: str = "training", weakly: bool = False):
        if decoder_mode not in DECODER_MODES:
            raise ValueError(f"decoder_mode must be one of {DECODER_MODES}, got {decoder_mode!r}")
        if config.use_attention and model.sgc is None:
            raise ValueError("the run uses attention (SGC) but the model was built without it (with_sgc=True)")
        self.model = model
        self.config = config.replace(weakly=weakly)
        self.decoder_mode = decoder_mode
        self._functions = {}

    def _compute(self, images, valid, cls_label):
        model, config = self.model, self.config
        segmenter = _SegmenterView(model.segmenter, self.decoder_mode == "training")
        view = types.SimpleNamespace(segmenter=segmenter, head=model.head, sgc=model.sgc,
                                     final_end_point=model.final_end_point,
                                     attention_end_points=model.attention_end_points)
        target, _, valid_grid, sources = make_pseudo_label(view, config, images, valid, cls_label)
        decoder, sgc = sources["decoder"], sources["sgc"]
        out = {"decoder": tf.cast(decoder, tf.float32), "sgc": sgc, "cam": None, "image_labels": None,
               "fused": fuse(decoder, sgc, config.pseudo_label()), "valid": valid_grid}
        num_classes = decoder.shape[-1]
        out["pseudo_label"] = target if target.dtype.is_floating else tf.one_hot(target, num_classes)
        if "cam" in sources:  # what make_pseudo_label fused: its CAM and the image-level labels behind it
            out["cls_scores"] = tf.sigmoid(sources["cls_logits"])
            labels = cls_label if config.weakly else tf.cast(out["cls_scores"] >= 0.5, tf.float32)
            out["image_labels"] = tf.cast(labels, tf.float32)
            out["cam"] = sources["cam"]
        return {k: v for k, v in out.items() if v is not None}

    def __call__(self, images, valid, cls_label=None) -> dict:
        if self.config.weakly and cls_label is None:
            raise ValueError("weakly: the CAM's image-level labels come from the ground truth; pass cls_label")
        images = tf.cast(images, tf.float32)
        valid = tf.cast(valid, tf.float32)
        key = tuple(images.shape[1:])
        if key not in self._functions:
            signature = [tf.TensorSpec([None, *images.shape[1:]], tf.float32),
                         tf.TensorSpec([None, *valid.shape[1:]], tf.float32)]
            compute = self._compute
            if self.config.weakly:
                signature.append(tf.TensorSpec([None, self.model.config.num_classes - 1], tf.float32))
            else:
                compute = lambda x, v: self._compute(x, v, None)  # noqa: E731
            # No data-dependent Python control flow anywhere below: autograph off halves the trace time.
            self._functions[key] = tf.function(compute, input_signature=signature, autograph=False)
        args = (images, valid) + ((tf.cast(cls_label, tf.float32),) if self.config.weakly else ())
        with preserved_batch_norm_statistics(self.model):
            return self._functions[key](*args)


# ---- panels ---------------------------------------------------------------------------------------------------

PANEL_TITLES = ("image", "decoder", "SGC", "pseudo label", "truth")
MIN_TILE_WIDTH = 96  # small images are enlarged (nearest, integer factor) so that the titles fit
PANEL_GAP = 4
TITLE_HEIGHT = 14
UNKNOWN_GREY = 128


def tile_scale(width: int) -> int:
    return max(1, math.ceil(MIN_TILE_WIDTH / width))


def grid_to_image(grid_map: np.ndarray, crop_size, image_size) -> np.ndarray:
    """Nearest sample of a logits-grid map [h,w,...] at each pixel of the image's own HxW, with the align-corners
    geometry of the model's resizes (grid index = pixel * (h-1) / (crop-1))."""
    rows = [np.floor(np.arange(n) * (g - 1) / max(c - 1, 1) + 0.5).astype(np.int64)
            for n, g, c in zip(image_size, grid_map.shape[:2], crop_size)]
    return grid_map[rows[0]][:, rows[1]]


@dataclasses.dataclass(frozen=True)
class PanelInputs:
    """One image's row, all in numpy: the padded image [H,W,3], its label [H,W] (255 unknown), the image's own
    height and width, and the logits-grid maps [h,w,C] of decoder, SGC (or None) and pseudo label."""

    image: np.ndarray
    label: np.ndarray
    height: int
    width: int
    decoder: np.ndarray
    sgc: Optional[np.ndarray]
    pseudo_label: np.ndarray


def render_panel(inputs: PanelInputs, colormap_type: str = "pascal", shade_confidence: bool = True) -> Image.Image:
    """image | decoder prediction | SGC map | pseudo label (shaded by its confidence) | ground truth, each cropped
    to the image, titled. A tile without data (no SGC, a mask that is all 255) is grey."""
    h, w = inputs.height, inputs.width
    crop = inputs.image.shape[:2]

    def classes(grid_map):
        return colorize_array(np.argmax(grid_to_image(grid_map, crop, (h, w)), axis=-1), colormap_type)

    grey = np.full((h, w, 3), UNKNOWN_GREY, np.uint8)
    pseudo = classes(inputs.pseudo_label).astype(np.float32)
    if shade_confidence:
        pseudo *= grid_to_image(inputs.pseudo_label.max(axis=-1), crop, (h, w))[..., None]
    label = inputs.label[:h, :w]
    tiles = [np.clip(inputs.image[:h, :w], 0, 255).astype(np.uint8),
             classes(inputs.decoder),
             classes(inputs.sgc) if inputs.sgc is not None else grey,
             pseudo.astype(np.uint8),
             grey if np.all(label == 255) else colorize_array(label, colormap_type)]
    scale = tile_scale(w)
    tiles = [np.repeat(np.repeat(t, scale, axis=0), scale, axis=1) for t in tiles]
    tile_h, tile_w = h * scale, w * scale
    panel = Image.new("RGB", (len(tiles) * tile_w + (len(tiles) - 1) * PANEL_GAP, TITLE_HEIGHT + tile_h), "white")
    draw = ImageDraw.Draw(panel)
    font = ImageFont.load_default()
    for i, (tile, title) in enumerate(zip(tiles, PANEL_TITLES)):
        x = i * (tile_w + PANEL_GAP)
        panel.paste(Image.fromarray(tile), (x, TITLE_HEIGHT))
        draw.text((x + 1, 1), title, fill=(0, 0, 0), font=font)
    return panel
