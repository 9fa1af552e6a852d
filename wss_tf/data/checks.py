"""Input checks shared by the dataset builders (and the class-id check shared with `validate`).

Every failure raises a ValueError or FileNotFoundError whose message names the offending file (and the split
list when one is involved), so a broken dataset is fixed at the file rather than found later in training.
"""
from __future__ import annotations

import io
import os
from typing import Iterable, Optional, Sequence

import numpy as np
from PIL import Image

from wss_tf.data.records import IGNORE_LABEL, Record, encode_png

MAX_SHOWN = 5  # how many offending ids a message lists


def _show(items: Sequence, limit: int = MAX_SHOWN) -> str:
    shown = ", ".join(str(i) for i in list(items)[:limit])
    return shown + (", ..." if len(items) > limit else "")


def read_image(path: str) -> tuple[bytes, str, int, int]:
    """(encoded bytes, "jpeg"|"png", height, width) of an image file, ready for a record.

    JPEG and PNG files whose pixels are RGB or grayscale are copied byte for byte (the record reader decodes
    them with 3 channels, which turns grayscale into RGB); other modes (CMYK, RGBA, palette, 16-bit ...) and
    other formats are converted to RGB and re-encoded as PNG. A file that cannot be fully decoded raises
    ValueError naming it.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes every pixel: catches truncated and corrupt files
            fmt, mode, (width, height) = image.format, image.mode, image.size
            if fmt in ("JPEG", "PNG") and mode in ("RGB", "L"):
                return data, "jpeg" if fmt == "JPEG" else "png", height, width
            rgb = image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"unreadable or corrupt image {path}: {e}") from e
    return encode_png(np.asarray(rgb)), "png", height, width


def read_mask(path: str) -> np.ndarray:
    """A mask file as a uint8 [H, W] array of class ids.

    Single-channel PNGs are their own class ids; for palette PNGs (PASCAL VOC's SegmentationClass) the palette
    INDEX is the class id (not the colour). An RGB mask is accepted only when it is grey (R == G == B);
    colour-coded masks must be converted to ids first.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"unreadable or corrupt mask {path}: {e}") from e
    if mode in ("P", "L", "1"):
        return array.astype(np.uint8)
    if mode.startswith("I"):  # 16/32-bit greyscale
        if array.size and (array.min() < 0 or array.max() > 255):
            bad = np.unique(array[(array < 0) | (array > 255)])
            raise ValueError(f"mask {path} has class ids outside 0..255: {_show(bad.tolist())}")
        return array.astype(np.uint8)
    if mode in ("RGB", "RGBA", "LA"):
        channels = array[..., :3] if mode != "LA" else array[..., :1]
        if all(np.array_equal(channels[..., 0], channels[..., c]) for c in range(channels.shape[-1])):
            return channels[..., 0].astype(np.uint8)
    raise ValueError(f"mask {path} is a {mode} image: masks must be single-channel class ids or a palette PNG "
                     f"whose indices are the class ids (convert colour-coded masks to ids first)")


def bad_class_ids(mask: np.ndarray, num_classes: int) -> list[int]:
    """Ids in `mask` that are neither a class (< num_classes) nor the ignore label 255."""
    ids = np.unique(mask)
    return [int(i) for i in ids if i >= num_classes and i != IGNORE_LABEL]


def check_mask(mask: np.ndarray, path: str, height: int, width: int, num_classes: int,
               image_path: Optional[str] = None) -> None:
    """Mask size equals the image size; every id is a class or 255."""
    if mask.shape[:2] != (height, width):
        raise ValueError(f"mask {path} is {mask.shape[0]}x{mask.shape[1]} (HxW) but its image "
                         f"{image_path or ''} is {height}x{width}")
    bad = bad_class_ids(mask, num_classes)
    if bad:
        raise ValueError(f"mask {path} has class ids {_show(bad, 20)} >= num_classes={num_classes} "
                         f"(255 is the only id allowed beyond the classes: it means ignore)")


def check_split_ids(ids: Sequence[str], available: Iterable[str] | set, list_name: str, where: str) -> None:
    """Every id of split list `list_name` is in the dataset (`available`, found in `where`)."""
    available = available if isinstance(available, (set, frozenset, dict)) else set(available)
    missing = [i for i in ids if i not in available]
    if missing:
        raise ValueError(f"split list {list_name}: {len(missing)} of {len(ids)} ids are not in the dataset "
                         f"({where}); first missing: {_show(missing)}")


def check_files_exist(paths: Sequence[str], what: str, list_name: str, hint: str = "") -> None:
    """All files exist, else one FileNotFoundError naming the first few and the split list needing them."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} {what} files needed by split list {list_name} are missing; "
                                f"first: {_show(missing)}{hint}")


def labeled_record(filename: str, image_path: str, mask: np.ndarray | str, num_classes: int,
                   mask_source: Optional[str] = None) -> Record:
    """A checked record from an image file and its mask: a mask file (read with read_mask) or an array of ids,
    which `mask_source` describes in error messages."""
    image, fmt, height, width = read_image(image_path)
    mask_path = mask if isinstance(mask, str) else (mask_source or f"(mask of {image_path})")
    array = read_mask(mask) if isinstance(mask, str) else mask
    check_mask(array, mask_path, height, width, num_classes, image_path)
    return Record(filename, image, fmt, height, width, encode_png(np.ascontiguousarray(array, np.uint8)))


def unlabeled_record(filename: str, image_path: str) -> Record:
    """A record with an all-255 (ignore everywhere) mask, for an image without annotation."""
    image, fmt, height, width = read_image(image_path)
    return Record(filename, image, fmt, height, width,
                  encode_png(np.full((height, width), IGNORE_LABEL, np.uint8)))


def shard_count(num_shards: int, num_records: int) -> int:
    """No more shards than records (no empty shard files), at least one."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    return max(1, min(num_shards, num_records))


def check_split_name(name: str) -> str:
    """A split name usable in shard names: readers find shards with the glob `{split}-*`, so a "-" in a name
    would make split "a" also pick up the shards of split "a-b"."""
    if not name or any(c in name for c in "-/\\*?[] \t") or name.startswith("."):
        raise ValueError(f"split name {name!r} cannot name record shards (found with the glob '{{split}}-*'): use "
                         f"letters, digits and '_' (e.g. {name.replace('-', '_').replace('/', '_')!r})")
    return name


def split_name(split: str) -> str:
    """Output name of a split given as a list name or a path to a .txt list."""
    return check_split_name(os.path.splitext(os.path.basename(split))[0] if split.endswith(".txt") else split)
