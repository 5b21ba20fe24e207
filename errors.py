"""One kind of error for bad user input, and the wrapper every entry point runs under.

Bad input (a missing folder, a corrupt JPEG, a malformed annotation line, a
wrong flag, a missing checkpoint) raises :class:`UserError` with a message that
names the file (and line).  :func:`run_main` prints it as one line on stderr
and exits with status 2, never a bare traceback.
"""

import os
import sys


class UserError(Exception):
    """Bad input from the user; the message names the file/flag (and line) at fault."""


def run_main(main, argv=None):
    """Call ``main(argv)``; turn a :class:`UserError` into ``error: ...`` on stderr and exit 2."""
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def raise_interrupt(signum, frame):
    """A signal handler: SIGTERM (the table scripts' stop, a scheduler's kill) ends an entry point
    as Ctrl-C does, so that it says what is kept and what is lost."""
    raise KeyboardInterrupt


class _ClosedPipeTolerant:
    """sys.stdout that, once its reader is gone (``| head``), sends the rest to /dev/null."""

    def __init__(self, stream):
        self._stream = stream

    def _retry(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())  # later writes succeed
            return method(*args)

    def write(self, text):
        return self._retry(self._stream.write, text)

    def flush(self):
        return self._retry(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def quiet_closed_stdout():
    """From now on a closed stdout (``| head -2``) is not a BrokenPipeError: the command carries on,
    writing its files, and its further output is dropped.  For an entry point's ``__main__``."""
    sys.stdout = _ClosedPipeTolerant(sys.stdout)
