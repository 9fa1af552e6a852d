"""Backbone registry: `build_backbone(variant, ...)` returns a Keras model of named end points."""
from __future__ import annotations

import keras

from deeplab.backbones.common import BackboneSpec, Preprocess
from deeplab.backbones.resnet import RESNET_V1_50, RESNET_V1_50_BETA, RESNET_V1_101, RESNET_V1_101_BETA
from deeplab.backbones.xception import XCEPTION_65, XCEPTION_TINY
from deeplab.layers import NormParams

BACKBONES: dict[str, BackboneSpec] = {
    s.name: s
    for s in (XCEPTION_65, XCEPTION_TINY, RESNET_V1_50, RESNET_V1_50_BETA, RESNET_V1_101, RESNET_V1_101_BETA)
}


def get_spec(model_variant: str) -> BackboneSpec:
    try:
        return BACKBONES[model_variant]
    except KeyError:
        raise ValueError(
            f"unknown model_variant {model_variant!r}; known variants: {', '.join(sorted(BACKBONES))}") from None


def build_backbone(model_variant: str, *, output_stride: int | None = 16, multi_grid=None,
                   weight_decay: float = 4e-5, fine_tune_batch_norm: bool = True,
                   sync_batch_norm: bool = False, batch_norm_decay: float | None = None) -> keras.Model:
    """A functional model from raw RGB pixels in [0, 255] to a dict of end points.

    End points are keyed by their official names relative to the variant's scope (e.g. "exit_flow/block2",
    "block4", "entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise"). The model holds only
    the block outputs and the decoder's candidate low-level features.
    """
    spec = get_spec(model_variant)
    norm = NormParams(batch_norm_decay or spec.bn_decay, spec.bn_epsilon, weight_decay, fine_tune_batch_norm,
                      sync_batch_norm)
    images = keras.Input((None, None, 3), name="images")
    x = Preprocess(spec.preprocess, name=f"{spec.scope}.preprocess")(images)
    points = spec.build(x, output_stride=output_stride, multi_grid=multi_grid, norm=norm)
    keep = set(spec.attention_end_points.values()) | set(spec.decoder_end_points.values())
    outputs = {name: points[name] for name in sorted(keep)}
    model = keras.Model(images, outputs, name=spec.scope)
    model.spec = spec
    return model
