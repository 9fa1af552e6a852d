"""A second generated segmentation dataset ("synthetic_objects"), of another family than synthetic_shapes, written
as a PASCAL VOC tree and built into records by wss_tf.data.build_voc.

Each image is an outdoor or indoor scene with a few composite objects of seven classes on it, each object made of
parts, each part with a typical material in two colours (jittered per instance):

  0 background
  1 house     walls (door and window holes show what is behind) + triangular roof   brick hatching, slate noise
  2 tree      tapered trunk + lumpy crown (or a conifer's stacked triangles)       wood grain, green blotches
  3 car       body with cabin + glass + two wheels with hubs                       blue marble, speckled tyres
  4 mushroom  stem + domed cap                                                     cream noise, red cap speckled white
  5 fish      body + tail and dorsal fins + eye                                    orange marble, hatched fins
  6 flower    petals round a centre + stem (with a leaf)                           pink noise, yellow speckle
  7 lamp      shade + pole and base                                                cream blotches, brass marble

20% of the objects wear random materials instead. The background is a ground/sky (or floor/wall) split, the
ground sometimes a tiled floor, with clutter behind and between the objects shaped like their parts and mostly
wearing those parts' looks: poles in wood grain (a trunk, a lamp's pole), green scalloped bushes (a crown), dark
discs (a wheel), triangles (a roof, a fin), domes (a cap, a shade), boxes, rocks and blobs. So neither a colour nor
a part's shape gives the class: the composition of parts does. Objects are drawn back to front (by their lowest
point), so they occlude each other partially; they run off the borders, cast soft shadows and get a shading ramp;
thin strokes sometimes cross in front; the image gets an illumination gradient, a slight blur and sensor noise.
Textures: plain, value noise, marble, wood grain, hatching, speckle, soft blotches (none of the first family's
stripes, checks or dots). Each image side is drawn uniformly from 128..192.

Masks are as VOC's SegmentationClass: class ids plus a band of 255 (ignore), about 2 px wide, along every object
outline (also between two objects of one class). `image_classes` gives a mask's image-level class set.

Layout written by `generate` into `output_dir`:

  raw/VOC2012/JPEGImages/<id>.jpg            RGB, JPEG quality 95
  raw/VOC2012/SegmentationClass/<id>.png     palette PNGs (index = class id, 255 = boundary; DeepLab's pascal
                                             colour map)
  raw/VOC2012/ImageSets/Segmentation/<split>.txt
                                             train (the whole pool), val (disjoint images), labeled_<n> for each n
                                             in labeled_sizes (nested random subsets of train, each holding every
                                             class)
  <split>-NNNNN-of-NNNNN.tfrecord, dataset_info.json    DeepLab records, by wss_tf.data.build_voc
  synthetic_objects_manifest.json            the generation parameters, written last; a later call with the same
                                             parameters finds it and returns without regenerating

Deterministic: image `i` of a split is drawn from its own np.random.Generator seeded by (seed, split, i), so the same
seed gives byte-identical files, and a larger `num_train` extends the pool without changing its first images.

For object-centric (ImageNet-like) pretraining images, `render_object(rng, cls, height, width)` draws one object of
class `cls`, roughly centred and covering about 15-50% of the image, on this family's background and clutter.
`cls` is a segmentation class 1..7 or one of EXTRA_CLASS_NAMES ("chair", "boat", "umbrella", "bottle": object kinds
of this family that the segmentation dataset never shows), numbered after the segmentation classes:
cls = len(CLASS_NAMES) + j for EXTRA_CLASS_NAMES[j]; OBJECT_NAMES[cls] names any of them.

Only numpy and Pillow draw.
"""
from __future__ import annotations

import colorsys
import dataclasses
import math
import os
import time
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from wss_tf.data import generated
from wss_tf.data.generated import RAW_DIR, SPLIT_STREAM, GeneratedDataset, image_id

# Bump when the pictures change, so existing generated datasets are rebuilt.
GENERATOR_VERSION = 2
DATASET_NAME = "synthetic_objects"
CLASS_NAMES = ("background", "house", "tree", "car", "mushroom", "fish", "flower", "lamp")
# Drawn only by render_object, as classes len(CLASS_NAMES) + j.
EXTRA_CLASS_NAMES = ("chair", "boat", "umbrella", "bottle")
OBJECT_NAMES = CLASS_NAMES + EXTRA_CLASS_NAMES
BOUNDARY_LABEL = 255
MANIFEST_FILE = "synthetic_objects_manifest.json"
VOC_DIR = os.path.join(RAW_DIR, "VOC2012")
JPEG_QUALITY = 95
DEFAULT_NUM_TRAIN = 512
DEFAULT_NUM_VAL = 100
DEFAULT_LABELED_SIZES = (16, 64)
DEFAULT_IMAGE_SIZE_RANGE = (128, 192)

TEXTURES = ("plain", "value_noise", "marble", "wood", "hatching", "speckle", "blotches")
# Each object kind's parts, in drawing order, with their typical look: a texture and two colours (HSV, jittered per
# instance). The background reuses these looks (see _CLUTTER_RESEMBLES), so a look alone does not give the class.
LOOKS = {
    "house": {"roof": ("value_noise", (0.62, 0.35, 0.42), (0.6, 0.15, 0.62)),
              "walls": ("hatching", (0.03, 0.65, 0.72), (0.08, 0.25, 0.92))},
    "tree": {"trunk": ("wood", (0.07, 0.65, 0.5), (0.06, 0.7, 0.28)),
             "crown": ("blotches", (0.28, 0.65, 0.62), (0.35, 0.8, 0.32))},
    "car": {"body": ("marble", (0.6, 0.85, 0.72), (0.56, 0.35, 0.95)),
            "glass": ("plain", (0.55, 0.3, 0.35), (0.55, 0.2, 0.55)),
            "wheels": ("speckle", (0.0, 0.0, 0.12), (0.0, 0.0, 0.38)),
            "hubs": ("plain", (0.0, 0.0, 0.78), (0.0, 0.0, 0.6))},
    "mushroom": {"stem": ("value_noise", (0.12, 0.18, 0.92), (0.1, 0.35, 0.72)),
                 "cap": ("speckle", (0.0, 0.85, 0.8), (0.0, 0.03, 0.97))},
    "fish": {"fins": ("hatching", (0.06, 0.9, 0.88), (0.04, 0.9, 0.5)),
             "body": ("marble", (0.08, 0.85, 0.95), (0.1, 0.15, 0.97)),
             "eye": ("plain", (0.0, 0.0, 0.08), (0.0, 0.0, 0.2))},
    "flower": {"stem": ("plain", (0.3, 0.7, 0.5), (0.32, 0.75, 0.35)),
               "petals": ("value_noise", (0.9, 0.55, 0.95), (0.92, 0.12, 0.98)),
               "centre": ("speckle", (0.14, 0.9, 0.95), (0.08, 0.8, 0.45))},
    "lamp": {"stand": ("marble", (0.12, 0.7, 0.7), (0.1, 0.5, 0.4)),
             "shade": ("blotches", (0.13, 0.45, 0.97), (0.1, 0.65, 0.8))},
    "chair": {"frame": ("wood", (0.08, 0.6, 0.62), (0.07, 0.7, 0.35)),
              "seat": ("value_noise", (0.98, 0.7, 0.6), (0.0, 0.5, 0.35))},
    "boat": {"mast": ("wood", (0.08, 0.55, 0.55), (0.07, 0.6, 0.3)),
             "sail": ("value_noise", (0.12, 0.08, 0.96), (0.1, 0.2, 0.8)),
             "hull": ("hatching", (0.0, 0.75, 0.65), (0.0, 0.0, 0.95))},
    "umbrella": {"shaft": ("plain", (0.0, 0.0, 0.2), (0.0, 0.0, 0.35)),
                 "canopy": ("blotches", (0.78, 0.7, 0.62), (0.8, 0.45, 0.88))},
    "bottle": {"glass": ("marble", (0.36, 0.8, 0.45), (0.33, 0.45, 0.72)),
               "label": ("hatching", (0.13, 0.2, 0.95), (0.0, 0.8, 0.7)),
               "cap": ("plain", (0.0, 0.0, 0.8), (0.0, 0.0, 0.55))},
}
_ALL_LOOKS = tuple((kind, role) for kind, roles in LOOKS.items() for role in roles)
_PALETTE = tuple(colour for roles in LOOKS.values() for look in roles.values() for colour in look[1:])

