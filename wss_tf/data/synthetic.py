"""A small generated semantic-segmentation dataset ("synthetic_shapes") for the CPU demo and the tests.

Each image is a cluttered, textured scene with a few objects of five classes on it, each with a shape and a typical
look (a material in two colours, jittered per instance):

  0 background
  1 disc      filled ellipse                          red dots on yellow
  2 ring      annulus (its hole shows what is below)  blue and white stripes
  3 triangle  triangle                                green and black checks
  4 star      star with 5 or 6 points                 plain orange
  5 cross     plus sign, arms of varying length       purple and pink stripes

15% of the objects wear a random material instead, so the shape has to decide. The background is made of the
same stuff: a base surface, large regions and clutter (irregular blobs, rotated rectangles, thick strokes, sized
like the objects) mostly in plain materials (solid, mottled, gradient), sometimes in patterned ones, in colours that
are mostly the class looks' colours, often both colours of one look together. So no pixel colour, and no local
colour pair either, gives the class: it takes the pattern around the pixel and the outline of the shape it is in
(the plain orange star is told from an orange blob only by its shape). Objects overlap partially, run off the
borders, cast soft shadows, get a shading ramp; thin strokes sometimes cross in front of them; the whole image gets
an illumination gradient, a slight blur and sensor noise.

Masks are single-channel PNGs of class ids 0..5, every pixel labelled: 255 (ignore) is used nowhere.

Layout written by `generate` into `output_dir`:

  raw/images/<id>.png        RGB, each side drawn uniformly from `image_size_range` (variable aspect)
  raw/masks/<id>.png         class ids
  raw/splits/<split>.txt     train (the whole pool, every image keeps its mask, like VOC's train_aug),
                             labeled_<n> for each n in labeled_sizes (nested random subsets of train, each with
                             every class), val (disjoint images)
  <split>-NNNNN-of-NNNNN.tfrecord, dataset_info.json    DeepLab records, by wss_tf.data.build_folder
  synthetic_manifest.json    the generation parameters, written last; a later call with the same parameters
                             finds it and returns without regenerating

Deterministic: image `i` of a split is drawn from its own np.random.Generator seeded by (seed, split, i), so the same
seed gives byte-identical files, and a larger `num_train` extends the pool without changing its first images.
Only numpy and Pillow draw.
"""
from __future__ import annotations

import colorsys
import dataclasses
import math
import os
import time
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from wss_tf.data import generated
from wss_tf.data.generated import MANIFEST_FILE, RAW_DIR, SPLIT_STREAM, GeneratedDataset, image_id

# Bump when the pictures change, so existing generated datasets are rebuilt.
GENERATOR_VERSION = 2
DATASET_NAME = "synthetic_shapes"
CLASS_NAMES = ("background", "disc", "ring", "triangle", "star", "cross")
DEFAULT_NUM_TRAIN = 512
DEFAULT_NUM_VAL = 100
DEFAULT_LABELED_SIZES = (16, 64)
DEFAULT_IMAGE_SIZE_RANGE = (96, 160)

