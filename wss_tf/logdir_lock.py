"""One training per train_logdir: an exclusive lock on `train_logdir/.lock` while a run trains.

Two trainings in one directory would overwrite each other's checkpoints and event files. The lock is an
advisory `flock` held by the open file, so the kernel drops it when the process ends, however it ends (SIGKILL,
a crash): a dead run never leaves a stale lock behind. The file names the holder (host, pid) for the error.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket

LOCK_FILE = ".lock"


class LogdirInUse(RuntimeError):
    pass


@contextlib.contextmanager
def locked(logdir: str):
    """Holds the lock of `logdir` for the block; LogdirInUse if another process (or another open of this
    process) holds it."""
    os.makedirs(logdir, exist_ok=True)
    path = os.path.join(logdir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise LogdirInUse(f"train_logdir {logdir} is in use by another training ({holder}): two runs in one "
                              f"directory would overwrite each other's checkpoints; wait for it, stop it, or use "
                              f"another --train_logdir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock
