"""DeepLab's ResNet-v1 (core/resnet_v1_beta.py): resnet_v1_{50,101} and the `_beta` variants (three-conv stem)."""
from __future__ import annotations

import keras

from deeplab.backbones.common import BackboneSpec, atrous_plan
from deeplab.layers import NormParams, conv_bn

# resnet_arg_scope: slim.variance_scaling_initializer() = He, fan-in, truncated normal.
_INIT = keras.initializers.HeNormal


def _bottleneck(x, *, depth, depth_bottleneck, stride, rate, name, norm, end_points, prefix):
    """bottleneck_v1: 1x1 -> 3x3 (stride and atrous rate here) -> 1x1, plus shortcut, then ReLU."""
    if x.shape[-1] == depth:
        shortcut = x if stride == 1 else keras.layers.MaxPooling2D(1, stride, padding="same",
                                                                   name=name + ".shortcut")(x)
    else:
        shortcut = conv_bn(x, depth, 1, stride=stride, name=name + ".shortcut", norm=norm, initializer=_INIT(),
                           activation=False)
    r = conv_bn(x, depth_bottleneck, 1, name=name + ".conv1", norm=norm, initializer=_INIT())
    r = conv_bn(r, depth_bottleneck, 3, stride=stride, rate=rate, name=name + ".conv2", norm=norm,
                initializer=_INIT(), explicit_padding=True)
    r = conv_bn(r, depth, 1, name=name + ".conv3", norm=norm, initializer=_INIT(), activation=False)
    end_points[(name + ".conv3")[len(prefix):].replace(".", "/")] = r
    return keras.layers.ReLU(name=name + ".relu")(keras.layers.Add(name=name + ".add")([shortcut, r]))


def build_resnet(images, *, scope, units, beta, output_stride, multi_grid, norm: NormParams):
    """Returns the end points of a DeepLab ResNet-v1 on preprocessed images.

    `units` is the number of bottlenecks in block1..3; block4 has three units with rates from `multi_grid`.
    """
    if output_stride is not None and output_stride % 4:
        raise ValueError("The output_stride needs to be a multiple of 4.")
    multi_grid = tuple(multi_grid) if multi_grid else (1, 1, 1)
    if len(multi_grid) != 3:
        raise ValueError("Expect multi_grid to have length 3.")
    prefix = scope + "."
    if beta:
        x = conv_bn(images, 64, 3, stride=2, name=prefix + "conv1_1", norm=norm, initializer=_INIT(),
                    explicit_padding=True)
        x = conv_bn(x, 64, 3, name=prefix + "conv1_2", norm=norm, initializer=_INIT())
        x = conv_bn(x, 128, 3, name=prefix + "conv1_3", norm=norm, initializer=_INIT())
    else:
        x = conv_bn(images, 64, 7, stride=2, name=prefix + "conv1", norm=norm, initializer=_INIT(),
                    explicit_padding=True)
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name=prefix + "pool1")(x)

    # (base depth, [stride per unit], [unit rate per unit]); the block stride sits on the last unit.
    blocks = [
        ("block1", 64, [1] * (units[0] - 1) + [2], [1] * units[0]),
        ("block2", 128, [1] * (units[1] - 1) + [2], [1] * units[1]),
        ("block3", 256, [1] * (units[2] - 1) + [2], [1] * units[2]),
        ("block4", 512, [1, 1, 1], list(multi_grid)),
    ]
    plan = atrous_plan([b[2] for b in blocks], None if output_stride is None else output_stride // 4)
    end_points = {}
    for (block, base, _, unit_rates), block_plan in zip(blocks, plan):
        for u, ((stride, rate), unit_rate) in enumerate(zip(block_plan, unit_rates)):
            x = _bottleneck(x, depth=base * 4, depth_bottleneck=base, stride=stride, rate=rate * unit_rate,
                            name=f"{prefix}{block}.unit_{u + 1}.bottleneck_v1", norm=norm,
                            end_points=end_points, prefix=prefix)
        end_points[block] = x
    return end_points


def _spec(name, units, beta):
    scope = name.replace("_beta", "")
    return BackboneSpec(
        name=name,
        scope=scope,
        preprocess="zero_mean_unit_range" if beta else "subtract_imagenet_mean",
        bn_decay=0.95,
        bn_epsilon=1e-5,
        root_stride=4,
        decoder_end_points={
            4: "block1/unit_2/bottleneck_v1/conv3",
            8: "block2/unit_3/bottleneck_v1/conv3",
            16: f"block3/unit_{units[2] - 1}/bottleneck_v1/conv3",
        },
        attention_end_points={8: "block1", 14: "block2", 15: "block3", 16: "block4"},
        build=lambda images, **kw: build_resnet(images, scope=scope, units=units, beta=beta, **kw),
    )


RESNET_V1_50 = _spec("resnet_v1_50", (3, 4, 6), beta=False)
RESNET_V1_50_BETA = _spec("resnet_v1_50_beta", (3, 4, 6), beta=True)
RESNET_V1_101 = _spec("resnet_v1_101", (3, 4, 23), beta=False)
RESNET_V1_101_BETA = _spec("resnet_v1_101_beta", (3, 4, 23), beta=True)