CLUTTER_KINDS = ("rock", "bush", "pole", "box", "disc", "wedge", "dome", "blob")
# The object parts each clutter shape resembles: it mostly wears one of their looks.
_CLUTTER_RESEMBLES = {
    "rock": (("house", "roof"), ("mushroom", "stem")),
    "bush": (("tree", "crown"), ("flower", "petals")),
    "pole": (("tree", "trunk"), ("lamp", "stand"), ("boat", "mast")),
    "box": (("house", "walls"), ("car", "body"), ("chair", "frame")),
    "disc": (("car", "wheels"), ("flower", "centre"), ("mushroom", "cap")),
    "wedge": (("house", "roof"), ("fish", "fins"), ("boat", "sail")),
    "dome": (("mushroom", "cap"), ("lamp", "shade"), ("umbrella", "canopy")),
    "blob": (("fish", "body"), ("car", "body"), ("tree", "crown")),
}


@dataclasses.dataclass(frozen=True)
class Style:
    """The scene recipe's knobs; the defaults make the dataset (`generate` always uses them). Counts are drawn
    uniformly from [low, high); object_area is drawn log-uniformly."""

    objects: tuple[int, int] = (2, 7)
    object_area: tuple[float, float] = (0.04, 0.2)  # one object's area before occlusion, fraction of the image
    clutter: tuple[int, int] = (3, 10)  # background shapes under the objects
    class_look_probability: float = 0.8  # objects wearing their class's look (else random materials)
    clutter_resembled_look: float = 0.5  # clutter wearing the look of a part it resembles
    clutter_any_look: float = 0.3  # else any part's look (the rest: random materials)
    horizon: float = 0.75  # chance of a ground/sky (or floor/wall) split, else one ground surface
    sky: float = 0.6  # chance the upper surface is a sky (else a wall)
    tiled_floor: float = 0.3  # chance the ground is a tiled floor
    clutter_between_objects: float = 0.2  # chance of a clutter shape after each object (occluding it)
    front_strokes: float = 0.4  # chance of 1-2 thin strokes (wires, twigs) in front of everything


# ----------------------------------------------------------------------------------------------------------------
# Geometry. A part is (role, ops); an op is ("poly", points[N,2], fill) or ("line", points[N,2], fill, width),
# rasterised in order (fill 1 adds, 0 cuts a hole). Objects are built in unit coordinates (about 1 high, centred on
# the origin, y down) and placed with a scale, rotation and mirror.


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _arc(cx: float, cy: float, a: float, b: float, t0: float, t1: float, n: int = 24) -> np.ndarray:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], axis=1)


def _ellipse(cx: float, cy: float, a: float, b: float, theta: float = 0.0, n: int = 32) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    pts = np.stack([a * np.cos(t), b * np.sin(t)], axis=1) @ _rotation(theta).T
    return pts + np.array([cx, cy])


