"""Guarded numerics: mixed precision follows float32, float16 overflows lower the loss scale, a non-finite step
is applied on no replica, and --skip_non_finite_steps skips and counts."""
import numpy as np
import pytest
import tensorflow as tf

from test_trainer import toy_config
from wss_tf import step as steps
from wss_tf.trainer import Trainer, seed_states

TERMS = ("supervised", "sgc", "classification", "consistency")


@pytest.fixture(scope="module")
def one_cpu():
    return tf.distribute.MirroredStrategy(["/cpu:0"])


def _losses_over_steps(trainer, batches, weights, seeds):
    for variable, value in zip(trainer.model.variables, weights):
        variable.assign(value)
    for state, value in zip(seed_states(trainer.model).values(), seeds):
        state.assign(value)
    return [{k: float(v) for k, v in trainer.train_step(*batch).items()} for batch in batches]


@pytest.fixture(scope="module")
def float32_run(toy_dataset, tmp_path_factory, one_cpu):
    """2 PseudoSeg steps in float32: (config, batches, initial weights, dropout seeds, losses per step)."""
    config = toy_config(toy_dataset, tmp_path_factory.mktemp("f32"), mode="wss", train_crop_size=(65, 65))
    reference = Trainer(config, one_cpu)
    labeled, unlabeled = reference.datasets(0)
    labeled, unlabeled = iter(labeled), iter(unlabeled)
    batches = [(next(labeled), next(unlabeled)) for _ in range(2)]
    weights = [v.numpy() for v in reference.model.variables]
    seeds = [s.numpy() for s in seed_states(reference.model).values()]
    return config, batches, weights, seeds, _losses_over_steps(reference, batches, weights, seeds)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_losses_follow_float32(float32_run, tmp_path, one_cpu, precision):
    """Same initial weights, dropout seeds and batches, 2 PseudoSeg steps. Tolerances (measured over 3 seeds and 4
    steps: first step <= 1.5% on every term, totals <= 7.3% later): the first step's terms within 3%, every
    step's total within 10%. The SGC term drifts most after updates: its attention over a 5x5 grid whose batch norm sees
    50 values per channel amplifies rounding."""
    config, batches, weights, seeds, expected = float32_run
    mixed = Trainer(config.replace(precision=precision, train_logdir=str(tmp_path / precision)), one_cpu)
    assert mixed.model.segmenter.backbone.get_layer(index=5).compute_dtype == precision.split("_")[1]
    assert all(v.dtype == "float32" for v in mixed.model.variables if v.dtype.startswith("float"))
    if mixed.loss_scale is not None:
        mixed.loss_scale.scale.assign(1024.0)  # no overflow here, so the steps line up (overflows: next test)
    got = _losses_over_steps(mixed, batches, weights, seeds)
    assert all(g["applied"] == 1.0 for g in got)
    for term in TERMS:
        assert got[0][term] == pytest.approx(expected[0][term], rel=0.03), term
    for g, e in zip(got, expected):
        assert g["total"] == pytest.approx(e["total"], rel=0.1)


def test_float16_overflow_skips_the_step_and_halves_the_loss_scale(toy_dataset, tmp_path, one_cpu):
    config = toy_config(toy_dataset, tmp_path / "f16", mode="sup", precision="mixed_float16",
                        training_number_of_steps=3)
    trainer = Trainer(config, one_cpu)
    trainer.loss_scale.scale.assign(2.0 ** 40)  # certain to overflow float16 gradients
    trainer.run()
    skipped = int(trainer.skipped.numpy())
    assert trainer.step == 3 and skipped >= 1
    assert float(trainer.loss_scale.scale.numpy()) == 2.0 ** (40 - skipped)
    assert all(np.isfinite(v.numpy()).all() for v in trainer.model.trainable_variables)
    resumed = Trainer(config, one_cpu)
    resumed.restore_or_initialize()  # the loss scale and the skip count resume with the run
    assert float(resumed.loss_scale.scale.numpy()) == 2.0 ** (40 - skipped)
    assert int(resumed.skipped.numpy()) == skipped


