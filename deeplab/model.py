"""DeepLabv3+ (core/model.py): backbone -> ASPP with image pooling -> decoder -> 1x1 logits."""
from __future__ import annotations

import keras

from deeplab.backbones import build_backbone
from deeplab.config import DeepLabConfig
from deeplab.layers import NormParams, ResizeBilinear, conv_bn, depthwise_bn, truncated_normal

# model.py hard-codes these for the ASPP and the decoder, whatever the backbone.
_HEAD_BN_DECAY, _HEAD_BN_EPSILON = 0.9997, 1e-5


def split_separable_conv(x, filters: int, *, rate: int, name: str, norm: NormParams):
    """utils.split_separable_conv2d: depthwise 3x3 (+BN+ReLU, no decay) then pointwise 1x1 (+BN+ReLU, decay)."""
    x = depthwise_bn(x, 3, rate=rate, name=name + "_depthwise", norm=norm, initializer=truncated_normal(0.33))
    return conv_bn(x, filters, 1, name=name + "_pointwise", norm=norm, initializer=truncated_normal(0.06))


def aspp(features, config: DeepLabConfig, norm: NormParams):
    """Image pooling, 1x1 and separable atrous branches, concat projection and dropout (keep 0.9).

    The official image pooling is an avg-pool over s(crop, 1/OS) cells, VALID: the whole feature grid,
    since the grid of a crop is exactly that size. A global mean is the same computation.
    """
    depth = config.aspp_convs_filters
    glorot = keras.initializers.GlorotUniform
    branches = []
    if config.add_image_level_feature:
        pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="image_pooling.pool")(features)
        pooled = conv_bn(pooled, depth, 1, name="image_pooling", norm=norm, initializer=glorot())
        branches.append(ResizeBilinear(name="image_pooling.resize")(pooled, features))
    branches.append(conv_bn(features, depth, 1, name="aspp0", norm=norm, initializer=glorot()))
    for i, rate in enumerate(config.atrous_rates or (), start=1):
        branches.append(split_separable_conv(features, depth, rate=rate, name=f"aspp{i}", norm=norm))
    x = keras.layers.Concatenate(name="aspp.concat")(branches) if len(branches) > 1 else branches[0]
    x = conv_bn(x, depth, 1, name="concat_projection", norm=norm, initializer=glorot())
    return keras.layers.Dropout(0.1, name="concat_projection_dropout")(x)


def decoder(features, low_level, config: DeepLabConfig, norm: NormParams):
    """refine_by_decoder with concat merge: 48-channel projection of the low-level feature, two separable convs.

    The official code resizes both inputs to s(crop, 1/decoder_output_stride). The low-level end point is
    already exactly that size (each stride-2 layer maps n to ceil(n/2)), so only the ASPP output is resized.
    """
    projection = conv_bn(low_level, 48, 1, name="decoder.feature_projection0", norm=norm,
                         initializer=keras.initializers.GlorotUniform())
    upsampled = ResizeBilinear(name="decoder.resize")(features, projection)
    x = keras.layers.Concatenate(name="decoder.concat")([upsampled, projection])
    x = split_separable_conv(x, config.decoder_filters, rate=1, name="decoder.decoder_conv0", norm=norm)
    return split_separable_conv(x, config.decoder_filters, rate=1, name="decoder.decoder_conv1", norm=norm)


class DeepLabV3Plus(keras.Model):
    """DeepLabv3+ as a functional model: raw RGB [0, 255] -> {"logits", <backbone end points>}.

    `logits` are at s(H, 1/decoder_output_stride) (129x129 for a 513 crop), not upsampled, as the official
    `multi_scale_logits` returns them. The backbone end points come from the same forward pass, keyed by
    their official names, so callers that need features and logits of one image run the backbone once.
    Always call with an explicit `training=`: it switches batch norm (when fine-tuned) and dropout.
    """

    def __init__(self, config: DeepLabConfig, **kwargs):
        backbone = build_backbone(
            config.model_variant, output_stride=config.output_stride, multi_grid=config.multi_grid,
            weight_decay=config.weight_decay, fine_tune_batch_norm=config.fine_tune_batch_norm,
            sync_batch_norm=config.sync_batch_norm, batch_norm_decay=config.batch_norm_decay)
        spec = backbone.spec
        norm = NormParams(config.batch_norm_decay or _HEAD_BN_DECAY, _HEAD_BN_EPSILON, config.weight_decay,
                          config.fine_tune_batch_norm, config.sync_batch_norm)
        images = keras.Input((None, None, 3), name="images")
        end_points = backbone(images)
        x = aspp(end_points[spec.final_end_point], config, norm)
        if config.decoder_output_stride is not None:
            x = decoder(x, end_points[spec.decoder_end_points[config.decoder_output_stride]], config, norm)
        logits = keras.layers.Conv2D(
            config.num_classes, 1, use_bias=True, kernel_initializer=truncated_normal(0.01),
            kernel_regularizer=norm.l2(), name="logits.semantic", dtype="float32")(x)
        super().__init__(images, {"logits": logits, **end_points}, name=kwargs.pop("name", "deeplab"), **kwargs)
        self.config = config
        self.backbone = backbone
        self.spec = spec
