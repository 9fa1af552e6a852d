"""ImageNet-style pretraining of a backbone on the generated classification corpus, written as a model-zoo checkpoint.

A paper run starts from the DeepLab model zoo's ImageNet checkpoint: the backbone and its 1001-way
`{scope}/logits`, no ASPP, decoder, classifier head or SGC. `pretrain` makes the same kind of checkpoint for the
generated datasets: the backbone at output stride 32 (a classification network, as the zoo's were trained) with
global average pooling, dropout and a 1x1 `{scope}/logits` over the corpus classes, trained with softmax
cross-entropy, momentum and a poly learning rate, saved under the official TF1 names. Training reads it through
`--tf_initial_checkpoint` exactly as it reads the zoo's: the logits are left out, the rest of DeepLab starts fresh.

Cached by its settings: `<cache_dir>/<variant>_<key>/` holds `model.ckpt.*`, `pretrain.json` (settings, corpus,
held-out accuracy, time) and, while training, resumable checkpoints under `train/`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

import numpy as np

RESULT_FILE = "pretrain.json"
CHECKPOINT_PREFIX = "model.ckpt"


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    model_variant: str = "xception_tiny"
    corpus_seed: int = 0
    images_per_class: int = 256
    image_size: int = 72  # corpus images; training takes random crops of crop_size and flips
    crop_size: int = 64
    batch_size: int = 32
    steps: int = 3000
    base_learning_rate: float = 0.05  # poly (power 0.9) to 0
    momentum: float = 0.9
    weight_decay: float = 4e-5
    batch_norm_decay: float = 0.99  # the zoo's 0.9997 needs far more steps than this schedule has
    held_out_every: int = 10  # every N-th image of the corpus is held out to measure accuracy
    seed: int = 0

    def key(self) -> str:
        """Names the cache entry: these settings and the corpus they train on (its version and its generators'), so
        a changed renderer never reuses a checkpoint made from other images."""
        from wss_tf.data.classification_corpus import corpus_identity

        text = json.dumps({**dataclasses.asdict(self), "corpus": corpus_identity()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    checkpoint: str  # prefix of the TF1 checkpoint (official names)
    seconds: float  # pretraining time (corpus drawing included), as measured when it was made
    held_out_accuracy: float
    num_classes: int
    reused: bool


class ImageClassifier:
    """Backbone -> global pool -> dropout -> `{scope}/logits`: the zoo's classification network."""

    def __init__(self, config: PretrainConfig, num_classes: int):
        import keras

        from deeplab import build_backbone
        from wss_tf.cam import ClassifierHead

        self.backbone = build_backbone(config.model_variant, output_stride=None, weight_decay=config.weight_decay,
                                       batch_norm_decay=config.batch_norm_decay)
        spec = self.backbone.spec
        self.final_end_point = spec.final_end_point
        self.head = ClassifierHead(num_classes, scope=spec.scope, dropout=spec.name.startswith("xception"),
                                   weight_decay=config.weight_decay)
        images = keras.Input((None, None, 3))
        logits, _ = self.head(self.backbone(images)[self.final_end_point])
        self.model = keras.Model(images, logits, name="image_classifier")

    def __call__(self, images, training: bool):
        features = self.backbone(images, training=training)[self.final_end_point]
        return self.head(features, training=training)[0]


def _cached(directory: str) -> PretrainResult | None:
    path = os.path.join(directory, RESULT_FILE)
    if not os.path.exists(path) or not os.path.exists(os.path.join(directory, CHECKPOINT_PREFIX + ".index")):
        return None
    with open(path) as f:
        saved = json.load(f)
    return PretrainResult(os.path.join(directory, CHECKPOINT_PREFIX), saved["seconds"],
                          saved["held_out_accuracy"], saved["num_classes"], reused=True)


def pretrain(config: PretrainConfig, cache_dir: str, *, log_every: int = 100, log=print) -> PretrainResult:
    """Trains the backbone on the corpus (or reuses the checkpoint made with the same settings) and returns where
    the checkpoint is. An interrupted pretraining resumes from its last checkpoint (every `log_every` x 5 steps)."""
    directory = os.path.join(os.path.abspath(cache_dir), f"{config.model_variant}_{config.key()}")
    cached = _cached(directory)
    if cached is not None:
        log(f"pretrained backbone found: {cached.checkpoint} (held-out accuracy {100 * cached.held_out_accuracy:.1f}%,"
            f" made in {cached.seconds:.0f}s)")
        return cached
    import tensorflow as tf

    from deeplab import save_official_checkpoint
    from wss_tf.data.classification_corpus import generate_corpus
    from wss_tf.optim import DeepLabLearningRate, make_optimizer

    started = time.time()
    corpus = generate_corpus(os.path.join(os.path.abspath(cache_dir), f"corpus_{config.corpus_seed}_"
                                          f"{config.images_per_class}_{config.image_size}"),
                             seed=config.corpus_seed, images_per_class=config.images_per_class,
                             image_size=config.image_size)
    held_out = np.arange(len(corpus.labels)) % config.held_out_every == 0
    train_images, train_labels = corpus.images[~held_out], corpus.labels[~held_out]
    log(f"pretraining {config.model_variant} on {len(train_labels)} corpus images of {corpus.num_classes} classes "
        f"({int(held_out.sum())} held out), {config.steps} steps of {config.batch_size}, crop {config.crop_size}")

    import keras

    keras.utils.set_random_seed(config.seed)
    classifier = ImageClassifier(config, corpus.num_classes)
    schedule = DeepLabLearningRate("poly", config.base_learning_rate, config.steps)
    optimizer = make_optimizer("momentum", schedule, momentum=config.momentum)
    optimizer.build(classifier.model.trainable_variables)
    state = tf.train.Checkpoint(model=classifier.model, optimizer=optimizer)
    manager = tf.train.CheckpointManager(state, os.path.join(directory, "train"), max_to_keep=1)
    if manager.latest_checkpoint:
        state.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        log(f"resumed pretraining from {manager.latest_checkpoint}")
    start = int(optimizer.iterations.numpy())

    dataset = _training_stream(train_images, train_labels, config, start)
    variables = classifier.model.trainable_variables

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = classifier(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            total = loss + tf.add_n(classifier.model.losses)
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        hits = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32))
        return loss, hits

    window_start, losses, hits = time.time(), [], []
    for images, labels in dataset:
        loss, hit = step(images, labels)
        losses.append(float(loss))
        hits.append(float(hit))
        done = int(optimizer.iterations.numpy())
        if done % log_every == 0 or done == config.steps:
            rate = len(losses) * config.batch_size / (time.time() - window_start)
            left = (config.steps - done) * config.batch_size / max(rate, 1e-9)
            log(f"pretraining step {done}/{config.steps}: loss {np.mean(losses):.3f}, train accuracy "
                f"{100 * np.mean(hits):.1f}%, lr {float(schedule(done)):.4f}, {rate:.0f} img/s, {left:.0f}s left")
            window_start, losses, hits = time.time(), [], []
            if done % (5 * log_every) == 0:
                manager.save(checkpoint_number=done)
        if done >= config.steps:
            break
    accuracy = _accuracy(classifier, corpus.images[held_out], corpus.labels[held_out], config.crop_size)
    prefix = save_official_checkpoint(classifier.model, os.path.join(directory, CHECKPOINT_PREFIX))
    seconds = time.time() - started  # a resumed pretraining counts its last process only
    with open(os.path.join(directory, RESULT_FILE), "w") as f:
        json.dump({"settings": dataclasses.asdict(config), "classes": list(corpus.class_names),
                   "num_classes": corpus.num_classes, "held_out_accuracy": accuracy, "seconds": round(seconds, 1),
                   "corpus_seconds": round(corpus.seconds, 1), "checkpoint": CHECKPOINT_PREFIX}, f, indent=2)
    log(f"pretrained in {seconds:.0f}s: held-out accuracy {100 * accuracy:.1f}% over {corpus.num_classes} classes "
        f"(chance {100 / corpus.num_classes:.1f}%); checkpoint {prefix}")
    return PretrainResult(prefix, seconds, accuracy, corpus.num_classes, reused=False)


def _training_stream(images, labels, config: PretrainConfig, start: int):
    """Random crops and flips, reshuffled every epoch, from step `start` on; stateless per element."""
    import tensorflow as tf

    crop = config.crop_size

    def augment(index, pair):
        image, label = pair
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(config.seed, tf.int64), tf.cast(index, tf.int64)]), 2)
        image = tf.image.stateless_random_crop(tf.cast(image, tf.float32), (crop, crop, 3), seed=seeds[0])
        image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(
        len(labels), seed=config.seed, reshuffle_each_iteration=True).repeat()
    dataset = dataset.enumerate().skip(start * config.batch_size)
    return dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE).batch(config.batch_size).prefetch(2)


def _accuracy(classifier: ImageClassifier, images, labels, crop: int, batch: int = 64) -> float:
    """Top-1 accuracy on centre crops, inference mode."""
    import tensorflow as tf

    offset = (images.shape[1] - crop) // 2
    hits = 0
    for i in range(0, len(labels), batch):
        x = tf.cast(images[i:i + batch, offset:offset + crop, offset:offset + crop], tf.float32)
        hits += int(np.sum(np.argmax(classifier(x, training=False).numpy(), -1) == labels[i:i + batch]))
    return hits / max(len(labels), 1)