def _poison(monkeypatch, when):
    """sup_losses with every term NaN where `when(trainer, replica id)` holds (set `poisoned.trainer`)."""
    original = steps.sup_losses

    def poisoned(model, config, labeled, classification=None):
        losses, monitors, visuals = original(model, config, labeled, classification)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        factor = tf.where(when(poisoned.trainer, replica), float("nan"), 1.0)
        return {k: v * factor for k, v in losses.items()}, monitors, visuals

    monkeypatch.setattr(steps, "sup_losses", poisoned)
    return poisoned


def test_a_non_finite_loss_on_one_replica_is_applied_on_none(toy_dataset, tmp_path, two_cpu_strategy,
                                                               monkeypatch):
    poisoned = _poison(monkeypatch, lambda trainer, replica: replica == 1)
    trainer = poisoned.trainer = Trainer(toy_config(toy_dataset, tmp_path / "run", mode="sup"), two_cpu_strategy)

    def copies(variable):
        return np.stack([c.numpy() for c in two_cpu_strategy.experimental_local_results(variable.value)])

    before = [copies(v) for v in trainer.model.trainable_variables[:20]]
    labeled, _ = trainer.datasets(0)
    results = trainer.train_step(next(iter(labeled)), None)
    assert float(results["applied"]) == 0.0 and float(results["losses_finite"]) == 0.5
    assert trainer.step == 0 and int(trainer.skipped.numpy()) == 1
    for old, variable in zip(before, trainer.model.trainable_variables[:20]):
        np.testing.assert_array_equal(copies(variable), old)


def test_skip_non_finite_steps_skips_counts_and_checkpoints_the_count(toy_dataset, tmp_path, one_cpu,
                                                                               monkeypatch):
    # The first attempt at step 3 is NaN; once skipped, the next batch goes through.
    poisoned = _poison(monkeypatch, lambda trainer, replica: (trainer.optimizer.iterations == 2)
                       & (trainer.skipped == 0))
    config = toy_config(toy_dataset, tmp_path / "run", mode="sup", skip_non_finite_steps=1,
                        training_number_of_steps=4)
    trainer = poisoned.trainer = Trainer(config, one_cpu)
    trainer.run()
    assert trainer.step == 4 and int(trainer.skipped.numpy()) == 1 and trainer.non_finite_skips == 1
    reader = tf.train.load_checkpoint(trainer.manager.latest_checkpoint)
    assert reader.get_tensor("skipped_batches/.ATTRIBUTES/VARIABLE_VALUE") == 1


def test_jit_compile_gives_the_losses_and_update_of_the_plain_step(toy_dataset, tmp_path, one_cpu):
    """--jit_compile: XLA compiles each replica's forward and backward pass; same losses and update (XLA fuses and
    reorders float ops: 1e-3). Dropout is off: XLA draws other masks from the same stateless seeds."""
    config = toy_config(toy_dataset, tmp_path / "plain", mode="sup")
    plain, compiled = Trainer(config, one_cpu), Trainer(config.replace(jit_compile=True), one_cpu)
    for trainer in (plain, compiled):
        for layer in trainer.model._flatten_layers():
            if hasattr(layer, "rate"):
                layer.rate = 0.0
    weights = [v.numpy() for v in plain.model.variables]
    seeds = [s.numpy() for s in seed_states(plain.model).values()]
    labeled, _ = plain.datasets(0)
    batches = [(next(iter(labeled)), None)]
    expected = _losses_over_steps(plain, batches, weights, seeds)[0]
    got = _losses_over_steps(compiled, batches, weights, seeds)[0]
    assert got["applied"] == 1.0 and got["total"] == pytest.approx(expected["total"], rel=1e-3)
    for a, b in zip(compiled.model.trainable_variables, plain.model.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-5)
