"""What every backbone shares: its description, input normalisation, and the atrous stride plan."""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import keras
import tensorflow as tf

IMAGENET_MEAN_RGB = (123.15, 115.90, 103.06)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A DeepLab feature extractor as feature_extractor.py describes it.

    `scope` is the official variable-scope root (resnet_v1_101_beta keeps the scope `resnet_v1_101`).
    `decoder_end_points` maps an output stride to the low-level end point the decoder projects
    (networks_to_feature_maps); `attention_end_points` maps PseudoSeg's pseudo-strides to end points
    (train_utils_core.net_to_stride_to_endpoints_name); the largest key is the final feature.
    """

    name: str
    scope: str
    preprocess: str  # "zero_mean_unit_range" | "subtract_imagenet_mean"
    bn_decay: float
    bn_epsilon: float
    root_stride: int  # stride of the stem; output_stride must be a multiple of it
    decoder_end_points: Mapping[int, str]
    attention_end_points: Mapping[int, str]
    build: Callable[..., dict]  # (images, plan args) -> end points

    @property
    def mean_pixel(self) -> tuple[float, float, float]:
        """Pixel value that normalises to 0: what the data pipeline pads images with."""
        if self.preprocess == "subtract_imagenet_mean":
            return IMAGENET_MEAN_RGB
        return (127.5, 127.5, 127.5)

    @property
    def final_end_point(self) -> str:
        return self.attention_end_points[max(self.attention_end_points)]


class Preprocess(keras.layers.Layer):
    """The official in-network input normalisation (`_PREPROCESS_FN`) of raw [0, 255] RGB pixels."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("zero_mean_unit_range", "subtract_imagenet_mean"):
            raise ValueError(f"unknown preprocessing {mode!r}")
        self.mode = mode

    def call(self, images):
        images = tf.cast(images, tf.float32)
        if self.mode == "zero_mean_unit_range":
            out = (2.0 / 255.0) * images - 1.0
        else:
            out = images - tf.constant(IMAGENET_MEAN_RGB, tf.float32)
        return tf.cast(out, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def atrous_plan(unit_strides: list[list[int]], output_stride: int | None) -> list[list[tuple[int, int]]]:
    """(stride, rate) of every unit, as slim's `stack_blocks_dense` turns strides into atrous rates.

    `unit_strides` lists each block's unit strides; `output_stride` counts from the blocks' input (the
    official code divides it by the stem stride first). Once the target stride is reached, further strides
    become stride 1 and multiply the rate of all later units.
    """
    current, rate, plan = 1, 1, []
    for block in unit_strides:
        block_plan = []
        for stride in block:
            if output_stride is not None and current > output_stride:
                raise ValueError("The target output_stride cannot be reached.")
            if output_stride is not None and current == output_stride:
                block_plan.append((1, rate))
                rate *= stride
            else:
                block_plan.append((stride, 1))
                current *= stride
        plan.append(block_plan)
    if output_stride is not None and current != output_stride:
        raise ValueError("The target output_stride cannot be reached.")
    return plan
