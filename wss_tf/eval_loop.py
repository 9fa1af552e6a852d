"""eval.py's loop: evaluate a checkpoint, or poll a training logdir, and keep the results (JSON lines, last,
best, TensorBoard) and a copy of the best checkpoint."""
from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re
import shutil
import time
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from wss_tf.cli import find_run_config
from wss_tf.config import RUN_CONFIG_FILE, TrainConfig
from wss_tf.data import pipeline
from wss_tf.data.datasets import load_dataset_info
from wss_tf.evaluation import Evaluator
from wss_tf.inference import build_model, resolve_checkpoint, restore_weights

RESULTS_FILE = "results.jsonl"
BEST_DIR = "best_checkpoint"


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    checkpoint_dir: str
    eval_logdir: str
    dataset_dir: str
    eval_split: str = "val"
    eval_batch_size: int = 1
    eval_crop_size: Optional[tuple[int, int]] = None  # None: the dataset's eval crop
    eval_scales: tuple[float, ...] = (1.0,)
    add_flipped_images: bool = False
    eval_interval_secs: int = 300
    max_number_of_evaluations: int = 0
    weakly: bool = False
    every_checkpoint: bool = False  # polling: every checkpoint not yet evaluated, not only the latest

    def __post_init__(self):
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be positive, got {self.eval_batch_size}")
        if not self.eval_scales or any(s <= 0 for s in self.eval_scales):
            raise ValueError(f"eval_scales must be positive, got {list(self.eval_scales)}")

    def key(self, checkpoint: str) -> str:
        """What makes two evaluations the same: checkpoint, split and inference settings."""
        return json.dumps([os.path.abspath(checkpoint), self.eval_split, list(self.eval_scales),
                           self.add_flipped_images, self.weakly])


def checkpoint_step(path: str) -> Optional[int]:
    """The global step in a checkpoint's name (ckpt-1200, model.ckpt-30000), if any."""
    match = re.search(r"-(\d+)$", path)
    return int(match.group(1)) if match else None


class ResultStore:
    """eval_logdir's record: results.jsonl (one line per evaluation), last.json, best.json, best_checkpoint/,
    and TensorBoard scalars under the official tags (eval/miou_overall, eval/miou_class_c, eval/cls_*)."""

    def __init__(self, eval_logdir: str):
        self.logdir = eval_logdir
        os.makedirs(eval_logdir, exist_ok=True)
        self.results = []
        path = os.path.join(eval_logdir, RESULTS_FILE)
        if os.path.exists(path):
            with open(path) as f:
                self.results = [json.loads(line) for line in f if line.strip()]
        self.writer = tf.summary.create_file_writer(eval_logdir)

    def seen(self, key: str) -> bool:
        return any(r.get("key") == key for r in self.results)

    @property
    def best(self) -> Optional[dict]:
        scored = [r for r in self.results if not math.isnan(r["miou"])]
        return max(scored, key=lambda r: r["miou"]) if scored else None

    def add(self, result: dict) -> bool:
        """Records `result`; returns True when it is the new best."""
        self.results.append(result)
        with open(os.path.join(self.logdir, RESULTS_FILE), "a") as f:
            f.write(json.dumps(result) + "\n")
        _write_json(os.path.join(self.logdir, "last.json"), result)
        is_best = self.best is result  # ties keep the earlier checkpoint
        if is_best:
            self._keep_checkpoint(result["checkpoint"])
            _write_json(os.path.join(self.logdir, "best.json"), {**result, "checkpoint_copy": self.best_copy()})
        self._summaries(result)
        return is_best

    def best_copy(self) -> str:
        prefix = tf.train.latest_checkpoint(os.path.join(self.logdir, BEST_DIR))
        return prefix or ""

    def _keep_checkpoint(self, checkpoint: str):
        """Copies the checkpoint's files (and the run's config.json) to best_checkpoint/, replacing the old one."""
        target = os.path.join(self.logdir, BEST_DIR)
        staging = target + ".tmp"
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        for path in glob.glob(checkpoint + ".*"):
            shutil.copy2(path, staging)
        run_config = find_run_config(checkpoint)
        if run_config:
            shutil.copy2(run_config, os.path.join(staging, RUN_CONFIG_FILE))
        name = os.path.basename(checkpoint)
        with open(os.path.join(staging, "checkpoint"), "w") as f:  # the state file tf.train.latest_checkpoint reads
            f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)

    def _summaries(self, result: dict):
        with self.writer.as_default(step=result["step"] if result["step"] is not None else len(self.results)):
            tf.summary.scalar("eval/miou_overall", result["miou"])
            tf.summary.scalar("eval/pixel_accuracy", result["pixel_accuracy"])
            for c, value in enumerate(result["per_class_iou"].values()):
                tf.summary.scalar(f"eval/miou_class_{c}", value)
            for key in ("cls_overall", "cls_precision", "cls_recall"):
                if key in result:
                    tf.summary.scalar(f"eval/{key}", result[key])
        self.writer.flush()


def _write_json(path: str, value: dict):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2)
    os.replace(path + ".tmp", path)


def _final_step(checkpoint_dir: str) -> Optional[int]:
    path = find_run_config(checkpoint_dir)
    if not path:
        return None
    with open(path) as f:
        return json.load(f).get("training_number_of_steps")


def _progress_logger(split: str, every_seconds: float = 20.0):
    last = [0.0, False]  # time of the last line, whether one was written

    def log(done: int, total: Optional[int], seconds: float):
        if seconds - last[0] < every_seconds and done != total:
            return
        last[0] = seconds
        first = not last[1]
        last[1] = True
        rate = done / max(seconds, 1e-9)
        left = f", about {int((total - done) / rate)}s left" if total and rate > 0 and not first else ""
        logging.info("evaluated %d%s images of %s (%.1f images/s%s%s)", done, f"/{total}" if total else "", split,
                     rate, " so far: the first batch includes tracing" if first else "", left)
    return log


