import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from deeplab import BACKBONES, DeepLabConfig, DeepLabV3Plus, official_variable_map
from deeplab.backbones.common import Preprocess

RESNETS = ["resnet_v1_50", "resnet_v1_50_beta", "resnet_v1_101", "resnet_v1_101_beta"]


def _symbolic_shapes(model, size):
    outputs = model(keras.Input(batch_shape=(1, size, size, 3)), training=False)
    return {k: tuple(v.shape) for k, v in outputs.items()}


def _official_end_point_shapes(variant):
    path = pathlib.Path(__file__).parent / "fixtures" / "official" / f"{variant}_end_points.tsv"
    rows = (line.split("\t") for line in path.read_text().splitlines())
    return {name.split("/", 1)[1]: tuple(int(s) for s in shape.split(",")) for name, shape in rows}


@pytest.mark.parametrize("variant", ["xception_65"] + RESNETS)
def test_official_shapes_at_513(variant, deeplab_model):
    spec = BACKBONES[variant]
    official = _official_end_point_shapes(variant)  # batch 4, 513x513, output stride 16
    for output_stride, grid in ((16, 33), (8, 65)):
        rates = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
        options = {} if output_stride == 16 else {"output_stride": 8, "atrous_rates": rates}
        model = deeplab_model(variant, num_classes=21, **options)
        shapes = _symbolic_shapes(model, 513)
        assert shapes["logits"] == (1, 129, 129, 21)
        for key in (15, 16):  # the end points PseudoSeg's CAM and SGC read
            assert shapes[spec.attention_end_points[key]][1:3] == (grid, grid), (variant, output_stride)
        assert shapes[spec.decoder_end_points[4]][1:3] == (129, 129)
        if output_stride == 16:
            end_points = {k: v for k, v in shapes.items() if k != "logits"}
            assert end_points == {k: (1,) + official[k][1:] for k in end_points}
    assert shapes[spec.final_end_point][-1] == 2048


def test_output_stride_32_and_no_decoder():
    model = DeepLabV3Plus(DeepLabConfig("xception_65", output_stride=32, atrous_rates=(3, 6, 9)))
    shapes = _symbolic_shapes(model, 513)
    assert shapes["exit_flow/block2"] == (1, 17, 17, 2048) and shapes["logits"] == (1, 129, 129, 21)
    plain = DeepLabV3Plus(DeepLabConfig("xception_tiny", decoder_output_stride=None))
    assert _symbolic_shapes(plain, 513)["logits"] == (1, 33, 33, 21)


def test_tiny_forward_modes():
    model = DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=5, aspp_convs_filters=32, decoder_filters=32))
    rng = np.random.RandomState(0)
    images = rng.uniform(0, 255, (2, 97, 97, 3)).astype(np.float32)
    logits = model(images, training=False)["logits"].numpy()
    assert logits.shape == (2, 25, 25, 5) and np.isfinite(logits).all() and logits.std() > 0
    # inference mode: deterministic, and an image's output does not depend on its batch mates
    np.testing.assert_allclose(model(images, training=False)["logits"], logits, atol=1e-6)
    np.testing.assert_allclose(model(images[:1], training=False)["logits"][0], logits[0], atol=1e-4)
    # training mode: batch statistics and dropout, so batch mates matter
    trained = model(images, training=True)["logits"].numpy()
    assert np.abs(trained - logits).max() > 1e-3
    alone = model(images[:1], training=True)["logits"].numpy()
    assert np.abs(alone[0] - trained[0]).max() > 1e-3


def test_weight_decay_has_slim_semantics():
    """sum(model.losses) = wd * sum(w^2) / 2 over conv kernels; no depthwise kernel, batch norm or bias."""
    wd = 4e-5
    model = DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=3, weight_decay=wd))
    regularized = [v for n, v in official_variable_map(model).items()
                   if n.endswith("/weights") and not n.endswith("depthwise_weights")]
    expected = wd * sum(float(np.sum(np.square(v.numpy()))) for v in regularized) / 2
    got = float(tf.add_n(model.losses))
    assert len(model.losses) == len(regularized)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("variant", sorted(BACKBONES))
def test_padding_pixel_normalises_to_zero(variant):
    spec = BACKBONES[variant]
    out = Preprocess(spec.preprocess)(np.array(spec.mean_pixel, np.float32).reshape(1, 1, 1, 3))
    np.testing.assert_allclose(out, 0, atol=1e-6)


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown model_variant 'xception_99'"):
        DeepLabConfig("xception_99")
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32"):
        DeepLabConfig(output_stride=12)
    with pytest.raises(ValueError, match="decoder_output_stride"):
        DeepLabConfig(output_stride=8, decoder_output_stride=8)
    with pytest.raises(ValueError, match="multi_grid"):
        DeepLabConfig("resnet_v1_101", multi_grid=(1, 2))


@pytest.mark.parametrize("variant, backbone_bn", [("xception_tiny", (0.9997, 1e-3)), ("resnet_v1_50", (0.95, 1e-5))])
def test_batch_norm_decay_and_epsilon_per_part(variant, backbone_bn, deeplab_model):
    """feature_extractor.py: xception 0.9997/1e-3, resnet 0.95/1e-5; model.py ASPP and decoder 0.9997/1e-5."""
    from deeplab.layers import BatchNorm

    model = deeplab_model(variant, num_classes=21)
    scope = model.spec.scope
    found = {}
    for layer in model.backbone.layers + model.layers:
        if isinstance(layer, BatchNorm):
            part = "backbone" if layer.name.startswith(scope + ".") else "head"
            found.setdefault(part, set()).add((layer.momentum, layer.epsilon))
    assert found == {"backbone": {backbone_bn}, "head": {(0.9997, 1e-5)}}
