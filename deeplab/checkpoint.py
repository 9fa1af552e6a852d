"""Official TF1 checkpoints <-> Keras variables, by the official variable names.

Every weight-owning layer is named after its slim scope ('/' written as '.'), so the mapping is a fixed rule
per layer type: Conv2D kernel -> `weights`, bias -> `biases`; DepthwiseConv2D kernel -> `depthwise_weights`;
BatchNorm -> `gamma`, `beta`, `moving_mean`, `moving_variance`. A layer type the rule does not know is an
error, so a new layer cannot silently fall out of the mapping.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from deeplab.layers import BatchNorm

_BATCH_NORM_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


_LEAF_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, BatchNorm)


def _weight_layers(layer) -> Iterable[keras.layers.Layer]:
    """Layers that own weights directly, through nested models and composite layers."""
    if isinstance(layer, _LEAF_TYPES):
        yield layer
        return
    children = layer.layers if isinstance(layer, keras.Model) else layer._layers
    for child in children:
        yield from _weight_layers(child)
    if not children and layer.weights:
        raise TypeError(f"no official variable names for layer {layer.name!r} of type {type(layer).__name__}")


def _official_names(layer) -> dict[str, object]:
    scope = layer.name.replace(".", "/")
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        names = {f"{scope}/depthwise_weights": layer.kernel}
        if layer.use_bias:
            names[f"{scope}/biases"] = layer.bias
        return names
    if isinstance(layer, keras.layers.Conv2D):
        names = {f"{scope}/weights": layer.kernel}
        if layer.use_bias:
            names[f"{scope}/biases"] = layer.bias
        return names
    return {f"{scope}/{w}": getattr(layer, w) for w in _BATCH_NORM_WEIGHTS if getattr(layer, w) is not None}


def official_variable_map(model) -> dict[str, keras.Variable]:
    """{official TF1 variable name: Keras variable} for every variable of `model` (nested models included)."""
    mapping: dict[str, keras.Variable] = {}
    for layer in _weight_layers(model):
        for name, var in _official_names(layer).items():
            if name in mapping:
                raise ValueError(f"two model variables map to the official name {name!r}")
            mapping[name] = var
    unmapped = {id(v) for v in model.weights} - {id(v) for v in mapping.values()}
    if unmapped:
        missing = [v.path for v in model.weights if id(v) in unmapped]
        raise ValueError(f"model variables without an official name: {missing[:5]}")
    return mapping


@dataclasses.dataclass
class LoadReport:
    """What a checkpoint load did: official names assigned, excluded, unused, and model variables left alone."""

    checkpoint: str
    loaded: list[str]
    excluded: list[str]
    unused: list[str]  # in the checkpoint, no model variable by that name (e.g. optimizer slots, EMA, 1001-way logits)
    uninitialized: list[str]  # model variables the checkpoint does not hold (e.g. ASPP/decoder from ImageNet)

    def summary(self, max_listed: int = 8) -> str:
        def listed(names):
            shown = ", ".join(names[:max_listed])
            return shown + (f", ... (+{len(names) - max_listed})" if len(names) > max_listed else "")

        lines = [f"loaded {len(self.loaded)} variables from {self.checkpoint}"]
        if self.excluded:
            lines.append(f"excluded by request ({len(self.excluded)}): {listed(self.excluded)}")
        if self.unused:
            lines.append(f"in the checkpoint but not in the model ({len(self.unused)}): {listed(self.unused)}")
        if self.uninitialized:
            lines.append(f"model variables not in the checkpoint, left as initialised ({len(self.uninitialized)}): "
                         f"{listed(self.uninitialized)}")
        return "\n".join(lines)


def logits_scopes(model) -> tuple[str, ...]:
    """The official `last_layers` when initialising training: seg logits and the classifier head."""
    return ("logits", f"{model.spec.scope}/logits")


def load_official_checkpoint(model, checkpoint: str, *, exclude_scopes: Sequence[str] = (),
                             require_all: bool = False) -> LoadReport:
    """Assigns variables of an official (TF1, slim-named) checkpoint to `model` by name.

    `checkpoint` is a checkpoint prefix (".../model.ckpt") or a directory with a `checkpoint` state file.
    `exclude_scopes` are name prefixes skipped as slim's `get_variables_to_restore(exclude=...)` skips them;
    pass `logits_scopes(model)` to leave the logits out, as the official `--tf_initial_checkpoint` init does.
    A shape mismatch, a checkpoint without a single variable of this backbone, or (with `require_all`) a
    model variable missing from the checkpoint is an error. Nothing is assigned unless every check passes.
    """
    try:
        reader = tf.train.load_checkpoint(checkpoint)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise FileNotFoundError(f"cannot read a TF checkpoint at {checkpoint!r}: {e}") from None
    ckpt_shapes = reader.get_variable_to_shape_map()
    mapping = official_variable_map(model)
    scope = model.spec.scope
    if not any(name.startswith(scope + "/") for name in ckpt_shapes):
        roots = sorted({n.split("/")[0] for n in ckpt_shapes if "/" in n})
        raise ValueError(f"checkpoint {checkpoint!r} holds no variables of backbone scope {scope!r} "
                         f"(model_variant {model.spec.name!r}); its top-level scopes are: {roots[:12]}")

    def excluded(name):
        return any(name.startswith(prefix) for prefix in exclude_scopes)

    assignments, excluded_names, uninitialized = [], [], []
    for name, var in sorted(mapping.items()):
        if excluded(name):
            excluded_names.append(name)
            continue
        if name not in ckpt_shapes:
            uninitialized.append(name)
            continue
        if tuple(ckpt_shapes[name]) != tuple(var.shape):
            raise ValueError(f"shape mismatch for {name!r}: checkpoint {tuple(ckpt_shapes[name])} vs model "
                             f"{tuple(var.shape)} (wrong model_variant, num_classes or architecture options?)")
        assignments.append((name, var))
    if require_all and uninitialized:
        raise ValueError(f"checkpoint {checkpoint!r} lacks {len(uninitialized)} model variables, e.g. "
                         f"{uninitialized[:5]}")
    for name, var in assignments:
        var.assign(reader.get_tensor(name).astype(np.dtype(var.dtype)))
    unused = sorted(set(ckpt_shapes) - set(mapping))
    return LoadReport(checkpoint, [n for n, _ in assignments], excluded_names, unused, uninitialized)


def save_official_checkpoint(model, prefix: str) -> str:
    """Writes the model's variables under their official names in the TF1 (V2 bundle) format.

    The result reads with `tf.train.load_checkpoint` and with a TF1 `tf.train.Saver` over a graph built by the
    official code, so weights can move both ways.
    """
    mapping = official_variable_map(model)
    names = sorted(mapping)
    directory = os.path.dirname(os.path.abspath(prefix))
    tf.io.gfile.makedirs(directory)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.convert_to_tensor(mapping[n]) for n in names])
    tf.compat.v1.train.update_checkpoint_state(directory, os.path.abspath(prefix))
    return prefix