TEXTURES = ("solid", "stripes", "checker", "dots", "mottled", "gradient")
# Plain materials: what background surfaces mostly wear (Style.patterned_background: how often they wear any).
PLAIN_TEXTURES = ("solid", "mottled", "gradient")
# Each class's look: a material and two colours (HSV, jittered per instance), worn by most of its instances
# (Style.class_look_probability; the others wear a random material). Like a tiger's orange and black stripes, it is
# a pattern over a neighbourhood, not a pixel colour: the background reuses the same colours, alone and in pairs.
CLASS_LOOKS = (
    None,
    ("dots", (0.14, 0.75, 0.95), (0.0, 0.85, 0.7)),  # disc: red dots on yellow
    ("stripes", (0.6, 0.75, 0.75), (0.6, 0.08, 0.95)),  # ring: blue and white stripes
    ("checker", (0.33, 0.7, 0.65), (0.0, 0.0, 0.15)),  # triangle: green and black checks
    ("solid", (0.08, 0.85, 0.95), (0.08, 0.85, 0.95)),  # star: plain orange
    ("stripes", (0.78, 0.6, 0.5), (0.92, 0.35, 0.95)),  # cross: purple and pink stripes
)
# Per-class size scale so that the classes cover similar areas (a star or a triangle covers less of its circle).
_SIZE_FACTOR = (0.0, 0.9, 1.0, 1.25, 1.3, 1.1)
# Shapes of this family that are not segmentation classes: `render_object` draws them for the pretraining corpus
# (as ImageNet holds classes VOC does not), class index len(CLASS_NAMES) + j.
EXTRA_CLASS_NAMES = ("square", "crescent", "hexagon", "arrow")
EXTRA_LOOKS = (
    ("checker", (0.0, 0.8, 0.8), (0.0, 0.0, 0.95)),  # square: red and white checks
    ("solid", (0.15, 0.8, 0.95), (0.15, 0.8, 0.95)),  # crescent: plain yellow
    ("dots", (0.6, 0.7, 0.8), (0.33, 0.7, 0.6)),  # hexagon: blue dots on green
    ("stripes", (0.0, 0.0, 0.1), (0.14, 0.85, 0.95)),  # arrow: black and yellow stripes
)
_EXTRA_SIZE_FACTOR = (0.9, 1.2, 1.0, 1.2)


# ----------------------------------------------------------------------------------------------------------------
# Drawing primitives. A shape is a list of ops, ("poly", points[N,2], fill) or ("line", points[N,2], fill, width),
# rasterised in order onto a single-channel canvas (fill 1 adds to the shape, 0 cuts a hole).


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _place(points: np.ndarray, cx: float, cy: float, theta: float) -> np.ndarray:
    return points @ _rotation(theta).T + np.array([cx, cy])


def _ellipse(a: float, b: float, n: int = 40) -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)


def _raster(ops, height: int, width: int, offset=(0.0, 0.0)) -> np.ndarray:
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    shift = np.asarray(offset, dtype=np.float64)
    for op in ops:
        pts = np.round(op[1] + shift, 2).ravel().tolist()
        if op[0] == "poly":
            draw.polygon(pts, fill=op[2])
        else:
            draw.line(pts, fill=op[2], width=op[3], joint="curve")
    return np.asarray(canvas) > 0


def _object_ops(rng: np.random.Generator, cls: int, cx: float, cy: float, r: float):
    """The ops of one object of class `cls` (CLASS_NAMES, then EXTRA_CLASS_NAMES) centred at (cx, cy), radius ~r."""
    theta = rng.uniform(0, 2 * math.pi)
    name = (CLASS_NAMES + EXTRA_CLASS_NAMES)[cls]
    if name == "square":
        a = r * 0.8
        return [("poly", _place(np.array([[a, a], [-a, a], [-a, -a], [a, -a]]), cx, cy, theta), 1)]
    if name == "crescent":
        shift = rng.uniform(0.35, 0.6)
        return [("poly", _place(_ellipse(r, r), cx, cy, theta), 1),
                ("poly", _place(_ellipse(r * 0.85, r * 0.85) + np.array([r * shift, 0.0]), cx, cy, theta), 0)]
    if name == "hexagon":
        t = np.arange(6) * math.pi / 3
        return [("poly", _place(np.stack([r * np.cos(t), r * np.sin(t)], axis=1), cx, cy, theta), 1)]
    if name == "arrow":
        w, head = r * rng.uniform(0.18, 0.3), r * rng.uniform(0.45, 0.65)
        pts = np.array([[-r, w], [r - head, w], [r - head, 2.2 * w + 0.2 * head], [r, 0.0],
                        [r - head, -2.2 * w - 0.2 * head], [r - head, -w], [-r, -w]])
        return [("poly", _place(pts, cx, cy, theta), 1)]
    if name == "disc":
        return [("poly", _place(_ellipse(r, r * rng.uniform(0.55, 1.0)), cx, cy, theta), 1)]
    if name == "ring":
        b = rng.uniform(0.6, 1.0)
        hole = rng.uniform(0.4, 0.65)
        return [("poly", _place(_ellipse(r, r * b), cx, cy, theta), 1),
                ("poly", _place(_ellipse(r * hole, r * b * hole), cx, cy, theta), 0)]
    if name == "triangle":
        angles = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-22, 22, 3))
        radii = r * rng.uniform(0.8, 1.15, 3)
        pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        return [("poly", _place(pts, cx, cy, theta), 1)]
    if name == "star":
        points = int(rng.integers(5, 7))
        inner = rng.uniform(0.38, 0.55)
        t = np.arange(2 * points) * math.pi / points
        radii = np.where(np.arange(2 * points) % 2 == 0, r, r * inner) * rng.uniform(0.92, 1.08, 2 * points)
        pts = np.stack([radii * np.cos(t), radii * np.sin(t)], axis=1)
        return [("poly", _place(pts, cx, cy, theta), 1)]
    if name == "cross":
        w = r * rng.uniform(0.26, 0.42)
        lx, ly = r, r * rng.uniform(0.7, 1.0)
        pts = np.array([[w, w], [lx, w], [lx, -w], [w, -w], [w, -ly], [-w, -ly], [-w, -w], [-lx, -w],
                        [-lx, w], [-w, w], [-w, ly], [w, ly]])
        return [("poly", _place(pts, cx, cy, theta), 1)]
    raise ValueError(f"no shape for class {cls}")


