import numpy as np
import pytest

from wss_tf.colormap import COLORMAP_TYPES, colorize, colorize_array, colormap


@pytest.mark.parametrize("name, entries", [
    ("pascal", {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 15: (192, 128, 128), 20: (0, 64, 128),
                255: (224, 224, 192)}),
    ("cityscapes", {0: (128, 64, 128), 11: (220, 20, 60), 18: (119, 11, 32), 19: (0, 0, 0)}),
    ("ade20k", {0: (0, 0, 0), 1: (120, 120, 120), 2: (180, 120, 120), 3: (6, 230, 230), 4: (80, 50, 50),
                12: (235, 255, 7), 100: (255, 112, 0), 149: (102, 255, 0), 150: (92, 0, 255), 151: (0, 0, 0)}),
])
def test_known_entries(name, entries):
    table = colormap(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    for index, colour in entries.items():
        assert tuple(table[index]) == colour, (name, index)


def test_ade20k_has_151_distinct_entries_and_colorize_agrees():
    table = colormap("ade20k")
    assert table[1:151].any(axis=1).all() and not table[151:].any()
    labels = np.array([[0, 1, 150], [255, 7, 3]])
    for name in COLORMAP_TYPES:
        np.testing.assert_array_equal(colorize(labels, name).numpy(), colorize_array(labels, name))
    with pytest.raises(ValueError, match="colormap must be one of"):
        colormap("mapillary")
