import numpy as np
import pytest
import tensorflow as tf

from deeplab import (BACKBONES, DeepLabConfig, DeepLabV3Plus, load_official_checkpoint, logits_scopes,
                     official_variable_map, save_official_checkpoint)


def _randomize(model, seed):
    """Random values everywhere, moving statistics included, so a skipped variable cannot go unnoticed."""
    rng = np.random.RandomState(seed)
    for name, var in official_variable_map(model).items():
        value = rng.normal(0, 0.05, var.shape)
        if name.endswith(("moving_variance", "gamma")):
            value = rng.uniform(0.5, 1.5, var.shape)
        var.assign(value.astype(np.float32))


@pytest.mark.parametrize("variant", sorted(BACKBONES))
def test_round_trip_through_official_names(variant, tmp_path, deeplab_model):
    model = deeplab_model(variant, num_classes=21)
    images = np.random.RandomState(2).uniform(0, 255, (1, 65, 65, 3)).astype(np.float32)
    _randomize(model, 1)
    saved_logits = model(images, training=False)["logits"].numpy()
    mapping = official_variable_map(model)
    assert len(mapping) == len(model.weights)  # every variable, moving statistics included
    prefix = save_official_checkpoint(model, str(tmp_path / "model.ckpt"))
    assert set(tf.train.load_checkpoint(prefix).get_variable_to_shape_map()) == set(mapping)

    _randomize(model, 2)
    assert np.abs(model(images, training=False)["logits"].numpy() - saved_logits).max() > 1e-3
    report = load_official_checkpoint(model, str(tmp_path), require_all=True)  # a directory works too
    assert len(report.loaded) == len(mapping) and not report.unused and not report.uninitialized
    np.testing.assert_array_equal(model(images, training=False)["logits"], saved_logits)


def test_every_variable_type_has_its_official_suffix(deeplab_model):
    mapping = official_variable_map(deeplab_model("xception_65", num_classes=21))
    suffixes = {name.rsplit("/", 1)[1] for name in mapping}
    assert suffixes == {"weights", "depthwise_weights", "biases", "gamma", "beta", "moving_mean", "moving_variance"}
    stats = [n for n in mapping if n.endswith("moving_mean")]
    assert len(stats) == len([n for n in mapping if n.endswith("moving_variance")]) == len(
        [n for n in mapping if n.endswith("/gamma")])
    assert [n for n in mapping if n.endswith("biases")] == ["logits/semantic/biases"]


def test_initialisation_excludes_logits_and_reports(tmp_path):
    source = DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=21))
    _randomize(source, 3)
    prefix = save_official_checkpoint(source, str(tmp_path / "model.ckpt"))
    target = DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=21))
    before = target.get_layer("logits.semantic").kernel.numpy()
    report = load_official_checkpoint(target, prefix, exclude_scopes=logits_scopes(target))
    assert report.excluded == ["logits/semantic/biases", "logits/semantic/weights"]
    np.testing.assert_array_equal(target.get_layer("logits.semantic").kernel.numpy(), before)
    aspp0 = "aspp0/weights"
    np.testing.assert_array_equal(official_variable_map(target)[aspp0], official_variable_map(source)[aspp0])
    assert "excluded by request (2)" in report.summary()


def test_imagenet_style_checkpoint_leaves_head_uninitialised(tmp_path):
    """A backbone-only checkpoint with extra variables (1001-way logits, optimizer slots) loads the backbone."""
    model = DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=21))
    backbone_only = {n: v.numpy() for n, v in official_variable_map(model).items() if n.startswith("xception_tiny/")}
    backbone_only["xception_tiny/logits/weights"] = np.zeros((1, 1, 128, 1001), np.float32)
    backbone_only["xception_tiny/entry_flow/conv1_1/weights/Momentum"] = np.zeros((3, 3, 3, 8), np.float32)
    names = sorted(backbone_only)
    prefix = str(tmp_path / "imagenet.ckpt")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[backbone_only[n] for n in names])
    report = load_official_checkpoint(model, prefix, exclude_scopes=logits_scopes(model))
    # the seg logits are excluded; the model has no classifier head yet, so the 1001-way logits are unused
    assert report.excluded == ["logits/semantic/biases", "logits/semantic/weights"]
    assert report.unused == ["xception_tiny/entry_flow/conv1_1/weights/Momentum", "xception_tiny/logits/weights"]
    assert "aspp0/weights" in report.uninitialized and "decoder/decoder_conv1_pointwise/weights" in report.uninitialized
    assert all(n.startswith("xception_tiny/") for n in report.loaded)


def test_errors_name_the_problem(tmp_path):
    source = DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=21))
    prefix = save_official_checkpoint(source, str(tmp_path / "voc.ckpt"))
    with pytest.raises(ValueError, match=r"shape mismatch for .logits/semantic/biases.: checkpoint \(21,\) vs model \(81,\)"):
        load_official_checkpoint(DeepLabV3Plus(DeepLabConfig("xception_tiny", num_classes=81)), prefix)
    resnet = DeepLabV3Plus(DeepLabConfig("resnet_v1_50", num_classes=21))
    with pytest.raises(ValueError, match="no variables of backbone scope 'resnet_v1_50'.*xception_tiny"):
        load_official_checkpoint(resnet, prefix)
    with pytest.raises(FileNotFoundError, match="cannot read a TF checkpoint"):
        load_official_checkpoint(source, str(tmp_path / "missing.ckpt"))


FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "official"


def _official_variables(variant):
    rows = {}
    for line in (FIXTURES / f"{variant}_variables.tsv").read_text().splitlines():
        name, shape, _, regularized = line.split("\t")
        rows[name] = (tuple(int(s) for s in shape.split(",")), regularized == "regularized")
    return rows


def _regularized_kernels(layer, found):
    for sub in getattr(layer, "layers", None) or []:
        _regularized_kernels(sub, found)
    if getattr(layer, "kernel_regularizer", None) is not None:
        found.add(id(layer.kernel))
    return found


@pytest.mark.parametrize("variant", ["xception_65", "resnet_v1_50", "resnet_v1_50_beta", "resnet_v1_101",
                                     "resnet_v1_101_beta"])
def test_names_shapes_and_weight_decay_equal_the_official_graph(variant, deeplab_model):
    """The mapping against the variable list of the official graph (see fixtures/official/README.md)."""
    model = deeplab_model(variant, num_classes=21)
    scope = model.spec.scope
    official = {n: v for n, v in _official_variables(variant).items() if not n.startswith(f"{scope}/logits/")}
    mapping = official_variable_map(model)
    assert sorted(mapping) == sorted(official)
    assert {n: tuple(v.shape) for n, v in mapping.items()} == {n: s for n, (s, _) in official.items()}
    regularized = _regularized_kernels(model, set())
    assert {n for n, v in mapping.items() if id(v) in regularized} == {n for n, (_, r) in official.items() if r}
