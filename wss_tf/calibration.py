"""Confidence calibration of pseudo-label sources: binned reliability, expected calibration error (ECE).

A pixel's confidence is its top class probability and it is correct when that class is its label. Bins split
[0, 1] into `num_bins` equal intervals [k/n, (k+1)/n), the last one closed (confidence 1.0 falls in it). Per bin:
count n_b, mean confidence conf_b, accuracy acc_b; ECE = sum_b n_b / N |acc_b - conf_b|. `Reliability` keeps only
the per-bin sums, so a split streams through it batch by batch.

`source_statistics` turns `PseudoLabelInspector` outputs into (confidence, correct, known) maps at the logits grid
(1/4 resolution, where the consistency loss applies), the label nearest-resized as the training monitors do.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from wss_tf.cam import nearest_resize

# The sources compared, in report order: raw softmaxes of the two single sources, the fusion before sharpening,
# and the training target.
SOURCES = ("decoder", "sgc", "fused", "pseudo_label")
SOURCE_TITLES = {"decoder": "decoder softmax", "sgc": "SGC softmax", "fused": "fused (before sharpening)",
                 "pseudo_label": "sharpened pseudo label"}


@dataclasses.dataclass
class Reliability:
    """Streaming per-bin sums of pixel count, confidence and correctness."""

    num_bins: int = 15
    count: np.ndarray = None
    confidence_sum: np.ndarray = None
    correct_sum: np.ndarray = None

    def __post_init__(self):
        if self.num_bins < 1:
            raise ValueError(f"num_bins must be positive, got {self.num_bins}")
        zeros = np.zeros(self.num_bins)
        self.count = np.zeros(self.num_bins, np.int64) if self.count is None else np.asarray(self.count, np.int64)
        self.confidence_sum = zeros.copy() if self.confidence_sum is None else np.asarray(self.confidence_sum, float)
        self.correct_sum = zeros.copy() if self.correct_sum is None else np.asarray(self.correct_sum, float)

    def bin_index(self, confidence: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(confidence * self.num_bins).astype(np.int64), 0, self.num_bins - 1)

    def update(self, confidence, correct, mask=None) -> "Reliability":
        """Adds pixels: confidence in [0, 1], correct (bool or 0/1), optional mask (only nonzero pixels count)."""
        confidence = np.asarray(confidence, np.float64).ravel()
        correct = np.asarray(correct, np.float64).ravel()
        if mask is not None:
            keep = np.asarray(mask).ravel() != 0
            confidence, correct = confidence[keep], correct[keep]
        bins = self.bin_index(confidence)
        self.count += np.bincount(bins, minlength=self.num_bins)
        self.confidence_sum += np.bincount(bins, confidence, minlength=self.num_bins)
        self.correct_sum += np.bincount(bins, correct, minlength=self.num_bins)
        return self

    def merge(self, other: "Reliability") -> "Reliability":
        if other.num_bins != self.num_bins:
            raise ValueError("cannot merge reliabilities with different bin counts")
        return Reliability(self.num_bins, self.count + other.count, self.confidence_sum + other.confidence_sum,
                           self.correct_sum + other.correct_sum)

    @property
    def total(self) -> int:
        return int(self.count.sum())

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.num_bins + 1)

    @property
    def bin_confidence(self) -> np.ndarray:
        """Mean confidence per bin (NaN where empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.confidence_sum / self.count, np.nan)

    @property
    def bin_accuracy(self) -> np.ndarray:
        """Accuracy per bin (NaN where empty)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.correct_sum / self.count, np.nan)

    @property
    def accuracy(self) -> float:
        return float(self.correct_sum.sum() / self.total) if self.total else float("nan")

    @property
    def mean_confidence(self) -> float:
        return float(self.confidence_sum.sum() / self.total) if self.total else float("nan")

    @property
    def ece(self) -> float:
        """sum_b n_b/N |acc_b - conf_b| = sum_b |correct_b - confidence_b| / N."""
        if not self.total:
            return float("nan")
        return float(np.abs(self.correct_sum - self.confidence_sum).sum() / self.total)

    def to_dict(self) -> dict:
        edges = self.edges
        return {"pixels": self.total, "accuracy": self.accuracy, "mean_confidence": self.mean_confidence,
                "ece": self.ece, "num_bins": self.num_bins,
                "bins": [{"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": int(self.count[b]),
                          "confidence": _finite(self.bin_confidence[b]), "accuracy": _finite(self.bin_accuracy[b])}
                         for b in range(self.num_bins)]}


def _finite(value) -> float | None:
    return None if np.isnan(value) else float(value)


def source_probabilities(sources: dict) -> dict:
    """The probability maps [B,h,w,C] compared, from `PseudoLabelInspector` outputs (SGC absent without attention)."""
    probabilities = {"decoder": tf.nn.softmax(sources["decoder"]), "fused": sources["fused"],
                     "pseudo_label": sources["pseudo_label"]}
    if "sgc" in sources:
        probabilities["sgc"] = tf.nn.softmax(tf.cast(sources["sgc"], tf.float32))
    return {k: probabilities[k] for k in SOURCES if k in probabilities}


def source_statistics(sources: dict, label, ignore_label: int = 255) -> dict:
    """Per source, (confidence [B,h,w], correct [B,h,w] bool), and "known" [B,h,w] bool: pixels at the logits grid
    whose nearest-resized label is known (not `ignore_label`) and that are not padding."""
    probabilities = source_probabilities(sources)
    grid = tf.shape(sources["decoder"])[1:3]
    truth = tf.cast(nearest_resize(label, grid)[..., 0], tf.int64)
    out = {"known": (truth != ignore_label) & (sources["valid"][..., 0] > 0)}
    for name, p in probabilities.items():
        out[name] = (tf.reduce_max(p, axis=-1), tf.equal(tf.argmax(p, axis=-1), truth))
    return out


def plot_reliability(reliabilities: dict, path: str, title: str = "") -> str:
    """Reliability diagrams, one column per source: accuracy per confidence bin (bars, each bin's mean confidence
    marked) against the diagonal (ECE in the title), and under it the pixel count per bin (log scale). A PNG
    (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = [s for s in SOURCES if s in reliabilities]
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 5.4), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.2]})
    for column, name in enumerate(names):
        rel = reliabilities[name]
        edges, width = rel.edges, 1.0 / rel.num_bins
        top, bottom = axes[0, column], axes[1, column]
        accuracy = np.nan_to_num(rel.bin_accuracy)
        top.bar(edges[:-1], accuracy, width=width, align="edge", color="tab:blue", edgecolor="black",
                linewidth=0.5, label="accuracy")
        filled = rel.count > 0
        top.plot((edges[:-1] + width / 2)[filled], rel.bin_confidence[filled], "_", color="tab:red",
                 markersize=120 * width, markeredgewidth=2, label="mean confidence")
        top.plot([0, 1], [0, 1], "k--", linewidth=1)
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_title(f"{SOURCE_TITLES.get(name, name)}\nECE {rel.ece:.4f}, acc {rel.accuracy:.3f}", fontsize=9)
        top.set_ylabel("accuracy" if column == 0 else "")
        if column == 0:
            top.legend(loc="upper left", fontsize=7)
        bottom.bar(edges[:-1], np.maximum(rel.count, 0), width=width, align="edge", color="grey", edgecolor="black",
                   linewidth=0.5)
        if rel.count.any():
            bottom.set_yscale("log")
            bottom.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        bottom.set_xlim(0, 1)
        bottom.set_xlabel("confidence")
        bottom.set_ylabel("pixels" if column == 0 else "")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
