"""DeepLabv3+ in Keras 3, faithful to tensorflow/models research/deeplab. Knows nothing of PseudoSeg."""
from deeplab.backbones import BACKBONES, build_backbone, get_spec
from deeplab.checkpoint import (LoadReport, load_official_checkpoint, logits_scopes, official_variable_map,
                                save_official_checkpoint)
from deeplab.config import DeepLabConfig
from deeplab.layers import resize_bilinear, scale_dimension
from deeplab.model import DeepLabV3Plus

__all__ = [
    "BACKBONES", "DeepLabConfig", "DeepLabV3Plus", "LoadReport", "build_backbone", "get_spec",
    "load_official_checkpoint", "logits_scopes", "official_variable_map", "resize_bilinear",
    "save_official_checkpoint", "scale_dimension",
]
