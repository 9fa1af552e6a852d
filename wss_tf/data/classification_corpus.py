"""An ImageNet analog for the generated datasets: object-centric images with one class label each.

The DeepLab model zoo's backbones were trained on ImageNet, whose 1000 classes include VOC's 20 and many more.
This corpus plays that part for the generated segmentation datasets: every foreground class of both generated
families (synthetic_shapes, synthetic_objects) plus each family's extra kinds that no segmentation split holds,
one object per image, large and near the centre, on that family's cluttered backgrounds. It is drawn from its own
seed stream, apart from the segmentation images (no image is shared), with image-level labels only, and holds
several times more images than a segmentation pool.

Written once per parameter set into `output_dir` as `corpus.npz` (uint8 images [N, S, S, 3], int32 labels [N]) and
`corpus.json` (class names, parameters), the manifest last; a later call with the same parameters reuses it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

CORPUS_VERSION = 1
MANIFEST_FILE = "corpus.json"
DATA_FILE = "corpus.npz"
_STREAM = 7  # seed stream of the corpus, apart from the generators' train (1), val (2) and subset (3) streams


def families():
    """(family name, module) of every generated family whose classes the corpus holds."""
    from wss_tf.data import synthetic, synthetic_objects

    return (("synthetic_shapes", synthetic), ("synthetic_objects", synthetic_objects))


def corpus_classes() -> list[tuple[str, str, int]]:
    """(class name, family, index for the family's render_object) of every corpus class, in label order."""
    classes = []
    for family, module in families():
        names = list(module.CLASS_NAMES[1:]) + list(module.EXTRA_CLASS_NAMES)
        for offset, name in enumerate(names, start=1):
            classes.append((f"{family}/{name}", family, offset))
    return classes


def corpus_identity() -> dict:
    """What makes two corpora with the same seed and sizes differ: the corpus version, its classes, the renderers."""
    return {"version": CORPUS_VERSION, "classes": [c[0] for c in corpus_classes()],
            "generators": {name: module.GENERATOR_VERSION for name, module in families()}}


@dataclasses.dataclass(frozen=True)
class Corpus:
    images: np.ndarray  # uint8 [N, S, S, 3]
    labels: np.ndarray  # int32 [N]
    class_names: tuple[str, ...]
    seconds: float  # time it took to draw (0 when reused)
    reused: bool

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def generate_corpus(output_dir: str, *, seed: int = 0, images_per_class: int = 256,
                    image_size: int = 72) -> Corpus:
    """Draws (or reuses) the corpus in `output_dir`.

    Args:
        seed: the corpus seed; image k of class c is drawn from np.random.default_rng([seed, 7, c, k]).
        images_per_class: the same for every class (balanced, as ImageNet roughly is).
        image_size: square side of every image; training crops from it.
    """
    classes = corpus_classes()
    parameters = {"seed": int(seed), "images_per_class": int(images_per_class), "image_size": int(image_size),
                  **corpus_identity()}
    manifest_path = os.path.join(output_dir, MANIFEST_FILE)
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
        if manifest.get("parameters") == parameters and os.path.exists(os.path.join(output_dir, DATA_FILE)):
            with np.load(os.path.join(output_dir, DATA_FILE)) as data:
                return Corpus(data["images"], data["labels"], tuple(parameters["classes"]), 0.0, True)
    from wss_tf.data.records import Progress

    modules = dict(families())
    started = time.time()
    total = len(classes) * images_per_class
    images = np.zeros((total, image_size, image_size, 3), np.uint8)
    labels = np.zeros((total,), np.int32)
    progress = Progress(f"drawing the pretraining corpus ({len(classes)} classes)", total)
    for label, (_, family, index) in enumerate(classes):
        for k in range(images_per_class):
            rng = np.random.default_rng([int(seed), _STREAM, label, k])
            position = label * images_per_class + k
            images[position] = modules[family].render_object(rng, index, image_size, image_size)
            labels[position] = label
            progress.update()
    progress.done()
    os.makedirs(output_dir, exist_ok=True)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # the data below no longer matches it
    tmp = os.path.join(output_dir, DATA_FILE + ".incomplete.npz")
    np.savez(tmp, images=images, labels=labels)
    os.replace(tmp, os.path.join(output_dir, DATA_FILE))
    seconds = time.time() - started
    with open(manifest_path + ".incomplete", "w") as f:
        json.dump({"parameters": parameters, "seconds": round(seconds, 1), "images": total}, f, indent=2)
    os.replace(manifest_path + ".incomplete", manifest_path)
    return Corpus(images, labels, tuple(parameters["classes"]), seconds, False)