def describe(result: dict) -> str:
    lines = [f"{result['checkpoint']} (step {result['step']}) on {result['split']}: mIoU {100 * result['miou']:.2f}%,"
             f" pixel accuracy {100 * result['pixel_accuracy']:.2f}%, {result['images']} images, "
             f"{result['images_per_second']:.2f} images/s"]
    if "cls_overall" in result:
        lines.append(f"classifier: accuracy {100 * result['cls_overall']:.2f}%, precision "
                     f"{100 * result['cls_precision']:.2f}%, recall {100 * result['cls_recall']:.2f}%")
    width = max(len(n) for n in result["per_class_iou"])
    lines += [f"  {name:{width}s} {'   n/a' if math.isnan(v) else f'{100 * v:6.2f}'}"
              for name, v in result["per_class_iou"].items()]
    return "\n".join(lines)


def wait_for_a_checkpoint(checkpoint_dir: str, interval_secs: float,
                          sleep: Callable[[float], None] = time.sleep) -> str:
    """A polled directory with no checkpoint yet (a run starting): waits, saying so, until the run writes one
    (the model's settings come from the run's config.json, so nothing can be built before)."""
    waited = 0.0
    while True:
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        if latest:
            return latest
        if not waited:
            logging.info("no checkpoint in %s yet: waiting for the training run to write one (looking every %ds; "
                         "Ctrl-C stops)", checkpoint_dir, interval_secs)
        else:
            logging.info("still no checkpoint in %s after %ds", checkpoint_dir, int(waited))
        sleep(interval_secs)
        waited += interval_secs


def run_evaluations(settings: EvalSettings, model_config: TrainConfig,
                    sleep: Callable[[float], None] = time.sleep) -> list[dict]:
    """Evaluates `settings.checkpoint_dir`: one checkpoint, or a directory polled every eval_interval_secs until
    max_number_of_evaluations (if > 0) or until the checkpoint of the run's last step has been evaluated."""
    info = load_dataset_info(model_config.dataset, settings.dataset_dir)
    crop = tuple(settings.eval_crop_size or info.eval_crop)
    model = build_model(model_config, info.num_classes)
    evaluator = Evaluator(model, info.num_classes, class_names=info.class_names, eval_scales=settings.eval_scales,
                          add_flipped_images=settings.add_flipped_images, weakly=settings.weakly,
                          ignore_label=info.ignore_label)
    store = ResultStore(settings.eval_logdir)
    polling = os.path.isdir(settings.checkpoint_dir)
    final_step = _final_step(settings.checkpoint_dir) if polling else None
    stream = pipeline.StreamConfig(settings.dataset_dir, settings.eval_split, info.num_classes,
                                   settings.eval_batch_size)
    logging.info("evaluating %s on %s/%s at %dx%d, scales %s%s", model_config.model_variant, info.name,
                 settings.eval_split, *crop, list(settings.eval_scales),
                 " + flipped" if settings.add_flipped_images else "")
    done = []

    def evaluate(checkpoint):
        restore_weights(model, checkpoint, need_head=settings.weakly)
        dataset = pipeline.eval_dataset(stream, crop, model.spec.mean_pixel, info.ignore_label,
                                        with_cls=settings.weakly)
        result = evaluator.evaluate(dataset, total_images=info.split_sizes.get(settings.eval_split),
                                    progress=_progress_logger(settings.eval_split))
        result.update(checkpoint=checkpoint, step=checkpoint_step(checkpoint), split=settings.eval_split,
                      crop_size=list(crop), key=settings.key(checkpoint), time=time.time())
        is_best = store.add(result)
        done.append(result)
        logging.info("%s%s", describe(result), "\nthe best so far: copied to " + store.best_copy()
                     if is_best else f"\nbest so far: mIoU {100 * store.best['miou']:.2f}% at step "
                                     f"{store.best['step']}")

    while True:
        if not polling:
            evaluate(resolve_checkpoint(settings.checkpoint_dir))
            break
        for checkpoint in _pending(settings, store):
            evaluate(checkpoint)
            if 0 < settings.max_number_of_evaluations <= len(done):
                return done
        latest = tf.train.latest_checkpoint(settings.checkpoint_dir)
        step = checkpoint_step(latest) if latest else None
        if final_step and step is not None and step >= final_step:
            logging.info("the checkpoint of the run's last step (%d) is evaluated; stopping", final_step)
            break
        logging.info("waiting %ds for a new checkpoint in %s", settings.eval_interval_secs, settings.checkpoint_dir)
        sleep(settings.eval_interval_secs)
    return done


def _pending(settings: EvalSettings, store: ResultStore) -> list[str]:
    """Checkpoints of the polled directory to evaluate now: the latest if it is new (official
    evaluate_repeatedly), or with every_checkpoint all those not evaluated yet, oldest first."""
    state = tf.train.get_checkpoint_state(settings.checkpoint_dir)
    if state is None or not state.model_checkpoint_path:
        return []
    candidates = list(state.all_model_checkpoint_paths) if settings.every_checkpoint \
        else [state.model_checkpoint_path]
    candidates = [c if os.path.isabs(c) else os.path.join(settings.checkpoint_dir, c) for c in candidates]
    return [c for c in candidates if tf.io.gfile.exists(c + ".index") and not store.seen(settings.key(c))]
