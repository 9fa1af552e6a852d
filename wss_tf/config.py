"""One training experiment as data: every official flag of train_sup.py / train_wss.py (same names, same
defaults unless noted), read once at the edge (flags or a JSON config file) and passed down."""
from __future__ import annotations

import dataclasses
import json
import typing
from typing import Optional

# TensorFlow is imported only when a config is made (below, lazily): the flags and --help never import it.


RUN_CONFIG_FILE = "config.json"  # the run's settings, written into train_logdir; eval/vis/export read the model's


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    mode: str = "wss"  # "wss" (train_wss.py) or "sup" (train_sup.py)
    # model (common.py)
    model_variant: str = "xception_65"
    output_stride: int = 16
    atrous_rates: Optional[tuple[int, ...]] = (6, 12, 18)
    multi_grid: Optional[tuple[int, ...]] = None
    decoder_output_stride: Optional[int] = 4
    aspp_convs_filters: int = 256
    decoder_filters: int = 256
    # data
    dataset: str = "pascal_voc_seg"
    dataset_dir: str = ""
    train_split: str = "train"
    train_split_cls: str = "train_aug"
    train_crop_size: tuple[int, int] = (513, 513)
    min_scale_factor: float = 0.5
    max_scale_factor: float = 2.0
    scale_factor_step_size: float = 0.25
    strong_augmentation: str = "jitter_cutout"
    cutout_pad_size: int = 50  # official constant; scale it with the crop on small crops
    # Scales the strong view's colour-jitter magnitudes (brightness 0.5, contrast 0.5, saturation 0.5, hue 0.25 at
    # 1.0, the official constants); 0 leaves cutout alone.
    color_jitter_strength: float = 1.0
    # optimisation
    train_logdir: str = ""
    training_number_of_steps: int = 30000
    train_batch_size: int = 64  # global, over all replicas (each replica: train_batch_size / replicas)
    num_clones: int = 0  # replicas; 0 = every local GPU, or one CPU replica
    optimizer: str = "momentum"
    learning_policy: str = "poly"
    base_learning_rate: float = 0.007  # train_sup.py's default is 1e-4 (see sup_defaults)
    decay_steps: float = 0.0
    end_learning_rate: float = 0.0
    learning_rate_decay_factor: float = 0.1
    learning_rate_decay_step: int = 2000
    learning_power: float = 0.9
    momentum: float = 0.9
    adam_learning_rate: float = 0.001
    adam_epsilon: float = 1e-8
    weight_decay: float = 4e-5
    slow_start_step: int = 0
    slow_start_learning_rate: float = 1e-4
    last_layer_gradient_multiplier: float = 1.0
    last_layers_contain_logits_only: bool = True
    fine_tune_batch_norm: bool = True
    sync_batch_norm: bool = False  # not in the official code: it never synchronises
    batch_norm_decay: Optional[float] = None  # official common flag, ignored there (hard-coded); None = official
    tf_initial_checkpoint: str = ""
    initialize_last_layer: bool = False
    # PseudoSeg (train_wss.py)
    weakly: bool = False
    soft_pseudo_label: bool = True
    pseudo_label_threshold: float = 0.0
    unlabeled_weight: float = 1.0
    att_strides: tuple[int, ...] = (15, 16)
    attention_dim: int = 128
    use_attention: bool = True
    pseudo_src: str = "avg"
    temperature: float = 0.5
    logit_norm: bool = True
    cls_with_cls: bool = True
    cam_weights: str = "official"  # "official": dropout-averaged kernel on labeled images; "kernel": plain kernel
    official_duplicate_passes: bool = False  # True: the official graph's second training-mode backbone pass on the
    # labeled images (classifier + SGC) and, with --weakly, on the weak view (classifier)
    # speed and numerics (not in the official code)
    precision: str = "float32"  # "mixed_bfloat16" or "mixed_float16" (dynamic loss scaling)
    jit_compile: bool = False  # XLA for the forward and backward passes; slower on CPU, for GPUs
    deterministic: bool = False  # op determinism: two runs of one command are bit-identical (slower kernels)
    skip_non_finite_steps: int = 0  # how many steps with a non-finite loss to skip before stopping (0: stop)
    skip_bad_records: bool = False  # check the training splits first and leave out records that fail (counted)
    # After the last step, re-estimate the batch-norm moving statistics over this many training-mode passes
    # without gradient on training crops (0: off, as the official code). See wss_tf/batch_norm_statistics.py.
    bn_reestimation_batches: int = 0
    # bookkeeping
    log_steps: int = 10
    save_interval_secs: int = 1200
    save_interval_steps: int = 0  # 0 = by time only
    save_summaries_secs: int = 180
    save_summaries_images: bool = True
    max_to_keep: int = 3  # <= 0: keep every checkpoint (the paper experiments evaluate them all for the best)
    seed: int = 0

    def __post_init__(self):
        check_types(self)
        check_ranges(self)
        if self.mode not in ("wss", "sup"):
            raise ValueError(f"mode must be 'wss' or 'sup', got {self.mode!r}")
        self.deeplab()  # model options fail here, before anything is built
        self.augment()
        self.pseudo_label()
        from wss_tf.precision import PRECISIONS

        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.training_number_of_steps <= 0:
            raise ValueError("training_number_of_steps must be positive")
        if not 0 <= self.color_jitter_strength <= 2:
            raise ValueError(f"color_jitter_strength must lie in [0, 2], got {self.color_jitter_strength}")

    def check_trainable(self) -> None:
        """What only training needs (eval, vis and export rebuild a model from a run's config without it)."""
        if self.mode == "wss" and 2 * self.cutout_pad_size >= min(self.train_crop_size):
            # The box is [c - pad, c + pad) around a uniform centre: at 2 * pad >= the crop it covers most or all of
            # every strong view, whose pixels then leave the consistency loss: PseudoSeg would silently train as
            # the supervised baseline.
            raise ValueError(
                f"cutout_pad_size {self.cutout_pad_size} makes a cutout box of up to {2 * self.cutout_pad_size} "
                f"pixels, not smaller than the train crop {self.train_crop_size[0]}x{self.train_crop_size[1]}: the "
                f"strong view would be mostly cut out and the consistency loss would see almost no pixel; scale "
                f"it with the crop (official: 50 at crop 513, so about crop / 10)")

    def deeplab(self, num_classes: int = 21):
        from deeplab import DeepLabConfig

        return DeepLabConfig(
            model_variant=self.model_variant, num_classes=num_classes, output_stride=self.output_stride,
            atrous_rates=self.atrous_rates, multi_grid=self.multi_grid,
            decoder_output_stride=self.decoder_output_stride, aspp_convs_filters=self.aspp_convs_filters,
            decoder_filters=self.decoder_filters, weight_decay=self.weight_decay,
            fine_tune_batch_norm=self.fine_tune_batch_norm, sync_batch_norm=self.sync_batch_norm,
            batch_norm_decay=self.batch_norm_decay)

    def augment(self):
        from deeplab import get_spec
        from wss_tf.data.augment import AugmentConfig

        return AugmentConfig(
            crop_size=tuple(self.train_crop_size), mean_pixel=get_spec(self.model_variant).mean_pixel,
            min_scale_factor=self.min_scale_factor, max_scale_factor=self.max_scale_factor,
            scale_factor_step_size=self.scale_factor_step_size, strong_augmentation=self.strong_augmentation,
            cutout_pad_size=self.cutout_pad_size, **{
                name: getattr(AugmentConfig, name) * self.color_jitter_strength
                for name in ("brightness", "contrast", "saturation", "hue")})

    def pseudo_label(self):
        from wss_tf.pseudo_label import PseudoLabelConfig

        return PseudoLabelConfig(
            use_attention=self.use_attention, pseudo_src=self.pseudo_src, logit_norm=self.logit_norm,
            temperature=self.temperature, soft_pseudo_label=self.soft_pseudo_label,
            pseudo_label_threshold=self.pseudo_label_threshold)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys are the official flag names")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted)


