"""Re-estimating batch-norm moving statistics after training ("precise BN"; not in the official code).

The moving averages a short or noisy run leaves behind can be far from the statistics of the data: with a fast
decay and small batches they follow the last few batches, and in PseudoSeg they also follow the strongly augmented
(jittered, cut-out) training-mode passes. Inference normalises with them, so evaluation and export inherit the
noise. Re-estimation runs training-mode forward passes without gradient over batches of training images and sets
every batch norm's moving mean and variance to the average of its per-batch statistics.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterable

import keras
import numpy as np


def moving_statistics_layers(model) -> list:
    """The batch norms of `model` that normalise with batch statistics in training mode (and so can be
    re-estimated); fine_tune_batch_norm=False layers always use their moving averages and are left out."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, keras.layers.BatchNormalization) and getattr(layer, "use_batch_statistics", True)]


@contextlib.contextmanager
def _momentum(layers, value: float):
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = value
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum


def reestimate(layers: list, forward: Callable, batches: Iterable) -> int:
    """Sets each layer's moving mean and variance to the mean over `batches` of its batch statistics.

    Args:
        layers: batch norms to re-estimate (`moving_statistics_layers`).
        forward: runs one training-mode forward pass of a batch (its outputs are ignored). It must be traced
            (if at all) inside this call: the momentum is 0 while it runs, so each pass leaves exactly that batch's
            statistics in the moving averages, which are read back after every pass.
        batches: what `forward` takes, one per pass.
    Returns the number of passes.
    """
    sums = [[np.zeros(layer.moving_mean.shape, np.float64), np.zeros(layer.moving_variance.shape, np.float64)]
            for layer in layers]
    count = 0
    with _momentum(layers, 0.0):
        for batch in batches:
            forward(batch)
            for total, layer in zip(sums, layers):
                total[0] += np.asarray(layer.moving_mean.numpy(), np.float64)
                total[1] += np.asarray(layer.moving_variance.numpy(), np.float64)
            count += 1
    if count == 0:
        raise ValueError("no batches to re-estimate the batch-norm statistics on")
    for (mean, variance), layer in zip(sums, layers):
        layer.moving_mean.assign((mean / count).astype(layer.moving_mean.dtype))
        layer.moving_variance.assign((variance / count).astype(layer.moving_variance.dtype))
    return count