def _clutter_ops(rng: np.random.Generator, cx: float, cy: float, r: float, kind: Optional[str] = None):
    """A background shape: an irregular blob, a rotated rectangle or a thick stroke."""
    kind = kind or str(rng.choice(["blob", "blob", "rect", "stroke"]))
    theta = rng.uniform(0, 2 * math.pi)
    if kind == "blob":
        n = int(rng.integers(6, 12))
        t = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = r * rng.uniform(0.35, 1.0, n)
        pts = np.stack([radii * np.cos(t), radii * np.sin(t)], axis=1)
        return [("poly", _place(pts, cx, cy, theta), 1)]
    if kind == "rect":
        a, b = r, r * rng.uniform(0.15, 1.0)
        pts = np.array([[a, b], [-a, b], [-a, -b], [a, -b]])
        return [("poly", _place(pts, cx, cy, theta), 1)]
    # a stroke: a polyline of 2-4 segments
    n = int(rng.integers(3, 6))
    steps = rng.normal(0, 1, (n - 1, 2))
    steps = steps / np.maximum(np.linalg.norm(steps, axis=1, keepdims=True), 1e-6) * r * rng.uniform(0.5, 1.0)
    pts = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)])
    pts = pts - pts.mean(axis=0) + np.array([cx, cy])
    return [("line", pts, 1, int(rng.integers(2, 8)))]


# ----------------------------------------------------------------------------------------------------------------
# Materials: a colour pattern evaluated on a window of the image grid.


def _colour(rng: np.random.Generator) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.1, 1.0), rng.uniform(0.2, 1.0)), np.float32)


def _jittered(rng: np.random.Generator, hsv) -> np.ndarray:
    h, s, v = hsv
    h = (h + rng.uniform(-0.04, 0.04)) % 1.0
    s = min(max(s * rng.uniform(0.8, 1.15), 0.0), 1.0)
    v = min(max(v * rng.uniform(0.75, 1.15), 0.0), 1.0)
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def _class_material(rng: np.random.Generator, cls: int):
    kind, first, second = CLASS_LOOKS[cls] if cls < len(CLASS_NAMES) else EXTRA_LOOKS[cls - len(CLASS_NAMES)]
    return kind, _jittered(rng, first), _jittered(rng, second)


def _random_material(rng: np.random.Generator, kinds: Sequence[str], palette_colours: float,
                     palette_pairs: float = 0.0):
    """A material of one of `kinds`: with probability palette_pairs in both colours of one class look (jittered),
    else each colour is a class look's (jittered) with probability palette_colours, or any colour."""
    kind = kinds[int(rng.integers(len(kinds)))]
    if rng.uniform() < palette_pairs:
        _, first, second = CLASS_LOOKS[int(rng.integers(1, len(CLASS_LOOKS)))]
        return kind, _jittered(rng, first), _jittered(rng, second)

    def colour():
        if rng.uniform() < palette_colours:
            look = CLASS_LOOKS[int(rng.integers(1, len(CLASS_LOOKS)))]
            return _jittered(rng, look[1 + int(rng.integers(2))])
        return _colour(rng)

    c1 = colour()
    c2 = colour() if rng.uniform() < 0.6 else np.clip(c1 * rng.uniform(0.35, 0.75), 0, 1)
    return kind, c1, c2


