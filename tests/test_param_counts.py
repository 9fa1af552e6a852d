"""Parameter counts of the Keras models against counts derived by hand from the official architecture.

The reference counts below are plain arithmetic over the layer tables of the official code (xception.py
`xception_65_factory`, resnet_v1_beta.py `resnet_v1_101_beta`, model.py ASPP/decoder/logits): a conv k x k
from c_in to c_out has k*k*c_in*c_out weights, a depthwise conv k*k*c_in, a batch norm 4 per channel
(gamma, beta, moving mean, moving variance; 2 of them trainable), the logits conv has a bias.
"""
import pytest



def _bn(c):
    return 4 * c


def _conv(k, cin, cout):
    return k * k * cin * cout + _bn(cout)


def _separable(cin, cout, k=3):
    return k * k * cin + _bn(cin) + cin * cout + _bn(cout)


def _head(features, low_level, num_classes, depth=256, rates=3):
    aspp = (_conv(1, features, depth) * 2 + rates * _separable(features, depth)
            + _conv(1, (rates + 2) * depth, depth))
    decoder = _conv(1, low_level, 48) + _separable(depth + 48, 256) + _separable(256, 256)
    return aspp + decoder + 256 * num_classes + num_classes


def xception_65_reference(num_classes=21):
    total = _conv(3, 3, 32) + _conv(3, 32, 64)
    blocks = [([128] * 3, True, 1), ([256] * 3, True, 1), ([728] * 3, True, 1), ([728] * 3, False, 16),
              ([728, 1024, 1024], True, 1), ([1536, 1536, 2048], False, 1)]
    cin = 64
    for depths, conv_shortcut, units in blocks:
        for _ in range(units):
            c = cin
            for d in depths:
                total += _separable(c, d)
                c = d
            if conv_shortcut:
                total += _conv(1, cin, depths[-1])
            cin = depths[-1]
    return total + _head(2048, 256, num_classes)


def resnet_v1_101_beta_reference(num_classes=21):
    total = _conv(3, 3, 64) + _conv(3, 64, 64) + _conv(3, 64, 128)
    cin = 128
    for base, units in ((64, 3), (128, 4), (256, 23), (512, 3)):
        for _ in range(units):
            depth = base * 4
            total += _conv(1, cin, base) + _conv(3, base, base) + _conv(1, base, depth)
            if cin != depth:
                total += _conv(1, cin, depth)
            cin = depth
    return total + _head(2048, 256, num_classes)


@pytest.mark.parametrize("variant, reference", [("xception_65", xception_65_reference),
                                                ("resnet_v1_101_beta", resnet_v1_101_beta_reference)])
def test_parameter_count_matches_official_architecture(variant, reference, deeplab_model):
    model = deeplab_model(variant, num_classes=21)
    assert model.count_params() == reference(21)
    bn_channels = sum(w.shape[0] for w in model.weights if w.path.endswith("moving_mean"))
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    assert trainable == reference(21) - 2 * bn_channels
