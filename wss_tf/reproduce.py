"""Reproduce one cell of the paper tables: train (or resume), evaluate every checkpoint, record the last and the best.

  ./run.sh reproduce voc_92_pseudoseg --dataset_dir=records/voc --init_checkpoint=init/xception_65/model.ckpt
      [--workdir=runs/paper] [--num_clones=N] [--max_per_replica_batch=N] [--override=training_number_of_steps=100]

Experiments are the files in configs/paper/ (`./run.sh reproduce --list`). Nothing is redone: a trained run
resumes or stops at once, evaluated checkpoints are skipped. The result is appended to workdir/results.jsonl;
`./run.sh results` renders every result beside the paper's numbers.

Batch rule with fewer GPUs than the paper's 16: the global batch stays 64 labeled + 64 unlabeled (each replica
takes 64 / replicas) unless that exceeds --max_per_replica_batch; then the global batch becomes
max_per_replica_batch * replicas and the learning rate scales linearly with it (base_lr * batch / 64, Goyal et al.
2017), with the step count unchanged. The log says which.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import app, flags, logging

from wss_tf import app_runner
from wss_tf.config import TrainConfig
from wss_tf.experiments import Experiment, experiment_names, load_experiment

_EVAL_FIELDS = ("eval_split", "eval_crop_size", "eval_batch_size")  # --override keys that change the evaluation


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    replicas: int
    global_batch: int
    base_learning_rate: float
    scaled: bool

    def describe(self, config: TrainConfig) -> str:
        per = self.global_batch // self.replicas
        if not self.scaled:
            return (f"global batch {self.global_batch} (+ as many unlabeled) on {self.replicas} replicas, {per} per "
                    f"replica; learning rate {self.base_learning_rate} as the paper")
        return (f"global batch {self.global_batch} instead of {config.train_batch_size} ({per} per replica on "
                f"{self.replicas} replicas, limited by --max_per_replica_batch): learning rate scaled linearly "
                f"{config.base_learning_rate} -> {self.base_learning_rate:.6g}, {config.training_number_of_steps} "
                f"steps unchanged")


def batch_plan(config: TrainConfig, replicas: int, max_per_replica_batch: int = 0) -> BatchPlan:
    """The paper's global batch split over `replicas`, or the largest that fits, with the learning rate scaled."""
    per = config.train_batch_size // replicas
    if max_per_replica_batch > 0:
        per = min(per, max_per_replica_batch)
    if per < 1:
        raise ValueError(f"{replicas} replicas cannot share a global batch of {config.train_batch_size}")
    batch = per * replicas
    if batch == config.train_batch_size:
        return BatchPlan(replicas, batch, config.base_learning_rate, False)
    return BatchPlan(replicas, batch, config.base_learning_rate * batch / config.train_batch_size, True)


def check_records(experiment: Experiment, dataset_dir: str) -> None:
    """Every split the experiment reads must be in dataset_dir; otherwise say how to build it."""
    from wss_tf.data.records import split_files

    config = experiment.train
    needed = {config.train_split, experiment.eval_split}
    if config.mode == "wss" or config.weakly:
        needed.add(config.train_split_cls)
    missing = []
    for split in sorted(needed):
        try:
            split_files(dataset_dir, split)
        except (FileNotFoundError, ValueError):
            missing.append(split)
    if missing:
        builder = "build-voc --voc_root=VOCdevkit/VOC2012" if experiment.table == "pascal_voc_seg" \
            else "build-coco --coco_root=coco2017"
        raise FileNotFoundError(f"{dataset_dir} has no records for split(s) {', '.join(missing)} that "
                                f"{experiment.name} needs; build them with: ./run.sh {builder} "
                                f"--output_dir={dataset_dir} --splits={','.join(missing)}")


