"""The PseudoSeg network: DeepLabv3+ plus the classification head and the SGC, sharing one backbone."""
from __future__ import annotations

import keras
import tensorflow as tf

from deeplab import DeepLabConfig, DeepLabV3Plus
from wss_tf.cam import ClassifierHead, SelfAttentionGradCAM, class_activation_map


class PseudoSegModel(keras.Model):
    """`segmenter` (DeepLabV3Plus), `head` (K-way classifier on the final backbone feature) and `sgc`.

    `att_strides` picks the SGC hypercolumn end points by the official pseudo-strides (15,16 = exit_flow/block1 +
    exit_flow/block2 for xception, block3 + block4 for ResNet); the CAM reads the largest, which must be the final
    feature (16), where the head's kernel applies.
    """

    def __init__(self, deeplab: DeepLabConfig, *, use_attention: bool = True, attention_dim: int = 128,
                 att_strides=(15, 16), cam_weights: str = "official", **kwargs):
        super().__init__(name=kwargs.pop("name", "pseudoseg"), **kwargs)
        self.segmenter = DeepLabV3Plus(deeplab)
        spec = self.segmenter.spec
        unknown = [s for s in att_strides if s not in spec.attention_end_points]
        if unknown or max(att_strides) != 16:
            raise ValueError(f"att_strides {list(att_strides)} must come from {sorted(spec.attention_end_points)} "
                             f"for {spec.name} and include 16 (the final feature the CAM is computed on)")
        self.spec = spec
        self.config = deeplab
        self.final_end_point = spec.final_end_point
        self.attention_end_points = [spec.attention_end_points[s] for s in sorted(att_strides, reverse=True)]
        self.head = ClassifierHead(deeplab.num_classes - 1, scope=spec.scope, dropout=spec.name.startswith("xception"),
                                   fine_tune_batch_norm=deeplab.fine_tune_batch_norm,
                                   weight_decay=deeplab.weight_decay, cam_weights=cam_weights)
        self.sgc = SelfAttentionGradCAM(deeplab.num_classes, attention_dim) if use_attention else None

    def call(self, images, training=False):
        return self.segmenter(images, training=training)["logits"]

    def build_all(self, crop_size=(33, 33)):
        """Creates every variable (segmenter, head, SGC) with one small forward pass of each part."""
        images = tf.zeros((2, *crop_size, 3))
        out = self.segmenter(images, training=False)
        logits, kernel = self.head(out[self.final_end_point], training=False)
        if self.sgc is not None:
            cam = class_activation_map(out[self.final_end_point], kernel, tf.ones_like(logits))
            valid = tf.ones_like(cam[..., :1])
            self.sgc([out[e] for e in self.attention_end_points], cam, valid)
        return self