def _scalloped(rng: np.random.Generator, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    """A cloud-like outline: `lumps` bulges between radius (1 - depth) and 1 of an a x b ellipse."""
    lumps, depth = int(rng.integers(5, 10)), rng.uniform(0.1, 0.25)
    t = np.linspace(0.0, 2 * math.pi, 12 * lumps, endpoint=False)
    r = (1 - depth) + depth * np.abs(np.sin(lumps * t / 2 + rng.uniform(0, math.pi)))
    return np.stack([cx + a * r * np.cos(t), cy + b * r * np.sin(t)], axis=1)


def _irregular(rng: np.random.Generator, cx: float, cy: float, r: float, roughness: float) -> np.ndarray:
    """A smooth random outline: a circle whose radius varies by low harmonics."""
    t = np.linspace(0.0, 2 * math.pi, 40, endpoint=False)
    radius = np.ones_like(t)
    for k in range(2, 6):
        radius += rng.uniform(0, roughness) / k * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    radius = r * radius / radius.max()
    return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _house(rng):
    w = rng.uniform(0.8, 1.3)
    wall_h = rng.uniform(0.45, 0.62)
    eave = 0.5 - wall_h
    overhang = rng.uniform(0.0, 0.08)
    apex_x = w * rng.uniform(-0.15, 0.15)
    roof = [("poly", np.array([[-w / 2 - overhang, eave + 0.02], [apex_x, -0.5], [w / 2 + overhang, eave + 0.02]]), 1)]
    if rng.uniform() < 0.4:  # a chimney
        x = w * rng.uniform(0.12, 0.3) * (1 if apex_x < 0 else -1)
        cw = w * rng.uniform(0.08, 0.12)
        roof.append(("poly", _rect(x - cw / 2, -0.5 + (eave + 0.5) * rng.uniform(0.1, 0.3), x + cw / 2, eave), 1))
    walls = [("poly", _rect(-w / 2, eave, w / 2, 0.5), 1)]
    door_w, door_h = w * rng.uniform(0.14, 0.22), wall_h * rng.uniform(0.45, 0.7)
    door_x = rng.uniform(-w / 2 + 0.8 * door_w, w / 2 - 0.8 * door_w)
    walls.append(("poly", _rect(door_x - door_w / 2, 0.5 - door_h, door_x + door_w / 2, 0.52), 0))
    win = wall_h * rng.uniform(0.2, 0.3)
    win_y = eave + wall_h * rng.uniform(0.3, 0.42)
    taken = [(door_x, door_w / 2)]
    for _ in range(int(rng.integers(1, 3))):
        for _attempt in range(10):
            x = rng.uniform(-w / 2 + 0.7 * win, w / 2 - 0.7 * win)
            if all(abs(x - tx) > half + 0.7 * win for tx, half in taken):
                taken.append((x, win / 2))
                walls.append(("poly", _rect(x - win / 2, win_y - win / 2, x + win / 2, win_y + win / 2), 0))
                break
    return [("roof", roof), ("walls", walls)]


def _tree(rng):
    trunk_w = rng.uniform(0.07, 0.14)
    if rng.uniform() < 0.3:  # a conifer: stacked triangles
        layers = int(rng.integers(2, 4))
        base_w = rng.uniform(0.5, 0.8)
        crown_bottom = 0.5 - rng.uniform(0.12, 0.22)
        span = crown_bottom + 0.5
        layer_h = span * 0.55
        step = (span - layer_h) / (layers - 1)
        crown = []
        for i in range(layers):
            top = -0.5 + i * step
            half = base_w / 2 * (0.5 + 0.5 * (i + 1) / layers)
            crown.append(("poly", np.array([[-half, top + layer_h], [0.0, top], [half, top + layer_h]]), 1))
        trunk_top = crown_bottom - 0.1
    else:
        a, b = rng.uniform(0.25, 0.45), rng.uniform(0.25, 0.34)
        crown = [("poly", _scalloped(rng, 0.0, -0.5 + b, a, b), 1)]
        trunk_top = -0.5 + b
    trunk = np.array([[-trunk_w * 0.6, 0.5], [trunk_w * 0.6, 0.5], [trunk_w * 0.4, trunk_top],
                      [-trunk_w * 0.4, trunk_top]])
    return [("trunk", [("poly", trunk, 1)]), ("crown", crown)]


def _car(rng):
    half = rng.uniform(1.8, 2.5) / 2
    wheel_r = rng.uniform(0.17, 0.24)
    sill = 0.5 - wheel_r * rng.uniform(0.7, 0.95)
    belt = rng.uniform(-0.12, 0.05)  # top of the lower body
    bevel = rng.uniform(0.05, 0.12)
    body = np.array([[-half, sill], [-half, belt + bevel], [-half + 1.5 * bevel, belt], [half - 1.5 * bevel, belt],
                     [half, belt + bevel], [half, sill]])
    cabin_w = 2 * half * rng.uniform(0.45, 0.62)
    cabin_x = 2 * half * rng.uniform(-0.08, 0.08)
    back, front = 2 * half * rng.uniform(0.04, 0.15), 2 * half * rng.uniform(0.08, 0.2)
    cabin = np.array([[cabin_x - cabin_w / 2, belt + 0.02], [cabin_x - cabin_w / 2 + back, -0.5],
                      [cabin_x + cabin_w / 2 - front, -0.5], [cabin_x + cabin_w / 2, belt + 0.02]])
    centroid = cabin.mean(axis=0)
    glass = centroid + (cabin - centroid) * np.array([0.8, 0.68])
    pillar_w = rng.uniform(0.03, 0.06)
    wheel_x = half - wheel_r * rng.uniform(1.15, 1.5)
    wheels = [("poly", _ellipse(s * wheel_x, 0.5 - wheel_r, wheel_r, wheel_r), 1) for s in (-1, 1)]
    hub_r = wheel_r * rng.uniform(0.35, 0.5)
    hubs = [("poly", _ellipse(s * wheel_x, 0.5 - wheel_r, hub_r, hub_r, n=16), 1) for s in (-1, 1)]
    return [("body", [("poly", body, 1), ("poly", cabin, 1)]),
            ("glass", [("poly", glass, 1), ("poly", _rect(centroid[0] - pillar_w / 2, -0.5, centroid[0] + pillar_w / 2,
                                                            belt), 0)]),
            ("wheels", wheels), ("hubs", hubs)]


def _mushroom(rng):
    cap_w, cap_h = rng.uniform(0.75, 1.2), rng.uniform(0.3, 0.5)
    stem_w = rng.uniform(0.18, 0.32)
    rim = -0.5 + cap_h
    cap = np.concatenate([_arc(0.0, rim, cap_w / 2, cap_h, math.pi, 2 * math.pi),
                          _arc(0.0, rim, cap_w / 2 * 0.97, cap_h * rng.uniform(0.08, 0.2), 0.0, math.pi)])
    lean = rng.uniform(-0.06, 0.06)
    stem = np.array([[-stem_w * 0.4, rim], [stem_w * 0.4, rim], [lean + stem_w * 0.5, 0.5],
                     [lean - stem_w * 0.5, 0.5]])
    return [("stem", [("poly", stem, 1)]), ("cap", [("poly", cap, 1)])]


def _fish(rng):
    length, body_h = rng.uniform(1.6, 2.2), rng.uniform(0.55, 0.75)
    tail_len = length * rng.uniform(0.2, 0.28)
    tail_x = -length / 2
    a = (length / 2 - (tail_x + 0.8 * tail_len)) / 2  # the body ellipse overlaps the tail's root
    cx = length / 2 - a
    t = np.linspace(0.0, 2 * math.pi, 40, endpoint=False)
    body = np.stack([cx + a * np.cos(t), body_h / 2 * np.sin(t) * (0.6 + 0.2 * (1 + np.cos(t)))], axis=1)
    root_x, tail_h = cx - 0.85 * a, rng.uniform(0.28, 0.45)
    notch = tail_x + tail_len * rng.uniform(0.3, 0.5)
    fins = [("poly", np.array([[root_x, -0.08], [tail_x, -tail_h], [notch, 0.0], [tail_x, tail_h], [root_x, 0.08]]),
             1),
            ("poly", np.array([[cx - 0.35 * a, -body_h * 0.3], [cx - 0.4 * a, -0.5], [cx + 0.25 * a, -body_h * 0.35]]),
             1)]
    if rng.uniform() < 0.5:  # a belly fin
        fins.append(("poly", np.array([[cx - 0.05 * a, body_h * 0.3], [cx - 0.35 * a, min(body_h / 2 + 0.12, 0.5)],
                                       [cx - 0.3 * a, body_h * 0.3]]), 1))
    eye_r = body_h * rng.uniform(0.06, 0.09)
    eye = [("poly", _ellipse(cx + 0.6 * a, -body_h * 0.1, eye_r, eye_r, n=12), 1)]
    return [("fins", fins), ("body", [("poly", body, 1)]), ("eye", eye)]


def _flower(rng):
    petal_len, centre_r = rng.uniform(0.14, 0.22), rng.uniform(0.06, 0.11)
    count = int(rng.integers(5, 10))
    head_y = -0.5 + centre_r + petal_len
    bend, foot = rng.uniform(-0.1, 0.1), rng.uniform(-0.12, 0.12)
    stem = [("line", np.array([[0.0, head_y], [bend, (head_y + 0.5) / 2], [foot, 0.5]]), 1, rng.uniform(0.035, 0.06))]
    if rng.uniform() < 0.7:  # a leaf
        side = 1 if rng.uniform() < 0.5 else -1
        leaf_a = rng.uniform(0.1, 0.16)
        stem.append(("poly", _ellipse(bend + side * leaf_a * 0.8, (head_y + 0.5) / 2 + 0.05, leaf_a, leaf_a * 0.35,
                                      theta=-side * rng.uniform(0.3, 0.8)), 1))
    phase = rng.uniform(0, 2 * math.pi)
    dist = centre_r + petal_len / 2
    petal_w = min(0.5 * petal_len, dist * math.pi / count * 1.2)
    petals = []
    for k in range(count):
        angle = phase + 2 * math.pi * k / count
        petals.append(("poly", _ellipse(dist * math.cos(angle), head_y + dist * math.sin(angle),
                                        petal_len / 2 + 0.3 * centre_r, petal_w / 2, theta=angle, n=20), 1))
    centre = [("poly", _ellipse(0.0, head_y, centre_r, centre_r, n=20), 1)]
    return [("stem", stem), ("petals", petals), ("centre", centre)]


def _lamp(rng):
    shade_h = rng.uniform(0.3, 0.42)
    top_w, bottom_w = rng.uniform(0.2, 0.34), rng.uniform(0.55, 0.8)
    base_w, base_h = rng.uniform(0.3, 0.48), rng.uniform(0.05, 0.09)
    pole_w = rng.uniform(0.035, 0.06)
    shade = np.array([[-top_w / 2, -0.5], [top_w / 2, -0.5], [bottom_w / 2, -0.5 + shade_h],
                      [-bottom_w / 2, -0.5 + shade_h]])
    pole = _rect(-pole_w / 2, -0.5 + shade_h / 2, pole_w / 2, 0.5 - base_h / 2)
    base = _arc(0.0, 0.5, base_w / 2, base_h, math.pi, 2 * math.pi)
    return [("stand", [("poly", pole, 1), ("poly", base, 1)]), ("shade", [("poly", shade, 1)])]


def _chair(rng):
    w = rng.uniform(0.45, 0.62)
    seat_y, seat_t = rng.uniform(0.0, 0.1), rng.uniform(0.06, 0.09)
    post = rng.uniform(0.04, 0.065)
    x0, x1 = -w / 2, w / 2
    frame = [("poly", _rect(x0, -0.5, x0 + post, 0.5), 1), ("poly", _rect(x1 - post, -0.5, x1, 0.5), 1),
             ("poly", _rect(x0, -0.5, x1, -0.5 + rng.uniform(0.07, 0.12)), 1),
             ("poly", _rect(x0, 0.3, x1, 0.3 + post * 0.8), 1)]
    slats = int(rng.integers(1, 4))
    for i in range(slats):
        x = x0 + w * (i + 1) / (slats + 1)
        frame.append(("poly", _rect(x - post / 3, -0.45, x + post / 3, seat_y), 1))
    seat = [("poly", np.array([[x0 - 0.04, seat_y], [x1 + 0.04, seat_y], [x1 + 0.02, seat_y + seat_t],
                               [x0 - 0.02, seat_y + seat_t]]), 1)]
    return [("frame", frame), ("seat", seat)]


def _boat(rng):
    half = rng.uniform(0.6, 0.8)
    deck = rng.uniform(0.15, 0.25)
    mast_x = half * rng.uniform(-0.2, 0.15)
    hull = np.array([[-half, deck], [half, deck - rng.uniform(0.0, 0.08)], [half * 0.75, 0.5], [-half * 0.7, 0.5]])
    mast = [("line", np.array([[mast_x, deck + 0.02], [mast_x, -0.5]]), 1, rng.uniform(0.025, 0.04))]
    sail = [("poly", np.array([[mast_x + 0.02, -0.47], [mast_x + 0.02, deck - 0.05],
                               [mast_x + half * rng.uniform(0.6, 0.9), deck - 0.05]]), 1)]
    if rng.uniform() < 0.6:  # a jib
        sail.append(("poly", np.array([[mast_x - 0.02, -0.4], [mast_x - 0.02, deck - 0.05],
                                       [mast_x - half * rng.uniform(0.4, 0.7), deck - 0.05]]), 1))
    return [("mast", mast), ("sail", sail), ("hull", [("poly", hull, 1)])]


def _umbrella(rng):
    a, b = rng.uniform(0.5, 0.7), rng.uniform(0.3, 0.42)
    rim = -0.5 + b
    ribs = int(rng.integers(4, 8))
    scallop = rng.uniform(0.03, 0.07)
    dome = _arc(0.0, rim, a, b, math.pi, 2 * math.pi, n=32)
    xs = np.linspace(a, -a, ribs * 8 + 1)
    edge = np.stack([xs, rim - scallop * np.abs(np.sin(ribs * math.pi * (xs + a) / (2 * a)))], axis=1)
    canopy = [("poly", np.concatenate([dome, edge[1:-1]]), 1)]
    shaft_w = rng.uniform(0.025, 0.04)
    hook_r = rng.uniform(0.06, 0.1)
    hook = _arc(-hook_r, 0.5 - hook_r, hook_r, hook_r, 0.0, math.pi, n=12)
    shaft = [("line", np.array([[0.0, -0.5], [0.0, 0.5 - hook_r]]), 1, shaft_w), ("line", hook, 1, shaft_w)]
    return [("shaft", shaft), ("canopy", canopy)]


def _bottle(rng):
    half = rng.uniform(0.13, 0.2)
    neck = half * rng.uniform(0.35, 0.5)
    shoulder = rng.uniform(-0.15, 0.0)
    neck_top = rng.uniform(-0.44, -0.38)
    t = np.linspace(0.0, math.pi / 2, 10)
    right = np.stack([neck + (half - neck) * np.sin(t), shoulder - 0.15 * np.cos(t)], axis=1)
    outline = np.concatenate([[[-neck, neck_top], [neck, neck_top]], right, [[half, 0.5], [-half, 0.5]],
                              right[::-1] * np.array([-1, 1])])
    label_y = rng.uniform(0.1, 0.25)
    label = [("poly", _rect(-half, label_y - 0.1, half, label_y + 0.1), 1)]
    cap = [("poly", _rect(-neck * 1.15, -0.5, neck * 1.15, neck_top + 0.02), 1)]
    return [("glass", [("poly", outline, 1)]), ("label", label), ("cap", cap)]


_BUILDERS = {"house": _house, "tree": _tree, "car": _car, "mushroom": _mushroom, "fish": _fish, "flower": _flower,
             "lamp": _lamp, "chair": _chair, "boat": _boat, "umbrella": _umbrella, "bottle": _bottle}
# Fish swim in any direction; the other objects stand roughly upright.
_TILT = {"fish": 0.5}
_DEFAULT_TILT = 0.12


def _clutter_ops(rng: np.random.Generator, kind: str, cx: float, cy: float, size: float):
    """A background shape of `kind` (one of CLUTTER_KINDS) about `size` pixels across, in pixel coordinates."""
    if kind == "rock":
        pts = _irregular(rng, 0.0, 0.0, size * 0.5, 0.5) * np.array([1.0, rng.uniform(0.55, 0.9)])
    elif kind == "bush":
        a = size * rng.uniform(0.45, 0.7)
        pts = _scalloped(rng, 0.0, 0.0, a, a * rng.uniform(0.6, 1.0))
    elif kind == "pole":
        w, length = size * rng.uniform(0.08, 0.18), size * rng.uniform(1.5, 3.0)
        pts = _rect(-w / 2, -length / 2, w / 2, length / 2)
    elif kind == "box":
        pts = _rect(0.0, 0.0, size * rng.uniform(0.6, 1.2), size * rng.uniform(0.4, 1.0))
        pts = pts - pts.mean(axis=0)
    elif kind == "disc":
        r = size * rng.uniform(0.25, 0.5)
        pts = _ellipse(0.0, 0.0, r, r * rng.uniform(0.8, 1.0))
    elif kind == "wedge":
        half, height = size * rng.uniform(0.4, 0.7), size * rng.uniform(0.4, 0.9)
        pts = np.array([[-half, height / 2], [half * rng.uniform(-0.3, 0.3), -height / 2], [half, height / 2]])
    elif kind == "dome":
        a = size * 0.5
        pts = _arc(0.0, 0.0, a, a * rng.uniform(0.5, 1.0), math.pi, 2 * math.pi)
    elif kind == "blob":
        pts = _irregular(rng, 0.0, 0.0, size * 0.5, 1.2)
    else:
        raise ValueError(f"no clutter kind {kind!r}")
    upright = kind in ("pole", "box", "dome", "wedge") and rng.uniform() < 0.75
    theta = rng.normal(0, 0.15) if upright else rng.uniform(0, 2 * math.pi)
    return [("poly", pts @ _rotation(theta).T + np.array([cx, cy]), 1)]


def _stroke_ops(rng: np.random.Generator, cx: float, cy: float, length: float, width: int):
    """A thin polyline of 2-4 segments (a wire or a twig) through (cx, cy)."""
    n = int(rng.integers(3, 6))
    heading = rng.uniform(0, 2 * math.pi)
    angles = heading + np.cumsum(rng.normal(0, 0.4, n - 1))
    steps = np.stack([np.cos(angles), np.sin(angles)], axis=1) * length / (n - 1)
    pts = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    return [("line", pts - pts.mean(axis=0) + np.array([cx, cy]), 1, width)]


def _linear(theta: float, mirror: bool) -> np.ndarray:
    """Mirror (x -> -x) first, then rotate by theta."""
    return _rotation(theta) @ np.diag([-1.0 if mirror else 1.0, 1.0])


def _placed(ops, scale: float, theta: float, mirror: bool, cx: float, cy: float):
    """Unit-coordinate ops in pixels: mirrored, rotated, scaled, moved so the unit origin is at (cx, cy)."""
    linear = _linear(theta, mirror) * scale
    out = []
    for op in ops:
        pts = op[1] @ linear.T + np.array([cx, cy])
        out.append(("line", pts, op[2], max(1, int(round(op[3] * scale)))) if op[0] == "line" else ("poly", pts, op[2]))
    return out


def _raster(ops, height: int, width: int, offset=(0.0, 0.0)) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for op in ops:
        pts = np.round(op[1] + np.asarray(offset), 2).ravel().tolist()
        if op[0] == "poly":
            draw.polygon(pts, fill=op[2])
        else:
            draw.line(pts, fill=op[2], width=op[3], joint="curve")
    return np.asarray(canvas) > 0


def _unit_area(parts) -> float:
    """Area of the union of `parts` in unit coordinates (rasterised at 48 px per unit)."""
    scale = 48.0
    pts = np.concatenate([op[1] for _, ops in parts for op in ops])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    width, height = (int(v) + 8 for v in np.ceil((hi - lo) * scale))
    ox, oy = 4 - lo * scale
    region = np.zeros((height, width), bool)
    for _, ops in parts:
        region |= _raster(_placed(ops, scale, 0.0, False, ox, oy), height, width)
    return float(region.sum()) / scale ** 2


# ----------------------------------------------------------------------------------------------------------------
# Materials: (texture, colour, colour); a texture is a pattern t in [0, 1] blending the two colours.


def _rgb(hsv) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(*hsv), np.float32)