def reproduce(experiment: Experiment, *, dataset_dir: str, workdir: str, init_checkpoint: str = "",
              num_clones: int = 0, max_per_replica_batch: int = 0, overrides: dict | None = None,
              strategy=None) -> dict:
    from wss_tf.distribute import make_strategy
    from wss_tf.eval_loop import EvalSettings, ResultStore, run_evaluations
    from wss_tf.trainer import Trainer

    strategy = strategy or make_strategy(num_clones)
    overrides = dict(overrides or {})
    eval_changes = {k: overrides.pop(k) for k in list(overrides) if k in _EVAL_FIELDS}
    experiment = dataclasses.replace(experiment, **eval_changes)
    config = experiment.train.replace(**overrides)
    check_records(experiment, dataset_dir)
    plan = batch_plan(config, strategy.num_replicas_in_sync, max_per_replica_batch)
    logdir = os.path.join(workdir, experiment.name)
    config = config.replace(dataset_dir=dataset_dir, train_logdir=logdir, tf_initial_checkpoint=init_checkpoint,
                            train_batch_size=plan.global_batch, base_learning_rate=plan.base_learning_rate)
    logging.info("%s: %s", experiment.name, experiment.description)
    logging.info("%s", plan.describe(experiment.train))
    if not init_checkpoint:
        logging.warning("no --init_checkpoint: training from scratch, not from ImageNet as the paper; the result "
                        "is not comparable to the paper's")

    started = time.time()
    Trainer(config, strategy).run()
    settings = EvalSettings(logdir, os.path.join(logdir, "eval"), dataset_dir, eval_split=experiment.eval_split,
                            eval_batch_size=experiment.eval_batch_size, eval_crop_size=experiment.eval_crop_size,
                            every_checkpoint=True)
    run_evaluations(settings, config)
    evaluations = [r for r in ResultStore(settings.eval_logdir).results if r["key"] == settings.key(r["checkpoint"])]
    last = max(evaluations, key=lambda r: r["step"] or 0)
    best = max(evaluations, key=lambda r: r["miou"])
    result = {"experiment": experiment.name, "table": experiment.table, "row": experiment.row,
              "column": experiment.column, "last_miou": last["miou"], "last_step": last["step"],
              "best_miou": best["miou"], "best_step": best["step"], "evaluations": len(evaluations),
              "replicas": plan.replicas, "global_batch": plan.global_batch,
              "base_learning_rate": plan.base_learning_rate, "steps": config.training_number_of_steps,
              "init_checkpoint": init_checkpoint or None, "overrides": {**overrides, **eval_changes}, "logdir": logdir,
              "seconds": time.time() - started, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "results.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")
    logging.info("%s: last mIoU %.2f%% (step %s), best %.2f%% (step %s); appended to %s", experiment.name,
                 100 * result["last_miou"], result["last_step"], 100 * result["best_miou"], result["best_step"],
                 os.path.join(workdir, "results.jsonl"))
    return result


def parse_overrides(items) -> dict:
    """key=value pairs, values read as JSON where they parse (numbers, true/false, lists), else as strings."""
    overrides = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--override takes key=value, got {item!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
        if isinstance(overrides[key], list):
            overrides[key] = tuple(overrides[key])
    return overrides


def define_flags(fv=flags.FLAGS) -> None:
    flags.DEFINE_string("dataset_dir", None, "the experiment's TFRecords (built with ./run.sh build-voc/build-coco)",
                        flag_values=fv)
    flags.DEFINE_string("init_checkpoint", "", "ImageNet-pretrained DeepLab checkpoint (official TF1 names)",
                        flag_values=fv)
    flags.DEFINE_string("workdir", "runs/paper", "runs go to workdir/<experiment>, results to workdir/results.jsonl",
                        flag_values=fv)
    flags.DEFINE_integer("num_clones", 0, "replicas: 0 = every local GPU", flag_values=fv)
    flags.DEFINE_integer("max_per_replica_batch", 0, "largest per-replica batch that fits in memory; 0 = no limit "
                         "(the paper's global batch of 64 is kept)", flag_values=fv)
    flags.DEFINE_multi_string("override", [], "key=value over the experiment's training settings (or eval_split, "
                              "eval_crop_size, eval_batch_size)", flag_values=fv)
    flags.DEFINE_bool("list", False, "list the experiments and exit", flag_values=fv)


def main(argv):
    fv = flags.FLAGS
    logging.set_verbosity(logging.INFO)
    if fv.list:
        for name in experiment_names():
            print(f"{name:28s} {load_experiment(name).description}")
        return
    if len(argv) != 2:
        raise app.UsageError("name one experiment: ./run.sh reproduce <experiment> (--list shows them)")
    if not fv.dataset_dir:
        raise app.UsageError("--dataset_dir is required")
    from wss_tf.distribute import make_strategy

    strategy = make_strategy(fv.num_clones)
    reproduce(load_experiment(argv[1]), dataset_dir=fv.dataset_dir, workdir=fv.workdir,
              init_checkpoint=fv.init_checkpoint, max_per_replica_batch=fv.max_per_replica_batch,
              overrides=parse_overrides(fv.override), strategy=strategy)


if __name__ == "__main__":
    define_flags()
    app_runner.run(main)