# Value ranges of the numeric fields, checked with the types (the flags' parsers check only types).
_POSITIVE = ("training_number_of_steps", "train_batch_size", "aspp_convs_filters", "decoder_filters",
             "attention_dim", "log_steps", "learning_rate_decay_step", "base_learning_rate",
             "adam_learning_rate", "adam_epsilon", "learning_power", "temperature", "min_scale_factor",
             "max_scale_factor", "slow_start_learning_rate", "last_layer_gradient_multiplier")
_NON_NEGATIVE = ("num_clones", "cutout_pad_size", "decay_steps", "end_learning_rate", "weight_decay",
                 "slow_start_step", "unlabeled_weight", "skip_non_finite_steps", "bn_reestimation_batches",
                 "save_interval_secs", "save_interval_steps", "save_summaries_secs", "scale_factor_step_size",
                 "seed", "learning_rate_decay_factor")
_UNIT_INTERVAL = ("momentum", "pseudo_label_threshold")
_SIZES = {"train_crop_size": 2}  # fixed-length sequences: (height, width)


def _type_error(name: str, hint, value) -> ValueError:
    return ValueError(f"config key {name!r} must be {_describe(hint)}, got {value!r} ({type(value).__name__})")


def _describe(hint) -> str:
    if typing.get_origin(hint) is typing.Union:
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        args = typing.get_args(hint)
        return f"a list of {'numbers' if args[0] is float else 'integers'}"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}[hint]


def _matches(hint, value) -> bool:
    if typing.get_origin(hint) is typing.Union:
        return any(_matches(a, value) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        return isinstance(value, tuple) and all(_matches(item, v) for v in value)
    if hint is type(None):
        return value is None
    if hint is float:  # JSON writes 1.0 as 1
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:  # bool is an int in Python, never in a config
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def check_types(config) -> None:
    """Every field against its annotation, naming the key: a JSON "false" (a string) or 4.5 for an integer is an
    error here, not a truthy string or a fractional batch later."""
    for name, hint in typing.get_type_hints(type(config)).items():
        value = getattr(config, name)
        if not _matches(hint, value):
            raise _type_error(name, hint, value)


def check_ranges(config) -> None:
    for name in _POSITIVE:
        if not getattr(config, name) > 0:
            raise ValueError(f"config key {name!r} must be positive, got {getattr(config, name)!r}")
    for name in _NON_NEGATIVE:
        if getattr(config, name) < 0:
            raise ValueError(f"config key {name!r} must be >= 0, got {getattr(config, name)!r}")
    for name in _UNIT_INTERVAL:
        if not 0 <= getattr(config, name) <= 1:
            raise ValueError(f"config key {name!r} must lie in [0, 1], got {getattr(config, name)!r}")
    for name, length in _SIZES.items():
        value = getattr(config, name)
        if len(value) != length or any(v <= 0 for v in value):
            raise ValueError(f"config key {name!r} must be {length} positive integers (height, width), got "
                             f"{list(value)}")


# train_sup.py's own defaults, where they differ from train_wss.py (spec 7.1).
SUP_DEFAULTS = dict(mode="sup", base_learning_rate=1e-4, initialize_last_layer=True,
                    last_layers_contain_logits_only=False, save_summaries_secs=600, save_summaries_images=False)
