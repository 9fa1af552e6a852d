"""The training loop of train_sup.py and train_wss.py: strategy, data, model, checkpoints, summaries, progress."""
from __future__ import annotations

import json
import os
import signal
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from deeplab import load_official_checkpoint, official_variable_map
from wss_tf import batch_norm_statistics as bn_stats
from wss_tf import preemption
from wss_tf import pseudo_label_quality as quality
from wss_tf import step as steps
from wss_tf.colormap import colorize
from wss_tf.config import RUN_CONFIG_FILE, TrainConfig
from wss_tf.data import pipeline
from wss_tf.data.datasets import load_dataset_info
from wss_tf.data.records import split_files
from wss_tf.data.validate import validate
from wss_tf.distribute import is_chief, make_strategy
from wss_tf.logdir_lock import locked
from wss_tf.model import PseudoSegModel
from wss_tf.precision import DynamicLossScale, dtype_policy
from wss_tf.optim import DeepLabLearningRate, gradient_multipliers, make_optimizer

QUALITY_FILE = "pseudo_label_quality.jsonl"  # one line per progress line: mIoU per source, classifier mAP

# model.get_extra_layer_scopes: the official "last layers".
_LAST_LAYERS_ALL = ("logits", "image_pooling", "aspp", "concat_projection", "decoder", "meta_architecture")


def last_layers(config: TrainConfig, model) -> tuple[str, ...]:
    scopes = ("logits",) if config.last_layers_contain_logits_only else _LAST_LAYERS_ALL
    return scopes + (f"{model.spec.scope}/logits",)


class Preempted(SystemExit):
    """SIGTERM (preemption) arrived: a checkpoint of the last finished step was written; exit status 143."""

    def __init__(self, step: int):
        super().__init__(128 + signal.SIGTERM)
        self.step = step


