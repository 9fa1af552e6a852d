"""Evaluation (the official eval.py): mIoU of a run's checkpoints on a split, once or as the run trains.

  ./run.sh eval --checkpoint_dir=runs/voc92 --eval_logdir=runs/voc92/eval --dataset_dir=records/voc \\
      --eval_split=val --max_number_of_evaluations=1 [--eval_scales=0.5,0.75,1,1.25,1.5,1.75 --add_flipped_images]

The model's flags (model_variant, atrous_rates, ...) default to the training run's config.json beside the
checkpoints; given on the command line they win. Each evaluated checkpoint appends a line to
eval_logdir/results.jsonl; last.json and best.json hold the last and the best (by mIoU) evaluation, and the best
checkpoint is copied to eval_logdir/best_checkpoint/ (so the trainer's max_to_keep cannot delete it).
"""
from __future__ import annotations

import os

from absl import app, flags, logging

from wss_tf import app_runner
from wss_tf.cli import define_model_flags

flags.DEFINE_string("eval_logdir", None, "where results, TensorBoard events and the best checkpoint go")
flags.DEFINE_string("checkpoint_dir", None, "a training logdir (polled for new checkpoints) or one checkpoint")
flags.DEFINE_string("dataset_dir", None, "the TFRecords")
flags.DEFINE_integer("eval_batch_size", 1, "images per batch")
flags.DEFINE_list("eval_crop_size", None, "crop height,width every image is padded to; default: the dataset's "
                  "(513,513 VOC, 641,641 COCO)")
flags.DEFINE_integer("eval_interval_secs", 300, "how often to look for a new checkpoint")
flags.DEFINE_multi_string("eval_scales", ["1.0"], "scales whose probabilities are averaged, repeated or a comma "
                          "list (the official eval.py allowed only 1.0; vis.py the multi-scale average)")
flags.DEFINE_bool("add_flipped_images", False, "also average horizontally flipped images")
flags.DEFINE_string("eval_split", "val", "split to evaluate")
flags.DEFINE_integer("max_number_of_evaluations", 0, "stop after this many evaluations; <= 0: keep polling "
                     "(until the checkpoint of the run's last step has been evaluated)")
flags.DEFINE_bool("eval_all_checkpoints", False, "polling: evaluate every checkpoint not yet evaluated (oldest "
                  "first), not only the latest (ours; the best of a run needs them all)")
flags.DEFINE_bool("weakly", False, "also score the classifier head (accuracy, precision, recall at 0.5)")
define_model_flags()
FLAGS = flags.FLAGS


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from wss_tf.cli import model_config_from_flags, parse_floats
    from wss_tf.eval_loop import EvalSettings, run_evaluations, wait_for_a_checkpoint

    for name in ("eval_logdir", "checkpoint_dir", "dataset_dir"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required")
    if os.path.isdir(FLAGS.checkpoint_dir):
        wait_for_a_checkpoint(FLAGS.checkpoint_dir, FLAGS.eval_interval_secs)
    model_config = model_config_from_flags(FLAGS.checkpoint_dir)
    settings = EvalSettings(
        checkpoint_dir=FLAGS.checkpoint_dir, eval_logdir=FLAGS.eval_logdir, dataset_dir=FLAGS.dataset_dir,
        eval_split=FLAGS.eval_split, eval_batch_size=FLAGS.eval_batch_size,
        eval_crop_size=tuple(int(v) for v in FLAGS.eval_crop_size) if FLAGS.eval_crop_size else None,
        eval_scales=parse_floats(FLAGS.eval_scales), add_flipped_images=FLAGS.add_flipped_images,
        eval_interval_secs=FLAGS.eval_interval_secs, max_number_of_evaluations=FLAGS.max_number_of_evaluations,
        weakly=FLAGS.weakly, every_checkpoint=FLAGS.eval_all_checkpoints)
    run_evaluations(settings, model_config)


if __name__ == "__main__":
    app_runner.run(main)
