import numpy as np
import pytest
import tensorflow as tf

from wss_tf.data.classification_corpus import corpus_classes, generate_corpus
from wss_tf.pretraining import PretrainConfig, pretrain

TINY = PretrainConfig(images_per_class=2, image_size=40, crop_size=33, batch_size=4, steps=4)


def test_corpus_holds_both_families_and_extra_classes_and_is_cached(tmp_path):
    names = [c[0] for c in corpus_classes()]
    assert "synthetic_shapes/disc" in names and "synthetic_objects/house" in names
    assert "synthetic_shapes/hexagon" in names  # a class no segmentation split holds
    a = generate_corpus(str(tmp_path / "a"), images_per_class=2, image_size=40)
    assert a.images.shape == (2 * len(names), 40, 40, 3) and a.images.dtype == np.uint8
    assert np.bincount(a.labels).tolist() == [2] * len(names)
    again = generate_corpus(str(tmp_path / "a"), images_per_class=2, image_size=40)
    assert again.reused and np.array_equal(again.images, a.images)
    other = generate_corpus(str(tmp_path / "b"), seed=1, images_per_class=2, image_size=40)
    assert not other.reused and not np.array_equal(other.images, a.images)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    lines = []
    result = pretrain(TINY, str(tmp_path_factory.mktemp("pretrain")), log_every=2, log=lines.append)
    return result, lines


def test_pretraining_writes_a_model_zoo_shaped_checkpoint(pretrained):
    result, lines = pretrained
    names = set(tf.train.load_checkpoint(result.checkpoint).get_variable_to_shape_map())
    assert "xception_tiny/logits/weights" in names and "xception_tiny/logits/biases" in names
    assert any(n.startswith("xception_tiny/entry_flow/") for n in names)
    assert not any(n.startswith(("aspp", "image_pooling", "concat_projection", "decoder", "logits/", "hyper_column"))
                   for n in names)
    shape = tf.train.load_checkpoint(result.checkpoint).get_variable_to_shape_map()["xception_tiny/logits/weights"]
    assert shape[-1] == result.num_classes == len(corpus_classes())
    assert any("pretraining step 4/4" in line for line in lines)


def test_pretraining_is_cached_by_its_settings(pretrained, tmp_path):
    result, _ = pretrained
    cache = result.checkpoint.rsplit("/", 2)[0]
    again = pretrain(TINY, cache, log=lambda _: None)
    assert again.reused and again.checkpoint == result.checkpoint


def test_training_starts_from_the_pretrained_backbone_with_fresh_heads(pretrained, toy_dataset, tmp_path):
    from deeplab import official_variable_map
    from test_trainer import toy_config
    from wss_tf.trainer import Trainer

    result, _ = pretrained
    trainer = Trainer(toy_config(toy_dataset, tmp_path, tf_initial_checkpoint=result.checkpoint))
    trainer.restore_or_initialize()
    reader = tf.train.load_checkpoint(result.checkpoint)
    variables = official_variable_map(trainer.model)
    name = "xception_tiny/entry_flow/conv1_1/weights"
    np.testing.assert_array_equal(variables[name].numpy(), reader.get_tensor(name))
    # the K-way classifier head is not the corpus' logits: it keeps its own shape and initial values
    assert variables["xception_tiny/logits/weights"].shape[-1] == 3

