"""One kind of error for bad user input, and the wrapper every entry point runs under.

Bad input (a missing folder, a corrupt JPEG, a malformed annotation line, a
wrong flag, a missing checkpoint) raises :class:`UserError` with a message that
names the file (and line).  :func:`run_main` prints it as one line on stderr
and exits with status 2, never a bare traceback.
"""
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