def _texture(rng: np.random.Generator, y0: int, x0: int, h: int, w: int, material) -> np.ndarray:
    """float32 [h, w, 3] in [0, 1]: `material` (kind, colour, colour) with random pattern geometry, continuous across
    the image (this is the window at y0, x0)."""
    kind, c1, c2 = material
    if kind == "solid":
        return np.broadcast_to(c1, (h, w, 3)).copy()
    if kind == "mottled":
        cell = int(rng.integers(3, 9))
        small = rng.uniform(0, 255, (h // cell + 2, w // cell + 2)).astype(np.uint8)
        t = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)[..., None] / 255.0
        return c1 * (1 - t) + c2 * t
    yy, xx = np.ogrid[y0:y0 + h, x0:x0 + w]
    yy, xx = yy.astype(np.float32), xx.astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = xx * math.cos(theta) + yy * math.sin(theta)
    v = -xx * math.sin(theta) + yy * math.cos(theta)
    period = rng.uniform(3.0, 10.0)
    phase_u, phase_v = rng.uniform(0, period, 2)
    if kind == "stripes":
        t = (np.mod(u + phase_u, period) < period * rng.uniform(0.3, 0.7)).astype(np.float32)
    elif kind == "checker":
        t = ((np.floor((u + phase_u) / period) + np.floor((v + phase_v) / period)) % 2).astype(np.float32)
    elif kind == "dots":
        du = np.mod(u + phase_u, period) - period / 2
        dv = np.mod(v + phase_v, period) - period / 2
        t = (du * du + dv * dv < (period * rng.uniform(0.2, 0.4)) ** 2).astype(np.float32)
    else:  # gradient
        span = rng.uniform(20.0, 120.0)
        t = np.clip((u - u.mean()) / span + 0.5, 0, 1)
    return c1 * (1 - t[..., None]) + c2 * t[..., None]


def _bbox(region: np.ndarray):
    rows, cols = np.any(region, axis=1), np.any(region, axis=0)
    if not rows.any():
        return None
    y0, y1 = np.argmax(rows), len(rows) - np.argmax(rows[::-1])
    x0, x1 = np.argmax(cols), len(cols) - np.argmax(cols[::-1])
    return y0, y1, x0, x1


def _paint(rng: np.random.Generator, canvas: np.ndarray, region: np.ndarray, cx: float, cy: float, r: float,
           material):
    """Fills `region` of `canvas` with `material` under a random shading ramp."""
    box = _bbox(region)
    if box is None:
        return
    y0, y1, x0, x1 = box
    tex = _texture(rng, y0, x0, y1 - y0, x1 - x0, material)
    theta, strength = rng.uniform(0, 2 * math.pi), rng.uniform(0.0, 0.3)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    ramp = ((xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)) / max(r, 1.0)
    tex = tex * np.clip(1 + strength * ramp, 0.5, 1.5).astype(np.float32)[..., None]
    np.copyto(canvas[y0:y1, x0:x1], tex, where=region[y0:y1, x0:x1, None])


def _shadow(rng: np.random.Generator, canvas: np.ndarray, ops, light) -> None:
    height, width = canvas.shape[:2]
    dist = rng.uniform(1.5, 4.0)
    region = _raster(ops, height, width, offset=(light[0] * dist, light[1] * dist))
    blur, darkness = rng.uniform(0.8, 2.0), rng.uniform(0.2, 0.45)
    box = _bbox(region)
    if box is None:
        return
    y0, y1, x0, x1 = max(box[0] - 6, 0), min(box[1] + 6, height), max(box[2] - 6, 0), min(box[3] + 6, width)
    soft = Image.fromarray(region[y0:y1, x0:x1].astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(blur))
    alpha = np.asarray(soft, dtype=np.float32)[..., None] / 255.0
    canvas[y0:y1, x0:x1] *= 1 - darkness * alpha


@dataclasses.dataclass(frozen=True)
class Style:
    """The scene recipe's knobs; the defaults make the dataset (`generate` always uses them). Counts are drawn
    uniformly from [low, high)."""

    regions: tuple[int, int] = (0, 4)  # large background regions of another material
    clutter: tuple[int, int] = (2, 8)  # background shapes (blobs, rectangles, strokes) under the objects
    objects: tuple[int, int] = (3, 9)
    class_look_probability: float = 0.85  # objects wearing their class's look (else any material, any colours)
    patterned_background: float = 0.25  # background surfaces wearing any material rather than a plain one
    palette_background: float = 0.7  # background colours taken from the class looks (else any colour)
    palette_pairs: float = 0.3  # background surfaces in both colours of one class look
    clutter_between_objects: float = 0.15  # chance of a background shape after each object (occluding it)
    front_strokes: float = 0.4  # chance of 0-2 thin strokes in front of everything


def render(rng: np.random.Generator, height: int, width: int, style: Style = Style(),
           centre_object: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 RGB [H, W, 3], uint8 class ids [H, W]). With `centre_object` (an index into
    CLASS_NAMES + EXTRA_CLASS_NAMES), the scene holds that one object, large and near the centre, instead of the
    random objects (the mask then holds 0 and, for a segmentation class, that class)."""
    def background_material():
        kinds = TEXTURES if rng.uniform() < style.patterned_background else PLAIN_TEXTURES
        return _random_material(rng, kinds, style.palette_background, style.palette_pairs)

    canvas = _texture(rng, 0, 0, height, width, background_material())
    mask = np.zeros((height, width), np.uint8)
    side = min(height, width)
    angle = rng.uniform(0, 2 * math.pi)
    light = (math.cos(angle), math.sin(angle))

    def random_centre(margin: float = 0.0):
        return rng.uniform(-margin, width + margin), rng.uniform(-margin, height + margin)

    def object_radius():
        return side * math.exp(rng.uniform(math.log(0.09), math.log(0.33)))

    # large background regions: another material over a half plane or a big blob
    for _ in range(int(rng.integers(*style.regions))):
        if rng.uniform() < 0.5:
            cx, cy = random_centre()
            theta = rng.uniform(0, 2 * math.pi)
            big = 2.0 * (height + width)
            pts = _place(np.array([[0, -big], [big, -big], [big, big], [0, big]]), cx, cy, theta)
            ops = [("poly", pts, 1)]
            r = side / 2
        else:
            cx, cy = random_centre(side * 0.2)
            r = side * rng.uniform(0.3, 0.7)
            ops = _clutter_ops(rng, cx, cy, r, kind="blob")
        _paint(rng, canvas, _raster(ops, height, width), cx, cy, r, background_material())

    def clutter():
        cx, cy = random_centre(side * 0.1)
        r = object_radius()
        ops = _clutter_ops(rng, cx, cy, r)
        if rng.uniform() < 0.5:
            _shadow(rng, canvas, ops, light)
        region = _raster(ops, height, width)
        _paint(rng, canvas, region, cx, cy, r, background_material())
        mask[region] = 0

    for _ in range(int(rng.integers(*style.clutter))):
        clutter()

    # objects: partial overlaps allowed, near-total ones avoided; centres anywhere, so some run off the borders
    placed = []
    count = 1 if centre_object is not None else int(rng.integers(*style.objects))
    for _ in range(count):
        if centre_object is not None:  # object-centric, as a classification corpus's images are
            cls = centre_object
            factor = (_SIZE_FACTOR + _EXTRA_SIZE_FACTOR)[cls]
            r = side * rng.uniform(0.25, 0.42) * factor
            cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65)
        else:
            cls = int(rng.integers(1, len(CLASS_NAMES)))
            r = object_radius() * _SIZE_FACTOR[cls]
            for _attempt in range(10):
                cx, cy = random_centre()
                if all(math.hypot(cx - px, cy - py) > 0.6 * max(r, pr) for px, py, pr in placed):
                    break
        placed.append((cx, cy, r))
        ops = _object_ops(rng, cls, cx, cy, r)
        if rng.uniform() < 0.6:
            _shadow(rng, canvas, ops, light)
        region = _raster(ops, height, width)
        if rng.uniform() < style.class_look_probability:
            material = _class_material(rng, cls)
        else:
            material = _random_material(rng, TEXTURES, style.palette_background)
        _paint(rng, canvas, region, cx, cy, r, material)
        mask[region] = cls if cls < len(CLASS_NAMES) else 0
        if rng.uniform() < style.clutter_between_objects:
            clutter()

    # thin strokes in front (twigs, wires): background in the mask
    for _ in range(int(rng.integers(0, 3)) if rng.uniform() < style.front_strokes else 0):
        cx, cy = random_centre()
        ops = _clutter_ops(rng, cx, cy, side * rng.uniform(0.2, 0.5), kind="stroke")
        ops = [(k, pts, fill, int(rng.integers(1, 3))) for k, pts, fill, _ in ops]
        region = _raster(ops, height, width)
        _paint(rng, canvas, region, cx, cy, side / 4, background_material())
        mask[region] = 0

    # illumination gradient, a slight blur (soft edges), sensor noise
    yy, xx = np.ogrid[0:height, 0:width]
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (((xx - width / 2) * math.cos(theta) + (yy - height / 2) * math.sin(theta)) / side).astype(np.float32)
    canvas = canvas * rng.uniform(0.8, 1.1) * (1 + rng.uniform(0, 0.4) * ramp)[..., None]
    image = Image.fromarray(np.clip(canvas * 255 + 0.5, 0, 255).astype(np.uint8))
    image = np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.8))), dtype=np.float32)
    image = image + rng.uniform(1.0, 4.0) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), mask


def render_object(rng: np.random.Generator, cls: int, height: int, width: int) -> np.ndarray:
    """One object-centric image (uint8 RGB [H, W, 3]) of class `cls`: an index into CLASS_NAMES (1..5) or, from
    len(CLASS_NAMES) on, into EXTRA_CLASS_NAMES; on this family's cluttered backgrounds."""
    if not 1 <= cls < len(CLASS_NAMES) + len(EXTRA_CLASS_NAMES):
        raise ValueError(f"no object class {cls}: 1..{len(CLASS_NAMES) + len(EXTRA_CLASS_NAMES) - 1}")
    return render(rng, height, width, Style(clutter=(1, 5)), centre_object=cls)[0]


def sample(seed: int, split: str, index: int, image_size_range: Sequence[int] = DEFAULT_IMAGE_SIZE_RANGE,
           style: Style = Style()) -> tuple[np.ndarray, np.ndarray]:
    """Image `index` of `split` ("train" | "val") for `seed`: (uint8 RGB [H, W, 3], uint8 class ids [H, W])."""
    rng = np.random.default_rng([int(seed), SPLIT_STREAM[split], int(index)])
    lo, hi = image_size_range
    height, width = (int(v) for v in rng.integers(lo, hi + 1, 2))
    return render(rng, height, width, style)


# ----------------------------------------------------------------------------------------------------------------
# The dataset on disk.


def eval_crop_for(image_size_range: Sequence[int]) -> tuple[int, int]:
    """The smallest square crop of the form 16k+1 that holds every image (as build_folder computes it)."""
    from wss_tf.data.build_folder import eval_crop_for as crop_for_side

    side = crop_for_side(int(image_size_range[1]))
    return side, side


def generate(output_dir: str, *, seed: int = 0, num_train: int = DEFAULT_NUM_TRAIN, num_val: int = DEFAULT_NUM_VAL,
             labeled_sizes: Sequence[int] = DEFAULT_LABELED_SIZES,
             image_size_range: Sequence[int] = DEFAULT_IMAGE_SIZE_RANGE, num_shards: int = 2,
             force: bool = False) -> GeneratedDataset:
    """Writes the dataset (raw files, then records) into output_dir, or keeps a complete one made with the same
    parameters there (unless `force`). Returns what is there."""
    labeled_sizes, lo, hi = generated.checked_arguments(num_train, num_val, labeled_sizes, image_size_range)
    parameters = generated.parameters(GENERATOR_VERSION, DATASET_NAME, CLASS_NAMES, seed, num_train, num_val,
                                      labeled_sizes, (lo, hi), num_shards)
    output_dir = os.path.abspath(output_dir)
    manifest = None if force else generated.read_manifest(output_dir, parameters)
    if manifest is not None:
        existing = generated.from_manifest(output_dir, manifest, CLASS_NAMES, DATASET_NAME, reused=True)
        if existing is not None:
            return existing
    from wss_tf.data.records import Progress  # imports TensorFlow: not needed when the dataset is already there

    generated.clear_previous(output_dir, DATASET_NAME, MANIFEST_FILE, ("images", "masks", "splits"))
    raw = os.path.join(output_dir, RAW_DIR)
    for sub in ("images", "masks", "splits"):
        os.makedirs(os.path.join(raw, sub), exist_ok=True)

    splits: dict[str, list[str]] = {}
    classes_per_image: list[set] = []
    pixels = np.zeros(len(CLASS_NAMES), np.int64)
    progress = Progress("drawing synthetic_shapes", num_train + num_val)
    for split, count in (("train", num_train), ("val", num_val)):
        ids = []
        for i in range(count):
            image, mask = sample(seed, split, i, (lo, hi))
            name = image_id(split, i)
            Image.fromarray(image).save(os.path.join(raw, "images", name + ".png"), compress_level=1)
            Image.fromarray(mask).save(os.path.join(raw, "masks", name + ".png"), compress_level=1)
            counts = np.bincount(mask.ravel(), minlength=len(CLASS_NAMES))
            if split == "train":
                classes_per_image.append({int(c) for c in np.flatnonzero(counts[1:]) + 1})
                pixels += counts
            ids.append(name)
            progress.update()
        splits[split] = ids
    progress.done()
    if labeled_sizes:
        subset_rng = np.random.default_rng([int(seed), SPLIT_STREAM["subsets"]])
        for size, indices in generated.choose_subsets(subset_rng, classes_per_image, labeled_sizes).items():
            splits[f"labeled_{size}"] = [splits["train"][i] for i in indices]
    for split, ids in splits.items():
        with open(os.path.join(raw, "splits", split + ".txt"), "w") as f:
            f.write("".join(i + "\n" for i in ids))

    from wss_tf.data.build_folder import build_folder

    eval_crop = eval_crop_for((lo, hi))
    records = build_folder(raw, output_dir, num_classes=len(CLASS_NAMES), class_names=CLASS_NAMES,
                           dataset_name=DATASET_NAME, splits=splits, eval_crop=eval_crop, num_shards=num_shards)
    split_sizes = {split: len(ids) for split, ids in splits.items()}
    fractions = {n: round(float(c) / max(int(pixels.sum()), 1), 6) for n, c in zip(CLASS_NAMES, pixels)}
    manifest = {"parameters": parameters, "split_sizes": split_sizes, "eval_crop": list(eval_crop),
                "records": {s: [os.path.relpath(p, output_dir) for p in paths] for s, paths in records.items()},
                "train_pixel_fractions": fractions}
    generated.write_manifest(output_dir, manifest)
    return GeneratedDataset(output_dir, CLASS_NAMES, split_sizes, {s: list(p) for s, p in records.items()},
                            eval_crop, fractions, dataset_name=DATASET_NAME)


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
    print(f"  eval crop {dataset.eval_crop[0]}x{dataset.eval_crop[1]}; raw files in {dataset.raw_dir}")
    print("  pixels of the training pool: " + ", ".join(f"{n} {100 * f:.1f}%"
                                                         for n, f in dataset.train_pixel_fractions.items()))
    for split, size in dataset.split_sizes.items():
        shards = dataset.records.get(split, [])
        where = os.path.join(dataset.output_dir, f"{split}-*") if shards else "no records"
        print(f"  {split}: {size} images, {len(shards)} shards ({where})")


if __name__ == "__main__":
    from wss_tf import app_runner

    generated.define_generation_flags(DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, DEFAULT_LABELED_SIZES,
                                      DEFAULT_IMAGE_SIZE_RANGE)
    app_runner.run(main)
