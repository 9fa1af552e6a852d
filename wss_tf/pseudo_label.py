"""Pseudo labels from the weak view (train_wss.py `_build_pseudo_seg`): fuse, calibrate, sharpen."""
from __future__ import annotations

import dataclasses

import tensorflow as tf

PSEUDO_SOURCES = ("avg", "att")


@dataclasses.dataclass(frozen=True)
class PseudoLabelConfig:
    use_attention: bool = True  # False: decoder-only pseudo labels
    pseudo_src: str = "avg"  # "avg": fuse decoder and SGC; "att": SGC only
    logit_norm: bool = True  # one shared RMS normaliser before the softmaxes
    temperature: float = 0.5
    soft_pseudo_label: bool = True
    pseudo_label_threshold: float = 0.0  # 0 = off

    def __post_init__(self):
        if self.pseudo_src not in PSEUDO_SOURCES:
            raise ValueError(f"pseudo_src must be one of {PSEUDO_SOURCES}, got {self.pseudo_src!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


def rms(*tensors):
    """sqrt(mean of squares + 1e-8) over every element of all tensors together: one scalar per replica."""
    total = tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])
    count = tf.add_n([tf.cast(tf.size(t), tf.float32) for t in tensors])
    return tf.sqrt(total / count + 1e-8)


def sharpen(probs, temperature: float):
    """p^(1/T) / sum_c p^(1/T)."""
    powered = tf.pow(probs, 1.0 / temperature)
    return powered / tf.reduce_sum(powered, axis=-1, keepdims=True)


def fuse(decoder_logits, sgc_logits, config: PseudoLabelConfig):
    """Calibrated class probabilities of the weak view, before sharpening, [B,h,w,C].

    avg (default): 0.5 softmax(decoder / r) + 0.5 softmax(sgc / r), r = RMS over both logit maps together.
    att: softmax(sgc) (not normalised). use_attention=False: softmax(decoder).
    """
    decoder_logits = tf.cast(decoder_logits, tf.float32)
    if not config.use_attention:
        return tf.nn.softmax(decoder_logits)
    sgc_logits = tf.cast(sgc_logits, tf.float32)
    if config.pseudo_src == "att":
        return tf.nn.softmax(sgc_logits)
    if config.logit_norm:
        r = rms(decoder_logits, sgc_logits)
        decoder_logits, sgc_logits = decoder_logits / r, sgc_logits / r
    return 0.5 * tf.nn.softmax(decoder_logits) + 0.5 * tf.nn.softmax(sgc_logits)


def pseudo_label(decoder_logits, sgc_logits, config: PseudoLabelConfig):
    """(target, confident): the stop-gradient target (soft probabilities, or hard ids with soft_pseudo_label=False)
    and the confidence mask [B,h,w,1] (all ones unless pseudo_label_threshold > 0, applied after sharpening)."""
    probs = fuse(decoder_logits, sgc_logits, config)
    if config.soft_pseudo_label and config.temperature != 1.0:
        probs = sharpen(probs, config.temperature)
    confident = tf.ones_like(probs[..., :1])
    if config.pseudo_label_threshold > 0:
        confident = tf.cast(tf.reduce_max(probs, -1, keepdims=True) >= config.pseudo_label_threshold, tf.float32)
    target = probs if config.soft_pseudo_label else tf.argmax(probs, axis=-1, output_type=tf.int32)
    return tf.stop_gradient(target), tf.stop_gradient(confident)