def _jittered(rng: np.random.Generator, hsv) -> np.ndarray:
    h, s, v = hsv
    h = (h + rng.uniform(-0.03, 0.03)) % 1.0
    s = min(max(s * rng.uniform(0.8, 1.15), 0.0), 1.0)
    v = min(max(v * rng.uniform(0.75, 1.12), 0.0), 1.0)
    return _rgb((h, s, v))


def _look(rng: np.random.Generator, kind: str, role: str):
    texture, first, second = LOOKS[kind][role]
    return texture, _jittered(rng, first), _jittered(rng, second)


def _random_material(rng: np.random.Generator, palette_colours: float = 0.6):
    """Any texture; each colour is a (jittered) look colour with probability palette_colours, else any colour."""
    def colour():
        if rng.uniform() < palette_colours:
            return _jittered(rng, _PALETTE[int(rng.integers(len(_PALETTE)))])
        return _rgb((rng.uniform(), rng.uniform(0.05, 1.0), rng.uniform(0.15, 1.0)))

    c1 = colour()
    c2 = colour() if rng.uniform() < 0.6 else np.clip(c1 * rng.uniform(0.35, 0.75), 0, 1)
    return TEXTURES[int(rng.integers(len(TEXTURES)))], c1, c2


def _noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Fractal value noise, float32 [h, w] stretched to [0, 1]: octaves of bicubic-upsampled random grids."""
    total = np.zeros((h, w), np.float32)
    for k in range(octaves):
        c = max(cell / 2 ** k, 1.5)
        grid = rng.uniform(0, 1, (int(h / c) + 2, int(w / c) + 2)).astype(np.float32)
        total += np.asarray(Image.fromarray(grid).resize((w, h), Image.Resampling.BICUBIC)) / 2 ** k
    lo, hi = total.min(), total.max()
    return (total - lo) / max(hi - lo, 1e-6)


def _pattern(rng: np.random.Generator, texture: str, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """float32 [h, w] in [0, 1]: `texture` with random geometry on the window at (y0, x0) of the image."""
    if texture == "plain":
        return 0.15 * _noise(rng, h, w, rng.uniform(8, 20), octaves=2)
    if texture == "value_noise":
        return _noise(rng, h, w, rng.uniform(4, 14))
    if texture == "blotches":
        n = _noise(rng, h, w, rng.uniform(6, 16), octaves=2)
        threshold = rng.uniform(0.4, 0.6)
        return np.clip((n - threshold) / 0.16 + 0.5, 0, 1)
    if texture == "speckle":
        cell = rng.uniform(1.5, 3.5)
        spots = (rng.uniform(0, 1, (int(h / cell) + 2, int(w / cell) + 2)) < rng.uniform(0.08, 0.25)).astype(np.float32)
        t = np.asarray(Image.fromarray(spots).resize((w, h), Image.Resampling.BILINEAR))
        return np.clip((t - 0.3) * 2.5, 0, 1)
    yy, xx = np.ogrid[y0:y0 + h, x0:x0 + w]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    if texture == "marble":
        period, turbulence = rng.uniform(8, 24), rng.uniform(1.5, 4.0)
        phase = 2 * math.pi * (u / period + turbulence * _noise(rng, h, w, rng.uniform(8, 20)))
        return 0.5 + 0.5 * np.sin(phase).astype(np.float32)
    if texture == "wood":
        # rings round a centre outside the window, stretched along the grain, so they show as long arcs
        v = -xx * math.sin(theta) + yy * math.cos(theta)
        cu = float(u.mean()) + rng.uniform(-2, 2) * w
        cv = float(v.mean()) + rng.choice([-1, 1]) * rng.uniform(0.6, 3.0) * max(h, w)
        r = np.sqrt(((u - cu) / rng.uniform(3, 8)) ** 2 + (v - cv) ** 2)
        r = r + rng.uniform(1, 4) * _noise(rng, h, w, rng.uniform(6, 14), octaves=2)
        period = rng.uniform(3, 8)
        return (0.5 + 0.5 * np.cos(2 * math.pi * r / period)).astype(np.float32) ** 2
    if texture == "hatching":
        period, line = rng.uniform(3, 6), rng.uniform(1.0, 1.8)
        t = (np.mod(u + rng.uniform(0, period), period) < line).astype(np.float32)
        if rng.uniform() < 0.4:  # cross-hatching
            cross = theta + rng.uniform(math.pi / 3, 2 * math.pi / 3)
            u2 = xx * math.cos(cross) + yy * math.sin(cross)
            t = np.maximum(t, (np.mod(u2 + rng.uniform(0, period), period) < line).astype(np.float32))
        return t
    raise ValueError(f"no texture {texture!r}")


def _texture(rng: np.random.Generator, y0: int, x0: int, h: int, w: int, material) -> np.ndarray:
    texture, c1, c2 = material
    t = _pattern(rng, texture, y0, x0, h, w)[..., None]
    return c1 * (1 - t) + c2 * t


def _tiles(rng: np.random.Generator, height: int, width: int, material) -> np.ndarray:
    """A tiled floor: square tiles (rotated a little) alternating or mixing the material's two colours, each tile's
    brightness jittered, with grout lines; float32 [height, width, 3]."""
    _, c1, c2 = material
    size, theta = rng.uniform(10, 32), rng.uniform(-0.35, 0.35)
    yy, xx = np.ogrid[0:height, 0:width]
    u = (xx * math.cos(theta) + yy * math.sin(theta)) / size + rng.uniform(0, 1)
    v = (-xx * math.sin(theta) + yy * math.cos(theta)) / size + rng.uniform(0, 1)
    i, j = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    cell_hash = (i * 73856093) ^ (j * 19349663)
    second = (i + j) % 2 == 1 if rng.uniform() < 0.3 else (cell_hash >> 3) % 2 == 1
    shade = 0.85 + 0.3 * ((cell_hash >> 5) % 97 / 96.0)
    floor = np.where(second[..., None], c2, c1) * shade[..., None].astype(np.float32)
    grout = 1.2 / size
    lines = (np.mod(u, 1) < grout) | (np.mod(v, 1) < grout)
    grout_colour = np.clip((c1 + c2) / 2 * rng.choice([0.4, 1.5]), 0, 1)
    return np.where(lines[..., None], grout_colour, floor).astype(np.float32)


def _bbox(region: np.ndarray):
    rows, cols = np.any(region, axis=1), np.any(region, axis=0)
    if not rows.any():
        return None
    return (int(np.argmax(rows)), len(rows) - int(np.argmax(rows[::-1])),
            int(np.argmax(cols)), len(cols) - int(np.argmax(cols[::-1])))


def _paint(rng: np.random.Generator, canvas: np.ndarray, region: np.ndarray, material, light, cx: float, cy: float,
           r: float) -> None:
    """Fills `region` of `canvas` with `material`, brighter towards `light` (a unit vector) across the object at
    (cx, cy) of radius r."""
    box = _bbox(region)
    if box is None:
        return
    y0, y1, x0, x1 = box
    tex = _texture(rng, y0, x0, y1 - y0, x1 - x0, material)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    ramp = ((xx - cx) * light[0] + (yy - cy) * light[1]) / max(r, 1.0)
    tex = tex * np.clip(1 + rng.uniform(0.0, 0.35) * ramp, 0.5, 1.5).astype(np.float32)[..., None]
    np.copyto(canvas[y0:y1, x0:x1], tex, where=region[y0:y1, x0:x1, None])


def _shadow(rng: np.random.Generator, canvas: np.ndarray, region: np.ndarray, light, size: float) -> None:
    """Darkens a blurred copy of `region` moved away from the light (before the object is painted over it)."""
    height, width = canvas.shape[:2]
    dist = max(1.5, size * rng.uniform(0.03, 0.08))
    dx, dy = int(round(-light[0] * dist)), int(round(-light[1] * dist))
    box = _bbox(region)
    if box is None:
        return
    pad = 8
    y0, y1 = max(box[0] + min(dy, 0) - pad, 0), min(box[1] + max(dy, 0) + pad, height)
    x0, x1 = max(box[2] + min(dx, 0) - pad, 0), min(box[3] + max(dx, 0) + pad, width)
    moved = np.zeros((y1 - y0, x1 - x0), np.uint8)
    sy0, sy1, sx0, sx1 = max(y0 - dy, 0), min(y1 - dy, height), max(x0 - dx, 0), min(x1 - dx, width)
    moved[sy0 + dy - y0:sy1 + dy - y0, sx0 + dx - x0:sx1 + dx - x0] = region[sy0:sy1, sx0:sx1] * 255
    soft = Image.fromarray(moved).filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
    alpha = np.asarray(soft, np.float32)[..., None] / 255.0
    canvas[y0:y1, x0:x1] *= 1 - rng.uniform(0.2, 0.45) * alpha


# ----------------------------------------------------------------------------------------------------------------
# Scenes.


def _background(rng: np.random.Generator, height: int, width: int, style: Style) -> np.ndarray:
    """The surfaces under everything: a ground (a material, or a tiled floor), below a sky or a wall behind a
    wavy horizon, or ground only (seen from above). float32 [height, width, 3]."""
    def ground_material():
        if rng.uniform() < 0.4:
            return _look(rng, *_ALL_LOOKS[int(rng.integers(len(_ALL_LOOKS)))])
        return _random_material(rng)

    if rng.uniform() < style.tiled_floor:
        canvas = _tiles(rng, height, width, ground_material())
    else:
        canvas = _texture(rng, 0, 0, height, width, ground_material())
    if rng.uniform() >= style.horizon:
        return canvas
    level = height * rng.uniform(0.2, 0.65)
    xs = np.linspace(-2, width + 2, 24)
    wave = level + height * rng.uniform(0, 0.06) * np.sin(2 * math.pi * xs / (width * rng.uniform(0.4, 1.5))
                                                          + rng.uniform(0, 2 * math.pi))
    upper = _raster([("poly", np.concatenate([np.stack([xs, wave], axis=1), [[width + 2, -2], [-2, -2]]]), 1)],
                    height, width)
    if rng.uniform() < style.sky:
        top = _rgb((rng.uniform(0.52, 0.66), rng.uniform(0.3, 0.7), rng.uniform(0.75, 1.0)))
        low = np.clip(top + rng.uniform(0.1, 0.35), 0, 1)
        t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None] * height / max(level, 1.0)
        sky = top * (1 - np.clip(t, 0, 1)) + low * np.clip(t, 0, 1)
        clouds = np.clip((_noise(rng, height, width, rng.uniform(10, 30)) - rng.uniform(0.45, 0.7)) * 3, 0, 1)
        surface = sky + (1 - sky) * clouds[..., None] * 0.8
    else:
        surface = _texture(rng, 0, 0, height, width, _random_material(rng))
    return np.where(upper[..., None], surface, canvas).astype(np.float32)


def _clutter(rng: np.random.Generator, canvas: np.ndarray, instances: np.ndarray, light, side: int, style: Style,
             scale: float = 1.0) -> None:
    """One background shape somewhere, mostly wearing the look of a part it resembles; background in the mask."""
    height, width = canvas.shape[:2]
    kind = CLUTTER_KINDS[int(rng.integers(len(CLUTTER_KINDS)))]
    size = scale * side * math.exp(rng.uniform(math.log(0.12), math.log(0.35)))
    cx, cy = rng.uniform(-0.1 * width, 1.1 * width), rng.uniform(-0.1 * height, 1.1 * height)
    region = _raster(_clutter_ops(rng, kind, cx, cy, size), height, width)
    draw = rng.uniform()
    if draw < style.clutter_resembled_look:
        resembles = _CLUTTER_RESEMBLES[kind]
        material = _look(rng, *resembles[int(rng.integers(len(resembles)))])
    elif draw < style.clutter_resembled_look + style.clutter_any_look:
        material = _look(rng, *_ALL_LOOKS[int(rng.integers(len(_ALL_LOOKS)))])
    else:
        material = _random_material(rng)
    if rng.uniform() < 0.5:
        _shadow(rng, canvas, region, light, size)
    _paint(rng, canvas, region, material, light, cx, cy, size / 2)
    instances[region] = 0


def _front_strokes(rng: np.random.Generator, canvas: np.ndarray, instances: np.ndarray, light, side: int) -> None:
    height, width = canvas.shape[:2]
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        region = _raster(_stroke_ops(rng, cx, cy, side * rng.uniform(0.4, 1.0), int(rng.integers(1, 3))), height,
                         width)
        _paint(rng, canvas, region, _random_material(rng), light, cx, cy, side / 4)
        instances[region] = 0


@dataclasses.dataclass(frozen=True)
class _Placement:
    cls: int  # index into OBJECT_NAMES
    parts: list  # (role, ops in unit coordinates)
    scale: float  # pixels per unit
    theta: float
    mirror: bool
    cx: float  # where the unit origin goes
    cy: float
    extent: tuple  # (x0, y0, x1, y1) of the placed points, pixels

    @property
    def radius(self) -> float:
        return 0.5 * max(self.extent[2] - self.extent[0], self.extent[3] - self.extent[1])


def _place(rng: np.random.Generator, cls: int, target_area: float, centre, max_size=None) -> _Placement:
    """An object of class `cls` whose union covers about target_area px; its bounding box centred at `centre`
    (unless max_size (w, h) in px limits the scale first, so it fits)."""
    name = OBJECT_NAMES[cls]
    parts = _BUILDERS[name](rng)
    theta = rng.normal(0, _TILT.get(name, _DEFAULT_TILT))
    mirror = bool(rng.uniform() < 0.5)
    scale = math.sqrt(target_area / max(_unit_area(parts), 1e-6))
    pts = np.concatenate([op[1] for _, ops in parts for op in ops]) @ _linear(theta, mirror).T
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    if max_size is not None:
        scale = min(scale, max_size[0] / (hi[0] - lo[0]), max_size[1] / (hi[1] - lo[1]))
    middle = (lo + hi) / 2 * scale
    cx, cy = centre[0] - middle[0], centre[1] - middle[1]
    half = (hi - lo) / 2 * scale
    return _Placement(cls, parts, scale, theta, mirror, cx, cy,
                      (centre[0] - half[0], centre[1] - half[1], centre[0] + half[0], centre[1] + half[1]))


def _draw_object(rng: np.random.Generator, canvas: np.ndarray, placement: _Placement, light,
                 class_look_probability: float) -> np.ndarray:
    """Paints the object's parts (its look, or random materials) with a shadow; returns its region."""
    height, width = canvas.shape[:2]
    name = OBJECT_NAMES[placement.cls]
    regions = [_raster(_placed(ops, placement.scale, placement.theta, placement.mirror, placement.cx, placement.cy),
                       height, width) for _, ops in placement.parts]
    union = np.logical_or.reduce(regions)
    if rng.uniform() < 0.6:
        _shadow(rng, canvas, union, light, 2 * placement.radius)
    own_look = rng.uniform() < class_look_probability
    x0, y0, x1, y1 = placement.extent
    for (role, _), region in zip(placement.parts, regions):
        material = _look(rng, name, role) if own_look else _random_material(rng)
        _paint(rng, canvas, region, material, light, (x0 + x1) / 2, (y0 + y1) / 2, placement.radius)
    return union


