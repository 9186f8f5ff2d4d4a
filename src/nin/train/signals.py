"""Ctrl-C and SIGTERM during training: finish the step, keep a checkpoint, stop."""

from __future__ import annotations

import contextlib
import signal

from nin.errors import NinError


class TrainingInterrupted(NinError):
    """Ctrl-C or SIGTERM during training; a checkpoint of the last finished step is kept."""

    exit_code = 130


class StopRequest:
    """Set by the first Ctrl-C or SIGTERM: the loop saves a checkpoint after the current step and stops.

    A second signal interrupts at once (the last checkpoint written is kept)."""

    def __init__(self):
        self.requested = False

    def handler(self, _signum, _frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@contextlib.contextmanager
def graceful_stop():
    """While training, SIGINT and SIGTERM (a scheduler's pre-emption) become a StopRequest."""
    request = StopRequest()
    previous = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, request.handler)
    except ValueError:   # not the main thread: leave signals alone
        pass
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