class Trainer:
    """Builds everything a run needs from a TrainConfig, then `run()` trains to training_number_of_steps.

    A run resumes from the latest checkpoint in train_logdir (step, weights, optimizer state; the learning rate
    follows the step) and otherwise initialises from tf_initial_checkpoint.
    """

    def __init__(self, config: TrainConfig, strategy: tf.distribute.Strategy | None = None):
        if not config.train_logdir:
            raise ValueError("train_logdir is required")
        if not config.dataset_dir:
            raise ValueError("dataset_dir is required")
        config.check_trainable()
        self.config = config
        self.strategy = strategy or make_strategy(config.num_clones)
        self.replicas = self.strategy.num_replicas_in_sync
        if config.train_batch_size % self.replicas:
            raise ValueError(f"train_batch_size {config.train_batch_size} is not divisible by the "
                             f"{self.replicas} replicas")
        self.info = load_dataset_info(config.dataset, config.dataset_dir)
        for split in self.splits():  # a missing split is named now, not after the model is built
            split_files(config.dataset_dir, split)
        self.skip_records = {}  # split -> "shard:index" of the records --skip_bad_records leaves out
        self.chief = is_chief(self.strategy)
        self.logdir = config.train_logdir if self.chief else tempfile.mkdtemp(prefix="worker_")

        # --seed fixes the initial weights and the dropout generators (Keras draws both from its global seed at
        # construction), as the streams' seed fixes the data; --deterministic also fixes the kernels' reduction
        # orders, so two runs of one command are bit-identical.
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        with self.strategy.scope(), dtype_policy(config.precision):
            self.model = PseudoSegModel(
                config.deeplab(self.info.num_classes), use_attention=config.use_attention,
                attention_dim=config.attention_dim, att_strides=config.att_strides,
                cam_weights=config.cam_weights).build_all()
            self.schedule = DeepLabLearningRate(
                config.learning_policy, config.base_learning_rate, config.training_number_of_steps,
                learning_power=config.learning_power, end_learning_rate=config.end_learning_rate,
                decay_steps=config.decay_steps, slow_start_step=config.slow_start_step,
                slow_start_learning_rate=config.slow_start_learning_rate,
                learning_rate_decay_factor=config.learning_rate_decay_factor,
                learning_rate_decay_step=config.learning_rate_decay_step)
            self.optimizer = make_optimizer(config.optimizer, self.schedule, momentum=config.momentum,
                                            adam_learning_rate=config.adam_learning_rate,
                                            adam_epsilon=config.adam_epsilon)
            self.optimizer.build(self.model.trainable_variables)
            self.loss_scale = DynamicLossScale() if config.precision == "mixed_float16" else None
            # Batches drawn by steps that were not applied (non-finite): the input position is step + skipped.
            self.skipped = tf.Variable(0, trainable=False, dtype=tf.int64, name="skipped_batches",
                                       aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        names = official_variable_map(self.model)
        self.multipliers = {id(names[n]): m for n, m in gradient_multipliers(
            self.model, config.last_layer_gradient_multiplier, last_layers(config, self.model)).items()}
        # Keras does not checkpoint its dropout seed states; they join so a resumed run draws the same masks.
        # Whether the batch-norm statistics were re-estimated after the last step (bn_reestimation_batches).
        self.bn_reestimated = tf.Variable(False, trainable=False, name="bn_reestimated")
        state = dict(model=self.model, optimizer=self.optimizer, seeds=seed_states(self.model),
                     skipped_batches=self.skipped, bn_reestimated=self.bn_reestimated)
        if self.loss_scale is not None:
            state["loss_scale"] = self.loss_scale
        self.checkpoint = tf.train.Checkpoint(**state)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.logdir,
                                                  max_to_keep=config.max_to_keep if config.max_to_keep > 0 else None)
        self.writer = tf.summary.create_file_writer(os.path.join(self.logdir, "train"))
        self._step_fn = None
        self._forward_backward = (tf.function(self.forward_backward, jit_compile=True) if config.jit_compile
                                  else self.forward_backward)
        self._last_images = {}
        self.quality = quality.QualityWindow()  # pseudo-label tallies since the last progress line
        self.last_quality = {}  # the last window's mIoU per source and classifier mAP
        self._last_saved = None
        self.non_finite_skips = 0  # steps skipped this process for a non-finite loss (not float16 overflows)

    # ---- set-up -------------------------------------------------------------------------------------------
    def restore_or_initialize(self) -> int:
        latest = self.manager.latest_checkpoint
        if latest:
            try:
                status = self.checkpoint.restore(latest)
                status.assert_existing_objects_matched()
            except (AssertionError, ValueError) as e:
                _silence_pending_restore(self.checkpoint)
                raise ValueError(
                    f"cannot resume from {latest}: it does not fit this run ({self.config.model_variant}, "
                    f"{self.info.num_classes} classes of dataset {self.info.name!r}, precision "
                    f"{self.config.precision}): train_logdir holds another run; use a new --train_logdir. "
                    f"{str(e)[:500]}") from None
            logging.info("resumed from %s at step %d", latest, self.step)
        elif self.config.tf_initial_checkpoint:
            exclude = () if self.config.initialize_last_layer else last_layers(self.config, self.model)
            exclude += self._mismatched_heads(self.config.tf_initial_checkpoint)
            report = load_official_checkpoint(self.model, self.config.tf_initial_checkpoint, exclude_scopes=exclude)
            logging.info("initialised from %s\n%s", self.config.tf_initial_checkpoint, report.summary())
        else:
            logging.warning("no checkpoint in %s and no --tf_initial_checkpoint: training from scratch",
                            self.logdir)
        return self.step

    def _mismatched_heads(self, checkpoint: str) -> tuple[str, ...]:
        """The ImageNet checkpoints' 1001-way `{scope}/logits` never fits the K-way head: leave it out (the
        official train_sup.py with --weakly would stop on the shape mismatch instead)."""
        shapes = tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
        name = f"{self.model.spec.scope}/logits/weights"
        variable = official_variable_map(self.model).get(name)
        if name in shapes and variable is not None and tuple(shapes[name]) != tuple(variable.shape):
            logging.info("not loading %s: checkpoint shape %s, model %s", name, shapes[name], variable.shape)
            return (f"{self.model.spec.scope}/logits",)
        return ()

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def splits(self) -> list[str]:
        c = self.config
        return [c.train_split] + ([c.train_split_cls] if c.mode == "wss" or c.weakly else [])

    def find_bad_records(self) -> dict:
        """Every record of the training splits checked the way the pipeline reads it: split -> report."""
        reports = {}
        for split in self.splits():
            logging.info("checking every record of split %r (--skip_bad_records)", split)
            reports[split] = validate(self.config.dataset_dir, split, self.info.num_classes, progress=False)
        return reports

    def datasets(self, start_batch: int):
        """Distributed input streams from batch `start_batch` on (steps applied + steps skipped: what a run that
        stopped there had drawn)."""
        c = self.config
        augment = c.augment()

        def stream(split, batch, stream_id):
            return pipeline.StreamConfig(c.dataset_dir, split, self.info.num_classes, batch, seed=c.seed,
                                         start=start_batch * batch, skip_records=self.skip_records.get(split, ()),
                                         stream_id=stream_id)

        labeled = pipeline.distribute(self.strategy, lambda b, ctx: pipeline.labeled_dataset(
            stream(c.train_split, b, pipeline.LABELED_STREAM), augment, ctx), c.train_batch_size)
        second = None
        if c.mode == "wss":
            second = pipeline.distribute(self.strategy, lambda b, ctx: pipeline.unlabeled_dataset(
                stream(c.train_split_cls, b, pipeline.UNLABELED_STREAM), augment, with_cls=c.weakly,
                input_context=ctx), c.train_batch_size)
        elif c.weakly:
            second = pipeline.distribute(self.strategy, lambda b, ctx: pipeline.labeled_dataset(
                stream(c.train_split_cls, b, pipeline.IMAGE_LABELED_STREAM), augment, ctx), c.train_batch_size)
        return labeled, second

    # ---- the step -----------------------------------------------------------------------------------------
    def forward_backward(self, labeled, second):
        """Losses and gradients of one replica's batch (XLA-compiled with --jit_compile; the update is not)."""
        config, model = self.config, self.model
        with tf.GradientTape() as tape:
            if config.mode == "wss":
                losses, monitors, visuals = steps.wss_losses(model, config, labeled, second, tape)
            else:
                losses, monitors, visuals = steps.sup_losses(model, config, labeled, second)
            regularization = tf.add_n(model.losses) if model.losses else tf.constant(0.0)
            total = tf.add_n(list(losses.values())) + regularization
            replica_share = total / self.replicas  # the strategy sums the replicas' gradients
            if self.loss_scale is not None:
                replica_share *= self.loss_scale.scale
        grads = steps.gradients(model, tape, replica_share, self.multipliers, self.loss_scale)
        finite = tf.reduce_all([tf.math.is_finite(v) for v in [*losses.values(), regularization]])
        scalars = {**losses, "regularization": regularization, "total": total,
                   "losses_finite": tf.cast(finite, tf.float32), **monitors}
        return grads, scalars, steps.summary_images(visuals) if config.save_summaries_images else {}

    def replica_step(self, labeled, second):
        labeled, second = _numeric(labeled), _numeric(second)  # image names stay out (XLA has no strings)
        grads, scalars, images = self._forward_backward(labeled, second)
        pairs = [(g, v) for g, v in zip(grads, self.model.trainable_variables) if g is not None]
        applied = steps.apply_if_finite(self.optimizer, pairs, scalars["losses_finite"] > 0.5, self.loss_scale,
                                        self.skipped)
        return {**scalars, "applied": tf.cast(applied, tf.float32)}, images

    def train_step(self, labeled, second):
        """One step on every replica: scalars averaged over replicas, summary images of the first replica."""
        if self._step_fn is None:
            @tf.function
            def step_fn(labeled, second):
                outputs, images = self.strategy.run(self.replica_step, args=(labeled, second))
                scalars, tallies = {}, {}
                for k, v in outputs.items():
                    if k.startswith(quality.CONFUSION_PREFIX):  # pixel counts: summed over replicas
                        tallies[k] = self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                    elif k.startswith("tally/"):  # per-image rows: every replica's
                        tallies[k] = self.strategy.gather(v, axis=0)
                    else:
                        scalars[k] = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                images = {k: self.strategy.experimental_local_results(v)[0] for k, v in images.items()}
                return scalars, tallies, images
            self._step_fn = step_fn
        scalars, tallies, self._last_images = self._step_fn(labeled, second)
        if scalars["applied"] > 0.5:
            self.quality.add({k: v.numpy() for k, v in tallies.items()}, self.config.train_batch_size)
        return scalars

    # ---- the loop -----------------------------------------------------------------------------------------
    def save(self):
        path = self.manager.save(checkpoint_number=self.step)
        self._last_saved = self.step
        logging.info("saved checkpoint %s", path)
        return path

    def run(self, stop_at_step: int | None = None) -> dict:
        """Trains to training_number_of_steps (or stops early at `stop_at_step`, e.g. to test resuming), holding
        the lock of train_logdir (one training per directory) and stopping cleanly on SIGTERM."""
        with locked(self.logdir), preemption.watching():
            return self._run(stop_at_step)

    def _write_run_config(self):
        """config.json, which eval, vis and export rebuild the model from: written once the run is known to fit
        train_logdir (a refused resume leaves the earlier run's file alone)."""
        if self.chief:
            path = os.path.join(self.logdir, RUN_CONFIG_FILE)
            with open(path + ".tmp", "w") as f:
                f.write(self.config.to_json() + "\n")
            os.replace(path + ".tmp", path)

    def _run(self, stop_at_step):
        c = self.config
        last_step = min(stop_at_step or c.training_number_of_steps, c.training_number_of_steps)
        start = self.restore_or_initialize()
        self._write_run_config()
        if preemption.requested():  # during start-up: nothing trained, nothing to save
            logging.warning("stopped by SIGTERM before the first step of this process (at step %d); rerun the "
                            "same command to %s", start, "resume" if start else "start")
            raise Preempted(start)
        if start >= last_step:
            logging.info("already trained to step %d", start)
            if last_step == c.training_number_of_steps:
                self._finish_batch_norm()
            return {}
        if c.skip_bad_records:
            for split, report in self.find_bad_records().items():
                self.skip_records[split] = tuple(report.bad_records)
                if report.bad_records:
                    logging.warning("split %r: skipping %d bad record(s) of %d:\n  %s", split,
                                    len(report.bad_records), report.records, "\n  ".join(report.problems[:20]))
        labeled, second = self.datasets(start + int(self.skipped.numpy()))
        labeled_it, second_it = iter(labeled), iter(second) if second is not None else None
        images_per_step = c.train_batch_size * (2 if second is not None else 1)
        logging.info("training %s (%s, %s) from step %d to %d, %d replicas, global batch %d", c.model_variant,
                     c.mode, c.precision, start, c.training_number_of_steps, self.replicas, c.train_batch_size)
        try:
            results = self._loop(last_step, labeled_it, second_it, images_per_step)
        finally:  # a non-finite step is never applied: the weights here are always the last good ones
            if self.step > start and self.step != self._last_saved:
                self.save()
        if preemption.requested():
            logging.warning("stopped by SIGTERM at step %d; the checkpoint of that step is saved: rerun the same "
                            "command to resume", self.step)
            raise Preempted(self.step)
        self._write_summaries(self.step, results)
        if self.step == c.training_number_of_steps:
            self._finish_batch_norm()
        return {k: float(v) for k, v in results.items()}

    def _finish_batch_norm(self):
        """With bn_reestimation_batches, after the last step: moving statistics re-estimated on the run's own
        training crops (labeled crops, and for PseudoSeg alternately the unlabeled weak views; the supervised
        baseline sees no unlabeled image), then saved as the last checkpoint (once: the state says it is done)."""
        count = self.config.bn_reestimation_batches
        if count <= 0 or bool(self.bn_reestimated.numpy()):
            return
        self.reestimate_batch_norm(count)
        self.bn_reestimated.assign(True)
        self.save()

    def reestimate_batch_norm(self, count: int) -> int:
        """Sets the moving statistics of the segmenter's batch norms to their average over `count` training-mode
        passes on the run's training crops, from where the streams stopped (steps applied + skipped), in memory
        (the caller saves if it wants to). Returns the number of passes."""
        layers = bn_stats.moving_statistics_layers(self.model.segmenter)
        labeled, second = self.datasets(self.step + int(self.skipped.numpy()))
        labeled_it = iter(labeled)
        unlabeled_it = iter(second) if self.config.mode == "wss" else None

        @tf.function
        def forward(images):
            self.strategy.run(lambda x: self.model.segmenter(x, training=True)["logits"], args=(images,))

        def batches():
            for i in range(count):
                if unlabeled_it is not None and i % 2 == 1:
                    yield next(unlabeled_it)["weak"]
                else:
                    yield next(labeled_it)["image"]

        started = time.time()
        passes = bn_stats.reestimate(layers, forward, batches())
        logging.info("re-estimated the moving statistics of %d batch norms over %d training-mode passes (%.0fs)",
                     len(layers), passes, time.time() - started)
        return passes

    def _loop(self, last_step, labeled_it, second_it, images_per_step) -> dict:
        """Steps until last_step or SIGTERM; the last step's scalars."""
        c = self.config
        last_save = last_summary = time.time()
        window_start, window_steps, results = time.time(), 0, {}
        first = True
        while self.step < last_step and not preemption.requested():
            if first:
                logging.info("building and tracing the training step (the first step includes it: a minute or "
                             "more on a CPU for a large model)")
            try:
                batch = next(labeled_it), next(second_it) if second_it else None
            except tf.errors.OpError as e:
                raise self._data_error(e) from None
            results = self.train_step(*batch)
            if first:  # the rate and time left leave the tracing out
                logging.info("first step done in %s (tracing included)", _duration(time.time() - window_start))
                first, window_start = False, time.time()
            else:
                window_steps += 1
            step = self.step
            if results["applied"] < 0.5:
                self._skipped(step + 1, results)
                continue
            if step % c.log_steps == 0 or step == c.training_number_of_steps:
                rate = window_steps * images_per_step / (time.time() - window_start) if window_steps else None
                self._close_quality_window(step)
                self._log_progress(step, results, rate, images_per_step)
                if window_steps:
                    window_start, window_steps = time.time(), 0
            now = time.time()
            if self.chief and now - last_summary >= c.save_summaries_secs:
                self._write_summaries(step, results)
                last_summary = now
            by_steps = c.save_interval_steps and step % c.save_interval_steps == 0
            if by_steps or now - last_save >= c.save_interval_secs:
                self.save()
                last_save = now
        return results

    def _data_error(self, error) -> ValueError:
        """The input pipeline failed: find the records behind it and name them (file, index, image)."""
        logging.error("the input pipeline failed at step %d (%s); checking the training splits to find the "
                      "record", self.step + 1, str(error).splitlines()[0][:300])
        problems = [p for report in self.find_bad_records().values() for p in report.problems]
        found = ("bad records:\n  " + "\n  ".join(problems[:20])) if problems else \
            f"no record fails the checks; the pipeline said: {error}"
        kept = f"the checkpoint of step {self.step} is kept" if self.manager.latest_checkpoint else \
            "no checkpoint has been written yet"
        return ValueError(f"training data error at step {self.step + 1}: {found}\n{kept}; fix or rebuild the records (./run.sh validate), or pass "
                          f"--skip_bad_records to leave such records out")

    def _skipped(self, step, results):
        """A step that was not applied: a float16 overflow (the loss scale halves), or a non-finite loss, which
        stops the run unless --skip_non_finite_steps has budget left."""
        bad = [k for k, v in results.items() if not np.isfinite(float(v))]
        if self.loss_scale is not None and results["losses_finite"] > 0.5:
            logging.info("step %d: gradients overflowed in float16; skipped, loss scale now %g", step,
                         float(self.loss_scale.scale.numpy()))
            return
        what = f"non-finite {'loss' if bad else 'gradient'} at step {step}: {', '.join(bad) or 'gradients'}"
        if self.non_finite_skips >= self.config.skip_non_finite_steps:
            if self.step != self._last_saved and self.step > 0:
                self.save()
            raise FloatingPointError(f"{what}; the update was not applied and the last checkpoint is "
                                     f"{self.manager.latest_checkpoint} (--skip_non_finite_steps=N skips up to N "
                                     f"such steps)")
        self.non_finite_skips += 1
        logging.warning("%s; skipped (%d of --skip_non_finite_steps=%d)", what, self.non_finite_skips,
                        self.config.skip_non_finite_steps)

    def _close_quality_window(self, step):
        """The pseudo-label quality of the steps since the last progress line: kept for the line and the
        summaries, and appended to train_logdir/pseudo_label_quality.jsonl (a curve over training)."""
        summary = self.quality.summary()
        images = self.quality.images
        self.quality.reset()
        if not summary:
            return
        self.last_quality = summary
        if self.chief:
            with open(os.path.join(self.logdir, QUALITY_FILE), "a") as f:
                f.write(json.dumps({"step": step, "images": images, **summary}) + "\n")

    def _log_progress(self, step, results, images_per_second, images_per_step):
        """images_per_second None: no step but the first (tracing) since the last line, so no rate yet."""
        c = self.config
        if images_per_second is None:
            speed = "time left after the next progress line"
        else:
            eta = (c.training_number_of_steps - step) * images_per_step / max(images_per_second, 1e-9)
            speed = f"{images_per_second:.1f} img/s  {_duration(eta)} left"
        parts = " ".join(f"{k} {float(results[k]):.3f}" for k in ("supervised", "sgc", "classification",
                                                                   "consistency") if k in results)
        lr = float(self.schedule(step)) if c.optimizer == "momentum" else c.adam_learning_rate
        extra = f"  pseudo-label acc {float(results['pseudo_label_accuracy']):.3f}" \
            if "pseudo_label_accuracy" in results else ""
        if self.last_quality:
            extra += "  " + quality.format_summary(self.last_quality)
        logging.info("step %d/%d  loss %.3f (%s)  lr %.2e%s  %s", step, c.training_number_of_steps,
                     float(results["total"]), parts, lr, extra, speed)

    def _write_summaries(self, step, results):
        if not self.chief or not results:
            return
        with self.writer.as_default(step=step):
            for key, value in results.items():
                if key not in ("applied", "losses_finite"):
                    group = "monitor" if "accuracy" in key or "confidence" in key else "loss"
                    tf.summary.scalar(f"{group}/{key}", float(value))
            lr = self.schedule(step) if self.config.optimizer == "momentum" else self.config.adam_learning_rate
            tf.summary.scalar("learning_rate", float(lr))
            tf.summary.scalar("monitor/skipped_steps", float(self.skipped.numpy()))
            for key, value in self.last_quality.items():  # miou/<source>, classifier_map
                tf.summary.scalar(f"pseudo_label_quality/{key.replace('/', '_')}", value)
            if self.loss_scale is not None:
                tf.summary.scalar("monitor/loss_scale", float(self.loss_scale.scale.numpy()))
            for key, image in self._last_images.items():
                if image.dtype != tf.uint8:  # class maps, in the pascal colours
                    image = colorize(image[..., 0])
                tf.summary.image(key, image, max_outputs=image.shape[0])
        self.writer.flush()


def _silence_pending_restore(checkpoint: tf.train.Checkpoint):
    """A restore that raised part way (a shape mismatch) returns no status to call expect_partial() on, and its
    restore coordinator logs a warning per unmatched checkpoint value when it is collected, after the error
    (about a thousand lines for DeepLab). Starting an empty restore in its place drops it unnoticed; measured:
    the refused command then prints no "unrestored values" (tests/test_commands.py), without it it does."""
    checkpoint.restore(None)


def _numeric(batch):
    return None if batch is None else {k: v for k, v in batch.items() if v.dtype != tf.string}


def seed_states(model) -> dict:
    """The state variables of every Keras seed generator in `model` (dropout masks), keyed by layer name."""
    states = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            states[layer.name] = generator.state
    return states


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
