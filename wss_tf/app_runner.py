"""`run(main)`: absl's app.run, with a user's error (bad flags, missing or bad files, a run that does not fit)
reported as one line naming the problem, as a TF / absl user expects, and the traceback only with --traceback.
A bug (any other exception) keeps its traceback."""
from __future__ import annotations

import sys

from absl import app, flags, logging

flags.DEFINE_bool("traceback", False, "show the Python traceback of an error (a one-line message otherwise)")

# What a user can fix: bad settings or data (ValueError), missing files or folders (OSError), a run that went
# non-finite (FloatingPointError), a train_logdir in use (LogdirInUse, a RuntimeError).
USER_ERRORS = (ValueError, OSError, FloatingPointError, RuntimeError)


def _reported(main):
    def wrapped(argv):
        try:
            return main(argv)
        except USER_ERRORS as e:
            if flags.FLAGS.traceback:
                raise
            logging.flush()
            print(f"error: {e}\n(--traceback shows where it was raised)", file=sys.stderr)
            sys.exit(1)
    return wrapped


def run(main) -> None:
    app.run(_reported(main))
