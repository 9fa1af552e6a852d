import numpy as np
import pytest

from deeplab import DeepLabConfig, official_variable_map
from wss_tf.model import PseudoSegModel

from test_checkpoint import _official_variables

SGC_VARIABLES = {  # compute_self_att_v2: scopes hyper_column/{key,query} and top-level pixel_normalization
    "hyper_column/key/weights": (1, 1, 3072, 128),
    "hyper_column/query/weights": (1, 1, 3072, 128),
    "pixel_normalization/weights": (1, 1, 21, 21),
    "pixel_normalization/BatchNorm/beta": (21,),
    "pixel_normalization/BatchNorm/moving_mean": (21,),
    "pixel_normalization/BatchNorm/moving_variance": (21,),
}


@pytest.mark.parametrize("variant", ["xception_65", "resnet_v1_101_beta"])
def test_pseudoseg_variables_carry_the_official_names(variant):
    model = PseudoSegModel(DeepLabConfig(variant, num_classes=21)).build_all()
    mapping = {n: tuple(v.shape) for n, v in official_variable_map(model).items()}
    official = {n: s for n, (s, _) in _official_variables(variant).items()}  # segmenter + classifier head
    assert mapping == {**official, **SGC_VARIABLES}  # both hypercolumns have 2048 + 1024 channels
    scope = model.spec.scope
    assert mapping[f"{scope}/logits/weights"] == (1, 1, 2048, 20)


def test_att_strides_must_end_at_the_final_feature():
    with pytest.raises(ValueError, match="include 16"):
        PseudoSegModel(DeepLabConfig("xception_tiny", num_classes=3), att_strides=(14, 15))
    model = PseudoSegModel(DeepLabConfig("xception_tiny", num_classes=3), att_strides=(14, 16))
    assert model.attention_end_points == ["exit_flow/block2", "middle_flow/block1"]


def test_use_attention_false_has_no_sgc():
    model = PseudoSegModel(DeepLabConfig("xception_tiny", num_classes=3), use_attention=False).build_all()
    assert model.sgc is None
    assert not any(n.startswith(("hyper_column", "pixel_normalization")) for n in official_variable_map(model))
    assert np.isfinite(model(np.zeros((1, 33, 33, 3), np.float32), training=False).numpy()).all()
