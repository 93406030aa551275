"""``python -m cxr_core``: see :mod:`cxr_core.cli`."""

import os
import signal
import sys


class _EarlySigterm:
    """Keeps a SIGTERM that arrives while the command line is still importing, instead of
    dying of it; ``train`` hands it to its stop request (see ``cli._guard_training``)."""

    received = False

    def __call__(self, *_: object) -> None:
        self.received = True


def _run() -> int:
    signal.signal(signal.SIGTERM, _EarlySigterm())
    from cxr_core.cli import main  # after the handler: importing takes seconds

    return main()


status = _run()
if status == 143:
    # Terminated: skip TensorFlow's teardown, which can take seconds (or crash) on the way
    # out; the one line is already written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
sys.exit(status)
