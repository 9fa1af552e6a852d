"""The main job: on a dataset the project generates, train the supervised baseline and PseudoSeg from the same
pretrained backbone (the ImageNet analog, `./run.sh pretrain`, cached after the first run) with the same labeled
images and schedule, evaluate both on the val split, and print a small mIoU table with the PseudoSeg run's
pseudo-label quality and calibration.

  ./run.sh [--config=configs/demo.json] [--workdir=runs/demo] [--training_number_of_steps=N] [--train_split=...]
"""
from __future__ import annotations

import json
import os
import time

from absl import flags, logging

from wss_tf import app_runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("config", os.path.join(ROOT, "configs", "demo.json"), "shared settings of both runs")
flags.DEFINE_string("workdir", os.path.join(ROOT, "runs", "demo"), "data, checkpoints and logs go here")
flags.DEFINE_integer("training_number_of_steps", None, "override the config's step count")
flags.DEFINE_string("train_split", None, "override the labeled split (labeled_16 or labeled_64)")
flags.DEFINE_integer("seed", 0, "data-generation and training seed")
flags.DEFINE_string("pretrain_dir", os.path.join(ROOT, "runs", "pretrain"), "the pretrained backbone's cache")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from wss_tf.distribute import make_strategy

    with open(FLAGS.config) as f:
        settings = json.load(f)
    strategy = make_strategy(settings.get("num_clones", 1))

    from wss_tf.config import TrainConfig
    from wss_tf.data.synthetic import generate
    from wss_tf.generated_run import train_and_evaluate
    from wss_tf.pretraining import PretrainConfig, pretrain
    from wss_tf.pseudo_label_quality import format_summary

    started = time.time()
    data = generate(os.path.join(FLAGS.workdir, "data"), seed=FLAGS.seed)
    logging.info("dataset: %s (%s)", data.output_dir, ", ".join(f"{k} {v}" for k, v in data.split_sizes.items()))
    logging.info("=== the pretrained backbone (ImageNet analog; cached in %s)", FLAGS.pretrain_dir)
    backbone = pretrain(PretrainConfig(model_variant=settings["model_variant"]), FLAGS.pretrain_dir,
                        log=logging.info)
    settings.update(dataset_dir=data.output_dir, seed=FLAGS.seed, tf_initial_checkpoint=backbone.checkpoint)
    if FLAGS.training_number_of_steps:
        settings["training_number_of_steps"] = FLAGS.training_number_of_steps
    if FLAGS.train_split:
        settings["train_split"] = FLAGS.train_split

    rows = []
    for name, mode in (("supervised baseline", "sup"), ("PseudoSeg", "wss")):
        config = TrainConfig.from_dict({**settings, "mode": mode,
                                        "train_logdir": os.path.join(FLAGS.workdir, f"{mode}_{settings['train_split']}")})
        logging.info("=== %s: %d steps on %s, logs in %s", name, config.training_number_of_steps,
                     config.train_split, config.train_logdir)
        # Both runs are also scored after re-estimating their batch-norm statistics on their own training crops
        # (in memory; the official evaluation, the first column, uses the moving averages training left).
        result, train_seconds = train_and_evaluate(config, strategy, data, bn_reestimation_batches=50)
        with open(os.path.join(config.train_logdir, "val_result.json"), "w") as f:
            json.dump(result, f, indent=2)
        rows.append((name, result, train_seconds))

    from wss_tf.calibration import SOURCE_TITLES
    from wss_tf.calibration_report import CalibrationSettings, calibration_report

    logging.info("=== pseudo-label calibration of the PseudoSeg model on 256 images of the unlabeled pool")
    wss_logdir = os.path.join(FLAGS.workdir, f"wss_{settings['train_split']}")
    report_dir = os.path.join(wss_logdir, "calibration")
    calibration = calibration_report(
        CalibrationSettings(wss_logdir, data.output_dir, report_dir, split=settings["train_split_cls"],
                            max_images=256), TrainConfig.from_dict({**settings, "mode": "wss"}))

    print()
    print(f"pretrained backbone (ImageNet analog, both runs start from it): {100 * backbone.held_out_accuracy:.1f}% "
          f"held-out accuracy over {backbone.num_classes} classes; pretraining {backbone.seconds:.0f}s"
          f"{' (made by an earlier run, cached)' if backbone.reused else ''}\n")
    print(f"{'method':22s} {'val mIoU':>9s} {'pixel acc':>10s} {'BN re-estimated':>16s} {'train time':>11s}   "
          f"labeled split: {settings['train_split']}, {settings['training_number_of_steps']} steps")
    for name, result, seconds in rows:
        print(f"{name:22s} {100 * result['miou']:8.1f}% {100 * result['pixel_accuracy']:9.1f}% "
              f"{100 * result['bn_reestimated']['miou']:15.1f}% {seconds:10.0f}s")
    quality = rows[1][1]["quality"]
    if quality:
        print(f"\nPseudoSeg's pseudo labels on its last {quality[-1]['images']} unlabeled training crops (to step "
              f"{quality[-1]['step']}), against the pool's masks:\n  {format_summary(quality[-1])}")
    print(f"\npseudo labels of the PseudoSeg model ({calibration['images']} unlabeled-pool images, known masks; "
          f"{report_dir}/reliability.png)")
    print(f"{'source':28s} {'mIoU':>6s} {'pixel acc':>9s} {'mean conf':>10s} {'ECE':>7s}")
    for name, source in calibration["sources"].items():
        miou = calibration["quality"].get(f"miou/{'pseudo_label' if name == 'fused' else name}")  # same argmax
        print(f"{SOURCE_TITLES.get(name, name):28s} {100 * miou:5.1f}% {100 * source['accuracy']:8.1f}% "
              f"{100 * source['mean_confidence']:9.1f}% {source['ece']:7.3f}")
    print(f"  {format_summary(calibration['quality'])}")
    print(f"\ntotal {time.time() - started:.0f}s; per-class IoU in {FLAGS.workdir}/*/val_result.json; "
          f"TensorBoard: ./run.sh python -m tensorboard.main --logdir {FLAGS.workdir}")


if __name__ == "__main__":
    app_runner.run(main)