def _finish(rng: np.random.Generator, canvas: np.ndarray) -> np.ndarray:
    """Illumination gradient, a slight blur, sensor noise: uint8 [H, W, 3]."""
    height, width = canvas.shape[:2]
    side = min(height, width)
    yy, xx = np.ogrid[0:height, 0:width]
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (((xx - width / 2) * math.cos(theta) + (yy - height / 2) * math.sin(theta)) / side).astype(np.float32)
    canvas = canvas * rng.uniform(0.8, 1.1) * (1 + rng.uniform(0, 0.4) * ramp)[..., None]
    image = Image.fromarray(np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8))
    image = np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8))), dtype=np.float32)
    image = image + rng.uniform(1.0, 4.0) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _light(rng: np.random.Generator):
    angle = rng.uniform(0, 2 * math.pi)
    return math.cos(angle), math.sin(angle)


def _render_scene(rng: np.random.Generator, height: int, width: int,
                  style: Style = Style()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 RGB [H, W, 3], int32 instance map [H, W] (0 = background), class of each instance id)."""
    canvas = _background(rng, height, width, style)
    instances = np.zeros((height, width), np.int32)
    side = min(height, width)
    light = _light(rng)
    for _ in range(int(rng.integers(*style.clutter))):
        _clutter(rng, canvas, instances, light, side, style)

    # placements first, then drawn back to front by their lowest point; near-total overlaps avoided
    placements = []
    lo, hi = (math.log(a * height * width) for a in style.object_area)
    for _ in range(int(rng.integers(*style.objects))):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        area = math.exp(rng.uniform(lo, hi))
        for _attempt in range(10):
            centre = (rng.uniform(0, width), rng.uniform(0, height))
            r = math.sqrt(area)
            if all(math.hypot(centre[0] - (p.extent[0] + p.extent[2]) / 2,
                              centre[1] - (p.extent[1] + p.extent[3]) / 2) > 0.6 * max(r, p.radius)
                   for p in placements):
                break
        placements.append(_place(rng, cls, area, centre))
    placements.sort(key=lambda p: p.extent[3])

    classes = [0]
    for placement in placements:
        region = _draw_object(rng, canvas, placement, light, style.class_look_probability)
        classes.append(placement.cls)
        instances[region] = len(classes) - 1
        if rng.uniform() < style.clutter_between_objects:
            _clutter(rng, canvas, instances, light, side, style)
    if rng.uniform() < style.front_strokes:
        _front_strokes(rng, canvas, instances, light, side)
    return _finish(rng, canvas), instances, np.array(classes, np.uint8)


def voc_mask(instances: np.ndarray, instance_classes: np.ndarray) -> np.ndarray:
    """uint8 [H, W] class ids with VOC's boundary: 255 on every pixel that has one of its 8 neighbours in another
    instance, so a band about 2 px wide runs along every outline (between two objects of one class too).

    Args:
      instances: int [H, W] instance ids, 0 = background.
      instance_classes: the class id of each instance id (instance_classes[0] = 0).
    """
    height, width = instances.shape
    padded = np.pad(instances, 1, mode="edge")
    boundary = np.zeros((height, width), bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            boundary |= padded[dy:dy + height, dx:dx + width] != instances
    mask = np.asarray(instance_classes, np.uint8)[instances]
    mask[boundary] = BOUNDARY_LABEL
    return mask


def image_classes(mask: np.ndarray) -> set[int]:
    """The image-level class set of a mask: every id in it but the boundary/ignore label 255."""
    return {int(c) for c in np.unique(mask)} - {BOUNDARY_LABEL}


def render(rng: np.random.Generator, height: int, width: int,
           style: Style = Style()) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 RGB [H, W, 3], uint8 VOC mask [H, W]: class ids, 255 along the outlines)."""
    image, instances, classes = _render_scene(rng, height, width, style)
    return image, voc_mask(instances, classes)


