"""PseudoSeg training (the official train_wss.py): few pixel labels + unlabeled or image-level labeled images.

  ./run.sh train-wss --train_logdir=runs/voc92 --dataset_dir=records/voc --train_split=16_clean_3 \\
      --train_split_cls=train_aug --model_variant=xception_65 --atrous_rates=6,12,18 \\
      --tf_initial_checkpoint=init/xception_65/model.ckpt [--weakly] [--config=configs/<experiment>.json]
"""
from wss_tf import preemption

preemption.install()  # before TensorFlow's import and the minutes of start-up: a SIGTERM then still exits 143

from absl import flags, logging  # noqa: E402

from wss_tf import app_runner  # noqa: E402
from wss_tf.cli import config_from_flags, define_train_flags, train_usage  # noqa: E402

define_train_flags({"mode": "wss"})
__doc__ = train_usage(__doc__, {"mode": "wss"})


def main(argv):
    del argv
    logging.set_verbosity(logging.INFO)
    from wss_tf.distribute import make_strategy
    from wss_tf.trainer import Trainer

    config = config_from_flags(flags.FLAGS, {"mode": "wss"})
    strategy = make_strategy(config.num_clones)  # first: it may split the CPU into logical devices
    Trainer(config, strategy).run()


if __name__ == "__main__":
    app_runner.run(main)
