"""Process helpers of the standard library alone (a ground module: no TensorFlow), for the data
workers (dataflow.builders) and the table scripts' runs (reproduce.executor): a child that dies with
its parent, the CPU time of a process's children, and the cores this process may run on."""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def available_cores():
    """Number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def die_with_parent():
    """Ask Linux to SIGKILL this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``).

    tensorpack does this itself when python-prctl is installed; it does not build here, so a
    killed trainer would leave its data workers running (and a killed table script its runs).
    ctypes reaches the same system call.  The signal comes when the *thread* that forked this process
    ends: fork from the main thread (tensorpack's trainers do).  Elsewhere than Linux: a warning, nothing else.
    """
    if not sys.platform.startswith("linux"):
        print(
            "warning: child processes cannot follow their parent's death on this system; kill them by hand",
            file=sys.stderr,
        )
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        print(
            f"warning: prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}",
            file=sys.stderr,
        )
    if os.getppid() != parent:  # the parent died before the call: nobody will send the signal
        os._exit(1)


def child_processes(pid=None):
    """``{child pid: CPU seconds (user + system) so far}`` of the live (not zombie) children of ``pid``.

    Default: this process: its data workers (Linux /proc; for the benchmark and the tests).
    """
    pid, found = os.getpid() if pid is None else pid, {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "pid (name)": state, ppid, ...
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found
