"""The PseudoSeg step runs each pass the method needs once: the graph shows the passes, and the official graph's
duplicate passes give the same losses and gradients."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from wss_tf import graph_cost
from wss_tf.config import TrainConfig
from wss_tf.model import PseudoSegModel
from wss_tf.step import sup_losses, wss_losses
from wss_tf.trainer import seed_states

NUM_CLASSES = 4
SIZE = 41


def _config(**changes):
    return TrainConfig(model_variant="xception_tiny", train_crop_size=(SIZE, SIZE), weight_decay=0.0, **changes)


@pytest.fixture(scope="module")
def model():
    model = PseudoSegModel(_config().deeplab(NUM_CLASSES)).build_all()
    # Moving statistics held still: the one update per pass that the shared passes save would otherwise reach
    # the inference-mode pass that follows them (the only difference the sharing makes).
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 1.0
    return model


def _batches(seed=0, n=2):
    rng = np.random.RandomState(seed)
    label = rng.randint(0, NUM_CLASSES, (n, SIZE, SIZE, 1)).astype(np.int32)
    cls = np.stack([np.isin(np.arange(1, NUM_CLASSES), l) for l in label]).astype(np.float32)
    images = lambda: tf.constant(rng.uniform(0, 255, (n, SIZE, SIZE, 3)), tf.float32)  # noqa: E731
    valid = tf.ones((n, SIZE, SIZE, 1))
    labeled = {"image": images(), "label": tf.constant(label), "valid": valid, "cls_label": tf.constant(cls)}
    unlabeled = {"weak": images(), "strong": images(), "valid": valid, "label": tf.constant(label),
                 "cls_label": tf.constant(cls)}
    return labeled, unlabeled


def _losses_and_gradients(model, config, labeled, unlabeled):
    with tf.GradientTape() as tape:
        losses, _, _ = wss_losses(model, config, labeled, unlabeled, tape)
        total = tf.add_n(list(losses.values()))
    gradients = tape.gradient(total, model.trainable_variables)
    return {k: float(v) for k, v in losses.items()}, gradients


@pytest.mark.parametrize("weakly", [False, True])
def test_shared_passes_give_the_official_duplicate_passes_losses_and_gradients(model, weakly):
    labeled, unlabeled = _batches(seed=int(weakly))
    weights = [v.numpy() for v in model.variables]
    seeds = [s.numpy() for s in seed_states(model).values()]
    results = {}
    for official in (True, False):
        for variable, value in zip(model.variables, weights):
            variable.assign(value)
        for state, value in zip(seed_states(model).values(), seeds):
            state.assign(value)  # the head's dropout draws the same masks
        config = _config(weakly=weakly, official_duplicate_passes=official)
        results[official] = _losses_and_gradients(model, config, labeled, unlabeled)
    (official_losses, official_grads), (losses, grads) = results[True], results[False]
    assert set(losses) == {"supervised", "sgc", "classification", "consistency"}
    for key in losses:
        np.testing.assert_allclose(losses[key], official_losses[key], rtol=1e-5, err_msg=key)
    assert sum(g is not None for g in grads) == sum(g is not None for g in official_grads) > 100
    # Against the largest gradient: some are sums that cancel to ~1e-7 (a beta before another batch norm).
    scale = max(float(tf.reduce_max(tf.abs(h))) for h in official_grads if h is not None)
    for g, h, v in zip(grads, official_grads, model.trainable_variables):
        if g is not None:
            np.testing.assert_allclose(g, h, rtol=1e-3, atol=1e-5 * scale, err_msg=v.path)


@pytest.mark.parametrize("mode, changes, expected", [
    ("sup", {}, (1, 0, 1)),
    ("wss", {}, (3, 1, 2)),  # labeled, weak (no gradient), strong; the SGC's inference pass; labeled + strong back
    ("wss", {"weakly": True}, (3, 1, 3)),  # the weak view's pass also trains the classifier
    # (the official graph: 4 + 1 and 3 backward in semi, 5 + 1 and 3 with --weakly; ./run.sh benchmark-step
    # --official_duplicate_passes prints them)
])
def test_the_step_graph_runs_the_passes_the_method_needs(model, mode, changes, expected):
    config = _config(mode=mode, **changes)
    labeled, unlabeled = _batches()

    @tf.function
    def step(labeled, unlabeled):
        with tf.GradientTape() as tape:
            if mode == "wss":
                losses, _, _ = wss_losses(model, config, labeled, unlabeled, tape)
            else:
                losses, _, _ = sup_losses(model, config, labeled)
            total = tf.add_n(list(losses.values()))
        return tape.gradient(total, model.trainable_variables)

    passes = graph_cost.count_backbone_passes(step.get_concrete_function(labeled, unlabeled),
                                              model.segmenter.backbone)
    assert (passes.training, passes.inference, passes.backward) == expected, str(passes)
