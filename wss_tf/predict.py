"""Label maps for a folder of images (or one image), from an exported SavedModel or straight from a checkpoint.

  ./run.sh predict --export_dir=exports/voc92 --input=photos/ --output_dir=predictions/
  ./run.sh predict --checkpoint_dir=runs/voc92 --input=photo.jpg --output_dir=predictions/ \\
      [--inference_scales=0.75,1.0,1.25 --add_flipped_images --crop_size=513,513 --dataset_dir=records/voc]

For each image `<name>.jpg|jpeg|png` (any case) it writes `<name>.png` (raw class ids, uint8), `<name>_color.png`
(the colour map) and `<name>_overlay.png` (image and colours blended; background pixels left as the image).
Both routes run the same serving module (wss_tf/serving.py), so they give the same labels; with --checkpoint_dir
it is built in-process and not saved.
"""
from __future__ import annotations

import os
import re
import time
from typing import Callable, Optional, Sequence

import numpy as np
from absl import app, flags, logging

from wss_tf import app_runner

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


class BadImageError(ValueError):
    """An input file that cannot be read or decoded as an image; the message names the file."""


def list_images(path: str) -> list[str]:
    """The images of a folder (not recursive, sorted), or the one image file `path`."""
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS)
                       and os.path.isfile(os.path.join(path, n)))
        if not names:
            raise FileNotFoundError(f"no .jpg/.jpeg/.png images in {path}")
        paths = [os.path.join(path, n) for n in names]
    elif os.path.isfile(path):
        if not path.lower().endswith(IMAGE_EXTENSIONS):
            raise ValueError(f"{path} is not a .jpg/.jpeg/.png file")
        paths = [path]
    else:
        raise FileNotFoundError(f"--input {path!r} is neither a folder nor a file")
    stems = {}
    for p in paths:
        stems.setdefault(os.path.splitext(os.path.basename(p))[0], []).append(os.path.basename(p))
    clashes = [names for names in stems.values() if len(names) > 1]
    if clashes:
        raise ValueError(f"images whose outputs would overwrite each other (same name, other extension): {clashes}")
    return paths


def read_image(path: str) -> np.ndarray:
    """uint8 RGB [H, W, 3] (grey and RGBA converted), decoded by TensorFlow as the served model decodes bytes."""
    import tensorflow as tf

    try:
        with open(path, "rb") as f:
            data = f.read()
        image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False).numpy()
    except (OSError, tf.errors.OpError) as e:
        message = getattr(e, "message", None) or str(e)
        message = re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\]", "", message).strip().splitlines()[0][:200]
        raise BadImageError(f"cannot read image {path}: {message}") from None
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise BadImageError(f"cannot read image {path}: it is empty ({image.shape[0]}x{image.shape[1]})")
    return image


