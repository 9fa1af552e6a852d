"""SIGTERM (a preempted or cancelled job) as a request to stop after the current step, from process start on.

An app calls `install()` first thing in main, so a SIGTERM that arrives while the model is built and the step
traced (minutes on a CPU) is also caught: the trainer then stops before its first step with the documented exit
status 143, instead of the default handler killing the process (-15) at an arbitrary point. Library users who
never call `install()` get the handler only while `Trainer.run` trains (`watching()`).
"""
from __future__ import annotations

import contextlib
import signal
import threading

_requested = threading.Event()
_installed = False


def _handler(signum, frame):
    _requested.set()


def install() -> None:
    """Catch SIGTERM for the rest of the process (main thread only; elsewhere a no-op)."""
    global _installed
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _handler)
        _installed = True


def requested() -> bool:
    return _requested.is_set()


@contextlib.contextmanager
def watching():
    """SIGTERM caught while the block runs: the process-wide handler if an app installed one, else a handler
    for the block (the previous one is put back after, e.g. pytest's)."""
    if _installed or threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested.clear()  # a request belongs to the block that caught it
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
