"""DeepLab's aligned Xception (core/xception.py): xception_65 and the small `xception_tiny` for tests and demos."""
from __future__ import annotations

import dataclasses

import keras

from deeplab.backbones.common import BackboneSpec, atrous_plan
from deeplab.layers import NormParams, conv_bn, depthwise_bn, truncated_normal

_INIT_STDDEV = 0.09  # xception_arg_scope weights_initializer


@dataclasses.dataclass(frozen=True)
class XceptionBlock:
    scope: str  # e.g. "entry_flow/block1"
    depths: tuple[int, int, int]
    skip: str  # "conv" | "sum" | "none"
    activation_in_separable_conv: bool
    num_units: int
    stride: int
    uses_multi_grid: bool = False


def _xception_blocks(entry, middle_depth, middle_units, exit1, exit2):
    return (
        XceptionBlock("entry_flow/block1", (entry[0],) * 3, "conv", False, 1, 2),
        XceptionBlock("entry_flow/block2", (entry[1],) * 3, "conv", False, 1, 2),
        XceptionBlock("entry_flow/block3", (entry[2],) * 3, "conv", False, 1, 2),
        XceptionBlock("middle_flow/block1", (middle_depth,) * 3, "sum", False, middle_units, 1),
        XceptionBlock("exit_flow/block1", exit1, "conv", False, 1, 2),
        XceptionBlock("exit_flow/block2", exit2, "none", True, 1, 1, uses_multi_grid=True),
    )


XCEPTION_65_BLOCKS = _xception_blocks((128, 256, 728), 728, 16, (728, 1024, 1024), (1536, 1536, 2048))
XCEPTION_65_STEM = (32, 64)
# Same topology and end-point names, about 1/10 of the channels and 2 middle units: fast on a CPU.
XCEPTION_TINY_BLOCKS = _xception_blocks((16, 24, 48), 48, 2, (48, 64, 64), (96, 96, 128))
XCEPTION_TINY_STEM = (8, 16)


def _separable_conv(x, depth, *, stride, rate, activation_inside, name, norm):
    """xception_module's `_separable_conv`: ReLU before the conv, or inside it after each batch norm."""
    if not activation_inside:
        x = keras.layers.ReLU(name=name + ".pre_relu")(x)
    init = truncated_normal(_INIT_STDDEV)
    x = depthwise_bn(x, 3, name=name + "_depthwise", norm=norm, initializer=init, stride=stride, rate=rate,
                     activation=activation_inside, explicit_padding=True)
    return conv_bn(x, depth, 1, name=name + "_pointwise", norm=norm, initializer=init,
                   activation=activation_inside)


def _xception_module(x, block: XceptionBlock, *, stride, rate, unit_rates, name, norm, end_points, prefix):
    residual = x
    for i in range(3):
        conv_name = f"{name}.separable_conv{i + 1}"
        residual = _separable_conv(residual, block.depths[i], stride=stride if i == 2 else 1,
                                   rate=rate * unit_rates[i], activation_inside=block.activation_in_separable_conv,
                                   name=conv_name, norm=norm)
        end_points[conv_name[len(prefix):].replace(".", "/") + "_pointwise"] = residual
    if block.skip == "conv":
        shortcut = conv_bn(x, block.depths[-1], 1, stride=stride, name=name + ".shortcut", norm=norm,
                           initializer=truncated_normal(_INIT_STDDEV), activation=False)
        return keras.layers.Add(name=name + ".add")([residual, shortcut])
    if block.skip == "sum":
        return keras.layers.Add(name=name + ".add")([residual, x])
    return residual


def build_xception(images, *, scope, stem, blocks, output_stride, multi_grid, norm: NormParams):
    """Returns the end points (relative official names) of an aligned Xception on preprocessed images."""
    if output_stride is not None and output_stride % 2:
        raise ValueError("The output_stride needs to be a multiple of 2.")
    prefix = scope + "."
    init = truncated_normal(_INIT_STDDEV)
    end_points = {}
    x = conv_bn(images, stem[0], 3, stride=2, name=prefix + "entry_flow.conv1_1", norm=norm, initializer=init,
                explicit_padding=True)
    x = conv_bn(x, stem[1], 3, name=prefix + "entry_flow.conv1_2", norm=norm, initializer=init)
    plan = atrous_plan([[b.stride] * b.num_units for b in blocks],
                       None if output_stride is None else output_stride // 2)
    unit_rates = tuple(multi_grid) if multi_grid else (1, 1, 1)
    if len(unit_rates) != 3:
        raise ValueError("Expect three elements in multi_grid (unit_rate_list).")
    for block, block_plan in zip(blocks, plan):
        for u, (stride, rate) in enumerate(block_plan):
            name = f"{prefix}{block.scope.replace('/', '.')}.unit_{u + 1}.xception_module"
            x = _xception_module(x, block, stride=stride, rate=rate,
                                 unit_rates=unit_rates if block.uses_multi_grid else (1, 1, 1),
                                 name=name, norm=norm, end_points=end_points, prefix=prefix)
        end_points[block.scope] = x
    return end_points


def _spec(name, stem, blocks):
    return BackboneSpec(
        name=name,
        scope=name,
        preprocess="zero_mean_unit_range",
        bn_decay=0.9997,
        bn_epsilon=1e-3,
        root_stride=2,
        decoder_end_points={
            4: "entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise",
            8: "entry_flow/block3/unit_1/xception_module/separable_conv2_pointwise",
            16: "exit_flow/block1/unit_1/xception_module/separable_conv2_pointwise",
        },
        attention_end_points={
            4: "entry_flow/block1",
            8: "entry_flow/block2",
            13: "entry_flow/block3",
            14: "middle_flow/block1",
            15: "exit_flow/block1",
            16: "exit_flow/block2",
        },
        build=lambda images, **kw: build_xception(images, scope=name, stem=stem, blocks=blocks, **kw),
    )


XCEPTION_65 = _spec("xception_65", XCEPTION_65_STEM, XCEPTION_65_BLOCKS)
XCEPTION_TINY = _spec("xception_tiny", XCEPTION_TINY_STEM, XCEPTION_TINY_BLOCKS)
