"""Label colour maps (DeepLab's get_dataset_colormap): pascal, cityscapes and ade20k.

Every map is a [256, 3] uint8 table indexed by class id, so any uint8 label (255 included) has a colour; entries a
dataset does not define are black.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

COLORMAP_TYPES = ("pascal", "cityscapes", "ade20k")

CITYSCAPES = np.array([[128, 64, 128], [244, 35, 232], [70, 70, 70], [102, 102, 156], [190, 153, 153],
                       [153, 153, 153], [250, 170, 30], [220, 220, 0], [107, 142, 35], [152, 251, 152],
                       [70, 130, 180], [220, 20, 60], [255, 0, 0], [0, 0, 142], [0, 0, 70], [0, 60, 100],
                       [0, 80, 100], [0, 0, 230], [119, 11, 32]], np.uint8)

# ADE20K (SceneParsing, 150 classes + "other" = 0), as DeepLab's create_ade20k_label_colormap: RRGGBB, ids 0..150,
# ten a line.
_ADE20K_HEX = (
    "000000 787878 b47878 06e6e6 503232 04c803 787850 8c8c8c cc05ff e6e6e6 "
    "04fa07 e005ff ebff07 96053d 787846 08ff33 ff0652 8fff8c ccff04 ff3307 "
    "cc4603 0066c8 3de6fa ff0633 0b66ff ff0747 ff09e0 0907e6 dcdcdc ff095c "
    "7009ff 08ffd6 07ffe0 ffb806 0aff47 ff290a 07ffff e0ff08 6608ff ff3d06 "
    "ffc207 ff7a08 00ff14 ff0829 ff0599 0633ff eb0cff a09614 00a3ff 8c8c8c "
    "fa0a0f 14ff00 1fff00 ff1f00 ffe000 99ff00 0000ff ff4700 00ebff 00adff "
    "1f00ff 0bc8c8 ff5200 00fff5 003dff 00ff70 00ff85 ff0000 ffa300 ff6600 "
    "c2ff00 008fff 33ff00 0052ff 00ff29 00ffad 0a00ff adff00 00ff99 ff5c00 "
    "ff00ff ff00f5 ff0066 ffad00 ff0014 ffb8b8 001fff 00ff3d 0047ff ff00cc "
    "00ffc2 00ff52 000aff 0070ff 3300ff 00c2ff 007aff 00ffa3 ff9900 00ff0a "
    "ff7000 8fff00 5200ff a3ff00 ffeb00 08b8aa 8500ff 00ff5c b800ff ff001f "
    "00b8ff 00d6ff ff0070 5cff00 00e0ff 70e0ff 46b8a0 a300ff 9900ff 47ff00 "
    "ff00a3 ffcc00 ff008f 00ffeb 85ff00 ff00eb f500ff ff007a fff500 0abed4 "
    "d6ff00 00ccff 1400ff ffff00 0099ff 0029ff 00ffcc 2900ff 29ff00 ad00ff "
    "00f5ff 4700ff 7a00ff 00ffb8 005cff b8ff00 0085ff ffd600 19c2c2 66ff00 "
    "5c00ff")
ADE20K = np.array([[int(c[i:i + 2], 16) for i in (0, 2, 4)] for c in _ADE20K_HEX.split()], np.uint8)


def pascal_colormap(size: int = 256) -> np.ndarray:
    """The PASCAL VOC palette: bits of the class id spread over R, G and B, most significant first."""
    colormap = np.zeros((size, 3), np.int64)
    ind = np.arange(size)
    for shift in reversed(range(8)):
        for channel in range(3):
            colormap[:, channel] |= ((ind >> channel) & 1) << shift
        ind >>= 3
    return colormap.astype(np.uint8)


def _padded(table: np.ndarray) -> np.ndarray:
    full = np.zeros((256, 3), np.uint8)
    full[:len(table)] = table
    return full


def colormap(name: str) -> np.ndarray:
    """The [256, 3] uint8 table of `name` (one of COLORMAP_TYPES)."""
    if name == "pascal":
        return pascal_colormap()
    if name == "cityscapes":
        return _padded(CITYSCAPES)
    if name == "ade20k":
        return _padded(ADE20K)
    raise ValueError(f"colormap must be one of {COLORMAP_TYPES}, got {name!r}")


def colorize(labels, name: str = "pascal"):
    """uint8 [..., 3] colours of integer labels (255 shows as the table's entry 255: white in pascal)."""
    table = tf.constant(colormap(name))
    return tf.gather(table, tf.clip_by_value(tf.cast(labels, tf.int32), 0, 255))


def colorize_array(labels: np.ndarray, name: str = "pascal") -> np.ndarray:
    """numpy version of `colorize`: uint8 [..., 3] colours of integer class ids in [0, 255]."""
    return colormap(name)[np.clip(np.asarray(labels, np.int64), 0, 255)]