class Predictor:
    """`labels(image)` for one uint8 [H, W, 3] image -> int32 [H, W], plus what names and colours the classes."""

    def __init__(self, labels_fn: Callable, metadata: dict, source: str):
        self._labels_fn = labels_fn
        self.metadata = metadata
        self.source = source

    def labels(self, image: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._labels_fn(images=tf.constant(image[np.newaxis]))["labels"][0].numpy()

    @classmethod
    def from_export(cls, export_dir: str) -> "Predictor":
        import tensorflow as tf

        from wss_tf.serving import load_metadata

        metadata = load_metadata(export_dir)
        loaded = tf.saved_model.load(export_dir)
        if "labels_from_images" not in loaded.signatures:
            raise ValueError(f"{export_dir} has no labels_from_images signature: not a wss_tf export")
        fn = loaded.signatures["labels_from_images"]
        predictor = cls(fn, metadata, f"export {export_dir}")
        predictor._loaded = loaded  # keeps the restored variables alive
        return predictor

    @classmethod
    def from_server(cls, server, source: str) -> "Predictor":
        return cls(lambda images: server.labels_from_images(images), server.metadata, source)


def colour_outputs(image: np.ndarray, labels: np.ndarray, colormap_name: str, alpha: float = 0.5):
    """(colour map, overlay): the overlay blends image and colours with `alpha` where the label is not 0."""
    from wss_tf.colormap import colormap

    colours = colormap(colormap_name)[np.clip(labels, 0, 255)]
    blended = np.round((1.0 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32))
    overlay = np.where((labels != 0)[..., np.newaxis], blended.clip(0, 255).astype(np.uint8), image)
    return colours, overlay


def write_png(path: str, array: np.ndarray) -> None:
    from PIL import Image

    tmp = path + ".tmp.png"
    Image.fromarray(array).save(tmp)
    os.replace(tmp, path)


def predict_images(predictor: Predictor, paths: Sequence[str], output_dir: str, *, skip_bad_images: bool = False,
                   log_every: int = 50, overlay_alpha: float = 0.5, colormap_name: Optional[str] = None) -> dict:
    """Writes the three PNGs of each image; returns counts and rate. A bad image raises BadImageError unless
    `skip_bad_images` (then it is logged and counted)."""
    if not 0.0 <= overlay_alpha <= 1.0:
        raise ValueError(f"overlay_alpha must be in [0, 1], got {overlay_alpha}")
    num_classes = predictor.metadata["num_classes"]
    if num_classes > 256:
        raise ValueError(f"{num_classes} classes do not fit the uint8 label PNGs")
    colormap_name = colormap_name or predictor.metadata.get("colormap", "pascal")
    os.makedirs(output_dir, exist_ok=True)
    done, bad, started, first_done = 0, [], time.time(), None
    for i, path in enumerate(paths):
        try:
            image = read_image(path)
        except BadImageError as e:
            if not skip_bad_images:
                raise
            logging.warning("skipped: %s", e)
            bad.append(path)
            continue
        labels = predictor.labels(image)
        stem = os.path.splitext(os.path.basename(path))[0]
        colours, overlay = colour_outputs(image, labels, colormap_name, overlay_alpha)
        write_png(os.path.join(output_dir, stem + ".png"), labels.astype(np.uint8))
        write_png(os.path.join(output_dir, stem + "_color.png"), colours)
        write_png(os.path.join(output_dir, stem + "_overlay.png"), overlay)
        done += 1
        if first_done is None:
            first_done = time.time()  # the first image carries the graph's set-up
        if log_every and (i + 1) % log_every == 0 and i + 1 < len(paths):
            seconds = time.time() - started
            logging.info("%d/%d images, %.2f images/s", i + 1, len(paths), done / seconds)
    seconds = time.time() - started
    rate = done / seconds if seconds > 0 else float("nan")
    steady = (done - 1) / (time.time() - first_done) if done > 1 and time.time() > first_done else float("nan")
    logging.info("done: %d image(s) predicted%s in %.1f s, %.2f images/s%s; label ids, colour maps and overlays in %s",
                 done, f", {len(bad)} unreadable skipped" if bad else "", seconds, rate,
                 f" ({steady:.2f} after the first, which sets the graph up)" if done > 1 else "", output_dir)
    return {"images": done, "skipped": bad, "seconds": seconds, "images_per_second": rate,
            "steady_images_per_second": steady}


def define_flags(flag_values=flags.FLAGS) -> None:
    from wss_tf.export import define_serving_flags

    fv = flag_values
    flags.DEFINE_string("input", None, "a folder of .jpg/.jpeg/.png images, or one image file", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "where the label, colour and overlay PNGs go", flag_values=fv)
    flags.DEFINE_string("export_dir", None, "a SavedModel written by ./run.sh export", flag_values=fv)
    flags.DEFINE_string("checkpoint_dir", None, "or: a train_logdir or checkpoint prefix (the model is built "
                        "in-process from the model flags / the run's config.json)", flag_values=fv)
    flags.DEFINE_bool("skip_bad_images", False, "log unreadable images and go on instead of stopping", flag_values=fv)
    flags.DEFINE_integer("log_every", 50, "a progress line every this many images", flag_values=fv)
    flags.DEFINE_float("overlay_alpha", 0.5, "weight of the label colours in the overlay", flag_values=fv)
    define_serving_flags(fv)


_SERVING_FLAGS = ("crop_size", "inference_scales", "add_flipped_images", "dataset_dir")


def predictor_from_flags(flag_values=flags.FLAGS) -> Predictor:
    fv = flag_values
    if bool(fv.export_dir) == bool(fv.checkpoint_dir):
        raise app.UsageError("give exactly one of --export_dir (a SavedModel) and --checkpoint_dir")
    if fv.export_dir:
        from wss_tf.cli import MODEL_FIELDS

        fixed = [n for n in _SERVING_FLAGS + MODEL_FIELDS if fv[n].present]
        if fixed:
            logging.warning("--%s ignored: fixed when the model was exported (export again to change)",
                            ", --".join(fixed))
        predictor = Predictor.from_export(fv.export_dir)
    else:
        from wss_tf.export import serving_settings
        from wss_tf.serving import server_from_checkpoint

        settings = serving_settings(fv.checkpoint_dir, fv)
        server, checkpoint = server_from_checkpoint(
            fv.checkpoint_dir, settings["config"], settings["info"].class_names, crop_size=settings["crop_size"],
            eval_scales=settings["eval_scales"], add_flipped_images=settings["add_flipped_images"],
            colormap_name=settings["colormap_name"])
        predictor = Predictor.from_server(server, f"checkpoint {checkpoint}")
    return predictor


def predict_from_flags(flag_values=flags.FLAGS) -> dict:
    from wss_tf.export import describe

    fv = flag_values
    if not fv.input or not fv.output_dir:
        raise app.UsageError("--input and --output_dir are required")
    paths = list_images(fv.input)
    predictor = predictor_from_flags(fv)
    logging.info("predicting %d image(s) with %s: %s", len(paths), predictor.source, describe(predictor.metadata))
    colormap_name = fv.colormap_type if fv["colormap_type"].present else None
    return predict_images(predictor, paths, fv.output_dir, skip_bad_images=fv.skip_bad_images,
                          log_every=fv.log_every, overlay_alpha=fv.overlay_alpha, colormap_name=colormap_name)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    import tensorflow as tf

    tf.get_logger().setLevel("WARNING")  # TF's own INFO lines (one per captured variable name, saver details)
    try:
        predict_from_flags(flags.FLAGS)
    except (BadImageError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}" + (" (--skip_bad_images goes on past it)"
                                          if isinstance(e, BadImageError) else ""))


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app_runner.run(main)