def sample(seed: int, split: str, index: int, image_size_range: Sequence[int] = DEFAULT_IMAGE_SIZE_RANGE,
           style: Style = Style()) -> tuple[np.ndarray, np.ndarray]:
    """Image `index` of `split` ("train" | "val") for `seed`: (uint8 RGB [H, W, 3], uint8 VOC mask [H, W])."""
    rng = np.random.default_rng([int(seed), SPLIT_STREAM[split], int(index)])
    lo, hi = image_size_range
    height, width = (int(v) for v in rng.integers(lo, hi + 1, 2))
    return render(rng, height, width, style)


def _render_object_scene(rng: np.random.Generator, cls: int, height: int, width: int,
                         style: Style = Style()) -> tuple[np.ndarray, np.ndarray]:
    """render_object's image and the object's visible region (bool [H, W])."""
    if not 1 <= cls < len(OBJECT_NAMES):
        raise ValueError(f"cls must be an object class 1..{len(OBJECT_NAMES) - 1} ({', '.join(OBJECT_NAMES[1:])}), "
                         f"got {cls}")
    canvas = _background(rng, height, width, style)
    instances = np.zeros((height, width), np.int32)
    side = min(height, width)
    light = _light(rng)
    for _ in range(int(rng.integers(2, 7))):
        _clutter(rng, canvas, instances, light, side, style, scale=0.8)
    centre = (width * rng.uniform(0.45, 0.55), height * rng.uniform(0.45, 0.55))
    placement = _place(rng, cls, rng.uniform(0.15, 0.5) * height * width, centre, max_size=(width, height))
    instances[_draw_object(rng, canvas, placement, light, style.class_look_probability)] = 1
    if rng.uniform() < 0.3:
        _front_strokes(rng, canvas, instances, light, side)
    return _finish(rng, canvas), instances == 1


