"""Exports a trained model as a SavedModel that serves label maps (the official export_model.py, for serving).

  ./run.sh export --checkpoint_path=runs/voc92 --export_path=exports/voc92 [--inference_scales=0.5,0.75,1.0,1.25 \\
      --add_flipped_images] [--crop_size=513,513] [--dataset=... --dataset_dir=...]

`--checkpoint_path` is a checkpoint prefix or a train_logdir (its latest checkpoint). The model flags
(--model_variant, --atrous_rates, ...) default to the training run's config.json beside the checkpoints. The
SavedModel takes images of any size (see wss_tf/serving.py for the signatures); `wss_tf_export.json` beside it
names the classes and the colour map, for `./run.sh predict --export_dir=...`.
"""
from __future__ import annotations

import json
import os

from absl import app, flags, logging

from wss_tf import app_runner
from wss_tf.cli import define_model_flags, find_run_config, model_config_from_flags, parse_floats


def define_serving_flags(flag_values=flags.FLAGS) -> None:
    """What fixes a served model besides its checkpoint; shared by export and predict --checkpoint_dir."""
    fv = flag_values
    define_model_flags(fv)  # includes --dataset
    flags.DEFINE_string("dataset_dir", None, "folder holding the dataset's dataset_info.json (class names, eval crop); "
                        "default: the training run's dataset_dir; not needed for pascal_voc_seg and coco",
                        flag_values=fv)
    flags.DEFINE_multi_string("crop_size", None, "network input size 'H,W' (or one value for a square); images "
                              "larger than it are resized down to fit; default: the dataset's eval crop",
                              flag_values=fv)
    flags.DEFINE_multi_string("inference_scales", ["1.0"], "scales averaged at inference (repeat the flag or give a "
                              "comma list), e.g. 0.5,0.75,1.0,1.25,1.5,1.75", flag_values=fv)
    flags.DEFINE_bool("add_flipped_images", False, "also average the prediction on the flipped image", flag_values=fv)
    flags.DEFINE_string("colormap_type", "pascal", "label colours: pascal, cityscapes, ... (wss_tf/colormap.py)",
                        flag_values=fv)


def _crop(values, default) -> tuple[int, int]:
    if not values:
        return tuple(int(c) for c in default)
    sizes = [int(p) for v in values for p in str(v).split(",") if p.strip()]
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) < 1:
        raise ValueError(f"--crop_size wants 'H,W' (or one value), got {values}")
    return tuple(sizes)


def serving_settings(checkpoint: str, flag_values=flags.FLAGS) -> dict:
    """The model config, dataset info and serving options from the flags and the run's config.json."""
    from wss_tf.colormap import colormap
    from wss_tf.data.datasets import load_dataset_info

    fv = flag_values
    config = model_config_from_flags(checkpoint, fv)
    dataset_dir = fv.dataset_dir
    if not dataset_dir:  # the training run's records, if they are still where they were
        run_config = find_run_config(checkpoint)
        if run_config:
            with open(run_config) as f:
                saved = json.load(f).get("dataset_dir") or None
            dataset_dir = saved if saved and os.path.isdir(saved) else None
    try:
        info = load_dataset_info(config.dataset, dataset_dir)
    except ValueError as e:
        raise ValueError(f"{e}; pass --dataset_dir (the folder with dataset_info.json) to name the classes") from None
    colormap(fv.colormap_type)  # an unknown name fails here, before the model is built
    scales = parse_floats(fv.inference_scales or ()) or (1.0,)
    return dict(config=config, info=info, dataset_dir=dataset_dir, crop_size=_crop(fv.crop_size, info.eval_crop),
                eval_scales=scales, add_flipped_images=fv.add_flipped_images, colormap_name=fv.colormap_type)


def describe(metadata: dict) -> str:
    """The served model in plain words (for logs)."""
    crop_h, crop_w = metadata["crop_size"]
    names = metadata["class_names"]
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    scales = ", ".join(f"{s:g}" for s in metadata["eval_scales"])
    return (f"{metadata['model_variant']}, {metadata['num_classes']} classes ({shown}); "
            f"network input {crop_h}x{crop_w}: "
            f"smaller images are padded with the mean pixel, larger ones resized down to fit (aspect kept) and their "
            f"labels resized back to the image size; inference scales {scales}, flipped images "
            f"{'averaged in' if metadata['add_flipped_images'] else 'not used'}; colour map {metadata['colormap']}")


def define_flags(flag_values=flags.FLAGS) -> None:
    flags.DEFINE_string("checkpoint_path", None, "checkpoint prefix, or a train_logdir (its latest checkpoint)",
                        flag_values=flag_values)
    flags.DEFINE_string("export_path", None, "directory to write the SavedModel to", flag_values=flag_values)
    define_serving_flags(flag_values)


def export_from_flags(flag_values=flags.FLAGS) -> str:
    from wss_tf.serving import METADATA_FILE, SIGNATURES, save_server, server_from_checkpoint

    fv = flag_values
    if not fv.checkpoint_path or not fv.export_path:
        raise app.UsageError("--checkpoint_path and --export_path are required")
    settings = serving_settings(fv.checkpoint_path, fv)
    info = settings["info"]
    server, checkpoint = server_from_checkpoint(
        fv.checkpoint_path, settings["config"], info.class_names, crop_size=settings["crop_size"],
        eval_scales=settings["eval_scales"], add_flipped_images=settings["add_flipped_images"],
        colormap_name=settings["colormap_name"])
    if os.path.isdir(fv.export_path) and os.listdir(fv.export_path):
        logging.warning("%s is not empty: the SavedModel files in it are replaced", fv.export_path)
    save_server(server, fv.export_path)
    logging.info("exported checkpoint %s to %s", checkpoint, fv.export_path)
    logging.info("model: %s", describe(server.metadata))
    logging.info("signatures: %s. serving_default takes encoded JPEG/PNG images ('image_bytes', base64 in the "
                 "REST API) and returns labels padded with 255 beyond each image, with heights and widths; "
                 "labels_from_images takes uint8 images [batch, height, width, 3]",
                 ", ".join(SIGNATURES))
    logging.info("class names and colour map: %s", os.path.join(fv.export_path, METADATA_FILE))
    return fv.export_path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    import tensorflow as tf

    tf.get_logger().setLevel("WARNING")  # TF's own INFO lines (one per captured variable name, saver details)
    export_from_flags(flags.FLAGS)


if __name__ == "__main__":
    define_flags(flags.FLAGS)
    app_runner.run(main)
