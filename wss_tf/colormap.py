"""Label colour maps (DeepLab's get_dataset_colormap): pascal and cityscapes."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

CITYSCAPES = np.array([[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
                       [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
                       [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
                       [0, 80, 100], [0, 0, 230], [119, 11, 32]], np.uint8)


def pascal_colormap(size: int = 256) -> np.ndarray:
    """The PASCAL VOC palette: bits of the class id spread over R, G and B, most significant first."""
    colormap = np.zeros((size, 3), np.int64)
    ind = np.arange(size)
    for shift in reversed(range(8)):
        for channel in range(3):
            colormap[:, channel] |= ((ind >> channel) & 1) << shift
        ind >>= 3
    return colormap.astype(np.uint8)


def colormap(name: str) -> np.ndarray:
    if name == "pascal":
        return pascal_colormap()
    if name == "cityscapes":
        table = np.zeros((256, 3), np.uint8)
        table[:len(CITYSCAPES)] = CITYSCAPES
        return table
    raise ValueError(f"colormap must be pascal or cityscapes, got {name!r}")


def colorize(labels, name: str = "pascal"):
    """uint8 [..., 3] colours of integer labels (255 shows as the table's entry 255: white in pascal)."""
    table = tf.constant(colormap(name))
    return tf.gather(table, tf.clip_by_value(tf.cast(labels, tf.int32), 0, 255))