def render_object(rng: np.random.Generator, cls: int, height: int, width: int) -> np.ndarray:
    """An object-centric image, as ImageNet's: one object of class `cls` roughly centred, covering about 15-50% of
    the image, on this family's background and clutter.

    Args:
      rng: draws everything (the same generator state gives the same image).
      cls: 1..len(CLASS_NAMES)-1 for a segmentation class, len(CLASS_NAMES) + j for EXTRA_CLASS_NAMES[j].
      height, width: image size in pixels.

    Returns:
      uint8 [height, width, 3] RGB.
    """
    return _render_object_scene(rng, cls, height, width)[0]


# ----------------------------------------------------------------------------------------------------------------
# The dataset on disk.


def _save_palette_png(mask: np.ndarray, path: str, palette: np.ndarray) -> None:
    image = Image.fromarray(mask, "P")
    image.putpalette(palette.ravel().tolist())
    image.save(path, compress_level=1)


def generate(output_dir: str, *, seed: int = 0, num_train: int = DEFAULT_NUM_TRAIN, num_val: int = DEFAULT_NUM_VAL,
             labeled_sizes: Sequence[int] = DEFAULT_LABELED_SIZES,
             image_size_range: Sequence[int] = DEFAULT_IMAGE_SIZE_RANGE, num_shards: int = 2,
             force: bool = False) -> GeneratedDataset:
    """Writes the VOC tree, then its records and dataset_info.json, into output_dir, or keeps a complete dataset made
    with the same parameters there (unless `force`). Returns what is there."""
    labeled_sizes, lo, hi = generated.checked_arguments(num_train, num_val, labeled_sizes, image_size_range)
    parameters = generated.parameters(GENERATOR_VERSION, DATASET_NAME, CLASS_NAMES, seed, num_train, num_val,
                                      labeled_sizes, (lo, hi), num_shards)
    output_dir = os.path.abspath(output_dir)
    manifest = None if force else generated.read_manifest(output_dir, parameters, MANIFEST_FILE)
    if manifest is not None:
        existing = generated.from_manifest(output_dir, manifest, CLASS_NAMES, DATASET_NAME, reused=True)
        if existing is not None:
            return existing
    # these import TensorFlow: not needed when the dataset is already there
    from wss_tf.colormap import pascal_colormap
    from wss_tf.data.build_voc import build_voc
    from wss_tf.data.datasets import load_dataset_info
    from wss_tf.data.records import Progress

    generated.clear_previous(output_dir, DATASET_NAME, MANIFEST_FILE, ("VOC2012",))
    voc = os.path.join(output_dir, VOC_DIR)
    images_dir, masks_dir = os.path.join(voc, "JPEGImages"), os.path.join(voc, "SegmentationClass")
    lists_dir = os.path.join(voc, "ImageSets", "Segmentation")
    for folder in (images_dir, masks_dir, lists_dir):
        os.makedirs(folder, exist_ok=True)

    palette = pascal_colormap()
    splits: dict[str, list[str]] = {}
    classes_per_image: list[set] = []
    pixels = np.zeros(256, np.int64)
    progress = Progress(f"drawing {DATASET_NAME}", num_train + num_val)
    for split, count in (("train", num_train), ("val", num_val)):
        ids = []
        for i in range(count):
            image, mask = sample(seed, split, i, (lo, hi))
            name = image_id(split, i)
            Image.fromarray(image).save(os.path.join(images_dir, name + ".jpg"), quality=JPEG_QUALITY)
            _save_palette_png(mask, os.path.join(masks_dir, name + ".png"), palette)
            if split == "train":
                classes_per_image.append(image_classes(mask) - {0})
                pixels += np.bincount(mask.ravel(), minlength=256)
            ids.append(name)
            progress.update()
        splits[split] = ids
    progress.done()
    if labeled_sizes:
        subset_rng = np.random.default_rng([int(seed), SPLIT_STREAM["subsets"]])
        for size, indices in generated.choose_subsets(subset_rng, classes_per_image, labeled_sizes).items():
            splits[f"labeled_{size}"] = [splits["train"][i] for i in indices]
    list_paths = []
    for split, ids in splits.items():
        list_paths.append(os.path.join(lists_dir, split + ".txt"))
        with open(list_paths[-1], "w") as f:
            f.write("".join(i + "\n" for i in ids))

    records = build_voc(voc, output_dir, list_paths, mask_dir="SegmentationClass", num_shards=num_shards,
                        class_names=CLASS_NAMES, dataset_name=DATASET_NAME)
    eval_crop = load_dataset_info(DATASET_NAME, output_dir).eval_crop
    total = max(int(pixels.sum()), 1)  # fractions of all pixels: the boundary band takes the rest
    fractions = {n: round(float(c) / total, 6) for n, c in zip(CLASS_NAMES, pixels)}
    manifest = {"parameters": parameters, "split_sizes": {split: len(ids) for split, ids in splits.items()},
                "eval_crop": list(eval_crop),
                "records": {s: [os.path.relpath(p, output_dir) for p in paths] for s, paths in records.items()},
                "train_pixel_fractions": fractions,
                "train_boundary_fraction": round(float(pixels[BOUNDARY_LABEL]) / total, 6)}
    generated.write_manifest(output_dir, manifest, MANIFEST_FILE)
    return generated.from_manifest(output_dir, manifest, CLASS_NAMES, DATASET_NAME, reused=False)


