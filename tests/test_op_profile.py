"""benchmark-step --profile's reading of the TF profiler: op types by self time, on a real computation."""
import os
import sys

import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from op_profile import format_profile, op_rows, time_by_op_type  # noqa: E402


def test_op_types_by_self_time_of_a_small_step():
    kernel = tf.random.normal([3, 3, 8, 64])

    @tf.function
    def step(x):
        return tf.reduce_sum(tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME")))

    x = tf.random.normal([4, 96, 96, 8])
    step(x)
    by_type = time_by_op_type(op_rows(lambda: step(x).numpy(), 3))
    kinds = [kind for kind, _, _ in by_type]
    assert any("Conv2D" in kind for kind in kinds) and any("Relu" in kind for kind in kinds)
    assert "IDLE" not in kinds and abs(sum(share for _, _, share in by_type) - 1) < 1e-6
    assert all(seconds > 0 for _, seconds, _ in by_type)
    assert [s for _, s, _ in by_type] == sorted((s for _, s, _ in by_type), reverse=True)
    lines = format_profile("step", by_type, 3, top=2).splitlines()
    assert kinds[0] in lines[1] and kinds[1] in lines[2] and len(lines) == (4 if len(kinds) > 2 else 3)
