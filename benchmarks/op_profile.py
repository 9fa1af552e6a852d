"""Where a step's time goes: the TF profiler's per-op self times, summed by op type (benchmark-step --profile).

Reads the profiler's own "framework_op_stats" table (what TensorBoard's profile plugin shows), so the figures are
TensorFlow's measurements, not ours; the host is the CPU here (on a GPU host the device rows count).
"""
from __future__ import annotations

import collections
import glob
import json
import os
import tempfile
from typing import Callable

import tensorflow as tf
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as profiler_plugin

_SKIPPED_TYPES = {"IDLE"}  # the profiler's idle time, not an op


def op_rows(run: Callable[[], object], steps: int) -> list[dict]:
    """Runs `run` `steps` times under the profiler; the framework_op_stats rows (one per op name)."""
    with tempfile.TemporaryDirectory() as directory:
        tf.profiler.experimental.start(directory)
        try:
            for _ in range(steps):
                run()
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(os.path.join(directory, "**", "*.xplane.pb"), recursive=True)
        data, ok = profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    if not ok:
        raise RuntimeError("the profiler wrote no op statistics")
    table = json.loads(data)[0]
    names = [column["id"] for column in table["cols"]]
    return [{name: (cell or {}).get("v") for name, cell in zip(names, row["c"])} for row in table["rows"]]


def time_by_op_type(rows: list[dict], device: str = "Host") -> list[tuple[str, float, float]]:
    """(op type, self seconds, share of all ops' self time), largest first."""
    totals = collections.Counter()
    for row in rows:
        if row.get("host_or_device") == device and row.get("type") not in _SKIPPED_TYPES:
            totals[row["type"]] += float(row["total_self_time"]) * 1e-6
    whole = sum(totals.values()) or 1.0
    return [(kind, seconds, seconds / whole) for kind, seconds in totals.most_common()]


def format_profile(title: str, by_type: list[tuple[str, float, float]], steps: int, top: int = 12) -> str:
    lines = [f"   {title}: top op types by self time ({steps} steps profiled)"]
    cumulative = 0.0
    for kind, seconds, share in by_type[:top]:
        cumulative += share
        lines.append(f"     {kind:<46} {seconds / steps * 1000:8.1f} ms/step {share:6.1%}  (cumulative "
                     f"{cumulative:6.1%})")
    rest = sum(s for _, s, _ in by_type[top:])
    if rest:
        lines.append(f"     {'(' + str(len(by_type) - top) + ' other op types)':<46} {rest / steps * 1000:8.1f} "
                     f"ms/step {1 - cumulative:6.1%}")
    return "\n".join(lines)
