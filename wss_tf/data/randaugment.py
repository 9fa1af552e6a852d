"""RandAugment for the strong view (`--strong_augmentation=randaugment_cutout`), through keras.layers.RandAugment.

Keras applies the geometric ops (shear, translation, rotation) to segmentation masks with nearest sampling.
Two things are added for PseudoSeg:
- pixels the geometric ops fill (outside the source image) become label 255 and valid 0, never a class:
  they are found through a marker channel of ones that the fill replaces;
- the weak view gets the same geometric transform (without the colour ops), so weak and strong views stay
  pixel-aligned and pseudo labels made on the weak view need no warping.
This relies on RandAugment's transformation layout in Keras 3.15 ({"transforms", "layer_idxes"}); the tests
pin the behaviour. Op selection follows the layer's own seed generator, so unlike the official jitter it is not
reproducible element by element under a parallel map.
"""
from __future__ import annotations

import keras
import tensorflow as tf

_GEOMETRIC = ("random_shear", "random_translation", "random_rotation")


class RandAugmentForSegmentation:
    def __init__(self, num_ops: int = 2, factor: float = 0.5, fill_value: float = 127.5, ignore_label: int = 255,
                 seed: int | None = None):
        if fill_value == 1.0:
            raise ValueError("fill_value 1.0 would hide filled pixels from the marker channel")
        self.layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=num_ops, factor=factor, seed=seed)
        for name in _GEOMETRIC:  # Keras' default is reflect, which would invent content and labels
            op = getattr(self.layer, name)
            op.fill_mode, op.fill_value = "constant", fill_value
        self.ignore_label = ignore_label

    def _geometric_only(self, images, transformation):
        transforms = transformation["transforms"]
        for i in range(self.layer.num_ops):
            for idx, (name, value) in enumerate(transforms.items()):
                if name in _GEOMETRIC:
                    moved = getattr(self.layer, name).transform_images(images, value)
                    images = tf.where(transformation["layer_idxes"][i] == idx, moved, images)
        return images

    def __call__(self, weak, label, valid, seed=None):
        """weak [H,W,3] float, label/valid [H,W,1] int32 -> weak, strong, label, valid (same geometry)."""
        del seed  # op selection uses the layer's seed generator
        batch = weak[tf.newaxis]
        transformation = self.layer.get_random_transformation(batch, training=True)
        strong = self.layer.transform_images(batch, transformation)[0]
        moved_weak = self._geometric_only(batch, transformation)[0]
        masks = tf.concat([tf.cast(label, tf.float32), tf.cast(valid, tf.float32), tf.ones_like(weak[..., :1])], -1)
        masks = self.layer.transform_segmentation_masks(masks[tf.newaxis], transformation)[0]
        filled = tf.not_equal(masks[..., 2:3], 1.0)
        label = tf.where(filled, self.ignore_label, tf.cast(tf.round(masks[..., 0:1]), tf.int32))
        valid = tf.where(filled, 0, tf.cast(tf.round(masks[..., 1:2]), tf.int32))
        return tf.cast(moved_weak, tf.float32), tf.cast(strong, tf.float32), label, valid