def main(argv) -> None:
    from absl import flags

    FLAGS = flags.FLAGS
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    start = time.time()
    dataset = generate(FLAGS.output_dir, seed=FLAGS.seed, num_train=FLAGS.num_train, num_val=FLAGS.num_val,
                       labeled_sizes=[int(s) for s in FLAGS.labeled_sizes],
                       image_size_range=[int(s) for s in FLAGS.image_size_range], num_shards=FLAGS.num_shards,
                       force=FLAGS.force)
    state = "already there (same parameters), kept" if dataset.reused else f"generated in {time.time() - start:.1f}s"
    print(f"{DATASET_NAME} in {dataset.output_dir}: {state}")
    print(f"  classes ({dataset.num_classes}): {', '.join(f'{i} {n}' for i, n in enumerate(dataset.class_names))}")
    print(f"  eval crop {dataset.eval_crop[0]}x{dataset.eval_crop[1]}; VOC tree in "
          f"{os.path.join(dataset.output_dir, VOC_DIR)}")
    fractions = dataset.train_pixel_fractions
    print("  pixels of the training pool: " + ", ".join(f"{n} {100 * f:.1f}%" for n, f in fractions.items())
          + f", boundary (255) {100 * max(1 - sum(fractions.values()), 0):.1f}%")
    for split, size in dataset.split_sizes.items():
        shards = dataset.records.get(split, [])
        where = os.path.join(dataset.output_dir, f"{split}-*") if shards else "no records"
        print(f"  {split}: {size} images, {len(shards)} shards ({where})")


if __name__ == "__main__":
    from wss_tf import app_runner

    generated.define_generation_flags(DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, DEFAULT_LABELED_SIZES,
                                      DEFAULT_IMAGE_SIZE_RANGE)
    app_runner.run(main)
