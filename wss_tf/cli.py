"""absl flags for every TrainConfig field, under the official flag names, plus --config (a JSON experiment).

Precedence: the script's defaults < the --config file < flags given on the command line. Sequence flags take
the official repeated form (--atrous_rates=6 --atrous_rates=12 --atrous_rates=18) or a comma list (6,12,18).
"""
from __future__ import annotations

import dataclasses
import json
import os
import typing

from absl import flags

from wss_tf.config import RUN_CONFIG_FILE, TrainConfig
from wss_tf.flag_help import HELP, grouped_listing

_SEQUENCE_FIELDS = {f.name for f in dataclasses.fields(TrainConfig) if "tuple" in str(f.type)}
_OPTIONAL = {"decoder_output_stride": int, "batch_norm_decay": float}  # 'none' switches them off


# The model half of a run's settings: what eval, vis, export and predict need to rebuild the trained network.
MODEL_FIELDS = ("model_variant", "output_stride", "atrous_rates", "multi_grid", "decoder_output_stride",
                "aspp_convs_filters", "decoder_filters", "attention_dim", "att_strides", "dataset")


def define_train_flags(defaults: dict | None = None, flag_values=flags.FLAGS, fields=None) -> None:
    """Flags for every TrainConfig field (or only `fields`), with --config unless a subset is asked for."""
    defaults = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **(defaults or {})}
    fv = flag_values
    if fields is None:
        flags.DEFINE_string("config", None, "JSON file with an experiment's settings (keys = these flag names)",
                            flag_values=fv)
    for field in dataclasses.fields(TrainConfig):
        if fields is not None and field.name not in fields:
            continue
        name, default = field.name, defaults[field.name]
        help_text = HELP[name]
        if name in _SEQUENCE_FIELDS:
            value = None if default is None else [str(v) for v in default]
            flags.DEFINE_multi_string(name, value, help_text + "; repeat the flag or give a comma list", flag_values=fv)
        elif name in _OPTIONAL:
            flags.DEFINE_string(name, None if default is None else str(default), help_text + "; 'none' = off", flag_values=fv)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text, flag_values=fv)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_text, flag_values=fv)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_text, flag_values=fv)
        else:
            flags.DEFINE_string(name, default, help_text, flag_values=fv)


def train_usage(doc: str, defaults: dict | None = None) -> str:
    """An app's docstring followed by every training flag by group: what its --help prints (absl prints the
    main module's docstring, and would list only flags the app module defines itself)."""
    values = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **(defaults or {})}
    return doc + grouped_listing(values)


def _convert(name: str, value):
    if value is None:
        return None
    if name in _SEQUENCE_FIELDS:
        items = [p for v in value for p in str(v).split(",") if p.strip()]
        if not items or items == ["none"]:
            return None
        hint = typing.get_type_hints(TrainConfig)[name]
        cast = float if "float" in str(hint) else int
        return tuple(cast(p) for p in items)
    if name in _OPTIONAL:
        return None if str(value).lower() in ("none", "") else _OPTIONAL[name](value)
    return value


def config_from_flags(flag_values=flags.FLAGS, defaults: dict | None = None) -> TrainConfig:
    values = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    values.update(defaults or {})
    if flag_values.config:
        with open(flag_values.config) as f:
            values = dataclasses.asdict(TrainConfig.from_dict({**values, **json.load(f)}))
    for field in dataclasses.fields(TrainConfig):
        if field.name in flag_values and flag_values[field.name].present:
            values[field.name] = _convert(field.name, flag_values[field.name].value)
    return TrainConfig(**values)


def define_model_flags(flag_values=flags.FLAGS) -> None:
    """The model flags of eval.py / vis.py (official names); unset ones come from the training run's config."""
    define_train_flags(flag_values=flag_values, fields=MODEL_FIELDS)


def model_config_from_flags(checkpoint: str, flag_values=flags.FLAGS) -> TrainConfig:
    """The trained model's settings: official defaults < the run's config.json beside `checkpoint` (a checkpoint
    directory or file; written by the trainer) < model flags given on the command line."""
    from wss_tf.inference import resolve_checkpoint

    resolve_checkpoint(checkpoint)  # no checkpoint there: say so, before the defaults mislead about the dataset
    values = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    run_config = find_run_config(checkpoint)
    if run_config:
        with open(run_config) as f:
            saved = json.load(f)
        values.update({k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in MODEL_FIELDS})
    for name in MODEL_FIELDS:
        if flag_values[name].present:
            values[name] = _convert(name, flag_values[name].value)
    return TrainConfig(**values)


def find_run_config(checkpoint: str) -> str | None:
    directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
    path = os.path.join(directory, RUN_CONFIG_FILE)
    return path if os.path.exists(path) else None


def parse_floats(values) -> tuple[float, ...]:
    """A multi flag given repeated (--eval_scales=0.5 --eval_scales=1) or as a comma list (0.5,1)."""
    return tuple(float(p) for v in values for p in str(v).split(",") if p.strip())
