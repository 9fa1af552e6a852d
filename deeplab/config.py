"""DeepLabv3+ model options (the model half of the official common.py flags), checked once at build time."""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

from deeplab.backbones import get_spec


# DeepLab's ASPP rates (common.py: 6,12,18 at output stride 16, doubled at 8); the same rates at another stride
# would look at a different context, a mistake rather than a choice.
_STANDARD_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


@dataclasses.dataclass(frozen=True)
class DeepLabConfig:
    model_variant: str = "xception_65"
    num_classes: int = 21
    output_stride: int = 16
    atrous_rates: Optional[Sequence[int]] = (6, 12, 18)
    multi_grid: Optional[Sequence[int]] = None
    decoder_output_stride: Optional[int] = 4
    aspp_convs_filters: int = 256
    decoder_filters: int = 256
    add_image_level_feature: bool = True
    weight_decay: float = 4e-5
    fine_tune_batch_norm: bool = True
    sync_batch_norm: bool = False
    # None = the official decays (0.9997 xception and ASPP/decoder, 0.95 ResNet). Short schedules need a faster
    # one: after n steps the moving averages have moved 1 - decay^n of the way (14% after 500 steps at 0.9997).
    batch_norm_decay: Optional[float] = None

    def __post_init__(self):
        spec = get_spec(self.model_variant)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2 (background + one class), got {self.num_classes}")
        if self.output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {self.output_stride}")
        if self.output_stride % spec.root_stride:
            raise ValueError(f"{self.model_variant}: output_stride must be a multiple of {spec.root_stride}")
        if self.decoder_output_stride is not None:
            if self.decoder_output_stride not in spec.decoder_end_points:
                raise ValueError(f"{self.model_variant} has no decoder end point at stride "
                                 f"{self.decoder_output_stride}; choose from {sorted(spec.decoder_end_points)}")
            if self.decoder_output_stride >= self.output_stride:
                raise ValueError(f"decoder_output_stride ({self.decoder_output_stride}) must be below "
                                 f"output_stride ({self.output_stride})")
        if self.multi_grid is not None and len(self.multi_grid) != 3:
            raise ValueError(f"multi_grid needs three rates, got {list(self.multi_grid)}")
        if self.batch_norm_decay is not None and not 0 < self.batch_norm_decay < 1:
            raise ValueError(f"batch_norm_decay must be in (0, 1), got {self.batch_norm_decay}")
        if self.atrous_rates is not None and any(r < 1 for r in self.atrous_rates):
            raise ValueError(f"atrous_rates must be positive, got {list(self.atrous_rates)}")
        rates = tuple(self.atrous_rates or ())
        for stride, standard in _STANDARD_RATES.items():
            if rates == standard and stride != self.output_stride:
                expected = _STANDARD_RATES.get(self.output_stride)
                raise ValueError(
                    f"atrous_rates {list(rates)} are DeepLab's rates for output_stride {stride}, but output_stride is "
                    f"{self.output_stride}: the rates scale with 1/output_stride"
                    + (f"; use --atrous_rates={','.join(map(str, expected))}" if expected else ""))

    @property
    def spec(self):
        return get_spec(self.model_variant)
